"""Job events: what every transition appends to its queue's event log (issue 17)."""
