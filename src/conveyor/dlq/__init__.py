"""The dead-letter subsystem: the redrive / purge tool, the per-type DLQ policy, pacing.

The DLQ worker that runs the policies and `on_dead` hooks is `conveyor.worker.dlq`.
"""

from conveyor.dlq.policy import DeadHook, DlqPolicy, build_policy
from conveyor.dlq.selection import DeadSelection
from conveyor.dlq.tool import DlqResult, purge, redrive

__all__ = ["DeadHook", "DeadSelection", "DlqPolicy", "DlqResult", "build_policy", "purge",
           "redrive"]
