"""Breaker rules on a ReplayClock: what trips a worker, and how it comes back."""

from __future__ import annotations

import pytest

from redline.feeds.clock import ReplayClock
from redline.pipeline.arbiter.breaker import Breaker, Health, Trip
from redline.pipeline.arbiter.config import BreakerConfig

MS = 1_000_000


def up(cfg: BreakerConfig, clock: ReplayClock) -> Breaker:
    b = Breaker("A", cfg, clock.monotonic_ns())
    b.ready(clock.monotonic_ns())
    b.synced(clock.monotonic_ns())
    for _ in range(cfg.verify_count):
        b.verified(True, clock.monotonic_ns())
    assert b.serving
    return b


def test_slow_trips_on_misses_within_the_window_only():
    clock = ReplayClock()
    b = up(BreakerConfig(slow_window=8, slow_max_misses=3, verify_count=2), clock)
    # 2 misses, then 6 hits push the first miss out of the window: no trip
    for ok in (False, False, True, True, True, True, True, True):
        assert b.answered(ok) is None
    assert b.answered(False) is None  # last 8: F T T T T T T F -> 2 misses
    assert b.answered(False) is None  # T T T T T T F F -> 2
    assert b.answered(False) == Trip.SLOW  # T T T T T F F F -> 3 within the last 8


def test_heartbeat_timeout_and_start_timeout():
    clock = ReplayClock()
    cfg = BreakerConfig(heartbeat_timeout_ns=5 * MS, start_timeout_ns=50 * MS, verify_count=0)
    b = up(cfg, clock)
    clock.advance(5 * MS)
    assert b.overdue(clock.monotonic_ns()) is None
    b.seen(clock.monotonic_ns())
    clock.advance(5 * MS + 1)
    assert b.overdue(clock.monotonic_ns()) == Trip.HEARTBEAT
    b.trip(Trip.HEARTBEAT, clock.monotonic_ns())
    assert b.health == Health.OUT and b.restart_due(clock.monotonic_ns())
    b.restarted(clock.monotonic_ns())
    clock.advance(50 * MS)
    assert b.overdue(clock.monotonic_ns()) is None  # STARTING ignores heartbeats
    clock.advance(1)
    assert b.overdue(clock.monotonic_ns()) == Trip.START_TIMEOUT


def test_failing_readmission_backs_off_then_success_resets():
    clock = ReplayClock()
    cfg = BreakerConfig(backoff_ns=2 * MS, max_backoff_ns=5 * MS, verify_count=2)
    b = up(cfg, clock)
    b.trip(Trip.CRASH, 0)
    assert b.restart_at == 2 * MS  # first restart after the base backoff
    delays = []
    for _ in range(3):  # restarts that fail verification back off: 4, 5 (capped), 5
        b.restarted(b.restart_at)
        b.ready(b.restart_at)
        b.synced(b.restart_at)
        t = b.since
        b.verified(False, t)
        assert b.health == Health.OUT and b.last_trip == Trip.VERIFY_FAILED
        delays.append(b.restart_at - t)
    assert delays == [4 * MS, 5 * MS, 5 * MS]
    b.restarted(b.restart_at)
    b.ready(b.restart_at)
    b.synced(b.restart_at)
    b.verified(True, b.since)
    assert b.health == Health.VERIFYING and b.verify_left == 1
    b.verified(True, b.since)
    assert b.serving and b.readmissions == 2
    b.trip(Trip.BAD_OUTPUT, 100 * MS)
    assert b.restart_at == 102 * MS and b.trips[Trip.BAD_OUTPUT] == 1


def test_config_is_checked():
    with pytest.raises(ValueError, match="heartbeat_timeout_ns"):
        BreakerConfig(heartbeat_timeout_ns=0)
    with pytest.raises(ValueError, match="backoff_ns"):
        BreakerConfig(backoff_ns=10, max_backoff_ns=5)
