"""Every Redis key name Conveyor uses is built here, nowhere else.

Per-queue keys share the hash tag `{<queue>}`, so every script touches one slot and Redis
Cluster works. Index members are the UID part of a job id (the queue is in the key).
"""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.jobs import JobState


@dataclass(frozen=True, slots=True)
class QueueKeys:
    base: str  # "<prefix>:{<queue>}:"

    @property
    def job_prefix(self) -> str:
        return self.base + "job:"

    def job(self, uid: str) -> str:
        return self.base + "job:" + uid

    @property
    def idem_prefix(self) -> str:
        return self.base + "idem:"

    def index(self, state: JobState | str) -> str:
        return self.base + str(state)

    @property
    def queued(self) -> str:
        return self.base + "queued"

    @property
    def scheduled(self) -> str:
        return self.base + "scheduled"

    @property
    def running(self) -> str:
        return self.base + "running"

    @property
    def succeeded(self) -> str:
        return self.base + "succeeded"

    @property
    def dead(self) -> str:
        return self.base + "dead"

    @property
    def cancelled(self) -> str:
        return self.base + "cancelled"

    @property
    def deaths(self) -> str:
        """Deaths whose `on_dead` hooks have not run yet: members `<uid>:<redrive count>`,
        score = when the event may be claimed (death time, then claim-lease deadline)."""
        return self.base + "deaths"

    @property
    def events(self) -> str:
        """The queue's event log (a stream, bounded by CONVEYOR_EVENTS_MAXLEN): written by
        `emit_event` in _lib.lua, which builds this same name from the job key."""
        return self.base + "events"

    def cursor(self, name: str) -> str:
        """A follower's saved position in the queue's event log (string)."""
        return self.base + "cursor:" + name

    @property
    def listing(self) -> str:
        """Every job of the queue (score 0): ZREVRANGEBYLEX lists them newest first."""
        return self.base + "jobs"

    @property
    def seq(self) -> str:
        return self.base + "seq"

    @property
    def marker(self) -> str:
        return self.base + "marker"

    @property
    def paused(self) -> str:
        return self.base + "paused"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "cv"

    def queue(self, name: str) -> QueueKeys:
        return QueueKeys(f"{self.prefix}:{{{name}}}:")

    @property
    def queues(self) -> str:
        """Set of every queue name that ever received a job."""
        return f"{self.prefix}:queues"

    @property
    def workers(self) -> str:
        """Sorted set of worker ids scored by last-seen ms."""
        return f"{self.prefix}:workers"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    @property
    def webhooks(self) -> str:
        """Set of every webhook subscription id."""
        return f"{self.prefix}:webhooks"

    def webhook(self, sub_id: str) -> str:
        """Hash of one subscription (url, filters, secret, times): see webhooks/model.py."""
        return f"{self.prefix}:webhook:{sub_id}"
