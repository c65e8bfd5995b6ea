"""What every test folder shares: the shared Redis's URL and the per-test key prefix
(`env`, `keys`), bounded polls (`waits`), child `conveyor` processes (`processes`), an
in-process Worker (`inproc`) and a redis-server a test owns (`redis_server`).

Imported by name (`from support.waits import wait_until`): `tests/` is on sys.path because the
root `tests/conftest.py` lives there, and that conftest's fixtures (`prefix`, the clusters)
are every folder's.
"""
