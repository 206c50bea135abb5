from decimal import Decimal

import pyarrow.parquet as pq
import pytest

from redline.feeds.instruments import Instrument, InstrumentTable


def test_ticks_round_trip_exactly_and_off_grid_prices_fail(tmp_path):
    es = Instrument(1, "ESU4", Decimal("0.25"), 2, Decimal(1), Decimal(50))
    assert es.to_ticks("5432.75") == 21731
    assert es.to_price(21731) == Decimal("5432.75")
    with pytest.raises(ValueError, match="not on the tick grid"):
        es.to_ticks("5432.10")
    table = InstrumentTable([es, Instrument(2, "ETHUSDT", Decimal("0.01"), 2, Decimal("0.001"))])
    table.write(tmp_path / "instruments.parquet")
    back = InstrumentTable.read(tmp_path / "instruments.parquet")
    assert list(back) == list(table)
    with pytest.raises(ValueError, match="duplicate instrument_id 1"):
        back.add(es)


def test_the_source_column_round_trips_and_older_tables_read_without_it(tmp_path):
    btc = Instrument(
        3, "BTCUSD_PERP", Decimal("0.1"), 1, Decimal(1), Decimal(100), "exchangeInfo.json"
    )
    InstrumentTable([btc]).write(tmp_path / "new.parquet")
    assert list(InstrumentTable.read(tmp_path / "new.parquet")) == [btc]
    old = InstrumentTable([btc]).to_arrow().drop_columns(["source"])
    pq.write_table(old, tmp_path / "old.parquet")
    (back,) = InstrumentTable.read(tmp_path / "old.parquet")
    assert back.source == "" and back.multiplier == 100
