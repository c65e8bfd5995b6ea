"""The package version (one place; `conveyor.__version__` re-exports it)."""

__version__ = "0.1.0"
