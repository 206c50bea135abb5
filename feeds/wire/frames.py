"""Every framing of records on a wire: feed frames, graph edge messages, worker messages.

Feed frames are what publishers, feeds and recordings speak; edge messages join the nodes of
a graph (pipeline/transport); worker messages join the arbiter and its workers
(pipeline/workers/protocol.py gives their kinds). All three carry records exactly as their
numpy dtype lays them out, so a receiver reads them without a copy.

Feed frames: a versioned binary frame of fixed-width event records.

One frame is a 16-byte little-endian header followed by `count` records of
one record type, laid out exactly as the numpy dtype in `events.py`:

    offset  size  field
    0       4     magic        b"RDLN"
    4       1     version      WIRE_VERSION
    5       1     kind         FrameKind: DATA or END (end of stream)
    6       1     record_type  RecordType (0 in an END frame)
    7       1     reserved     0
    8       4     count        records in the frame
    12      4     record_size  bytes per record (the sender's dtype itemsize)

Decoding is zero-copy: the records are an `np.frombuffer` view of the
received bytes. A malformed frame is counted under its reason and skipped; it
never raises and never touches the next frame. The rules live in one compiled
function, `check_frame`, shared by the Python `Decoder` and the compiled
ZeroMQ receive loop (`zmq_drain.py`), so both accept and reject alike. The first 7 header bytes
double as a ZeroMQ SUB topic: subscribe to `topic(RecordType.QUOTE)` to get
only quotes. A ZeroMQ message may carry several frames, one per part.
"""

from __future__ import annotations

import ast
import itertools
import struct
from enum import IntEnum
from typing import Final

import numba as nb
import numpy as np

from redline.feeds.events import DTYPES, Batch, RecordType, record_type_of

MAGIC = b"RDLN"
WIRE_VERSION = 1
HEADER = struct.Struct("<4sBBBBII")
HEADER_SIZE = HEADER.size  # 16: keeps 8-byte fields aligned after the header
assert HEADER_SIZE == 16

# record_type byte -> (RecordType, dtype), built once: the decoder's only lookup.
BY_CODE: dict[int, tuple[RecordType, np.dtype]] = {int(r): (r, d) for r, d in DTYPES.items()}
# record_type byte -> record size (0: unknown type), for the compiled check.
RECORD_SIZES = np.zeros(256, np.int64)
for _code, (_, _dtype) in BY_CODE.items():
    assert _dtype.itemsize % 8 == 0, "records stay 8-byte aligned back to back"
    RECORD_SIZES[_code] = _dtype.itemsize


class FrameKind(IntEnum):
    DATA = 0
    END = 1  # the sender is done: lets a receiver finish deterministically


class Malformed(IntEnum):
    """Why a frame was skipped."""

    SHORT = 0  # fewer bytes than a header
    MAGIC = 1
    VERSION = 2
    KIND = 3  # unknown frame kind
    TYPE = 4  # unknown record type
    RECORD_SIZE = 5  # header's record size is not our dtype's: a different event model
    RAGGED = 6  # payload is not a whole number of records
    COUNT = 7  # payload holds a whole number of records, but not `count` of them
    OVERSIZE = 8  # larger than the receive buffer: truncated by the transport


class EndOfStream:
    """Returned by the decoder for an END frame."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "END_OF_STREAM"


END_OF_STREAM = EndOfStream()

# Decoder counters, one int64 array shared with the compiled loop: a slot per
# Malformed reason, then these.
ENDS, FRAMES, RECORDS = len(Malformed), len(Malformed) + 1, len(Malformed) + 2
N_COUNTS = len(Malformed) + 3
# check_frame's verdicts besides a Malformed reason (which is >= 0).
IS_DATA, IS_END = -1, -2

_MAGIC_U32 = int.from_bytes(MAGIC, "little")
_DATA, _END = int(FrameKind.DATA), int(FrameKind.END)
_SHORT, _MAGIC, _VERSION, _KIND, _TYPE, _RECORD_SIZE, _RAGGED, _COUNT = (
    int(m) for m in list(Malformed)[:8]
)
_new_batch = tuple.__new__  # Batch(...) through its generated __new__ costs ~4x more


@nb.njit(cache=True, inline="always")
def _u32(buf, at):
    return (
        np.int64(buf[at])
        | np.int64(buf[at + 1]) << 8
        | np.int64(buf[at + 2]) << 16
        | np.int64(buf[at + 3]) << 24
    )


@nb.njit(cache=True)
def check_frame(buf, n, sizes, counts):
    """Judge the frame in `buf[:n]` (uint8) and count it in `counts`.

    Returns (verdict, record_type, count): verdict IS_DATA or IS_END, else the
    Malformed reason it was counted under.
    """
    verdict = IS_DATA
    code = 0
    count = 0
    if n < HEADER_SIZE:
        verdict = _SHORT
    elif _u32(buf, 0) != _MAGIC_U32:
        verdict = _MAGIC
    elif buf[4] != WIRE_VERSION:
        verdict = _VERSION
    else:
        kind = buf[5]
        code = np.int64(buf[6])
        count = _u32(buf, 8)
        size = _u32(buf, 12)
        if kind == _DATA:
            want = sizes[code]
            if want == 0:
                verdict = _TYPE
            elif size != want:
                verdict = _RECORD_SIZE
            elif (n - HEADER_SIZE) % size:
                verdict = _RAGGED
            elif (n - HEADER_SIZE) // size != count or count == 0:
                verdict = _COUNT
        elif kind == _END:
            verdict = (
                IS_END if n == HEADER_SIZE and count == 0 and size == 0 and code == 0 else _COUNT
            )
        else:
            verdict = _KIND
    if verdict == IS_DATA:
        counts[FRAMES] += 1
        counts[RECORDS] += count
    elif verdict == IS_END:
        counts[ENDS] += 1
    else:
        counts[verdict] += 1
    return verdict, code, count


def topic(rtype: RecordType) -> bytes:
    """ZeroMQ SUB prefix that selects DATA frames of `rtype`."""
    return HEADER.pack(MAGIC, WIRE_VERSION, FrameKind.DATA, int(rtype), 0, 0, 0)[:7]


def end_topic() -> bytes:
    """ZeroMQ SUB prefix that selects END frames: subscribe to it beside a type's topic."""
    return encode_end()[:6]


def encode(records: np.ndarray, rtype: RecordType | None = None) -> bytes:
    """One DATA frame holding `records` (a 1-d array of an event dtype).

    Pass `rtype` when known: it skips looking the dtype up (a hot-path saving).
    """
    if records.ndim != 1 or len(records) == 0:
        raise ValueError(
            f"wire.encode: records must be 1-d and non-empty, got shape {records.shape}"
        )
    if rtype is None:
        rtype = record_type_of(records.dtype)
    head = HEADER.pack(
        MAGIC, WIRE_VERSION, FrameKind.DATA, int(rtype), 0, len(records), records.dtype.itemsize
    )
    return head + np.ascontiguousarray(records).tobytes()


def encode_end() -> bytes:
    """The END frame: no records."""
    return HEADER.pack(MAGIC, WIRE_VERSION, FrameKind.END, 0, 0, 0, 0)


class Decoder:
    """Frames -> record views, counting what it had to skip.

    `malformed[reason]` counts skipped frames per `Malformed` reason; all the
    counters live in `counts` (see ENDS, FRAMES, RECORDS), which the compiled
    ZeroMQ loop updates in place.
    """

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts = np.zeros(N_COUNTS, np.int64)

    @property
    def frames(self) -> int:  # good DATA frames
        return int(self.counts[FRAMES])

    @property
    def records(self) -> int:
        return int(self.counts[RECORDS])

    @property
    def ends(self) -> int:
        return int(self.counts[ENDS])

    @property
    def malformed(self) -> list[int]:
        return self.counts[: len(Malformed)].tolist()

    def skip(self, reason: Malformed) -> None:
        """Count a frame the transport already knows is bad (e.g. truncated); returns None."""
        self.counts[reason] += 1

    def malformed_by_reason(self) -> dict[str, int]:
        return {m.name.lower(): int(self.counts[m]) for m in Malformed}

    @property
    def malformed_total(self) -> int:
        return int(self.counts[: len(Malformed)].sum())

    def stats(self) -> dict[str, object]:
        """The decode counters every feed reports."""
        return {
            "frames": self.frames,
            "events": self.records,
            "ends": self.ends,
            "malformed": self.malformed_total,
            "malformed_by_reason": self.malformed_by_reason(),
        }

    def decode(self, buf, nbytes: int = -1) -> Batch | EndOfStream | None:
        """Decode one frame from a bytes-like `buf` (its first `nbytes`, default
        all of it); None (counted) if malformed.

        The records are a view of `buf`: writable when `buf` is.
        """
        n = len(buf) if nbytes < 0 else nbytes
        verdict, code, count = check_frame(
            np.frombuffer(buf, np.uint8, n), n, RECORD_SIZES, self.counts
        )
        if verdict == IS_DATA:
            rtype, dtype = BY_CODE[code]
            return _new_batch(Batch, (rtype, np.frombuffer(buf, dtype, count, HEADER_SIZE)))
        return END_OF_STREAM if verdict == IS_END else None


# -- graph edge messages ------------------------------------------------------------------------
# Three parts: a tag naming the records' dtype (its numpy descr, parsed once per distinct tag),
# two int64 stamps (when this writer handed the records on, and `ts_feed`, carried through
# stages between the feed and the arbiter) and the records' bytes. A tag of EDGE_EOS with no
# records ends the stream.

EDGE_EOS: Final = b"EOS"
EDGE_STAMPS = struct.Struct("<qq")  # (this writer's stamp, ts_feed)
_TAG_DTYPES: dict[bytes, np.dtype] = {}
_DTYPE_TAGS: dict[np.dtype, bytes] = {}


def dtype_tag(dtype: np.dtype) -> bytes:
    """The edge message tag of a records dtype (cached)."""
    tag = _DTYPE_TAGS.get(dtype)
    if tag is None:
        tag = repr(np.lib.format.dtype_to_descr(dtype)).encode()
        _DTYPE_TAGS[dtype] = tag
        _TAG_DTYPES[tag] = dtype
    return tag


def tag_dtype(tag: bytes) -> np.dtype:
    """The dtype an edge message tag names; ValueError for a tag that names none."""
    dtype = _TAG_DTYPES.get(tag)
    if dtype is None:
        try:
            dtype = np.lib.format.descr_to_dtype(ast.literal_eval(tag.decode()))
        except (ValueError, SyntaxError, UnicodeDecodeError, TypeError) as exc:
            raise ValueError(f"edge message tag {tag[:60]!r} is not a dtype: {exc}") from None
        # An event dtype comes back as the canonical object: a parsed copy compares equal,
        # but np.concatenate of two such arrays yields a dtype that no longer does (numpy
        # 2.4), which the journal's DECISION_DTYPE check then refuses.
        dtype = next((known for known in DTYPES.values() if known == dtype), dtype)
        _TAG_DTYPES[tag] = dtype
    return dtype


# -- worker messages ----------------------------------------------------------------------------
# One fixed 48-byte header part, then payload parts (pipeline/workers/protocol.py says which):
#     kind u1 | rtype u1 | flags u1 | pad | version u4 | id u8 | s0 s1 s2 s3 i8
# Events travel in fixed SLOT-byte slots (the widest event record), so a batch or a replay is
# three contiguous arrays: rtypes u1[n], event numbers u8[n], records [n, SLOT].

WORKER_HEADER = struct.Struct("<BBBxIQqqqq")
assert WORKER_HEADER.size == 48

EVENT_TYPES: tuple[RecordType, ...] = (  # what a worker applies to its feature state
    RecordType.QUOTE,
    RecordType.TRADE,
    RecordType.BOOK_DELTA,
    RecordType.SENSOR,
)
SLOT = max(DTYPES[t].itemsize for t in EVENT_TYPES)


def pack_slots(
    rtypes: np.ndarray, event_nos: np.ndarray, slots: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slot parts: rtypes u1[n], event numbers u8[n], records [n, SLOT]; contiguous arrays sent
    as they are (a full replay ring is ~5 MB: no extra copy to bytes)."""
    assert slots.shape[1:] == (SLOT,) and len(rtypes) == len(event_nos) == len(slots)
    return (
        np.ascontiguousarray(rtypes, np.uint8),
        np.ascontiguousarray(event_nos, np.uint64),
        np.ascontiguousarray(slots, np.uint8),
    )


def unpack_slots(f_rtypes, f_nos, f_slots) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slot parts -> (rtypes, event numbers, slots) views; ValueError when they disagree."""
    rtypes = np.frombuffer(f_rtypes, np.uint8)
    nos = np.frombuffer(f_nos, np.uint64)
    slots = np.frombuffer(f_slots, np.uint8).reshape(-1, SLOT)
    if not len(rtypes) == len(nos) == len(slots):
        raise ValueError(
            f"slot parts disagree: {len(rtypes)} rtypes, {len(nos)} event numbers, "
            f"{len(slots)} records"
        )
    return rtypes, nos, slots


def record_runs(rtypes: np.ndarray, nos: np.ndarray, slots: np.ndarray):
    """Slotted events as runs of one record type, in order: yields (rtype, event numbers [n],
    records [n] of that type's dtype). A feed batch is one run; records are one copy of the
    slots' leading bytes, so nothing is made per event. Unknown rtype: KeyError."""
    n = len(rtypes)
    cuts = [0, *(np.flatnonzero(rtypes[1:] != rtypes[:-1]) + 1).tolist(), n] if n else [0]
    for a, b in itertools.pairwise(cuts):
        rt = int(rtypes[a])
        dt = DTYPES[rt]
        recs = np.ascontiguousarray(slots[a:b, : dt.itemsize]).view(dt).reshape(b - a)
        yield rt, nos[a:b], recs


def record_view(rtype: int, slot) -> np.ndarray:
    """The record of `rtype` at the start of a slot, as a 1-element structured view (what the
    engines take; indexing `[0]` would make a scalar per event). Unknown rtype: KeyError."""
    return np.frombuffer(slot, dtype=DTYPES[rtype], count=1)
