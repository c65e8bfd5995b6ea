"""`python -m bench.peers NAME COMMAND`: see `bench.peers._driver`."""

from bench.peers._driver import main

main()
