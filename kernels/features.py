"""Feature kernel: per-instrument rolling state updated by QUOTE and TRADE events.

Two entry points run the same compiled update, so their results are identical
(tested bit for bit): `FeatureState.update_quote/update_trade` for one live
event, and `FeatureState.scan` over whole recorded series (replay).
`features_ref.py` is an independent plain-Python reference.

The update is a chain of scalar recurrences per event, so it is a numba
kernel on the CPU, not a Triton one: a GPU launch costs more than the whole
update, and the worker keeps this state resident in host memory next to its
input buffer. Arithmetic is float64; features are written as float32.

Time is `ts_event` (source time; replay is ordered by `ts_recv`, so a source
stamp that goes backwards counts as dt = 0). Every time-decayed quantity
decays with exp(-dt ln2 / half_life). The mid EMAs are the exact EMAs of the
piecewise-constant mid: over dt they move toward the mid that held during dt.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from redline.feeds.events import QUOTE_DTYPE, TRADE_DTYPE

# The input names live apart so that a plan's loader reads them without importing numba.
from redline.kernels.feature_names import FEATURE_NAMES as FEATURE_NAMES
from redline.kernels.feature_names import N_FEATURES

MS = 1_000_000
EMA_HALF_LIVES_NS = (100 * MS, 1_000 * MS, 10_000 * MS, 60_000 * MS)
RV_HALF_LIVES_NS = (1_000 * MS, 10_000 * MS)
FLOW_HALF_LIVES_NS = (1_000 * MS, 10_000 * MS)


# Float state columns (besides the features themselves, kept in F_*).
_MID, _EMA0, _RV0, _FS0, _FA0 = 0, 1, 5, 7, 9  # mid, 4 EMAs, 2 RV sums, 2+2 flow sums
_FEAT0 = 11  # the current feature vector lives at [_FEAT0, _FEAT0 + N_FEATURES)
N_STATE_F = _FEAT0 + N_FEATURES
# Int state columns.
_HAS_QUOTE, _LAST_TS, _LAST_QUOTE_TS, _EVENTS, _REJECTED = 0, 1, 2, 3, 4
N_STATE_I = 5

_LN2 = math.log(2.0)
# The distinct half-lives, and each decayed quantity's index among them.
_HL = np.unique(np.array(EMA_HALF_LIVES_NS + RV_HALF_LIVES_NS + FLOW_HALF_LIVES_NS, np.float64))
_EMA_U = np.searchsorted(_HL, EMA_HALF_LIVES_NS)
_RV_U = np.searchsorted(_HL, RV_HALF_LIVES_NS)
_FLOW_U = np.searchsorted(_HL, FLOW_HALF_LIVES_NS)


def _whole_ratios(hl: np.ndarray) -> np.ndarray:
    """[u]: n where the half-life hl[u + 1] is n whole times hl[u], else 0. exp() costs ~15 ns,
    a fifth of an event: such a half-life decays by the longer one's factor to the n-th power
    (a few multiplies), so only the longest half-life needs its exp."""
    out = np.zeros(len(hl), np.int64)
    for u in range(len(hl) - 1):
        n = hl[u + 1] / hl[u]
        out[u] = int(n) if n == int(n) and n <= 1024 else 0
    return out


_POW = _whole_ratios(_HL)


@numba.njit(cache=True, inline="always")
def _pow(x, n):
    # x ** n for a whole n >= 1 by squaring: ~2 log2(n) multiplies
    out = 1.0
    while n > 0:
        if n & 1:
            out *= x
        x *= x
        n >>= 1
    return out


@numba.njit(cache=True, inline="always")
def _log_ratio(a, b):
    # log(a / b). Prices sit near their EMAs and the last mid: there, with x = a / b - 1 below
    # 2^-7, five terms of log(1 + x)'s series (relative error < |x|^5 / 6 < 1e-11, far below
    # the float32 the features are written in) cost a few multiply-adds that overlap, where
    # each log() is a ~15 ns call; a quote's update makes five of them.
    x = (a - b) / b
    if abs(x) >= 0.0078125:
        return math.log(a / b)
    return x * (1.0 + x * (-0.5 + x * (1.0 / 3.0 + x * (-0.25 + x * 0.2))))


@numba.njit(cache=True, inline="always")
def _advance(sf, si, r, ts):
    # Decay everything of row r over dt since the last event of this instrument.
    dt = float(max(ts - si[r, _LAST_TS], 0)) if si[r, _EVENTS] > 0 else 0.0
    si[r, _LAST_TS] = max(ts, si[r, _LAST_TS])
    si[r, _EVENTS] += 1
    if dt == 0.0:
        return
    mid = sf[r, _MID]
    # From the longest half-life down: d_u = d_{u+1} ** n where n = HL_{u+1} / HL_u is whole.
    d = 1.0
    for u in range(_HL.shape[0] - 1, -1, -1):
        d = _pow(d, _POW[u]) if _POW[u] > 0 else math.exp(-dt * _LN2 / _HL[u])
        for k in range(_EMA_U.shape[0]):
            if _EMA_U[k] == u:
                sf[r, _EMA0 + k] = mid + d * (sf[r, _EMA0 + k] - mid)
        for k in range(_RV_U.shape[0]):
            if _RV_U[k] == u:
                sf[r, _RV0 + k] *= d
        for k in range(_FLOW_U.shape[0]):
            if _FLOW_U[k] == u:
                sf[r, _FS0 + k] *= d
                sf[r, _FA0 + k] *= d


@numba.njit(cache=True, inline="always")
def _refresh(sf, si, r):
    # Recompute the mid-dependent features of row r.
    f = _FEAT0
    if si[r, _HAS_QUOTE]:
        mid = sf[r, _MID]
        for k in range(4):
            sf[r, f + k] = 1e4 * _log_ratio(mid, sf[r, _EMA0 + k])
        for k in range(2):
            sf[r, f + 5 + k] = math.sqrt(sf[r, _RV0 + k])
    for k in range(2):
        a = sf[r, _FA0 + k]
        sf[r, f + 10 + k] = sf[r, _FS0 + k] / a if a > 0.0 else 0.0


# The updates index the 2-D state by row (no per-event row views, no `out` argument) and
# leave the features in sf[r, _FEAT0:]; the caller copies them out.
@numba.njit(cache=True, inline="always")
def _quote(sf, si, ticks, r, quotes, j):
    q = quotes[j]
    ts, bid_px, ask_px, bid_sz, ask_sz, tick = (q.ts_event, q.bid_px, q.ask_px, q.bid_sz,
                                                q.ask_sz, ticks[r])  # fmt: skip
    if bid_px <= 0 or ask_px < bid_px or bid_sz < 0 or ask_sz < 0 or not tick > 0.0:
        si[r, _REJECTED] += 1  # crossed / non-positive: state untouched, features as before
        return False
    _advance(sf, si, r, ts)
    bid = bid_px * tick
    ask = ask_px * tick
    mid = 0.5 * (bid + ask)
    f = _FEAT0
    if si[r, _HAS_QUOTE]:
        ret = 1e4 * _log_ratio(mid, sf[r, _MID])
        sf[r, f + 4] = ret
        for k in range(_RV_U.shape[0]):
            sf[r, _RV0 + k] += ret * ret
        sf[r, f + 13] = math.log1p(max(ts - si[r, _LAST_QUOTE_TS], 0) / 1e6)
    else:
        for k in range(_EMA_U.shape[0]):
            sf[r, _EMA0 + k] = mid
        si[r, _HAS_QUOTE] = 1
    si[r, _LAST_QUOTE_TS] = ts
    sf[r, _MID] = mid
    depth = float(bid_sz + ask_sz)
    sf[r, f + 7] = (bid_sz - ask_sz) / depth if depth > 0 else 0.0
    spread = ask - bid
    if depth > 0 and spread > 0:
        micro = (bid * ask_sz + ask * bid_sz) / depth
        sf[r, f + 8] = (micro - mid) / spread
    else:
        sf[r, f + 8] = 0.0
    sf[r, f + 9] = 1e4 * spread / mid
    _refresh(sf, si, r)
    return True


@numba.njit(cache=True, inline="always")
def _trade(sf, si, ticks, r, trades, j, refresh=True):
    # refresh=False: the state only; the mid-dependent features wait for the next _refresh
    t = trades[j]
    ts, px, sz, aggressor, tick = t.ts_event, t.px, t.sz, t.aggressor, ticks[r]
    if px <= 0 or sz < 0 or not tick > 0.0:
        si[r, _REJECTED] += 1
        return False
    _advance(sf, si, r, ts)
    price = px * tick
    if aggressor == 1:  # Side.BID: buyer-initiated
        sign = 1.0
    elif aggressor == 2:
        sign = -1.0
    elif si[r, _HAS_QUOTE]:  # unknown aggressor: tick rule against the mid
        sign = 1.0 if price > sf[r, _MID] else (-1.0 if price < sf[r, _MID] else 0.0)
    else:
        sign = 0.0
    for k in range(_FLOW_U.shape[0]):
        sf[r, _FS0 + k] += sign * sz
        sf[r, _FA0 + k] += sz
    if si[r, _HAS_QUOTE]:
        sf[r, _FEAT0 + 12] = 1e4 * _log_ratio(price, sf[r, _MID])
    if refresh:
        _refresh(sf, si, r)
    return True


@numba.njit(cache=True, inline="always")
def _copy_features(sf, r, out, o):
    for k in range(N_FEATURES):
        out[o, k] = sf[r, _FEAT0 + k]


@numba.njit(cache=True, inline="always")
def _check_live(sf, row, records, j, out):
    # numba does not bounds-check: a bad row, index or buffer would corrupt memory.
    if row < 0 or row >= sf.shape[0] or j < 0 or j >= records.shape[0]:
        raise IndexError("feature update: row or record index out of range")
    if out.shape[0] < N_FEATURES:
        raise IndexError("feature update: out is shorter than N_FEATURES")


@numba.njit(cache=True)
def _quote_at(sf, si, ticks, row, quotes, j, out):
    _check_live(sf, row, quotes, j, out)
    ok = _quote(sf, si, ticks, row, quotes, j)
    for k in range(N_FEATURES):
        out[k] = sf[row, _FEAT0 + k]
    return ok


@numba.njit(cache=True)
def _trade_at(sf, si, ticks, row, trades, j, out):
    _check_live(sf, row, trades, j, out)
    ok = _trade(sf, si, ticks, row, trades, j)
    for k in range(N_FEATURES):
        out[k] = sf[row, _FEAT0 + k]
    return ok


@numba.njit(cache=True, nogil=True)
def _scan(sf, si, ticks, quotes, quote_rows, trades, trade_rows, outq, outt):
    # The live updates in merge_order, for inputs each sorted by ts_recv: a two-way merge,
    # quotes first on ties (no argsort: ~20-50 ns an event). Without the GIL, so a replay's
    # read-ahead thread decodes the next chunk meanwhile. FeatureState.scan checked the rows.
    # outt with no rows for some trades: their features are not wanted, so a trade skips
    # _refresh (4 log ratios, 2 roots); each quote refreshes its row anyway, as does the end of
    # the scan, so the state and every quote's features are the same bits as with them.
    i, j = 0, 0
    trade_features = outt.shape[0] >= trades.shape[0]
    while i < quotes.shape[0] or j < trades.shape[0]:
        if j >= trades.shape[0] or (i < quotes.shape[0] and quotes[i].ts_recv <= trades[j].ts_recv):
            _quote(sf, si, ticks, quote_rows[i], quotes, i)
            _copy_features(sf, quote_rows[i], outq, i)
            i += 1
        else:
            _trade(sf, si, ticks, trade_rows[j], trades, j, trade_features)
            if trade_features:
                _copy_features(sf, trade_rows[j], outt, j)
            j += 1
    if not trade_features:
        for r in range(sf.shape[0]):
            _refresh(sf, si, r)


def merge_order(quotes: np.ndarray, trades: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replay order of two record arrays: by ts_recv, stable, quotes before trades on
    ties. Returns (kinds [E] 0=quote 1=trade, idx [E] into that array)."""
    kinds = np.concatenate([np.zeros(len(quotes), np.int8), np.ones(len(trades), np.int8)])
    idx = np.concatenate([np.arange(len(quotes)), np.arange(len(trades))])
    ts = np.concatenate([quotes["ts_recv"], trades["ts_recv"]])
    order = np.argsort(ts, kind="stable")
    return kinds[order], idx[order]


def _check_records(records: np.ndarray, dtype: np.dtype, rows: np.ndarray, n: int, what: str):
    if not isinstance(records, np.ndarray) or records.dtype != dtype:
        raise ValueError(f"{what} must be a numpy array of the {what[:-1].upper()} dtype")
    if rows.shape != records.shape:
        raise ValueError(f"{what[:-1]}_rows has shape {rows.shape}, {what} {records.shape}")
    if len(rows) and (rows.min() < 0 or rows.max() >= n):
        raise ValueError(f"{what[:-1]}_rows holds rows outside 0..{n - 1}")


class FeatureState:
    """Rolling feature state for `len(tick_sizes)` instruments (row i: tick_sizes[i]).

    Resident and preallocated: the live entry points write the new feature
    vector into the caller's `out` (float32 [N_FEATURES]) and allocate nothing.
    A crossed or non-positive quote (or bad trade) leaves the state as it was,
    writes the previous features, returns False and is counted in `rejected`.
    """

    def __init__(self, tick_sizes: np.ndarray | list[float] | tuple[float, ...]) -> None:
        ticks = np.ascontiguousarray(tick_sizes, dtype=np.float64)
        if ticks.ndim != 1 or not len(ticks):
            raise ValueError("tick_sizes must be a non-empty 1-D sequence, one per instrument")
        bad = np.flatnonzero(~(ticks > 0))
        if len(bad):
            raise ValueError(f"tick_sizes[{bad[0]}] = {ticks[bad[0]]}: tick sizes must be > 0")
        self.ticks = ticks
        self.sf = np.zeros((len(ticks), N_STATE_F), np.float64)
        self.si = np.zeros((len(ticks), N_STATE_I), np.int64)

    @property
    def n_instruments(self) -> int:
        return len(self.ticks)

    def reset(self) -> None:
        self.sf[:] = 0.0
        self.si[:] = 0

    def update_quote(self, row: int, quotes: np.ndarray, j: int, out: np.ndarray) -> bool:
        """Live: apply `quotes[j]` (QUOTE records) to instrument `row`; features -> `out`."""
        return _quote_at(self.sf, self.si, self.ticks, row, quotes, j, out)

    def update_trade(self, row: int, trades: np.ndarray, j: int, out: np.ndarray) -> bool:
        """Live: apply `trades[j]` (TRADE records) to instrument `row`; features -> `out`."""
        return _trade_at(self.sf, self.si, self.ticks, row, trades, j, out)

    def features(self, row: int) -> np.ndarray:
        """A float32 copy of instrument `row`'s current features."""
        return self.sf[row, _FEAT0:].astype(np.float32)

    def rejected(self, row: int) -> int:
        return int(self.si[row, _REJECTED])

    def scan(
        self,
        quotes: np.ndarray,
        quote_rows: np.ndarray,
        trades: np.ndarray,
        trade_rows: np.ndarray,
        out: tuple[np.ndarray, np.ndarray] | None = None,
        trade_features: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Replay: apply all events in `merge_order`, continuing from the current state.

        Returns the features after each event: float32 [len(quotes), N_FEATURES]
        and [len(trades), N_FEATURES], aligned with the inputs. `out`: two float32
        C-contiguous [>= rows, N_FEATURES] buffers to write into (the result is their
        leading rows), so a replay in chunks allocates nothing per chunk.
        `trade_features=False`: the trades' features are neither computed nor returned (their
        array has no rows; out[1] may be None); the quotes' and the state are the same.
        """
        if not trade_features:
            out = None if out is None else (out[0], _NO_ROWS)
        quote_rows = np.ascontiguousarray(quote_rows, dtype=np.int64)
        trade_rows = np.ascontiguousarray(trade_rows, dtype=np.int64)
        _check_records(quotes, QUOTE_DTYPE, quote_rows, self.n_instruments, "quotes")
        _check_records(trades, TRADE_DTYPE, trade_rows, self.n_instruments, "trades")
        if out is None:
            out = (np.zeros((len(quotes), N_FEATURES), np.float32),
                   np.zeros((len(trades) if trade_features else 0, N_FEATURES), np.float32))  # fmt: skip
        n_t = len(trades) if trade_features else 0
        outq, outt = _out_rows(out[0], len(quotes)), _out_rows(out[1], n_t)
        # Out of order input is put in order first, each array alone (stable), and the
        # results back: the two-way merge of those is merge_order.
        qo, to = _order(quotes["ts_recv"]), _order(trades["ts_recv"])
        fq = outq if qo is None else np.empty_like(outq)
        ft = outt if to is None or not trade_features else np.empty_like(outt)
        qo, to = slice(None) if qo is None else qo, slice(None) if to is None else to
        _scan(self.sf, self.si, self.ticks, quotes[qo], quote_rows[qo], trades[to],
              trade_rows[to], fq, ft)  # fmt: skip
        if fq is not outq:
            outq[qo] = fq
        if ft is not outt:
            outt[to] = ft
        return outq, outt


_NO_ROWS = np.zeros((0, N_FEATURES), np.float32)


def _order(ts: np.ndarray) -> np.ndarray | None:
    """None if `ts` is sorted, else its stable argsort."""
    return None if (ts[1:] >= ts[:-1]).all() else np.argsort(ts, kind="stable")


def _out_rows(buf: np.ndarray, n: int) -> np.ndarray:
    """The first `n` rows of a caller's output buffer, checked: the kernel writes unchecked."""
    if not (isinstance(buf, np.ndarray) and buf.dtype == np.float32 and buf.ndim == 2
            and buf.shape[0] >= n and buf.shape[1] == N_FEATURES and buf.flags.c_contiguous):  # fmt: skip
        raise ValueError(f"scan out: want float32 C-contiguous [>= {n}, {N_FEATURES}], got "
                         f"{getattr(buf, 'dtype', type(buf))} {getattr(buf, 'shape', '')}")  # fmt: skip
    return buf[:n]
