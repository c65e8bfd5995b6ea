"""`conveyor queue limits QUEUE [...]` and `conveyor queue keys QUEUE`: flow control from the
terminal (the limits of a queue, its busiest limit keys)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click
from rich.table import Table

from conveyor.brokers.base import KeyInfo
from conveyor.cli.output import console, echo_json, id_column
from conveyor.cli.params import QUEUE
from conveyor.cli.runtime import json_flag, run, wants_json
from conveyor.client import AsyncConveyor
from conveyor.errors import ValidationError
from conveyor.flow import LIMIT_MAX, QueueLimits, Rate, parse_limits, parse_rate
from conveyor.timeutil import ms_to_datetime

COUNT = click.IntRange(1, LIMIT_MAX)


class RateParam(click.ParamType[Rate]):
    name = "RATE"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Rate:
        if isinstance(value, Rate):
            return value
        try:
            return parse_rate(str(value))
        except ValidationError as exc:
            self.fail(exc.message, param, ctx)


RATE = RateParam()


def _weights(pairs: tuple[str, ...]) -> dict[str, int] | None:
    out: dict[str, int] = {}
    for pair in pairs:
        key, sep, w = pair.rpartition("=")
        if not sep or not w.isdigit():
            raise click.BadParameter(f"{pair!r}: write KEY=WEIGHT, e.g. acme=4",
                                     param_hint="--weight")
        out[key] = int(w)
    return out or None


def _rate(rate: Rate | None, burst: int | None, flag: str) -> dict[str, Any] | None:
    if rate is None:
        if burst is not None:
            raise click.BadParameter(f"{flag.replace('rate', 'burst')} needs {flag}")
        return None
    data = rate.model_dump()
    if burst is not None:
        data["burst"] = burst
    return data


def show_limits(name: str, limits: QueueLimits | None) -> None:
    spec = limits or QueueLimits()
    if wants_json():
        echo_json({"queue": name, **spec.model_dump()})
        return
    if limits is None or spec.empty:
        click.echo(f"queue {name}: no limits")
        return

    def rate(r: Rate | None) -> str:
        return "-" if r is None else f"{r.count}/{r.per_s:g}s burst {r.burst}"

    click.echo(f"queue {name}: concurrency {spec.concurrency or '-'}, rate {rate(spec.rate)},"
               f" per key: concurrency {spec.key_concurrency or '-'}, rate "
               f"{rate(spec.key_rate)}"
               + (f", weights {spec.key_weights}" if spec.key_weights else ""))


def register(queue: click.Group) -> None:
    @queue.command("limits")
    @click.argument("name", metavar="QUEUE", type=QUEUE)
    @click.option("--concurrency", type=COUNT, help="RUNNING jobs of the queue at most.")
    @click.option("--rate", type=RATE, help="Starts of the queue, e.g. 100/s, 10/m, 5/2.5s.")
    @click.option("--burst", type=COUNT, help="Starts at once above the rate [default: 1].")
    @click.option("--key-concurrency", type=COUNT, help="RUNNING jobs per limit key at most.")
    @click.option("--key-rate", type=RATE, help="Starts per limit key, e.g. 5/s.")
    @click.option("--key-burst", type=COUNT, help="Starts at once per key [default: 1].")
    @click.option("--weight", "weights", multiple=True, metavar="KEY=W",
                  help="Fairness weight of a key (repeatable; others weigh 1).")
    @click.option("--clear", is_flag=True, help="Remove the queue's limits.")
    @json_flag
    def limits(
        name: str, concurrency: int | None, rate: Rate | None, burst: int | None,
        key_concurrency: int | None, key_rate: Rate | None, key_burst: int | None,
        weights: tuple[str, ...], clear: bool,
    ) -> None:
        """Show QUEUE's limits, set them (the options given replace the whole record), or
        remove them (--clear). Limits are enforced when workers fetch: a held job is never
        leased and never charged an attempt."""
        given = {
            "concurrency": concurrency, "rate": _rate(rate, burst, "--rate"),
            "key_concurrency": key_concurrency,
            "key_rate": _rate(key_rate, key_burst, "--key-rate"),
            "key_weights": _weights(weights),
        }
        setting = any(v is not None for v in given.values())
        if clear and setting:
            raise click.UsageError("--clear takes no other limit option")
        spec = parse_limits(given) if setting else None

        async def action(client: AsyncConveyor) -> QueueLimits | None:
            if clear:
                await client.delete_limits(name)
                return None
            if spec is not None:
                return await client.set_limits(name, spec)
            return await client.get_limits(name)

        show_limits(name, run(action, creates=spec is not None))

    @queue.command("keys")
    @click.argument("name", metavar="QUEUE", type=QUEUE)
    @click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True,
                  help="How many keys.")
    @json_flag
    def keys(name: str, limit: int) -> None:
        """The busiest limit keys of QUEUE with backlog: waiting, running, held until."""

        async def action(client: AsyncConveyor) -> list[KeyInfo]:
            return await client.limit_keys(name, limit)

        found = run(action)
        if wants_json():
            echo_json([asdict(k) for k in found])
            return
        if not found:
            click.echo(f"queue {name}: no key with backlog")
            return
        table = Table()
        id_column(table, "key", [k.key for k in found])
        for header in ("backlog", "running", "held until"):
            table.add_column(header, justify="right", no_wrap=True)
        for k in found:
            until = ("-" if not k.held else "a permit" if k.held_until_ms is None
                     else str(ms_to_datetime(k.held_until_ms)))
            table.add_row(k.key, str(k.backlog), str(k.running), until)
        console().print(table)
