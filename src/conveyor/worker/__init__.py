"""The worker service: fetch jobs, run their handlers, report outcomes, keep leases alive."""

from conveyor.worker.executor import Executor, Outcome
from conveyor.worker.main import run_worker
from conveyor.worker.runner import Worker

__all__ = ["Executor", "Outcome", "Worker", "run_worker"]
