"""Binance `exchangeInfo` JSON (spot, USD-M or COIN-M REST) -> each symbol's own terms.

`PRICE_FILTER.tickSize` is the tick, `LOT_SIZE.stepSize` the lot and, on COIN-M,
`contractSize` the face value of one contract (USD 100 for BTCUSD, 10 for the others).
Given to `redline import` beside a capture, these win over the grid inferred from the
capture's own prices.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path


@dataclass(frozen=True)
class Terms:
    tick: Decimal
    lot: Decimal
    contract_size: Decimal | None  # COIN-M only
    where: str  # the file they came from


def looks_like(head: bytes) -> bool:
    """Is this the start of an exchangeInfo answer (a JSON object with its top keys)?"""
    h = head.lstrip()
    return h[:1] == b"{" and any(k in h for k in (b'"timezone"', b'"rateLimits"', b'"symbols"'))


def _filter(sym: dict, kind: str, key: str, where: str) -> Decimal:
    for f in sym.get("filters", []):
        if f.get("filterType") == kind:
            try:
                value = Decimal(str(f[key]))
            except (KeyError, InvalidOperation):
                break
            if value > 0:
                return value
    raise ValueError(
        f"{where}: symbol {sym.get('symbol')!r} has no {kind} filter with a positive "
        f"'{key}'; give the exchangeInfo answer as Binance sends it"
    )


def read(path: str | Path) -> dict[str, Terms]:
    """Terms by symbol; a file that is not an exchangeInfo answer is a ValueError saying
    what is missing."""
    where = str(path)
    try:
        doc = json.loads(Path(path).read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where}: not JSON ({exc}); give Binance's exchangeInfo answer") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("symbols"), list):
        raise ValueError(
            f"{where}: no 'symbols' list; an exchangeInfo answer (GET /api/v3/exchangeInfo, "
            f"/fapi/v1/exchangeInfo or /dapi/v1/exchangeInfo) holds one"
        )
    out = {}
    for sym in doc["symbols"]:
        if not isinstance(sym, dict) or "symbol" not in sym:
            raise ValueError(f"{where}: an entry of 'symbols' has no 'symbol' key")
        size = sym.get("contractSize")
        out[str(sym["symbol"])] = Terms(
            tick=_filter(sym, "PRICE_FILTER", "tickSize", where),
            lot=_filter(sym, "LOT_SIZE", "stepSize", where),
            contract_size=Decimal(str(size)) if size is not None else None,
            where=Path(path).name,
        )
    return out
