"""Monitoring, cost and control: instance state changes, cost records, the reaper, cancellation."""
