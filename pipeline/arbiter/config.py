"""The arbiter's per-graph settings, its counters, and the two small types it speaks: what a worker looks
like to it (`WorkerLink`) and what `Arbiter.poll` hands back (`Batch`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple, Protocol

import numpy as np

from redline.pipeline.arbiter.breaker import BreakerConfig
from redline.pipeline.workers.protocol import Reply

# Arbiter.counts / stats() keys (stable: the --json reports use them)
COUNTERS = (
    "events",
    "decisions",
    "deadline_misses",
    "late_decisions",
    "failovers",
    "hedges",
    "audits",
    "disagreements",
    "alarms",
    "late_answers",
    "stale_answers",
    "bad_outputs",
    "fallback_too_slow",
    "backpressure",
    "restarts",
    "unverified_readmissions",
    "send_failures",
    "overload",
)


class Policy(StrEnum):
    RACE = "race"
    HEDGE = "hedge"
    COMPARE = "compare"


@dataclass(frozen=True, slots=True)
class ArbiterConfig:
    """Per-graph arbiter settings; durations in ns."""

    policy: Policy | str = Policy.RACE
    budget_ns: int = 2_000_000
    hedge_delay_ns: int | None = None  # None: the primary's running p95 round trip
    rtol: float = 1e-4  # agreement between two answers
    atol: float = 1e-5
    out_low: float = -np.inf  # declared output range; outside it is a bad answer
    out_high: float = np.inf
    margin_ns: int = 0  # reserve before the deadline on top of the fallback's cost
    linger_ns: int | None = None  # late answers still checked this long; None: budget_ns
    audit_every: int = 16  # hedge: also ask the standby every k-th request (0: never)
    replay_depth: int = 65_536  # events kept to rebuild a restarted worker
    max_inflight: int = 4096
    breaker: BreakerConfig = field(default_factory=BreakerConfig)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "policy", Policy(self.policy))
        except ValueError:
            valid = ", ".join(p.value for p in Policy)
            raise ValueError(
                f"ArbiterConfig.policy: {self.policy!r}, expected one of {valid}"
            ) from None
        if self.budget_ns <= 0:
            raise ValueError(f"ArbiterConfig.budget_ns must be > 0, got {self.budget_ns}")
        if self.hedge_delay_ns is not None and not 0 <= self.hedge_delay_ns < self.budget_ns:
            raise ValueError(
                f"ArbiterConfig.hedge_delay_ns must be in [0, budget_ns={self.budget_ns}), "
                f"got {self.hedge_delay_ns}"
            )
        if not self.out_low < self.out_high:
            raise ValueError(f"ArbiterConfig: out_low {self.out_low} >= out_high {self.out_high}")
        if self.rtol < 0 or self.atol < 0:
            raise ValueError(f"ArbiterConfig: rtol/atol must be >= 0, got {self.rtol}/{self.atol}")
        for name in ("margin_ns", "audit_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"ArbiterConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("replay_depth", "max_inflight"):
            if getattr(self, name) < 1:
                raise ValueError(f"ArbiterConfig.{name} must be >= 1, got {getattr(self, name)}")


class WorkerLink(Protocol):
    """One worker as the arbiter sees it (worker_link.ZmqWorkerLink, or a fake in tests)."""

    name: str
    pid: int | None

    def start(self) -> None:
        """(Re)start the worker process; returns at once, READY arrives later."""
        ...

    def stop(self) -> None:
        """Kill the process (it is not trusted any more) and drop its socket."""
        ...

    def exited(self) -> bool: ...

    def send(self, frames: list) -> bool:
        """Queue one multipart message without blocking; False if it cannot be queued."""
        ...

    def recv(self) -> list[Reply]:
        """Every message waiting, without blocking."""
        ...


class Batch(NamedTuple):
    records: np.ndarray  # DECISION_DTYPE [n]
    outputs: np.ndarray  # float32 [n, N]
    alarms: np.ndarray  # bool [n]
