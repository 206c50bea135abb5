import pytest

from redline.feeds.importers import semantics as sem


def test_semantics_round_trip_through_metadata():
    value = sem.encode({4: sem.PER_INSTRUMENT, 2: sem.PER_EVENT})
    assert value == b'{"2": "per event", "4": "contiguous per instrument"}'
    assert sem.decode({sem.KEY: value, b"other": b"x"}, "f") == {
        2: sem.PER_EVENT,
        4: sem.PER_INSTRUMENT,
    }
    assert sem.decode(None, "f") == {} and sem.decode({b"x": b"y"}, "f") == {}


def test_unknown_semantics_are_refused_naming_the_source():
    with pytest.raises(ValueError, match=r"source 3: sequence semantics 'gappy' is not one of"):
        sem.encode({3: "gappy"})
    with pytest.raises(ValueError, match=r"book.parquet: source 1: sequence semantics 'x'"):
        sem.decode({sem.KEY: b'{"1": "x"}'}, "book.parquet")
    with pytest.raises(ValueError, match=r"book.parquet: redline.sequence metadata .* re-import"):
        sem.decode({sem.KEY: b"[1]"}, "book.parquet")
