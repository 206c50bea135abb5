"""The baselines `bench_books.py` measures beside ours, each like for like: an orjson
line-by-line Binance import built like hftbacktest's converter (in this process), and, in a
subprocess of an interpreter that has them (kept out of redline's environment),
hftbacktest's own `binancefutures.convert` and NautilusTrader's L2 `OrderBook`.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from redline.feeds.books.l2 import L2Book


def orjson_baseline(data: bytes) -> tuple[int, float, float]:
    """hftbacktest-style import: orjson per line, a Python row per level/quote/trade.
    Returns (rows, wall s, CPU s)."""
    t0, c0 = time.perf_counter(), time.process_time()
    rows = []
    for line in data.splitlines():
        if not line:
            continue
        ts, js = line.split(b" ", 1)
        msg = orjson.loads(js)
        recv = int(ts)
        d = msg.get("data", msg)
        e = d.get("e")
        if e == "depthUpdate":
            for px, qty in d["b"]:
                rows.append((1, recv, d["T"], float(px), float(qty)))
            for px, qty in d["a"]:
                rows.append((2, recv, d["T"], float(px), float(qty)))
        elif e == "bookTicker":
            rows.append((3, recv, d["T"], float(d["b"]), float(d["B"])))
            rows.append((4, recv, d["T"], float(d["a"]), float(d["A"])))
        elif e == "trade":
            rows.append((5, recv, d["T"], float(d["p"]), float(d["q"])))
        elif "lastUpdateId" in d:
            for px, qty in d["bids"]:
                rows.append((6, recv, d["T"], float(px), float(qty)))
            for px, qty in d["asks"]:
                rows.append((7, recv, d["T"], float(px), float(qty)))
    return len(rows), time.perf_counter() - t0, time.process_time() - c0


HFT_PROBE = r"""
import json, sys, time
from hftbacktest.data.utils import binancefutures as bf
out = []
for _ in range(2):  # the first call compiles (numba), the second is warm
    t, c = time.perf_counter(), time.process_time()
    rows = len(bf.convert(sys.argv[1], opt="t", buffer_size=5_000_000))
    out.append({"rows": rows, "seconds": time.perf_counter() - t,
                "cpu_seconds": time.process_time() - c})
print(json.dumps(out))
"""


def hftbacktest_convert(python: str, path) -> dict:
    """hftbacktest's Binance futures converter on `path` (bookTicker included, as ours),
    in a fresh process of `python`: cold (first) and warm (second) call."""
    done = subprocess.run(
        [python, "-c", HFT_PROBE, str(path)], capture_output=True, text=True, check=True
    )
    cold, warm = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "rows": warm["rows"],
        "cold_seconds": cold["seconds"],
        "warm_seconds": warm["seconds"],
        "warm_cpu_seconds": warm["cpu_seconds"],
        "warm_rows_per_s": warm["rows"] / warm["seconds"],
    }


NT_PROBE = r"""
import json, sys, time
from decimal import Decimal
import numpy as np
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import OrderBookDelta
from nautilus_trader.model.enums import BookAction, BookType, OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import FIXED_PRECISION

path, tick, px_prec, lot, sz_prec = sys.argv[1:6]
px_prec, sz_prec = int(px_prec), int(sz_prec)
d = np.load(path)
iid = InstrumentId.from_str("BOOK-PERP.BINANCE")
act = {1: BookAction.ADD, 2: BookAction.UPDATE, 3: BookAction.DELETE, 6: BookAction.CLEAR}
side = {0: OrderSide.NO_ORDER_SIDE, 1: OrderSide.BUY, 2: OrderSide.SELL}
# one tick and one lot in its raw fixed-point units: our prices are ticks, sizes lots
px_raw, sz_raw = (int(Decimal(x).scaleb(FIXED_PRECISION)) for x in (tick, lot))
cols = (d[c].tolist() for c in ("action", "side", "px", "sz", "ts_event"))
deltas = [OrderBookDelta.from_raw(iid, act[a], side[s], p * px_raw, px_prec, z * sz_raw,
                                  sz_prec, 0, 0, 0, t, t) for a, s, p, z, t in zip(*cols)]
out = []
for _ in range(2):  # the first pass warms up, the second is timed
    book = OrderBook(iid, BookType.L2_MBP)
    top = [None] * len(deltas)
    t, c = time.perf_counter(), time.process_time()
    for i, delta in enumerate(deltas):
        book.apply_delta(delta)
        top[i] = (book.best_bid_price(), book.best_bid_size(), book.best_ask_price(),
                  book.best_ask_size())
    out.append({"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c})
raw = lambda x, unit: -1 if x is None else x.raw // unit
np.save(path + ".top.npy", np.array([(raw(a, px_raw), raw(b, sz_raw), raw(e, px_raw),
                                      raw(f, sz_raw)) for a, b, e, f in top], np.int64))
print(json.dumps(out[1]))
"""


def nautilus_book(python: str, deltas: np.ndarray, inst) -> dict:
    """NautilusTrader's L2 book on `deltas` (of instrument `inst`) in a fresh process of
    `python`: its warm pass, and how often its top after a delta is ours."""
    lot_decimals = max(0, -inst.lot_size.normalize().as_tuple().exponent)
    args = [str(inst.tick_size), str(inst.price_precision), str(inst.lot_size), str(lot_decimals)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "deltas.npy"
        np.save(path, deltas)
        done = subprocess.run([python, "-c", NT_PROBE, str(path), *args],
                              capture_output=True, text=True, check=True)  # fmt: skip
        warm = json.loads(done.stdout.strip().splitlines()[-1])
        theirs = np.load(f"{path}.top.npy")
    top = L2Book().apply(deltas)
    ours = np.stack([top[c] for c in ("bid_px", "bid_sz", "ask_px", "ask_sz")], axis=1)
    # an empty side: None there, size 0 here
    same = (ours == theirs) | ((theirs == -1) & (ours[:, [1, 1, 3, 3]] == 0))
    return {
        "deltas": len(deltas),
        "seconds": warm["seconds"],
        "cpu_seconds": warm["cpu_seconds"],
        "deltas_per_s": len(deltas) / warm["seconds"],
        "deltas_per_cpu_s": len(deltas) / warm["cpu_seconds"],
        "top_same_as_ours": float(same.all(axis=1).mean()),
    }
