"""What every test folder shares: the shared Redis's URL and the per-test key prefix
(`env`, `keys`), bounded polls (`waits`), child `conveyor` processes (`processes`), an
in-process Worker (`inproc`) and a redis-server a test owns (`redis_server`).

`tests` is a package (every folder has an `__init__.py`, so mypy and pytest name each module
by its path): `from tests.support.waits import wait_until`. The root `tests/conftest.py` gives
every folder its fixtures (`prefix`, the clusters) and the long timeout of e2e / chaos tests.
"""
