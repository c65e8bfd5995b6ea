"""The API reference pages: Swagger UI at `/docs` and Redoc at `/redoc`, served with their
scripts and styles from the package itself (vendored in `static/`, see `static/NOTICE`), so
they work on a machine with no internet access.

FastAPI's own pages load both from a CDN and start them with an inline script; these load
nothing from elsewhere and run no inline script, under a CSP of their own (looser than the
dashboard's: both libraries inject `<style>` elements, and Redoc searches in a blob worker).
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from conveyor import __version__

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/docs/static"
SWAGGER_JS = "swagger-ui-bundle-5.35.0.js"
SWAGGER_CSS = "swagger-ui-5.35.0.css"
REDOC_JS = "redoc.standalone-2.5.4.js"

DOCS_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
        "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
{head}
</head>
<body{body_attrs}>
<div id="{root}" data-openapi-url="{openapi_url}"></div>
<script src="{static}/{library}"></script>
<script src="{static}/{init}"></script>
</body>
</html>
"""


def _page(request: Request, *, title: str, root: str, library: str, init: str,
          head: str = "", body_attrs: str = "") -> HTMLResponse:
    prefix = str(request.scope.get("root_path", "")).rstrip("/")
    static = f"{prefix}{STATIC_PATH}"
    html = _PAGE.format(
        title=escape(title), root=root, openapi_url=escape(f"{prefix}/openapi.json"),
        static=escape(static), library=f"{library}?v={__version__}",
        init=f"{init}?v={__version__}", head=head.format(static=escape(static)),
        body_attrs=body_attrs,
    )
    return HTMLResponse(html, headers=DOCS_HEADERS)


def install_docs(app: FastAPI) -> None:
    """Add `/docs`, `/redoc` and their static files (the app is built with
    `docs_url=None, redoc_url=None`)."""
    title = f"{app.title} API {app.version}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return _page(request, title=f"{title} - Swagger UI", root="swagger-ui",
                     library=SWAGGER_JS, init="swagger-init.js",
                     head=f'<link rel="stylesheet" href="{{static}}/{SWAGGER_CSS}">')

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return _page(request, title=f"{title} - Redoc", root="redoc", library=REDOC_JS,
                     init="redoc-init.js", body_attrs=' style="margin:0"')

    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="docs-static")
