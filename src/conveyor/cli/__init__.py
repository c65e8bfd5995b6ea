"""The `conveyor` command line: operators' and developers' way into a running Conveyor.

`conveyor.cli.main` holds the click group and the entry point; each sibling module adds the
commands of one concern (jobs, DLQ, operations, seeding, the worker).
"""
