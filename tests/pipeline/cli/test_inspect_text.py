import pytest

from redline.pipeline.cli.inspect_text import duration, utc


@pytest.mark.parametrize(
    "ns,text",
    [
        (0, "0.000 ms"),
        (1_500_000, "1.500 ms"),
        (3_250_000_000, "3.250 s"),
        (25 * 60_000_000_000 + 1_000_000, "25 min 0.001 s"),
        (30 * 3_600_000_000_000 + 19 * 60_000_000_000 + 59_994_000_000, "30 h 19 min 59.994 s"),
    ],
)
def test_duration_reads_as_a_person_would_say_it(ns, text):
    assert duration(ns) == text


def test_utc_keeps_the_microseconds_and_never_the_local_zone():
    assert utc(1_795_076_100_004_258_116) == "2026-11-19 08:15:00.004258"
    assert utc(0) == "1970-01-01 00:00:00.000000"
