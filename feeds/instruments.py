"""The instrument table: how int64 ticks and lots map to prices and sizes.

Prices travel as int64 multiples of `tick_size`; `price_precision` is the
number of decimals a price is shown with. Conversions to float are for
display and model features only, never for the wire. `source` says where the
tick, lot and multiplier came from ("definition", "exchangeInfo", "gcd of N
prices", ...); a table written before that column existed reads with "".
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


@dataclass(frozen=True, slots=True)
class Instrument:
    instrument_id: int
    symbol: str
    tick_size: Decimal  # price of one tick
    price_precision: int  # decimals shown
    lot_size: Decimal  # quantity of one lot
    multiplier: Decimal = Decimal(1)  # contract multiplier (futures), face value (inverse)
    source: str = ""  # where tick, lot and multiplier came from

    def __post_init__(self) -> None:
        if self.tick_size <= 0:
            raise ValueError(
                f"instrument {self.symbol}: tick_size must be > 0, got {self.tick_size}"
            )
        if self.lot_size <= 0:
            raise ValueError(f"instrument {self.symbol}: lot_size must be > 0, got {self.lot_size}")
        if self.price_precision < 0:
            raise ValueError(
                f"instrument {self.symbol}: price_precision must be >= 0, got {self.price_precision}"
            )

    def to_price(self, ticks: int) -> Decimal:
        """Exact price of `ticks`."""
        return (self.tick_size * ticks).quantize(Decimal(1).scaleb(-self.price_precision))

    def to_ticks(self, price: Decimal | str) -> int:
        """Ticks of an exact price; a price off the tick grid is an error."""
        q, r = divmod(Decimal(price), self.tick_size)
        if r != 0:
            raise ValueError(
                f"{self.symbol}: price {price} is not on the tick grid {self.tick_size}"
            )
        return int(q)


_SCHEMA = pa.schema(
    [
        ("instrument_id", pa.uint32()),
        ("symbol", pa.string()),
        ("tick_size", pa.string()),  # decimal strings keep ticks exact
        ("price_precision", pa.int32()),
        ("lot_size", pa.string()),
        ("multiplier", pa.string()),
        ("source", pa.string()),
    ]
)
# What a table must hold to be read (`source` came later: older tables lack it).
REQUIRED_COLUMNS = frozenset(_SCHEMA.names) - {"source"}


class InstrumentTable:
    """Instruments by id, with a Parquet round trip."""

    def __init__(self, instruments: list[Instrument] | tuple[Instrument, ...] = ()) -> None:
        self._by_id: dict[int, Instrument] = {}
        for inst in instruments:
            self.add(inst)

    def add(self, inst: Instrument) -> None:
        if inst.instrument_id in self._by_id:
            raise ValueError(f"duplicate instrument_id {inst.instrument_id} ({inst.symbol})")
        self._by_id[inst.instrument_id] = inst

    def __getitem__(self, instrument_id: int) -> Instrument:
        try:
            return self._by_id[int(instrument_id)]
        except KeyError:
            raise KeyError(f"unknown instrument_id {instrument_id}") from None

    def __contains__(self, instrument_id: int) -> bool:
        return int(instrument_id) in self._by_id

    def __iter__(self):
        return iter(sorted(self._by_id.values(), key=lambda i: i.instrument_id))

    def __len__(self) -> int:
        return len(self._by_id)

    def by_symbol(self, symbol: str) -> Instrument:
        for inst in self._by_id.values():
            if inst.symbol == symbol:
                return inst
        raise KeyError(f"unknown symbol {symbol!r}")

    def to_arrow(self) -> pa.Table:
        rows = list(self)
        return pa.table(
            {
                "instrument_id": [i.instrument_id for i in rows],
                "symbol": [i.symbol for i in rows],
                "tick_size": [str(i.tick_size) for i in rows],
                "price_precision": [i.price_precision for i in rows],
                "lot_size": [str(i.lot_size) for i in rows],
                "multiplier": [str(i.multiplier) for i in rows],
                "source": [i.source for i in rows],
            },
            schema=_SCHEMA,
        )

    def write(self, path: str | Path) -> None:
        pq.write_table(self.to_arrow(), path, compression="zstd")

    @classmethod
    def read(cls, path: str | Path) -> InstrumentTable:
        table = pq.read_table(path)
        missing = REQUIRED_COLUMNS - set(table.column_names)
        if missing:
            raise ValueError(f"{path}: instrument table lacks columns {sorted(missing)}")
        return cls(
            [
                Instrument(
                    instrument_id=int(r["instrument_id"]),
                    symbol=r["symbol"],
                    tick_size=Decimal(r["tick_size"]),
                    price_precision=int(r["price_precision"]),
                    lot_size=Decimal(r["lot_size"]),
                    multiplier=Decimal(r["multiplier"]),
                    source=r.get("source") or "",
                )
                for r in table.to_pylist()
            ]
        )
