"""The HTTP API service (`conveyor api`): FastAPI over `AsyncConveyor`, no broker logic of its
own. `build_api` builds its application; `conveyor.web.create_app` adds the dashboard."""

from conveyor.api.app import Api, build_api

__all__ = ["Api", "build_api"]
