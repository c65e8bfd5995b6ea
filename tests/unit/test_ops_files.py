"""The ready-made operations files of docs/ops (issue 18): the Prometheus alert rules parse,
and every metric the rules and the Grafana dashboard use exists in the code's registries, with
the labels and label values they select on."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from conveyor.api.metrics import ApiMetrics
from conveyor.brokers.base import WorkerInfo
from conveyor.jobs import JobState
from conveyor.worker.metrics import OUTCOMES, WorkerMetrics

OPS = Path(__file__).resolve().parents[2] / "docs" / "ops"
SELECTOR = re.compile(r"\b(conveyor_[a-z_]+)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)")
#: label values the files may select on, per label
VALUES = {"outcome": set(OUTCOMES), "state": {str(s) for s in JobState}}


def exported() -> dict[str, set[str]]:
    """Every sample name the API and a worker export, with its label names."""
    api = ApiMetrics()
    api.queues.stats = {"q": {str(s): 1 for s in JobState}}
    api.queues.ages = {"q": 1.0}
    api.queues.set_workers([WorkerInfo("w", "h", 1, ["q"], 2, ["q:" + "0" * 32], 1)])
    api.observe("GET", "/v1/jobs", 200, 0.01)
    api.broker_up.set(1)
    w = WorkerMetrics()
    for outcome in OUTCOMES:
        w.outcome("q", "t", outcome)
    w.ran("q", "t", 0.1)
    w.waited("q", "t", 0.1)
    w.watch_slots(lambda: 1, lambda: 1)
    w.describe_worker("w", ["q"])
    w.expired("q", 1, 1)
    with w.call("fetch"), w.step("reap"):
        pass
    names: dict[str, set[str]] = {}
    for registry in (api.registry, w.registry):
        for family in registry.collect():
            for sample in family.samples:
                names.setdefault(sample.name, set()).update(sample.labels)
    return names


def check_expr(expr: str, names: dict[str, set[str]]) -> None:
    expr = expr.replace("$__rate_interval", "5m")
    used = SELECTOR.findall(expr)
    assert used, f"no conveyor metric in {expr!r}"
    labels: set[str] = set()
    for name, braces in used:
        assert name in names, f"{name} (in {expr!r}) is exported by no registry"
        labels |= names[name]
        for label, op, value in MATCHER.findall(braces):
            assert label in names[name], f"{name} has no label {label!r}"
            if label in VALUES and value != "$queue":
                wanted = set(value.split("|")) if op == "=~" else {value}
                assert wanted <= VALUES[label], f"{label}={value!r} is never exported"
    for group in GROUPING.findall(expr):
        for label in filter(None, (g.strip() for g in group.split(","))):
            assert label in labels | {"le"}, f"grouping by {label!r}: no such label ({expr!r})"


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((OPS / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_alert_rules_parse_and_cover_the_issue() -> None:
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= {
        "ConveyorOldestReadyJobTooOld", "ConveyorDeadJobs", "ConveyorNoLiveWorker",
        "ConveyorLeaseExpiries"}
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", "0m")))


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: str(r["alert"]))
def test_every_metric_of_an_alert_exists(rule: dict[str, Any]) -> None:
    check_expr(str(rule["expr"]), exported())


def test_every_metric_of_the_dashboard_exists() -> None:
    doc = json.loads((OPS / "grafana-dashboard.json").read_text())
    names = exported()
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    for expr in exprs:
        check_expr(expr, names)
    (queue_var,) = [v for v in doc["templating"]["list"] if v["name"] == "queue"]
    check_expr(queue_var["definition"].replace("label_values(", "").split(",")[0], names)
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
