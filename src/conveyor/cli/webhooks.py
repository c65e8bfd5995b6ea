"""`conveyor webhook add|list|show|delete`: webhook subscriptions from the command line.

`add` prints the signing secret, the one time it is shown; `list` and `show` never do. The
URL is checked as `POST /v1/webhooks` checks it (a refusal exits 2 naming the reason), with
`CONVEYOR_WEBHOOK_ALLOW_PRIVATE` from the environment.
"""

from __future__ import annotations

import click
from rich.table import Table

from conveyor.cli.output import console, echo_json, id_column, when
from conveyor.cli.runtime import json_flag, run, state, wants_json
from conveyor.client import AsyncConveyor
from conveyor.webhooks.client import AsyncWebhooks, spec_of
from conveyor.webhooks.model import WEBHOOK_EVENTS, Subscription, is_subscription_id

_EVENTS_HELP = ", ".join(WEBHOOK_EVENTS)


def _hooks(client: AsyncConveyor) -> AsyncWebhooks:
    return AsyncWebhooks(client.broker, settings=state().settings())


def _id(value: str) -> str:
    if not is_subscription_id(value):
        raise click.BadParameter("a webhook id is wh_ and 32 hex digits", param_hint="ID")
    return value


def _print(sub: Subscription, *, secret: bool = False) -> None:
    rows = [("id", sub.id), ("url", sub.url), ("events", ", ".join(sub.events)),
            ("queues", ", ".join(sub.queues) if sub.queues else "(all)"),
            ("types", ", ".join(sub.types) if sub.types else "(all)"),
            ("created", when(sub.created_at))]
    if sub.disabled_at is not None:
        rows.append(("disabled", f"{when(sub.disabled_at)}: {sub.disabled_reason or ''}"))
    if secret:
        rows.append(("secret", sub.secret.get_secret_value()))
    for name, value in rows:
        click.echo(f"{name + ':':<9} {value}")


@click.group()
def webhook() -> None:
    """Subscribe URLs to job events (signed POSTs, Standard Webhooks)."""


@webhook.command("add")
@click.argument("url")
@click.option("--event", "-e", "events", multiple=True, required=True, metavar="EVENT",
              help=f"An event to deliver (repeatable): {_EVENTS_HELP}.")
@click.option("--queue", "-q", "queues", multiple=True, metavar="QUEUE",
              help="Only events of this queue (repeatable) [default: every queue].")
@click.option("--type", "-t", "types", multiple=True, metavar="TYPE",
              help="Only events of jobs of this type (repeatable) [default: every type].")
@json_flag
def add(url: str, events: tuple[str, ...], queues: tuple[str, ...],
        types: tuple[str, ...]) -> None:
    """Subscribe URL to job events; prints the signing secret (shown only now)."""
    spec_of(url, events, queues or None, types or None)  # a bad request before connecting

    async def action(client: AsyncConveyor) -> Subscription:
        return await _hooks(client).create(url, events, queues=queues or None,
                                           types=types or None)

    sub = run(action, creates=True)
    if wants_json():
        echo_json(sub.created())
        return
    _print(sub, secret=True)
    click.echo("store the secret now: it is never shown again", err=True)


@webhook.command("list")
@json_flag
def list_() -> None:
    """List subscriptions (without their secrets)."""

    async def action(client: AsyncConveyor) -> list[Subscription]:
        return await _hooks(client).list()

    subs = run(action)
    if wants_json():
        echo_json([s.public() for s in subs])
        return
    if not subs:
        click.echo("no webhook subscriptions")
        return
    table = Table()
    id_column(table, "id", [s.id for s in subs])
    for header in ("url", "events", "queues", "types", "state"):
        table.add_column(header)
    for s in subs:
        table.add_row(s.id, s.url, ",".join(s.events), ",".join(s.queues or ["*"]),
                      ",".join(s.types or ["*"]), "enabled" if s.enabled else "disabled")
    console().print(table)


@webhook.command("show")
@click.argument("sub_id", metavar="ID")
@json_flag
def show(sub_id: str) -> None:
    """Show one subscription (without its secret)."""
    _id(sub_id)

    async def action(client: AsyncConveyor) -> Subscription:
        return await _hooks(client).get(sub_id)

    sub = run(action)
    if wants_json():
        echo_json(sub.public())
    else:
        _print(sub)


@webhook.command("delete")
@click.argument("sub_id", metavar="ID")
@json_flag
def delete(sub_id: str) -> None:
    """Delete a subscription; its deliveries not yet sent are skipped."""
    _id(sub_id)

    async def action(client: AsyncConveyor) -> None:
        await _hooks(client).delete(sub_id)

    run(action)
    if wants_json():
        echo_json({"id": sub_id, "deleted": True})
    else:
        click.echo(f"deleted webhook {sub_id}")

