"""The arbiter's per-graph settings, its counters, and the two small types it speaks: what a worker looks
like to it (`WorkerLink`) and what `Arbiter.poll` hands back (`Decisions`)."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, NamedTuple, Protocol

import msgspec
import numpy as np
from msgspec import Meta

from redline.feeds.settings import (
    DurationNs,
    NonNegativeFloat,
    NonNegativeInt,
    NonNegativeNs,
    Settings,
)
from redline.pipeline.transport.waiting import Waitable
from redline.pipeline.workers.protocol import Reply

# Arbiter.stats() keys (stable: the --json reports use them). The request state machine
# counts the first group (Arbiter.counts), worker recovery the second (Recovery.counts).
REQUEST_COUNTERS = (
    "events",
    "decisions",
    "unanswered",  # no valid answer in time: the safe default (the graph counts misses once)
    "late_decisions",
    "hedges",
    "disagreements",
    "alarms",
    "late_answers",
    "stale_answers",
    "bad_outputs",
    "fallback_too_slow",
    "backpressure",
)
RECOVERY_COUNTERS = (
    "failovers",
    "restarts",
    "unverified_readmissions",
    "send_failures",
    "overload",
    "cpu_wait_excused",  # late answers that the worker's wait for a CPU explained
)
COUNTERS = (*REQUEST_COUNTERS, *RECOVERY_COUNTERS, "audits")


class Policy(StrEnum):
    RACE = "race"
    HEDGE = "hedge"
    COMPARE = "compare"


class BreakerConfig(Settings):
    """When a worker is taken out (breaker.py); durations in ns. Set in a graph TOML under
    `[nodes.ARBITER.breaker]`."""

    heartbeat_timeout_ns: DurationNs = 50_000_000  # 10 missed 5 ms heartbeats
    slow_window: Annotated[int, Meta(ge=1, le=4096)] = 32  # requests looked at for slowness
    slow_max_misses: Annotated[int, Meta(ge=1, le=4096)] = 4  # misses in the window: out
    start_timeout_ns: DurationNs = 30_000_000_000  # python + model load + warm-up, generously
    sync_timeout_ns: DurationNs = 2_000_000_000  # snapshot requested -> restored
    verify_count: Annotated[int, Meta(ge=0, le=1 << 20)] = 16  # agreeing answers to readmit
    backoff_ns: NonNegativeNs = 0  # first restart delay; doubles per failed readmission
    max_backoff_ns: NonNegativeNs = 5_000_000_000

    def check(self) -> None:
        if self.slow_max_misses > self.slow_window:
            raise ValueError(
                f"need slow_max_misses ({self.slow_max_misses}) <= slow_window ({self.slow_window})"
            )
        if self.backoff_ns > self.max_backoff_ns:
            raise ValueError(
                f"need backoff_ns ({self.backoff_ns}) <= max_backoff_ns ({self.max_backoff_ns})"
            )


class ArbiterSettings(Settings):
    """What a graph's arbiter node sets (its TOML table); durations in ns."""

    policy: Policy = Policy.RACE
    hedge_delay_ns: NonNegativeNs | None = None  # None: the primary's running p95 round trip
    rtol: NonNegativeFloat = 1e-4  # agreement between two answers
    atol: NonNegativeFloat = 1e-5
    out_low: float = -math.inf  # declared output range; outside it is a bad answer
    out_high: float = math.inf
    margin_ns: NonNegativeNs = 0  # reserve before the deadline on top of the fallback's cost
    linger_ns: NonNegativeNs | None = None  # late answers still checked this long; None: budget
    audit_every: NonNegativeInt = 16  # hedge: also ask the standby every k-th request (0: never)
    replay_depth: Annotated[int, Meta(ge=1, le=1 << 22)] = 65_536  # events kept for a rebuild
    max_inflight: Annotated[int, Meta(ge=1, le=1 << 20)] = 4096  # undecided requests at once
    breaker: BreakerConfig = BreakerConfig()

    def check(self) -> None:
        msgspec.structs.force_setattr(self, "policy", Policy(self.policy))
        if not self.out_low < self.out_high:
            raise ValueError(f"need out_low ({self.out_low}) < out_high ({self.out_high})")


class ArbiterConfig(ArbiterSettings):
    """An arbiter's settings plus the graph's budget: what `Arbiter` runs with."""

    budget_ns: DurationNs = 2_000_000

    def check(self) -> None:
        super().check()
        if self.hedge_delay_ns is not None and self.hedge_delay_ns >= self.budget_ns:
            raise ValueError(
                f"need hedge_delay_ns ({self.hedge_delay_ns}) < the budget ({self.budget_ns} ns)"
            )


class WorkerLink(Protocol):
    """One worker as the arbiter sees it (workers/link.ProcessLink, or a fake in tests)."""

    name: str
    pid: int | None

    def start(self) -> None:
        """(Re)start the worker process; returns at once, READY arrives later."""
        ...

    def stop(self) -> None:
        """Kill the process (it is not trusted any more) and drop its channel."""
        ...

    def exited(self) -> bool: ...

    def send(self, frames: list) -> bool:
        """Queue one multipart message without blocking; False if it cannot be queued."""
        ...

    def ready(self) -> bool:
        """A message is waiting (cheap: asked on every poll)."""
        ...

    def recv(self) -> list[Reply]:
        """Every message waiting, without blocking."""
        ...

    def waitable(self) -> Waitable | None:
        """What to wait on for its next message (transport/waiting.py); None: nothing to."""
        ...


class Decisions(NamedTuple):
    records: np.ndarray  # DECISION_DTYPE [n]
    outputs: np.ndarray  # float32 [n, N]
    alarms: np.ndarray  # bool [n]
