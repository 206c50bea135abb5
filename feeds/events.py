"""The event model: fixed-width numpy records with matching Arrow schemas.

Every record starts with the same header, so any stream can be merged and
stamped without knowing its payload. Prices are int64 ticks of the
instrument's tick size (see `instruments.py`), sizes are int64 lots: no floats
on the wire. Hot code works on arrays of these dtypes, never per-event objects.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import pyarrow as pa


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

# Parquet/Arrow schema metadata key naming the record type of a file.
RECORD_TYPE_KEY = b"redline.record_type"


def record_type_of(dtype: np.dtype) -> RecordType:
    for rtype, dt in DTYPES.items():
        if dt == dtype:
            return rtype
    raise ValueError(f"dtype {dtype} is not one of redline's event dtypes")


def empty(rtype: RecordType, n: int) -> np.ndarray:
    """A zeroed array of `n` records of `rtype`."""
    return np.zeros(n, dtype=DTYPES[rtype])


def _arrow_type(base: np.dtype, shape: tuple[int, ...]) -> pa.DataType:
    scalar = pa.from_numpy_dtype(base)
    return pa.list_(scalar, shape[0]) if shape else scalar


def arrow_schema(rtype: RecordType) -> pa.Schema:
    """The Arrow schema matching `DTYPES[rtype]`, tagged with the record type."""
    dtype = DTYPES[rtype]
    fields = []
    for name in dtype.names:
        sub = dtype.fields[name][0]
        base, shape = sub.subdtype if sub.subdtype else (sub, ())
        fields.append(pa.field(name, _arrow_type(base, shape), nullable=False))
    return pa.schema(fields, metadata={RECORD_TYPE_KEY: rtype.name.encode()})


def to_arrow(records: np.ndarray) -> pa.RecordBatch:
    """numpy records -> Arrow batch (one copy per column)."""
    rtype = record_type_of(records.dtype)
    schema = arrow_schema(rtype)
    columns = []
    for field in schema:
        col = records[field.name]
        if col.ndim == 2:
            flat = pa.array(np.ascontiguousarray(col).reshape(-1))
            columns.append(pa.FixedSizeListArray.from_arrays(flat, col.shape[1]))
        else:
            columns.append(pa.array(np.ascontiguousarray(col), type=field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class SchemaError(ValueError):
    """A table does not match redline's schema; the message names where."""


def record_type_from_schema(schema: pa.Schema, where: str = "") -> RecordType:
    meta = schema.metadata or {}
    name = meta.get(RECORD_TYPE_KEY)
    if name is not None:
        try:
            return RecordType[name.decode()]
        except KeyError:
            raise SchemaError(f"{where}: unknown record type {name!r} in schema metadata") from None
    # No tag: pick the type whose payload columns are all present.
    names = set(schema.names)
    for rtype, dtype in DTYPES.items():
        if set(dtype.names) <= names:
            return rtype
    raise SchemaError(
        f"{where}: no {RECORD_TYPE_KEY.decode()} metadata and the columns {sorted(names)} "
        f"match no record type"
    )


def from_arrow(batch: pa.RecordBatch | pa.Table, rtype: RecordType, where: str = "") -> np.ndarray:
    """Arrow -> numpy records of `rtype`; a missing or mistyped column raises
    SchemaError naming `where` and the column."""
    dtype = DTYPES[rtype]
    expected = arrow_schema(rtype)
    out = np.zeros(batch.num_rows, dtype=dtype)  # zeroed: padding bytes stay deterministic
    for field in expected:
        idx = batch.schema.get_field_index(field.name)
        if idx < 0:
            raise SchemaError(f"{where}: missing column {field.name!r} for {rtype.name}")
        col = batch.column(idx)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if not col.type.equals(field.type):
            raise SchemaError(
                f"{where}: column {field.name!r} has type {col.type}, expected {field.type}"
            )
        if col.null_count:
            row = int(np.flatnonzero(np.asarray(col.is_null()))[0])
            raise SchemaError(f"{where}: column {field.name!r} is null at row {row}")
        if pa.types.is_fixed_size_list(field.type):
            values = col.values.to_numpy(zero_copy_only=False)
            out[field.name] = values.reshape(batch.num_rows, field.type.list_size)
        else:
            out[field.name] = col.to_numpy(zero_copy_only=False)
    return out
