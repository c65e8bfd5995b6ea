"""Every Redis key name Conveyor uses is built here, nowhere else.

Per-queue keys share the hash tag `{<queue>}`, so every script touches one slot and Redis
Cluster works. The keys that span queues (`queues`, `workers`, `worker:<id>`) are each in a
slot of their own, and no script touches them together with queue keys.
Index members are the UID part of a job id (the queue is in the key).
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
        return self.cursor_prefix + name

    @property
    def cursor_prefix(self) -> str:
        return self.base + "cursor:"

    @property
    def cursors(self) -> str:
        """The names of the followers that saved a cursor (set; `forget_queue` deletes them)."""
        return self.base + "cursors"

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

    def wait_ticket(self, nonce: str) -> str:
        """The ticket of one pipelined wait-and-fetch (`transitions.wait_and_fetch`): the
        fetch behind the BLPOP leases only while it says `armed`; `revoke_wait` turns it off.
        Expires on its own (a wait whose connection was dropped never consumes it)."""
        return self.base + "wait:" + nonce

    def series(self, hour: int) -> str:
        """Per-minute outcome counters of one hour (epoch hour = epoch minute // 60): a hash
        of `<epoch minute>:<s|f|d>:<type>` ('' type: every type), written by ack, fail and
        reap (`count_series` in `_lib.lua` builds the same name from `job_prefix`)."""
        return self.base + "series:" + str(hour)

    @property
    def series_prefix(self) -> str:
        """`<series_prefix><epoch hour>`: `series(hour)`; `<series_prefix>rolled`: the last
        hour the retention step rolled up into one point per hour (expire.lua)."""
        return self.base + "series:"

    @property
    def logs_prefix(self) -> str:
        """`<logs_prefix><uid>`: the list of a job's kept log lines (deleted with the job;
        `delete_job` in `_lib.lua` builds it from the job key)."""
        return self.base + "logs:"

    def logs(self, uid: str) -> str:
        return self.base + "logs:" + uid
    @property
    def sched_prefix(self) -> str:
        """`<prefix>:{q}:sched:<name>`: hash of one schedule whose jobs go to this queue."""
        return self.base + "sched:"

    @property
    def sched_due(self) -> str:
        """Schedules of this queue by when to fire their next tick (ms; absent: paused or
        ended)."""
        return self.base + "sched_due"

    @property
    def sched_runs_prefix(self) -> str:
        """`<prefix>:{q}:sruns:<name>`: zset (score 0) of the uids of a schedule's newest
        jobs, read newest first by ZREVRANGEBYLEX."""
        return self.base + "sruns:"

    # --- flow control (issue 16; the layout: docs/decisions.md "Flow control") -----------
    @property
    def limits(self) -> str:
        """Hash: the queue's limits (`spec` JSON and its numeric fields) and counters (permits
        out, rate bucket, hold, fairness clock, jobs in lanes). Present: fetch is limited."""
        return self.base + "limits"

    @property
    def weights(self) -> str:
        """Hash: limit key -> fairness weight (keys not named weigh 1)."""
        return self.base + "weights"

    @property
    def ready(self) -> str:
        """Zset: keys with work that may start now, score = priority band * 2^32 + pass."""
        return self.base + "ready"

    @property
    def blocked(self) -> str:
        """Zset: keys with work held by a limit, score = when to look again (inf: a permit)."""
        return self.base + "blocked"

    @property
    def lane_prefix(self) -> str:
        return self.base + "lane:"

    def lane(self, key: str) -> str:
        """Zset: QUEUED jobs of one limit key ('' : jobs without one), queued score."""
        return self.base + "lane:" + key

    @property
    def limit_key_prefix(self) -> str:
        return self.base + "lk:"

    def limit_key(self, key: str) -> str:
        """Hash of one limit key: `tok` / `ts` (rate bucket), `hold`; expires once idle and
        refilled (`run` and `pass` there are those of permits leased before `krun`)."""
        return self.base + "lk:" + key

    @property
    def key_runs(self) -> str:
        """Hash: limit key -> permits out (RUNNING jobs of the key holding one); a key with
        none has no field."""
        return self.base + "krun"

    @property
    def key_passes(self) -> str:
        """Hash: limit key ('' : no key) -> fairness pass, while the key has work and for a
        moment after (`kidle`)."""
        return self.base + "kpass"

    @property
    def idle_keys(self) -> str:
        """Zset: keys whose lane emptied, score = when their pass may go (if still idle)."""
        return self.base + "kidle"


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

    # The webhook keys share the hash tag `{:webhooks}` (no queue name holds a `:`), so the
    # MULTI that writes a subscription with the id set stays in one Cluster slot.
    @property
    def webhooks(self) -> str:
        """Set of every webhook subscription id."""
        return f"{self.prefix}:{{:webhooks}}:ids"

    @property
    def schedules(self) -> str:
        """Zset (score 0) of `<name>:<queue>`: every schedule and the queue whose slot holds
        it (one key, so a name is found and listed without cross-slot commands)."""
        return f"{self.prefix}:schedules"

    def webhook(self, sub_id: str) -> str:
        """Hash of one subscription (url, filters, secret, times): see webhooks/model.py."""
        return f"{self.prefix}:{{:webhooks}}:{sub_id}"
