import pytest

from redline.venue.latency import Latency


def test_legs_parse_in_microseconds_and_missing_ones_are_zero():
    lat = Latency.parse("decision=50,entry=120")
    assert (lat.decision_us, lat.entry_us, lat.ack_us) == (50, 120, 0)
    assert lat.vector_ns().tolist() == [50_000, 120_000, 0]


@pytest.mark.parametrize("text", ["decision=-1", "wire=5", "decision:5"])
def test_a_bad_leg_is_named(text):
    with pytest.raises(ValueError, match="--latency"):
        Latency.parse(text)
