"""The HTTP API service (`conveyor api`): FastAPI over `AsyncConveyor`, no broker logic of its
own. `create_app` builds the application."""

from conveyor.api.app import create_app

__all__ = ["create_app"]
