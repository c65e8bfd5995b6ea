"""Outbound webhooks, the delivery side: subscriptions and their store, Standard Webhooks
signatures, the SSRF rules of URLs, the `conveyor.webhook` job type and the fan-out from an
event to its delivery jobs. Import from the submodules (`conveyor.webhooks.fanout`, ...):
this package is imported by `conveyor.handlers`, so it imports nothing itself.
"""
