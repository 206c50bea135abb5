import pytest

from redline.feeds.clock import LiveClock, ReplayClock


def test_replay_clock_moves_only_when_told():
    clock = ReplayClock(1_000)
    assert clock.now_ns() == clock.monotonic_ns() == 1_000
    assert clock.advance(250) == 1_250
    clock.set(2_000)
    assert clock.now_ns() == 2_000
    with pytest.raises(ValueError, match="before the current time"):
        clock.set(1_999)
    with pytest.raises(ValueError, match="must be >= 0"):
        clock.advance(-1)


def test_live_clock_monotonic_never_goes_back():
    clock = LiveClock()
    stamps = [clock.monotonic_ns() for _ in range(1000)]
    assert stamps == sorted(stamps)
    assert clock.now_ns() > 1_600_000_000 * 10**9  # realtime, epoch-based
