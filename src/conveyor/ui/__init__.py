"""The dashboard: server-rendered pages at `/ui` over the same client and the same keys as
`/v1`. `install_ui` adds it to the API's application."""

from conveyor.ui.install import install_ui

__all__ = ["install_ui"]
