"""One Binance symbol's market, instrument and grids, from its scanned lines.

- Market: spot when its diff-depth has no `pu` or its bookTicker no `T`; else futures,
  COIN-M (inverse) when the symbol reads `<PAIR>_PERP` or `<PAIR>_<YYMMDD>`, USD-M
  otherwise. One symbol's lines of both spot and futures are refused.
- Tick and lot: the exchangeInfo answer's `tickSize`/`stepSize` when one was given for the
  symbol (every price must sit on it), else the greatest common divisor of all its prices
  and sizes in the capture (`grid.py`), never the printed decimals.
- Multiplier: 1, except COIN-M: the contract's face value in USD (`contractSize` from
  exchangeInfo, else Binance's: 100 for BTCUSD contracts, 10 for every other).
The instrument's `source` says which of these it got.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from redline.feeds.importers import binance_scan as sc
from redline.feeds.importers import grid as gr
from redline.feeds.importers.binance_lines import picked
from redline.feeds.importers.exchange_info import Terms
from redline.feeds.instruments import Instrument

SPOT, USDM, COINM = "spot", "usd-m", "coin-m"
VENUES = {SPOT: "BINANCE-SPOT", USDM: "BINANCE-FUTURES", COINM: "BINANCE-FUTURES"}
_COINM_SYMBOL = re.compile(r"[A-Z0-9]+USD_(PERP|\d{6})")
COINM_FACE_USD = {"BTCUSD": Decimal(100)}  # Binance's face value; every other pair: 10
COINM_FACE_DEFAULT = Decimal(10)


def instrument_id(symbol: str, market: str = USDM) -> int:
    """Stable id of a Binance symbol (CRC32 of venue:symbol, 31 bits): spot ETHUSDT and
    USD-M ETHUSDT are different instruments."""
    return zlib.crc32(f"{VENUES[market]}:{symbol}".encode()) & 0x7FFFFFFF


def market_of(symbol: str, rows: np.ndarray, where: str) -> str:
    """The market of one symbol's rows (see the module doc)."""
    k, seen = rows[:, sc.C_KIND], rows[:, sc.C_SEEN]
    depth, ticker = seen[k == sc.DEPTH], seen[k == sc.TICKER]
    spot = bool(((depth & sc.K_PU) == 0).any() or ((ticker & sc.K_T) == 0).any())
    futures = bool(((depth & sc.K_PU) != 0).any() or ((ticker & sc.K_T) != 0).any())
    if spot and futures:
        raise ValueError(
            f"{where}: {symbol} has both spot messages (depthUpdate without 'pu' or bookTicker "
            f"without 'T') and futures ones; capture each market in its own file"
        )
    if spot:
        return SPOT
    return COINM if _COINM_SYMBOL.fullmatch(symbol) else USDM


@dataclass(frozen=True)
class SymbolTerms:
    market: str
    instrument: Instrument
    price: gr.Grid
    size: gr.Grid


def _values(rows: np.ndarray, levels: tuple[np.ndarray, np.ndarray], cols) -> list:
    """(mantissas, decimals) of the symbol's book levels, then of the given (value,
    decimals) row columns of tickers and trades: never joined into one copy."""
    k = rows[:, sc.C_KIND]
    out = [levels]
    for kind, pairs in cols:
        r = picked(rows, k == kind)
        out += [(r[:, m], r[:, d]) for m, d in pairs]
    return out


_PRICES = ((sc.TICKER, ((sc.C_PX, sc.C_PX_DEC), (sc.C_PX2, sc.C_PX2_DEC))),
           (sc.TRADE, ((sc.C_PX, sc.C_PX_DEC),)))  # fmt: skip
_SIZES = ((sc.TICKER, ((sc.C_SZ, sc.C_SZ_DEC), (sc.C_SZ2, sc.C_SZ2_DEC))),
          (sc.TRADE, ((sc.C_SZ, sc.C_SZ_DEC),)))  # fmt: skip


def terms(
    symbol: str,
    market: str,
    rows: np.ndarray,
    px_levels: tuple[np.ndarray, np.ndarray],
    sz_levels: tuple[np.ndarray, np.ndarray],
    info: Terms | None,
    where: str,
) -> SymbolTerms:
    """Instrument and grids of one symbol (`*_levels`: its book levels' mantissas and
    decimals)."""
    px = _values(rows, px_levels, _PRICES)
    sz = _values(rows, sz_levels, _SIZES)
    if info is not None:
        price = gr.given_of(info.tick, px, f"{where}: {symbol} price vs {info.where}")
        size = gr.given_of(info.lot, sz, f"{where}: {symbol} size vs {info.where}")
        source = info.where
    else:
        price, size = gr.inferred_of(px), gr.inferred_of(sz)
        source = f"gcd of {sum(len(m) for m, _ in px):,} prices"
    mult = Decimal(1)
    if market == COINM:
        if info is not None and info.contract_size:
            mult = info.contract_size
        else:
            pair = symbol.split("_")[0]
            mult = COINM_FACE_USD.get(pair, COINM_FACE_DEFAULT)
            source += f"; face value USD {mult} (Binance's for {pair})"
    inst = Instrument(
        instrument_id=instrument_id(symbol, market),
        symbol=symbol,
        tick_size=price.size,
        price_precision=price.decimals,
        lot_size=size.size,
        multiplier=gr.plain(mult),
        source=source,
    )
    return SymbolTerms(market, inst, price, size)
