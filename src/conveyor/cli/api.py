"""`conveyor api`: serve the HTTP API with uvicorn (one process; run several behind a load
balancer to scale out, the API keeps no state).

FastAPI and uvicorn come with the `api` extra and are imported only when this command runs.
"""

from __future__ import annotations

import click

from conveyor.cli.jobs import app_option
from conveyor.cli.runtime import load_app_modules, log_format_option, start_service, state


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port to listen on.")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="Log every request (the /metrics counters exist either way).")
@app_option
@log_format_option
def api(host: str, port: int, access_log: bool, app: str | None, log_format: str | None) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs).

    Payloads are validated against the job types of the --app modules.
    """
    settings = state().settings(log_format=log_format)
    load_app_modules(app)  # here, so a module that fails to import is a usage error (exit 2)
    try:
        import uvicorn

        from conveyor.api.server import server_options
        from conveyor.web import create_app
    except ImportError as exc:
        raise click.UsageError(
            f"the API needs the api extra (pip install 'conveyor[api]'): {exc}"
        ) from exc
    start_service(settings, "api")  # uvicorn's loggers go through the same root handler
    uvicorn.run(create_app(settings=settings), host=host, port=port, access_log=access_log,
                **server_options(settings))
