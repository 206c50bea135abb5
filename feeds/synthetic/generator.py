"""The seeded generator of the bundled recordings in `replay_data/`.

Market: four instruments of very different activity and tick size. Arrivals
are a multivariate Hawkes process (self- and cross-exciting, simulated by its
branching structure, fully vectorised), so activity comes in bursts; each
instrument's L2 book follows a latent mid (`book.py`), with spreads and
volatility that widen in bursts, trades at the touch with heavy-tailed sizes,
and quotes whenever the top of book changes. Every channel then goes over a
`Link` (`network.py`): latency with jitter and stalls, a few late packets,
a few lost ones.

The planted, learnable effect: informed order flow that leads the mid. Each
instrument has a latent informed demand a(t), an Ornstein-Uhlenbeck process in
data time with unit variance and a half-life of INFORMED_HALF_LIFE_S (5 s),
drawn from its own random stream (seed stream 3, so arrivals are unchanged).
It acts twice, as in a Kyle-style market where a signal is revealed slowly:
- flow: a trade is a buy with probability raised by INFORMED_LEAN * a(t)
  (0.2 at one standard deviation: ~70/30 buyers), so signed trade volume (the
  kernel's `flow_1s`, `flow_10s`) shows a(t) before the price has moved;
- price: the latent mid drifts by INFORMED_DRIFT * sigma_1s * a(t) per second,
  sigma_1s the instrument's 1 s volatility without bursts (0.5: a drift half
  the size of the noise of one second), and the book follows the latent mid.
How strong: on 2-minute samples of ESZ6, a(t) has correlation 0.25-0.4 with
the mid move over the next second and 0.4-0.6 over the next 5 s (the
half-life); the pooled trained model reaches ~0.35 out of sample at 5 s on
the bundled data (`redline train`). Stronger than a real market's flow
signal, so that a 5-minute recording shows it; it pays more than the spread
on ESZ6, AAPL and ETH-USD, and less than the spread on the quiet ZNH7.

`generate()` writes every bundled file; `redline generate` calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numba
import numpy as np

from redline.feeds import events as ev
from redline.feeds.instruments import Instrument, InstrumentTable
from redline.feeds.synthetic.book import N_PARAMS, simulate_book
from redline.feeds.synthetic.driving import generate_driving
from redline.feeds.synthetic.network import (
    Link,
    gap_flags,
    lost_packets,
    receive_times,
    write_records,
)

DEFAULT_SEED = 20261120
DEFAULT_MINUTES = 5.0
MARKET_START_NS = int(datetime(2026, 11, 20, 14, 30, tzinfo=UTC).timestamp()) * 10**9
QUOTES_CHANNEL, TRADES_CHANNEL, BOOK_CHANNEL = 1, 2, 3

FILES = {
    "instruments": "market_instruments.parquet",
    "quotes": "market_quotes.parquet",
    "trades": "market_trades.parquet",
    "book": "market_book.parquet",
    "sensors": "driving_sensors.parquet",
}


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """How one synthetic instrument behaves (see book.py's P_* for `book`)."""

    instrument: Instrument
    rate_hz: float  # mean arrivals per second
    book: tuple[float, ...]  # the book parameter vector, P_* order
    link: Link
    ts_recv_source: ev.TsSource


def _us(x: float) -> float:
    return x * 1e3


# Colocated feeds: tens of µs, rare sub-ms stalls; a late packet comes from the
# B feed or a retransmit ~0.3 ms on. Over a WAN everything is ~100x slower.
_COLO = dict(stalls_per_s=0.02, stall_ns=_us(400), late_rate=1e-3, late_ns=_us(300))
_WAN = dict(
    wander=0.3, stalls_per_s=0.03, stall_ns=_us(15_000), late_rate=6e-4, late_ns=_us(20_000)
)

# book: start px (ticks), sigma, base spread, spread burst, vol burst, p trade,
#       p adjacent level, median size, trade scale, trade alpha
_SOURCE = "generator"  # the instrument table says where its terms came from
SPECS: tuple[InstrumentSpec, ...] = (
    InstrumentSpec(  # equity index future: busiest, large tick, spread nearly always 1
        Instrument(1, "ESZ6", Decimal("0.25"), 2, Decimal(1), Decimal(50), source=_SOURCE),
        300.0,
        (23649, 0.04, 1.0, 0.35, 0.5, 0.15, 1.0, 60, 1.0, 1.3),
        Link(_us(21), _us(1.5), queue_ns=_us(2), loss_rate=1.5e-4, **_COLO),
        ev.TsSource.HARDWARE,
    ),
    InstrumentSpec(  # large-cap stock: penny tick, 1-3 tick spread
        Instrument(2, "AAPL", Decimal("0.01"), 2, Decimal(1), source=_SOURCE),
        150.0,
        (23147, 0.10, 1.3, 0.6, 0.7, 0.12, 0.8, 400, 20.0, 1.2),
        Link(_us(14), _us(1.0), queue_ns=_us(1.5), loss_rate=1.5e-4, **_COLO),
        ev.TsSource.HARDWARE,
    ),
    InstrumentSpec(  # crypto over a WAN: tiny tick vs price, sparse levels, ms latency
        Instrument(3, "ETH-USD", Decimal("0.01"), 2, Decimal("0.0001"), source=_SOURCE),
        60.0,
        (345127, 2.0, 4.0, 1.0, 1.0, 0.18, 0.35, 5000, 100.0, 1.1),
        Link(_us(1800), _us(250), queue_ns=_us(100), loss_rate=2e-4, **_WAN),
        ev.TsSource.KERNEL,
    ),
    InstrumentSpec(  # treasury future: quietest, 1/64 tick, deep book
        Instrument(4, "ZNH7", Decimal("0.015625"), 6, Decimal(1), Decimal(1000), source=_SOURCE),
        25.0,
        (7135, 0.05, 1.0, 0.2, 0.4, 0.10, 1.0, 800, 2.0, 1.2),
        Link(_us(23), _us(1.5), queue_ns=_us(2), loss_rate=1.5e-4, **_COLO),
        ev.TsSource.HARDWARE,
    ),
)

# BRANCHING[i, j]: expected arrivals in j triggered by one arrival in i. Diagonal:
# self-excitation (0.65-0.8: clusters of 3-5); the future leads the others.
BRANCHING = np.array(
    [
        [0.80, 0.03, 0.01, 0.008],
        [0.04, 0.75, 0.00, 0.000],
        [0.02, 0.00, 0.72, 0.000],
        [0.04, 0.00, 0.00, 0.650],
    ]
)
# Triggered arrivals follow their parent after a delay from a two-scale kernel:
# most within milliseconds (order-book reactions), the rest over ~0.4 s.
FAST_DELAY_S, SLOW_DELAY_S, P_FAST = 0.003, 0.4, 0.7
INTENSITY_WINDOW_S = 0.25  # time scale of the "local activity" that widens spreads
WARMUP_S = 10.0  # Hawkes history simulated before the recording starts
# The informed flow (module docstring): half-life of a(t), lean of trade sides, drift of the mid.
INFORMED_HALF_LIFE_S, INFORMED_LEAN, INFORMED_DRIFT = 5.0, 0.2, 0.5


def hawkes_arrivals(
    rng: np.random.Generator, rates_hz: np.ndarray, branching: np.ndarray, duration_s: float
) -> list[np.ndarray]:
    """Arrival times (s, sorted) per dimension of a multivariate Hawkes process
    with mean rates `rates_hz`, via its branching (cluster) structure."""
    if max(abs(np.linalg.eigvals(branching))) >= 1:
        raise ValueError("Hawkes branching matrix must have spectral radius < 1 (stationary)")
    # Immigrant rates that give the requested stationary rates: mu = (I - B^T) lambda.
    mu = rates_hz - branching.T @ rates_hz
    if (mu <= 0).any():
        raise ValueError(f"rates {rates_hz} cannot be reached with this branching matrix")
    t0, t1 = -min(WARMUP_S, 2 * duration_s), duration_s
    counts = rng.poisson(mu * (t1 - t0))
    times = rng.uniform(t0, t1, counts.sum())
    dims = np.repeat(np.arange(len(rates_hz)), counts)
    all_t, all_d = [times], [dims]
    while times.size:
        kids = rng.poisson(branching[dims]).ravel()  # [parents * dims], row-major
        n_dim = branching.shape[0]
        parent_t = np.repeat(np.repeat(times, n_dim), kids)
        kid_d = np.repeat(np.tile(np.arange(n_dim), times.size), kids)
        fast = rng.random(parent_t.size) < P_FAST
        delay = rng.exponential(np.where(fast, FAST_DELAY_S, SLOW_DELAY_S))
        times = parent_t + delay
        keep = times < t1
        times, dims = times[keep], kid_d[keep]
        all_t.append(times)
        all_d.append(dims)
    t, d = np.concatenate(all_t), np.concatenate(all_d)
    keep = t >= 0
    return [np.sort(t[keep & (d == i)]) for i in range(len(rates_hz))]


@numba.njit(cache=True)
def _local_intensity(t_s: np.ndarray, window_s: float) -> np.ndarray:
    """Exponentially weighted count of arrivals before each one, per second."""
    out = np.empty(t_s.size)
    acc = 0.0
    for k in range(t_s.size):
        if k:
            acc = np.exp(-(t_s[k] - t_s[k - 1]) / window_s) * (acc + 1.0)
        out[k] = acc / window_s
    return out


def _strictly_increasing(ts: np.ndarray) -> np.ndarray:
    # One exchange stamp per arrival: ties (same ns) are pushed 1 ns apart.
    k = np.arange(ts.size, dtype=np.int64)
    return np.maximum.accumulate(ts - k) + k


def informed_demand(rng: np.random.Generator, t_s: np.ndarray) -> np.ndarray:
    """a(t) at each arrival time (s, sorted): the unit-variance OU process of the module
    docstring, sampled exactly over the gaps between arrivals."""
    decay = np.exp(-np.diff(t_s, prepend=t_s[:1]) * np.log(2.0) / INFORMED_HALF_LIFE_S)
    shocks = rng.standard_normal(t_s.size) * np.sqrt(1.0 - decay**2)
    shocks[0] = rng.standard_normal()  # start in the stationary law
    return _ar1(decay, shocks)


@numba.njit(cache=True)
def _ar1(decay: np.ndarray, shocks: np.ndarray) -> np.ndarray:
    out = np.empty(shocks.size)
    acc = 0.0
    for k in range(shocks.size):
        acc = decay[k] * acc + shocks[k]
        out[k] = acc
    return out


def _informed(spec: InstrumentSpec, rng: np.random.Generator | None, t_s: np.ndarray):
    """(drift ticks, lean) per arrival of one instrument; zeros when `rng` is None."""
    if rng is None:
        return np.zeros(t_s.size), np.zeros(t_s.size)
    a = informed_demand(rng, t_s)
    # Student-t(3) steps have variance 3: sigma_1s = sigma * sqrt(3 * arrivals per second).
    sigma_1s = spec.book[1] * np.sqrt(3.0 * spec.rate_hz)
    dt = np.diff(t_s, prepend=t_s[:1])
    return INFORMED_DRIFT * sigma_1s * a * dt, INFORMED_LEAN * a


def _run_book(spec: InstrumentSpec, rng: np.random.Generator, ratio: np.ndarray, lost: np.ndarray,
              drift: np.ndarray, lean: np.ndarray):  # fmt: skip
    n = ratio.size
    pool_u, pool_n = rng.random(16 * n + 64), rng.standard_normal(16 * n + 64)
    params = np.asarray(spec.book, dtype=np.float64)
    assert params.size == N_PARAMS
    cap = 8 * n + 64
    while True:  # grow the output if this instrument is busier than guessed
        deltas = np.empty((cap, 7), np.int64)
        quotes = np.empty((n, 5), np.int64)
        trades = np.empty((n, 4), np.int64)
        n_d, n_q, n_t, used = simulate_book(
            params, ratio, lost, pool_u, pool_n, deltas, quotes, trades, drift, lean
        )
        if n_d >= 0:
            assert used <= pool_u.size, "random pool wrapped around: enlarge it"
            return deltas[:n_d], quotes[:n_q], trades[:n_t]
        cap *= 2


def _channel(
    rtype: ev.RecordType,
    spec: InstrumentSpec,
    channel: int,
    rng: np.random.Generator,
    packet: np.ndarray,
    ts_event: np.ndarray,
    ratio: np.ndarray,
    lost: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Headers of one source's records, minus the lost ones, and the kept mask.

    `packet[k]` numbers record k's packet (records of one packet share ts_recv);
    `ts_event`, `ratio`, `lost` are per packet. Lost records still burn seqs."""
    recs = ev.empty(rtype, packet.size)
    recv = receive_times(rng, ts_event, spec.link, load=ratio)
    recs["ts_event"] = ts_event[packet]
    recs["ts_recv"] = recv[packet]
    recs["seq"] = np.arange(1, packet.size + 1)
    recs["instrument_id"] = spec.instrument.instrument_id
    recs["source_id"] = spec.instrument.instrument_id * 10 + channel
    recs["ts_recv_source"] = spec.ts_recv_source
    kept = ~lost[packet]
    recs = recs[kept]
    recs["flags"] |= gap_flags(recs["seq"])
    return recs, kept


def market_instrument(
    spec: InstrumentSpec,
    arrivals_s: np.ndarray,
    rng: np.random.Generator,
    informed_rng: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Quote, trade and book records of one instrument (each in seq order); `informed_rng`
    draws its informed demand (module docstring), None: no informed flow."""
    t_s = np.concatenate([[0.0], arrivals_s])  # arrival 0: the opening snapshot
    ts = _strictly_increasing(MARKET_START_NS + np.round(t_s * 1e9).astype(np.int64))
    ratio = _local_intensity(t_s, INTENSITY_WINDOW_S) / spec.rate_hz
    book_lost = lost_packets(rng, ts.size, spec.link.loss_rate)
    d, q, t = _run_book(spec, rng, ratio, book_lost, *_informed(spec, informed_rng, t_s))

    book, kept = _channel(
        ev.RecordType.BOOK_DELTA, spec, BOOK_CHANNEL, rng, d[:, 0], ts, ratio, book_lost
    )
    d = d[kept]
    book["px"], book["sz"], book["side"], book["action"] = d[:, 1], d[:, 2], d[:, 3], d[:, 4]
    book["flags"] |= d[:, 5].astype(np.uint8)
    assert not d[:, 6].any()

    q_lost = lost_packets(rng, len(q), spec.link.loss_rate)
    quotes, kept = _channel(
        ev.RecordType.QUOTE,
        spec,
        QUOTES_CHANNEL,
        rng,
        np.arange(len(q)),
        ts[q[:, 0]],
        ratio[q[:, 0]],
        q_lost,
    )
    q = q[kept]
    quotes["bid_px"], quotes["ask_px"], quotes["bid_sz"], quotes["ask_sz"] = q[:, 1:].T

    t_lost = lost_packets(rng, len(t), spec.link.loss_rate, keep_first=False)
    trades, kept = _channel(
        ev.RecordType.TRADE,
        spec,
        TRADES_CHANNEL,
        rng,
        np.arange(len(t)),
        ts[t[:, 0]],
        ratio[t[:, 0]],
        t_lost,
    )
    trades["trade_id"] = np.flatnonzero(kept) + 1  # venue trade ids skip lost prints too
    t = t[kept]
    trades["px"], trades["sz"], trades["aggressor"] = t[:, 1], t[:, 2], t[:, 3]
    return {"quotes": quotes, "trades": trades, "book": book}


def generate_market(
    seed: int = DEFAULT_SEED,
    minutes: float = DEFAULT_MINUTES,
    specs: tuple[InstrumentSpec, ...] = SPECS,
) -> tuple[InstrumentTable, dict[str, np.ndarray]]:
    """The market recording: instrument table and quote/trade/book records
    (unsorted across sources; `write_records` sorts)."""
    if not minutes > 0:
        raise ValueError(f"minutes must be > 0, got {minutes}")
    root = np.random.SeedSequence([seed, 1])  # stream 1: market, 2: driving, 3: informed flow
    rngs = [np.random.default_rng(s) for s in root.spawn(len(specs) + 1)]
    informed = [
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, 3]).spawn(len(specs))
    ]
    rates = np.array([s.rate_hz for s in specs])
    arrivals = hawkes_arrivals(
        rngs[0], rates, BRANCHING[: len(specs), : len(specs)], minutes * 60.0
    )
    parts = [
        market_instrument(s, a, r, f)
        for s, a, r, f in zip(specs, arrivals, rngs[1:], informed, strict=True)
    ]
    table = InstrumentTable([s.instrument for s in specs])
    return table, {k: np.concatenate([p[k] for p in parts]) for k in ("quotes", "trades", "book")}


def generate(
    out: str | Path, seed: int = DEFAULT_SEED, minutes: float = DEFAULT_MINUTES
) -> dict[str, int]:
    """Write every bundled recording into `out`; returns records per file name.

    `replay_data/` holds exactly what `generate("replay_data")` writes."""
    if not minutes * 60.0 >= 10.0:  # the driving episode needs ~10 s
        raise ValueError(f"minutes must be >= 1/6 (10 s of recording), got {minutes}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"redline.feeds.synthetic.generator seed={seed} minutes={minutes}"
    table, market = generate_market(seed, minutes)
    table.write(out / FILES["instruments"])
    counts = {FILES["instruments"]: len(table)}
    for key, records in (*market.items(), ("sensors", generate_driving(seed, minutes))):
        write_records(out / FILES[key], records, tag)
        counts[FILES[key]] = len(records)
    return counts
