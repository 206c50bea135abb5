"""Databento prices (int64, 1e-9 fixed point) -> exact integer ticks of each instrument.

The tick is the `min_price_increment` of the instrument's definition when the import has
one, else the largest step that divides every price seen (exact, maybe coarser than the
venue's); the instrument's `source` says which. A price off the grid is an error naming the record, never rounded.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from redline.feeds import events as ev
from redline.feeds.importers.grid import common_step
from redline.feeds.importers.grid import plain as _plain
from redline.feeds.instruments import Instrument, InstrumentTable

UNDEF_PRICE = np.iinfo(np.int64).max  # DBN's "no price", same value as ev.UNDEF_PX
PX_SCALE = 10**9


def instrument(d) -> Instrument:
    """Our instrument from a DBN definition message (tick, precision, multiplier)."""
    tick = _plain(Decimal(int(d.min_price_increment)) / PX_SCALE)
    mult = Decimal(1)
    if d.unit_of_measure_qty not in (UNDEF_PRICE, 0):  # e.g. ES: 50 USD per index point
        mult = Decimal(int(d.unit_of_measure_qty)) / PX_SCALE
    elif d.contract_multiplier not in (np.iinfo(np.int32).max, 0):
        mult = Decimal(int(d.contract_multiplier))
    return Instrument(
        instrument_id=int(d.instrument_id),
        symbol=str(d.raw_symbol),
        tick_size=tick,
        price_precision=max(0, -tick.as_tuple().exponent),
        lot_size=Decimal(1),
        multiplier=_plain(mult),
        source="definition",
    )


class Ticks:
    """Price -> ticks per instrument, exact."""

    def __init__(self, table: InstrumentTable) -> None:
        self.table = table
        self.inc: dict[int, int] = {}
        for inst in table:
            self.inc[inst.instrument_id] = int(inst.tick_size * PX_SCALE)

    def infer(self, iid: np.ndarray, prices: np.ndarray, names: dict[int, str]) -> None:
        """Instruments without a definition get the largest step dividing all
        their prices (exact, maybe coarser than the venue's tick)."""
        ok = prices != UNDEF_PRICE
        for i in np.unique(iid):
            if int(i) in self.inc:
                continue
            p = prices[(iid == i) & ok]
            step = common_step(p)
            self.inc[int(i)] = step
            tick = _plain(Decimal(step) / PX_SCALE)
            self.table.add(
                Instrument(
                    instrument_id=int(i),
                    symbol=names.get(int(i), str(int(i))),
                    tick_size=tick,
                    price_precision=max(0, -tick.as_tuple().exponent),
                    lot_size=Decimal(1),
                    source=f"gcd of {len(p):,} prices",
                )
            )

    def convert(self, iid: np.ndarray, prices: np.ndarray, where: str, what: str) -> np.ndarray:
        uniq, inv = np.unique(iid, return_inverse=True)
        inc = np.array([self.inc[int(u)] for u in uniq], np.int64)[inv]
        undef = prices == UNDEF_PRICE
        safe = np.where(undef, 0, prices)
        q, r = np.divmod(safe, inc)
        if np.any(r):
            i = int(np.flatnonzero(r)[0])
            raise ValueError(
                f"{where}: record {i} {what} {prices[i] / PX_SCALE} is off the tick grid "
                f"{inc[i] / PX_SCALE} of instrument {iid[i]}"
            )
        return np.where(undef, ev.UNDEF_PX, q)
