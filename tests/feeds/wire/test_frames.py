import numpy as np
import pytest

from redline.feeds import events as ev
from redline.feeds.wire import frames as wire
from redline.feeds.wire.stream_scan import scan_stream


@pytest.mark.parametrize("rtype", list(ev.RecordType))
def test_frame_round_trip_is_exact_and_zero_copy(rtype, records):
    recs = records(rtype, 5, seed=int(rtype))
    buf = bytearray(wire.encode(recs))
    assert len(buf) == wire.HEADER_SIZE + 5 * recs.dtype.itemsize
    dec = wire.Decoder()
    out = dec.decode(buf)
    assert out.rtype == rtype
    np.testing.assert_array_equal(out.records, recs)
    # a view of the received bytes, and writable so the feed can stamp in place
    assert np.shares_memory(out.records, np.frombuffer(buf, np.uint8))
    out.records["ts_recv"] = 42
    assert (dec.decode(buf).records["ts_recv"] == 42).all()
    assert (dec.frames, dec.records, dec.malformed_total) == (2, 10, 0)


def _good():
    from redline.feeds.events import RecordType

    recs = ev.empty(RecordType.TRADE, 3)
    recs["seq"] = [7, 8, 9]
    return recs, wire.encode(recs)


def _patched(frame: bytes, offset: int, value: bytes) -> bytes:
    return frame[:offset] + value + frame[offset + len(value) :]


def _bad_frames():
    recs, good = _good()
    size = recs.dtype.itemsize
    return {
        wire.Malformed.SHORT: good[:15],
        wire.Malformed.MAGIC: _patched(good, 0, b"XDLN"),
        wire.Malformed.VERSION: _patched(good, 4, b"\x09"),
        wire.Malformed.KIND: _patched(good, 5, b"\x07"),
        wire.Malformed.TYPE: _patched(good, 6, b"\x63"),
        wire.Malformed.RECORD_SIZE: _patched(good, 12, (size + 1).to_bytes(4, "little")),
        wire.Malformed.RAGGED: good[:-1],
        wire.Malformed.COUNT: _patched(good, 8, (2).to_bytes(4, "little")),
    }


@pytest.mark.parametrize("reason", list(_bad_frames()))
def test_each_malformed_frame_is_counted_under_its_reason_and_the_next_frame_survives(reason):
    recs, good = _good()
    dec = wire.Decoder()
    assert dec.decode(_bad_frames()[reason]) is None
    assert dec.malformed_by_reason()[reason.name.lower()] == 1
    assert dec.malformed_total == 1
    out = dec.decode(good)
    np.testing.assert_array_equal(out.records, recs)


def test_empty_data_frame_and_end_frame_with_payload_are_malformed():
    _, good = _good()
    dec = wire.Decoder()
    empty_data = _patched(good[: wire.HEADER_SIZE], 8, (0).to_bytes(4, "little"))
    assert dec.decode(empty_data) is None
    assert dec.decode(wire.encode_end() + b"x" * 8) is None
    assert dec.malformed[wire.Malformed.COUNT] == 2
    assert dec.decode(wire.encode_end()) is wire.END_OF_STREAM
    assert dec.ends == 1


def test_topic_prefix_selects_only_its_record_type(records):
    quote = wire.encode(records(ev.RecordType.QUOTE, 1))
    trade = wire.encode(records(ev.RecordType.TRADE, 1))
    assert quote.startswith(wire.topic(ev.RecordType.QUOTE))
    assert not trade.startswith(wire.topic(ev.RecordType.QUOTE))
    assert not wire.encode_end().startswith(wire.topic(ev.RecordType.QUOTE))


def test_encode_rejects_non_event_arrays():
    with pytest.raises(ValueError, match="not one of redline's event dtypes"):
        wire.encode(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="non-empty"):
        wire.encode(ev.empty(ev.RecordType.QUOTE, 0))


def test_edge_tags_round_trip_any_structured_dtype_and_reject_junk():
    dt = np.dtype([("a", "<i8"), ("f", "<f4", (5,))])
    assert wire.tag_dtype(wire.dtype_tag(dt)) == dt
    assert wire.tag_dtype(wire.dtype_tag(ev.QUOTE_DTYPE)) is ev.QUOTE_DTYPE  # the canonical one
    with pytest.raises(ValueError, match="is not a dtype"):
        wire.tag_dtype(b"import os")
    assert wire.dtype_tag(ev.QUOTE_DTYPE) != wire.EDGE_EOS


def test_scan_stream_keeps_a_short_count_prefix_and_calls_a_non_frame_tail_damage(records):
    q = records(ev.RecordType.QUOTE, 20)
    a, b = wire.encode(q[:10]), bytearray(wire.encode(q[10:]))
    b[8:12] = (9).to_bytes(4, "little")  # claims 9 of its 10 records: the 10th is stray bytes
    scan = scan_stream(a + bytes(b) + a)
    got = np.concatenate([wire.Decoder().decode(f).records for f in scan.frames])
    np.testing.assert_array_equal(got, np.concatenate([q[:19], q[:10]]))
    assert scan.skipped == [(656 + 16 + 9 * 64, 2 * 656)] and scan.torn == 0
    # zeros after the last frame (a power cut without fsync can leave them) are no frame
    # cut short: damage, reported, not torn
    scan = scan_stream(a + bytes(100))
    assert len(scan.frames) == 1 and scan.skipped == [(656, 756)] and scan.torn == 0
