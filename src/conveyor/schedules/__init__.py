"""Schedules (issue 15), the storage-free foundation: the tick generator (`ticks`, over
`cron`, `wall` and `zones`). The broker, API, CLI and dashboard parts build on it.
"""
