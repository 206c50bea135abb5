import pytest

from redline.pipeline.arbiter.host_delay import HostDelay

MS = 1_000_000


def test_the_peak_follows_the_worst_recent_lag_and_halves_every_half_life():
    d = HostDelay(half_life_ns=1000 * MS)
    d.observe(2 * MS, now=0)
    d.observe(100 * MS, now=10 * MS)  # one host pause
    d.observe(3 * MS, now=20 * MS)  # smaller lags do not lower it
    assert d.peak_ns == pytest.approx(100 * MS * 0.5 ** (10 / 1000))
    d.decay(2020 * MS)  # two half-lives later
    assert d.peak_ns == pytest.approx(100 * MS * 0.5 ** (2010 / 1000))
    d.observe(-5 * MS, now=2030 * MS)  # clock noise never raises it
    assert d.peak_ns < 26 * MS and d.samples == 4
