"""The sync client (`Conveyor`) has the public surface of the async one (`AsyncConveyor`):
the same method names with the same parameters, coroutines on one side and plain calls on
the other. A method added to one and not the other fails here."""

from __future__ import annotations

import inspect
from typing import Any

from conveyor.client import AsyncConveyor, Conveyor

#: the sync client's own: the async client it drives
SYNC_ONLY = {"aio"}


def _surface(cls: type) -> dict[str, Any]:
    """Public methods, static / class methods and properties, by name (dunders left out:
    `async with` and `with` are each side's own)."""
    return {name: inspect.getattr_static(cls, name) for name in dir(cls)
            if not name.startswith("_")}


def _function(member: Any) -> Any:
    if isinstance(member, staticmethod | classmethod):
        return member.__func__
    if isinstance(member, property):
        return member.fget
    return member


def _params(member: Any) -> list[tuple[str, Any, Any, Any]]:
    sig = inspect.signature(_function(member))
    return [(p.name, p.kind, p.default, p.annotation) for p in sig.parameters.values()]


def test_the_sync_client_has_every_public_method_of_the_async_one() -> None:
    sync, aio = _surface(Conveyor), _surface(AsyncConveyor)
    assert sorted(set(aio) - set(sync)) == []
    assert sorted(set(sync) - set(aio) - SYNC_ONLY) == []
    assert set(sync) >= SYNC_ONLY


def test_the_same_methods_take_the_same_parameters() -> None:
    sync, aio = _surface(Conveyor), _surface(AsyncConveyor)
    differ = {name: (_params(aio[name]), _params(sync[name]))
              for name in set(aio) & set(sync) if _params(aio[name]) != _params(sync[name])}
    assert differ == {}


def test_the_same_kind_of_member_on_both_sides_coroutines_only_on_the_async_one() -> None:
    sync, aio = _surface(Conveyor), _surface(AsyncConveyor)
    for name in set(aio) & set(sync):
        assert type(aio[name]) is type(sync[name]), name  # method / static / class / property
        if isinstance(aio[name], property):
            continue
        async_fn, sync_fn = _function(aio[name]), _function(sync[name])
        assert not inspect.iscoroutinefunction(sync_fn), name
        if name not in {"from_url", "build_spec", "job_from_result"}:
            assert inspect.iscoroutinefunction(async_fn), name
