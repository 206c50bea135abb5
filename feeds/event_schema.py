"""The Arrow schema of every record type, and numpy records <-> Arrow.

Parquet files and the decision journal store the same fields as the numpy
dtypes of `events.py`, tagged with the record type in the schema metadata.
Kept apart from `events.py` so a live feed never loads pyarrow.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from redline.feeds.events import DTYPES, RecordType, record_type_of

# Parquet/Arrow schema metadata key naming the record type of a file.
RECORD_TYPE_KEY = b"redline.record_type"


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


def parquet_layout(schema: pa.Schema) -> dict:
    """pq.write_table's encoding arguments for an event file. Stamps and sequence numbers
    (64-bit, nearly monotone) are delta-packed with no dictionary: a dictionary of all-distinct
    values is built, then dropped, and its fallback pages decode slower. The other scalar
    columns (ids, flags, prices and sizes near the touch) repeat: dictionary. Measured on 8.4M
    quotes at zstd 9: 112 MB and 0.53 s of CPU to decode, against 160 MB and 1.0 s with a
    dictionary everywhere."""
    delta, dictionary = [], []
    for f in schema:
        if (
            pa.types.is_integer(f.type)
            and f.type.bit_width == 64
            and (f.name.startswith("ts_") or f.name == "seq")
        ):
            delta.append(f.name)
        elif not pa.types.is_nested(f.type):
            dictionary.append(f.name)
    return {"use_dictionary": dictionary,
            "column_encoding": dict.fromkeys(delta, "DELTA_BINARY_PACKED")}  # fmt: skip


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
