"""The systems `python -m bench.compare` measures, and how each is installed and configured.

Every peer runs in its own virtualenv under `bench/.peers/<name>` (stdlib only is imported
here, so this table loads in any of them); Conveyor runs in the project's own environment.
One adapter module per system (`bench/peers/<name>.py`) holds its enqueue calls, its job
function and its worker; `python -m bench.peers <name> <command>` drives it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Peer:
    name: str
    #: pip requirements of its virtualenv (empty: the project's own environment)
    requirements: tuple[str, ...]
    #: the distributions whose versions the report names
    dists: tuple[str, ...]
    #: worker concurrency in the measured configuration
    concurrency: int
    #: that configuration, in words, for the report
    config: str
    #: its bulk-enqueue call, if it has one
    batch_api: str | None = None
    #: why delayed jobs are not measured, when they are not
    no_delay: str | None = None
    #: how the configuration was chosen (a sweep on 5,000 jobs, 2 runs each, jobs/s)
    sweep: str = ""


PEERS: dict[str, Peer] = {p.name: p for p in (
    Peer("conveyor", (), ("conveyor", "redis"), 64,
         "`conveyor worker --concurrency 64` (uvloop), async handler",
         batch_api="`enqueue_many`",
         sweep="concurrency 16 / 64 / 256: 10,500 / 14,100 / 14,900 (64: `bench.core`'s)"),
    Peer("rq", ("rq",), ("rq", "redis"), 1,
         "`SimpleWorker` (no fork per job), one job at a time; scheduler process for delays",
         batch_api="`Queue.enqueue_many` (pipeline)",
         sweep="one job at a time by design; the default forking `Worker` is far slower"),
    Peer("arq", ("arq",), ("arq", "redis"), 256,
         "`max_jobs=256`, `poll_delay=0.05` (default 0.5 s)",
         sweep="max_jobs 10 / 64 / 256 / 1000: 200 / 650 / 1,250 / 1,250 at the default"
               " poll_delay; 0.05 and 0.01 gave 1,300-1,700 (noisy)"),
    Peer("dramatiq", ("dramatiq[redis]",), ("dramatiq", "redis"), 32,
         "`RedisBroker`, one process, 32 worker threads (default 8)",
         sweep="threads 1 / 8 / 32: 240 / 1,750 / 2,250"),
    Peer("celery", ("celery[redis]",), ("celery", "kombu", "redis"), 1,
         "`--pool solo`, `worker_prefetch_multiplier=64`, no result backend",
         sweep="solo with prefetch 4 or 64, threads 8 with prefetch 16 or 64: 600-750 each"),
    # saq 0.26.4 imports typing_extensions without declaring it
    Peer("saq", ("saq[hiredis]", "typing_extensions"), ("saq", "redis"), 10,
         "`Worker(concurrency=10)` (the default)",
         sweep="concurrency 1 / 10 / 32 / 64: 600 / 1,030 / 1,020 / 1,090; at 256 it stalled"),
    Peer("taskiq", ("taskiq", "taskiq-redis"), ("taskiq", "taskiq-redis", "redis"), 100,
         "`ListQueueBroker` (no acks), `taskiq worker --workers 1 --max-async-tasks 100`",
         no_delay="taskiq-redis brokers have no delayed delivery; `schedule_by_time` goes"
                  " through the separate `taskiq scheduler`, whose Redis schedule source"
                  " keys schedules by the minute",
         sweep="max-async-tasks 10 / 100 / 1000: 1,690 / 1,620 / 1,600"),
    Peer("bullmq", ("bullmq",), ("bullmq", "redis"), 8,
         "`Worker(concurrency=8)`", batch_api="`Queue.addBulk`",
         sweep="concurrency 1 / 8 / 32 / 64 / 256: 1,040 / 1,350 / 1,130 / 1,280 / 1,320"),
    Peer("streaq", ("streaq",), ("streaq", "coredis"), 16,
         "`Worker(concurrency=16)` (the default)",
         batch_api="`Worker.enqueue_many` (pipeline)",
         sweep="concurrency 4 / 16 / 32 / 64 / 256: 650 / 900 / 680 / 860 / 870"),
    Peer("huey", ("huey", "redis"), ("huey", "redis"), 1,
         "`RedisHuey` (blocking reads), consumer with 1 thread worker",
         sweep="thread workers 1 / 8 / 32: 1,600 / 1,440 / 1,280"),
)}
