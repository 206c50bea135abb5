"""The event model: fixed-width numpy records (their Arrow schemas: `event_schema.py`).

Every record starts with the same header, so any stream can be merged and
stamped without knowing its payload. Prices are int64 ticks of the
instrument's tick size (see `instruments.py`), sizes are int64 lots: no floats
on the wire. Hot code works on arrays of these dtypes, never per-event objects.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

import numpy as np


class RecordType(IntEnum):
    QUOTE = 1  # L1 top of book
    TRADE = 2
    BOOK_DELTA = 3  # L2 level change, or L3 order change when order_id != 0
    SENSOR = 4
    DECISION = 5


class TsSource(IntEnum):
    """Where `ts_recv` came from, best first."""

    USER = 0  # user-space clock read after the read returned
    KERNEL = 1  # kernel software RX stamp (SO_TIMESTAMPING software)
    HARDWARE = 2  # NIC hardware RX stamp


class Side(IntEnum):
    NONE = 0
    BID = 1  # also: buyer-initiated trade
    ASK = 2  # also: seller-initiated trade


class BookAction(IntEnum):
    """L2: ADD/UPDATE set a level's size, DELETE removes it. L3: per order."""

    ADD = 1
    UPDATE = 2  # L3: modify
    DELETE = 3  # L3: cancel
    FILL = 4  # L3: resting order (partly) filled
    TRADE = 5  # L3: trade message that does not touch the book
    CLEAR = 6  # wipe the book (before a snapshot)


class Flag(IntEnum):
    """Bits of the header's `flags`."""

    SNAPSHOT = 1  # part of a snapshot, not a live change
    BAD_TS_RECV = 2  # ts_recv not trustworthy: kept, excluded from latency stats
    LAST = 4  # last record of an atomic batch (book consistent after it)
    GAP_BEFORE = 8  # a sequence gap was detected just before this record


# Price of an empty book side or an absent level (as in DBN): the largest int64.
UNDEF_PX = np.iinfo(np.int64).max

HEADER_FIELDS: list[tuple[str, str]] = [
    ("ts_event", "<i8"),  # source / exchange time, ns since the epoch
    ("ts_recv", "<i8"),  # local receive time, ns since the epoch
    ("seq", "<u8"),  # per-source sequence number
    ("instrument_id", "<u4"),
    ("source_id", "<u2"),
    ("ts_recv_source", "u1"),  # TsSource
    ("flags", "u1"),  # Flag bits
]

SENSOR_WIDTH = 8  # floats per sensor reading; wide enough for radar/camera/IMU tracks


def _dtype(payload: list[tuple]) -> np.dtype:
    # align=True pads every field to its natural alignment and the record to a
    # multiple of 8 bytes, so int64 reads never straddle a word in any record
    # of an array (a packed 132-byte DECISION misaligned every other record).
    return np.dtype(HEADER_FIELDS + payload, align=True)


QUOTE_DTYPE = _dtype(
    [
        ("bid_px", "<i8"),
        ("ask_px", "<i8"),
        ("bid_sz", "<i8"),
        ("ask_sz", "<i8"),
    ]
)

TRADE_DTYPE = _dtype(
    [
        ("px", "<i8"),
        ("sz", "<i8"),
        ("trade_id", "<u8"),
        ("aggressor", "i1"),  # Side of the aggressor, NONE if unknown
    ]
)

BOOK_DELTA_DTYPE = _dtype(
    [
        ("px", "<i8"),
        ("sz", "<i8"),  # L2: new level size (0 with DELETE); L3: order size
        ("order_id", "<u8"),  # 0 for L2 deltas
        ("side", "i1"),  # Side
        ("action", "u1"),  # BookAction
    ]
)

SENSOR_DTYPE = _dtype(
    [
        ("sensor_id", "<u2"),
        ("frame_id", "<u8"),
        ("values", "<f4", (SENSOR_WIDTH,)),
    ]
)

# Stage stamps carried by every decision, in pipeline order (ns, one clock).
STAGES: tuple[str, ...] = (
    "ts_feed",  # event received by the graph
    "ts_features",  # features ready
    "ts_request",  # request sent to the workers
    "ts_worker_start",  # worker began computing
    "ts_worker_end",  # worker finished computing
    "ts_answer",  # answer received by the arbiter
    "ts_decision",  # decision emitted
)


class Origin(IntEnum):
    """Who made a decision: every decision has exactly one."""

    WORKER_A = 0
    WORKER_B = 1
    FALLBACK = 2  # in-process CPU fallback
    DEFAULT = 3  # the strategy's safe default at the deadline


DECISION_DTYPE = _dtype(
    [(stage, "<i8") for stage in STAGES]
    + [
        ("deadline", "<i8"),
        ("input_seq", "<u8"),  # seq of the event that triggered it
        ("input_source_id", "<u2"),
        ("origin", "u1"),  # Origin
        ("side", "i1"),  # Side to trade, NONE for no action / control-only
        ("model_version", "<u4"),
        ("qty", "<i8"),
        ("px", "<i8"),
        ("score", "<f4"),  # model output behind the decision
    ]
)

DTYPES: dict[RecordType, np.dtype] = {
    RecordType.QUOTE: QUOTE_DTYPE,
    RecordType.TRADE: TRADE_DTYPE,
    RecordType.BOOK_DELTA: BOOK_DELTA_DTYPE,
    RecordType.SENSOR: SENSOR_DTYPE,
    RecordType.DECISION: DECISION_DTYPE,
}


def record_type_of(dtype: np.dtype) -> RecordType:
    for rtype, dt in DTYPES.items():
        if dt == dtype:
            return rtype
    raise ValueError(f"dtype {dtype} is not one of redline's event dtypes")


def empty(rtype: RecordType, n: int) -> np.ndarray:
    """A zeroed array of `n` records of `rtype`."""
    return np.zeros(n, dtype=DTYPES[rtype])


class Batch(NamedTuple):
    """Consecutive records of one type, in stream order: what every source hands out."""

    rtype: RecordType
    records: np.ndarray  # DTYPES[rtype]; may be a view of a shared buffer
