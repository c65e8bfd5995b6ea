"""The API's routers, one module per resource; each `build_router(runtime)` closes over the
shared `ApiRuntime`, so handlers reach the client without a per-request lookup."""
