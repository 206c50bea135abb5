import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from redline.feeds import event_schema as es
from redline.feeds import events as ev


def _filled(rtype: ev.RecordType, n: int = 7) -> np.ndarray:
    rng = np.random.default_rng(7)
    recs = ev.empty(rtype, n)
    for name in recs.dtype.names:
        col = recs[name]
        if col.dtype.kind == "f":
            recs[name] = rng.standard_normal(col.shape).astype(col.dtype)
        else:
            info = np.iinfo(col.dtype)
            recs[name] = rng.integers(max(info.min, -(2**40)), min(info.max, 2**40), col.shape)
    return recs


@pytest.mark.parametrize("rtype", list(ev.RecordType))
def test_numpy_arrow_parquet_round_trip_keeps_every_field(rtype, tmp_path):
    recs = _filled(rtype)
    batch = es.to_arrow(recs)
    assert batch.schema.equals(es.arrow_schema(rtype))
    path = tmp_path / "x.parquet"
    table = pa.Table.from_batches([batch])
    pq.write_table(table, path, compression="zstd", **es.parquet_layout(table.schema))
    table = pq.read_table(path)
    assert es.record_type_from_schema(table.schema) == rtype
    back = es.from_arrow(table, rtype, where=str(path))
    np.testing.assert_array_equal(back, recs)
    # the layout: stamps and seq delta-packed, no dictionary; the other scalars a dictionary
    meta = pq.ParquetFile(path).metadata.row_group(0)
    cols = {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}
    for name in ("ts_event", "ts_recv", "seq"):
        assert "DELTA_BINARY_PACKED" in cols[name].encodings
        assert not cols[name].has_dictionary_page
    assert cols["instrument_id"].has_dictionary_page


def test_every_record_has_the_common_header():
    for dtype in ev.DTYPES.values():
        assert dtype.names[: len(ev.HEADER_FIELDS)] == tuple(n for n, _ in ev.HEADER_FIELDS)


def test_mistyped_and_missing_columns_are_named():
    batch = es.to_arrow(_filled(ev.RecordType.QUOTE))
    table = pa.Table.from_batches([batch])
    wrong = table.set_column(
        table.schema.get_field_index("bid_px"), "bid_px", table["bid_px"].cast(pa.float64())
    )
    with pytest.raises(es.SchemaError, match=r"f\.parquet: column 'bid_px' has type double"):
        es.from_arrow(wrong, ev.RecordType.QUOTE, where="f.parquet")
    with pytest.raises(es.SchemaError, match="missing column 'ask_sz'"):
        es.from_arrow(table.drop_columns(["ask_sz"]), ev.RecordType.QUOTE, where="f.parquet")
