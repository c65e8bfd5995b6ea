"""The web application's composition root: the API, then the dashboard on the same client
and keys. `conveyor api` and `conveyor dev` serve what `create_app` builds (with uvicorn and
the bounded HTTP protocol of `conveyor.api.server`); called without arguments it is an ASGI
factory reading the settings from the environment.

`conveyor.api` and `conveyor.ui` do not import each other's entry points: only this module
puts them together.
"""

from __future__ import annotations

from fastapi import FastAPI

from conveyor.api.app import build_api
from conveyor.client import AsyncConveyor
from conveyor.settings import Settings
from conveyor.ui import install_ui

__all__ = ["create_app"]


def create_app(
    client: AsyncConveyor | None = None, settings: Settings | None = None, *,
    fast_path: bool = True,
) -> FastAPI:
    """The API (`conveyor.api.build_api`: `/v1`, health, metrics, docs) with the dashboard
    at `/ui`. Pass a client to share one; otherwise one is built from the settings and
    closed on shutdown. `fast_path=False` serves `POST /v1/jobs` through FastAPI too."""
    api = build_api(client, settings, fast_path=fast_path)
    install_ui(api.app, api.runtime, api.keys, api.coverage)
    return api.app
