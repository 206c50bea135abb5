"""Circuit breaker: one per inference worker, decides when it is in or out of service.

A worker moves through

    STARTING ──ready──► SYNCING ──state restored──► VERIFYING ──k agreements──► UP
        ▲                                                                        │
        └──────────── backoff ◄── OUT ◄── trip (any state) ◄─────────────────────┘

and is tripped by: the process exiting or its socket failing (CRASH), no message for
`heartbeat_timeout_ns` (HEARTBEAT: hung or SIGSTOPped), `slow_max_misses` answers missing their
deadline among its last `slow_window` requests (SLOW), a NaN/inf/out-of-range answer
(BAD_OUTPUT), an answer that a referee shows to be wrong (DIVERGENCE), a restart that does not
report ready in time (START_TIMEOUT) or a readmission check that disagrees (VERIFY_FAILED).

The breaker is pure logic on an injected clock: the arbiter tells it what happened and asks it
what to do; tests drive it with a ReplayClock and no sleeps.
"""

from __future__ import annotations

from enum import IntEnum

from redline.pipeline.arbiter.config import BreakerConfig


class Health(IntEnum):
    STARTING = 0  # process (re)started, loading and warming up
    SYNCING = 1  # ready; resident state being rebuilt (peer snapshot or replay)
    VERIFYING = 2  # receives live events; answers checked against its peer, never used
    UP = 3  # in service
    OUT = 4  # taken out; restarts after the backoff


class Trip(IntEnum):
    CRASH = 0
    HEARTBEAT = 1
    SLOW = 2
    BAD_OUTPUT = 3
    DIVERGENCE = 4
    START_TIMEOUT = 5
    VERIFY_FAILED = 6


class Breaker:
    """Health of one worker. `now` is monotonic ns from the arbiter's clock."""

    __slots__ = (
        "_backoff",
        "_misses",
        "_window",
        "_wpos",
        "cfg",
        "health",
        "last_seen",
        "last_trip",
        "name",
        "readmissions",
        "restart_at",
        "since",
        "trips",
        "verify_left",
    )

    def __init__(self, name: str, cfg: BreakerConfig, now: int) -> None:
        self.name = name
        self.cfg = cfg
        self.health = Health.STARTING
        self.since = now  # when the current health state began
        self.last_seen = now
        self.restart_at = now
        self.verify_left = cfg.verify_count
        self.trips: dict[Trip, int] = {t: 0 for t in Trip}
        self.last_trip: Trip | None = None
        self.readmissions = 0
        self._backoff = cfg.backoff_ns
        # Ring of the last `slow_window` outcomes (1 = missed), a running count of misses.
        self._window = bytearray(cfg.slow_window)
        self._wpos = 0
        self._misses = 0

    # -- what the arbiter reports -------------------------------------------------------------

    def seen(self, now: int) -> None:
        """Any message from the worker: it is alive."""
        self.last_seen = now

    def answered(self, in_time: bool) -> Trip | None:
        """One request's outcome for this worker; SLOW when the window holds too many misses."""
        miss = 0 if in_time else 1
        self._misses += miss - self._window[self._wpos]
        self._window[self._wpos] = miss
        self._wpos = (self._wpos + 1) % len(self._window)
        if self.health == Health.UP and self._misses >= self.cfg.slow_max_misses:
            return Trip.SLOW
        return None

    def overdue(self, now: int, slack_ns: int = 0) -> Trip | None:
        """The timer checks: missed heartbeats (silence longer than the timeout plus
        `slack_ns`, the host's own recent scheduling delay), a start or a sync that takes too
        long."""
        h = self.health
        if h in (Health.UP, Health.VERIFYING, Health.SYNCING):
            if now - self.last_seen > self.cfg.heartbeat_timeout_ns + slack_ns:
                return Trip.HEARTBEAT
            if h == Health.SYNCING and now - self.since > self.cfg.sync_timeout_ns:
                return Trip.START_TIMEOUT
        elif h == Health.STARTING and now - self.since > self.cfg.start_timeout_ns:
            return Trip.START_TIMEOUT
        return None

    @property
    def misses(self) -> int:
        """Deadline misses among its last `slow_window` requests."""
        return self._misses

    # -- transitions ----------------------------------------------------------------------------

    @property
    def serving(self) -> bool:
        """Its answers may become decisions."""
        return self.health == Health.UP

    @property
    def receives_events(self) -> bool:
        """It holds live state, so every event must reach it."""
        return self.health in (Health.UP, Health.VERIFYING)

    def trip(self, reason: Trip, now: int) -> None:
        """Take the worker out; it restarts after the backoff."""
        was_readmitting = self.health != Health.UP
        self.health = Health.OUT
        self.since = now
        self.trips[reason] += 1
        self.last_trip = reason
        if was_readmitting:  # failing again before readmission: back off further
            self._backoff = min(max(2 * self._backoff, 1_000_000), self.cfg.max_backoff_ns)
        self.restart_at = now + self._backoff

    def restart_due(self, now: int) -> bool:
        return self.health == Health.OUT and now >= self.restart_at

    def restarted(self, now: int) -> None:
        self.health = Health.STARTING
        self.since = now
        self.last_seen = now

    def ready(self, now: int) -> None:
        assert self.health == Health.STARTING, self.health
        self.health = Health.SYNCING
        self.since = now
        self.last_seen = now

    def synced(self, now: int) -> None:
        assert self.health == Health.SYNCING, self.health
        self.health = Health.VERIFYING
        self.since = now
        self.verify_left = self.cfg.verify_count
        if self.verify_left == 0:
            self._admit(now)

    def verified(self, agree: bool, now: int) -> None:
        """One readmission check against the peer (or the referee)."""
        if self.health != Health.VERIFYING:
            return
        if not agree:
            self.trip(Trip.VERIFY_FAILED, now)
            return
        self.verify_left -= 1
        if self.verify_left <= 0:
            self._admit(now)

    def _admit(self, now: int) -> None:
        self.health = Health.UP
        self.since = now
        self.readmissions += 1
        self._backoff = self.cfg.backoff_ns
        self._window[:] = bytes(len(self._window))
        self._misses = 0

    def stats(self) -> dict:
        return {
            "health": self.health.name,
            "trips": {t.name.lower(): n for t, n in self.trips.items()},
            "last_trip": None if self.last_trip is None else self.last_trip.name.lower(),
            "readmissions": self.readmissions,
        }
