"""The failover arbiter: every event reaches both workers, every decision is accounted for.

Use (the graph's view; see `worker_link.spawn_pair` for real worker processes):

    links = spawn_pair(model_dir, endpoints=("ipc:///tmp/a", "ipc:///tmp/b"))
    engine = CpuEngine(redline.kernels.load(model_dir, device="cpu"))   # engine.py
    arb = Arbiter(links, ArbiterConfig(policy="race", budget_ns=2_000_000), clock,
                  safe_default=safe_default(N), fallback=CpuFallback(engine, clock))
    arb.wait_ready(timeout_s=30)                   # blocks: both workers warm and in service
    req = arb.submit(record)                       # non-blocking; forwards the event, asks
    first = arb.submit_batch(records, rtype=rt)    # a feed batch of one type: one EVENTS
                                                   #   message per worker, same decisions
    batch = arb.poll()                             # non-blocking; call often (busy loop or
    for rec, out in zip(batch.records, batch.outputs): ...   #   asyncio task every ~50 µs)
    arb.wait(max_ns)                               # optional: sleep until a worker message or
                                                   #   the next deadline timer, up to max_ns
    arb.stats(); arb.close(); close_all(links)

`submit(record, decide=False)` only updates the workers' state (no decision wanted); so does
`submit_batch(..., decide=[...])` for the records flagged False. `poll`
returns a `Batch` of DECISION records (views into buffers reused by the next poll, copy what you
keep) with the model output behind each, and `alarms` (True where 2oo2 tripped). Each decision
carries its origin (WORKER_A/B, FALLBACK, DEFAULT), model version (0 for DEFAULT: no model),
deadline and the stamps `ts_request`, `ts_worker_start`, `ts_worker_end`, `ts_answer`,
`ts_decision` (wall-clock ns); `ts_feed`/`ts_features` are passed to `submit` by the caller
(the graph's own stages) or left 0. The arbiter's stamps are its monotonic clock plus a fixed
offset to wall time taken at construction, so spans between them are pure monotonic durations.

Policies (`ArbiterConfig.policy`):
- race: ask both; the first valid answer decides; the second is checked when it arrives.
- hedge: ask the primary; ask the standby after `hedge_delay_ns` (or the primary's running p95)
  or at once when the primary fails; every `audit_every`-th request also goes to the standby,
  so silent wrong values are caught under hedge too.
- compare (2oo2): wait for both until `decide_by`; disagreement beyond rtol/atol emits the safe
  default with an alarm. With one worker out it runs 1oo1 on the other.

Deadline rule: a request decides by `decide_by = deadline - reserve` (reserve = the fallback's
cost). Nothing valid by then: the fallback answers if it finishes before the deadline, else the
safe default. A decision emitted after its deadline is always the safe default. A disagreement
is refereed by the fallback (2-out-of-3) and the outvoted worker is tripped (DIVERGENCE).

Worker health is a `Breaker` each (breaker.py); recovery.py kills a tripped worker, restarts it,
rebuilds its state (peer snapshot + replay of the events since, or replay of the `EventRing` alone when no
peer is healthy), checked on `verify_count` live requests and readmitted. Slowness (SLOW) never
takes out the last worker in service, nor one whose peer misses as many deadlines: that is the
host overloaded, counted as `overload`, and a restart would only add a backlog replay to it.

Settings, counters and types live in arbiter_config.py, worker recovery in recovery.py. This
file is the request state machine over the in-flight ring (policies, deadlines, checks all read
and write the same slots).
"""

from __future__ import annotations

import math
import time
from collections import deque

import numpy as np

from redline.feeds.clock import Clock
from redline.feeds.events import DECISION_DTYPE, Origin, record_type_of
from redline.pipeline.arbiter.breaker import Breaker, Health, Trip
from redline.pipeline.arbiter.config import COUNTERS, ArbiterConfig, Batch, Policy, WorkerLink
from redline.pipeline.arbiter.event_ring import EventRing
from redline.pipeline.arbiter.fallback import CpuFallback
from redline.pipeline.arbiter.recovery import Recovery
from redline.pipeline.transport.waiting import wait_any
from redline.pipeline.workers.protocol import (
    ASK_FLAG,
    Kind,
    Reply,
    answer_array,
    header,
    pack_events,
    unpack_answers,
)

_NONE = -1  # no origin yet


class _Req:
    """One in-flight decision, preallocated in a ring and reused."""

    __slots__ = (
        "alarm",
        "answered",
        "asked",
        "checked",
        "deadline",
        "decide_by",
        "decided",
        "event_no",
        "first",
        "hedge_at",
        "linger_until",
        "origin",
        "rec",
        "shadow",
        "t0",
        "valid",
    )

    def __init__(self) -> None:
        self.event_no = 0


class Arbiter:
    """Fans events out to two workers and turns their answers into decisions; see module doc."""

    def __init__(
        self,
        links: tuple[WorkerLink, WorkerLink],
        cfg: ArbiterConfig,
        clock: Clock,
        safe_default: np.ndarray,
        fallback: CpuFallback | None = None,
    ) -> None:
        if len(links) != 2:
            raise ValueError(f"Arbiter needs exactly 2 worker links, got {len(links)}")
        self.links = tuple(links)
        self.cfg = cfg
        self.clock = clock
        self.default = np.ascontiguousarray(safe_default, np.float32).reshape(-1)
        n = self.default.size
        if fallback is not None and fallback.out_features != n:
            raise ValueError(
                f"Arbiter: fallback gives {fallback.out_features} outputs, safe default has {n}"
            )
        self.fallback = fallback
        self.n_out = n
        now = clock.monotonic_ns()
        self._wall_offset = clock.now_ns() - now  # stamps: wall = monotonic + offset
        self.breakers = tuple(Breaker(link.name, cfg.breaker, now) for link in links)
        self.ring = EventRing(cfg.replay_depth)
        self._rtypes: dict[np.dtype, int] = {}
        self._closed = False
        self.event_no = 0
        cap = cfg.max_inflight
        self._reqs = [_Req() for _ in range(cap)]
        # Each request's DECISION record is a row here (req.rec: a 0-d view of it), so a
        # batch of requests is filled with one assignment per field, not one per event.
        self._recs = np.zeros(cap, DECISION_DTYPE)
        for i, r in enumerate(self._reqs):
            r.rec = self._recs[i, ...]
        self._answers = np.zeros((cap, 2, n), np.float32)  # [slot, worker, N]
        self._ts = np.zeros((cap, 2, 5), np.int64)  # worker stamps + arbiter receive time
        self._decided_out = np.zeros((cap, n), np.float32)
        # (event_no, req) in deadline order; entries whose req moved on are skipped lazily
        self._open: deque[tuple[int, _Req]] = deque()  # undecided
        self._lingering: deque[tuple[int, _Req]] = deque()  # decided, answers still expected
        self._out_rec = np.zeros(cap, DECISION_DTYPE)
        self._out_vec = np.zeros((cap, n), np.float32)
        self._out_alarm = np.zeros(cap, bool)
        self._n_done = 0
        self._ref = np.zeros(n, np.float32)  # referee scratch
        self._rtt = np.zeros(256, np.int64)  # primary round trips, for the hedge p95
        self._n_rtt = 0
        self._hedge_delay = cfg.hedge_delay_ns if cfg.hedge_delay_ns is not None else 0
        if cfg.hedge_delay_ns is None:
            self._hedge_delay = cfg.budget_ns // 4  # until the p95 has samples
        self._sample_rtt = cfg.policy == Policy.HEDGE and cfg.hedge_delay_ns is None
        self.log: list[tuple[int, str, str, str]] = []  # (t mono, worker, what, why)
        self.counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.by_origin = dict.fromkeys(Origin, 0)
        self.recovery = Recovery(
            self.links, self.breakers, self.ring, cfg, self.counts, self.log,
            n_out=n, has_referee=fallback is not None, event_no=lambda: self.event_no,
            on_out=self._worker_out,
        )  # fmt: skip
        self.versions = self.recovery.versions  # model version per worker, from READY
        for link in links:
            link.start()

    # -- public API -----------------------------------------------------------------------------

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Block (polling) until both workers are in service; TimeoutError naming who is not."""
        end = time.monotonic() + timeout_s
        while not all(b.serving for b in self.breakers):
            if time.monotonic() > end:
                state = ", ".join(f"{b.name}={b.health.name}" for b in self.breakers)
                raise TimeoutError(f"workers not ready after {timeout_s} s: {state}")
            self.poll()
            time.sleep(0.001)

    def submit(
        self,
        record: np.ndarray,
        *,
        decide: bool = True,
        ts_feed: int = 0,
        ts_features: int = 0,
        rtype: int | None = None,
        raw: memoryview | bytes | None = None,
    ) -> int:
        """Forward one event record to the workers; ask for a decision unless `decide=False`.

        `record` is a 0-d or 1-element record array (or np.void). A caller may pass the
        record's `rtype` and its bytes `raw`, which saves a dtype lookup and a copy.

        Returns the event number (the request id of its decision). Never blocks."""
        if rtype is None:
            rtype = self._rtype(record.dtype)
        if raw is None:
            raw = memoryview(np.ascontiguousarray(record)).cast("B")
        no = self.event_no + 1
        self.ring.push(no, rtype, raw)
        now = self.clock.monotonic_ns()
        req, ask = self._accept(rtype, record, decide, now)
        if req is not None:
            slot = no % self.cfg.max_inflight
            rec1 = np.asarray(record).reshape(1)
            self._fill_recs(slice(slot, slot + 1), rec1, now, ts_feed, ts_features)
        heads = {}  # flags -> header, packed once per event
        failed = []
        for w, b in enumerate(self.breakers):
            if not b.receives_events:
                continue
            head = heads.get(ask[w])
            if head is None:
                head = heads[ask[w]] = header(Kind.EVENT, no, rtype=rtype, flags=ask[w])
            if not self.links[w].send([head, raw]):
                failed.append(w)
        self._after_send(failed, (req,) if req is not None else (), now)
        return no

    def submit_batch(
        self,
        records: np.ndarray,
        *,
        decide: bool | list[bool] = True,
        ts_feed: int = 0,
        ts_features: int = 0,
        rtype: int | None = None,
    ) -> int:
        """Forward a batch of records of one type, as one EVENTS message per worker.

        The same decisions as `submit` of each record in turn, for ~1/n of the messages (on
        2 vCPU a message costs ~20 µs to send and as much to wake for). `decide`: one bool for
        all, or one per record. Returns the event number of the first record; record i is
        event first + i. Never blocks."""
        n = len(records)
        if n == 0:
            return self.event_no + 1
        cap = self.cfg.max_inflight
        if n > cap:  # one request slot per event of a batch: split what would not fit
            first = self.event_no + 1
            for i in range(0, n, cap):
                part = decide if isinstance(decide, bool) else decide[i : i + cap]
                self.submit_batch(records[i : i + cap], decide=part, ts_feed=ts_feed,
                                  ts_features=ts_features, rtype=rtype)  # fmt: skip
            return first
        if rtype is None:
            rtype = self._rtype(records.dtype)
        decides = [decide] * n if isinstance(decide, bool) else [bool(d) for d in decide]
        if len(decides) != n:
            raise ValueError(f"submit_batch: {len(decides)} decide flags for {n} records")
        if n == 1:
            return self.submit(
                records[:1], decide=decides[0], ts_feed=ts_feed, ts_features=ts_features,
                rtype=rtype,
            )  # fmt: skip
        records = np.ascontiguousarray(records)
        first = self.event_no + 1
        self.ring.push_many(first, rtype, records.view(np.uint8).reshape(n, -1))
        now = self.clock.monotonic_ns()
        flags = np.zeros((2, n), np.uint8)  # [worker, event]: ASK_FLAG where asked
        reqs = []
        # _accept's work, with what cannot change within the batch looked up once (~30% of
        # the per-event cost here): nothing in this loop changes a breaker or sends
        fb = self.fallback
        reserve = self._reserve()
        hedge = self.cfg.policy == Policy.HEDGE
        if not hedge:  # race, compare: every request asks the same workers
            ask = self._targets(0)
            bits = self._ask_bits(ask)
            asked_at = []
        for i in range(n):
            self.event_no = no = self.event_no + 1
            if fb is not None:
                fb.apply(no, rtype, records[i : i + 1])
            if not decides[i]:
                continue
            req = self._open_request(no, now, reserve)
            if hedge:
                ask = self._targets(no)
                bits = self._ask_bits(ask)
                flags[0, i], flags[1, i] = ask
            else:
                asked_at.append(i)
            req.asked, req.shadow = bits
            reqs.append(req)
        self.counts["events"] += n
        if not hedge and asked_at:
            flags[0, asked_at], flags[1, asked_at] = ask
        flags *= ASK_FLAG
        if reqs:
            mine = records if len(reqs) == n else records[np.array(decides)]
            slots_ = np.array([r.event_no for r in reqs]) % cap
            self._fill_recs(slots_, mine, now, ts_feed, ts_features)
        rtypes, nos, slots = self.ring.since(first - 1)  # the replay layout, as RESTORE sends
        failed = [
            w
            for w, b in enumerate(self.breakers)
            if b.receives_events
            and not self.links[w].send(pack_events(rtypes, nos, slots, flags[w]))
        ]
        self._after_send(failed, reqs, now)
        return first

    def _rtype(self, dtype: np.dtype) -> int:
        rtype = self._rtypes.get(dtype)
        if rtype is None:  # structured dtype equality is slow: look each dtype up once
            rtype = self._rtypes[dtype] = int(record_type_of(dtype))
        return rtype

    def _accept(
        self, rtype: int, record: np.ndarray, decide: bool, now: int
    ) -> tuple[_Req | None, tuple[int, int]]:
        """Number the next event (already in the ring), feed the fallback, open its request
        (its record is the caller's to fill: `_fill_recs`). Returns the request (None
        without `decide`) and each worker's flags (ASK_FLAG or 0)."""
        self.event_no += 1
        no = self.event_no
        self.counts["events"] += 1
        if self.fallback is not None:
            self.fallback.apply(no, rtype, record)
        if not decide:
            return None, (0, 0)
        req = self._open_request(no, now, self._reserve())
        ask = self._targets(no)
        req.asked, req.shadow = self._ask_bits(ask)
        return req, (ASK_FLAG if ask[0] else 0, ASK_FLAG if ask[1] else 0)

    def _ask_bits(self, ask: tuple[bool, bool]) -> tuple[int, int]:
        """(asked, shadow) masks for a request that asks `ask`: workers in service answer
        it, one being verified answers only to be checked."""
        asked = shadow = 0
        for w, b in enumerate(self.breakers):
            if ask[w] and b.receives_events:
                if b.serving:
                    asked |= 1 << w
                else:
                    shadow |= 1 << w
        return asked, shadow

    def _reserve(self) -> int:
        """Time kept before a deadline for the fallback to still make it."""
        return self.cfg.margin_ns + (self.fallback.cost_ns if self.fallback else 0)

    def _after_send(self, failed: list[int], reqs, now: int) -> None:
        """After every worker got its message: failovers for the sends that failed (a
        failover may ask the peer about these events, so not before), then decide the
        requests nobody in service was asked about now rather than at the deadline."""
        for w in failed:
            self.recovery.send_failed(w, now)
        for req in reqs:
            if not req.asked and not req.decided:
                self._finish_unanswered(req, now)

    def poll(self, now: int | None = None) -> Batch:
        """Handle worker messages and timers; return the decisions made since the last poll."""
        if now is None:
            now = self.clock.monotonic_ns()
        if self._closed:
            n, self._n_done = self._n_done, 0
            return Batch(self._out_rec[:n], self._out_vec[:n], self._out_alarm[:n])
        for w, link in enumerate(self.links):
            if link.ready():  # most polls find nothing: ask first, cheaply
                for msg in link.recv():
                    self._on_message(w, msg, now)
        self.recovery.check_health(now)
        self._check_timers(now)
        n = self._n_done
        self._n_done = 0
        return Batch(self._out_rec[:n], self._out_vec[:n], self._out_alarm[:n])

    def wait(self, max_ns: int) -> None:
        """Block until a worker message arrives, the next deadline timer is due, or `max_ns`.

        For loops that should sleep rather than spin (on 2 cores a spinning arbiter starves
        the workers). Links without a channel (fakes, a worker being restarted) are not waited
        on."""
        now = self.clock.monotonic_ns()
        due = now + max_ns
        for no, req in self._open:
            if req.event_no == no and not req.decided:
                due = min(due, req.decide_by)
                if self.cfg.policy == Policy.HEDGE and req.asked != 0b11:
                    due = min(due, req.hedge_at)
                break
        channels = [c for c in (link.waitable() for link in self.links) if c is not None]
        if due > now and channels:
            wait_any(channels, (due - now) / 1e9)

    def inject(self, worker: int, spec: str) -> None:
        """Send a fault (faults.FaultSpec text, e.g. "nan@5") to worker 0 (A) or 1 (B)."""
        self.links[worker].send([header(Kind.FAULT), spec.encode()])

    def stats(self) -> dict:
        """Counters with the stable keys of the --json reports, plus per-worker health."""
        out = dict(self.counts)
        out["decisions_by_origin"] = {o.name.lower(): n for o, n in self.by_origin.items()}
        out["policy"] = str(self.cfg.policy)
        out["hedge_delay_ns"] = self._hedge_delay
        out["workers"] = {
            link.name: {**b.stats(), "pid": link.pid, "model_version": self.versions[w]}
            for w, (link, b) in enumerate(zip(self.links, self.breakers, strict=True))
        }
        return out

    def close(self) -> None:
        """Stop both workers for good. Undecided requests become the safe default (never
        silently lost): one more `poll()` hands them back, and restarts nothing."""
        now = self.clock.monotonic_ns()
        self._closed = True
        for req in self._live_open():
            self.counts["deadline_misses"] += 1
            self._decide(req, _NONE, now, Origin.DEFAULT)
        self._open.clear()
        for link in self.links:
            link.send([header(Kind.STOP)])
            link.stop()

    # -- requests -------------------------------------------------------------------------------

    def _open_request(self, no: int, now: int, reserve: int) -> _Req:
        cap = self.cfg.max_inflight
        req = self._reqs[no % cap]
        if req.event_no and req.decided is False:  # ring wrapped onto an undecided request
            self.counts["backpressure"] += 1
            self._decide(req, _NONE, now, Origin.DEFAULT)
        req.event_no = no
        req.t0 = now
        req.deadline = now + self.cfg.budget_ns
        req.decide_by = max(now, req.deadline - reserve)
        req.hedge_at = now + self._hedge_delay
        req.asked = req.answered = req.valid = req.shadow = 0
        req.first = _NONE
        req.decided = False
        req.origin = _NONE
        req.alarm = False
        req.checked = False
        req.linger_until = 0
        self._open.append((no, req))
        return req

    def _fill_recs(self, slots, records: np.ndarray, now: int, ts_feed: int, ts_features: int):
        """The DECISION records of requests just opened at `slots` (one int, or an array
        matching `records`): what is known before any answer."""
        recs = self._recs
        recs[slots] = 0
        for f in ("ts_event", "ts_recv", "instrument_id"):
            recs[f][slots] = records[f]
        recs["input_seq"][slots] = records["seq"]
        recs["input_source_id"][slots] = records["source_id"]
        recs["ts_feed"][slots] = ts_feed
        recs["ts_features"][slots] = ts_features
        recs["deadline"][slots] = now + self.cfg.budget_ns + self._wall_offset
        recs["ts_request"][slots] = now + self._wall_offset

    def _targets(self, no: int) -> tuple[bool, bool]:
        """Which workers get the ASK flag on this event."""
        up = [b.serving for b in self.breakers]
        verifying = [b.health == Health.VERIFYING for b in self.breakers]
        if self.cfg.policy != Policy.HEDGE:
            return (up[0] or verifying[0], up[1] or verifying[1])
        p = self._primary()
        audit = self.cfg.audit_every and no % self.cfg.audit_every == 0 and all(up)
        if audit:
            self.counts["audits"] += 1
        ask = [verifying[0], verifying[1]]
        if p >= 0:
            ask[p] = True
            if audit:
                ask[1 - p] = True
        return (ask[0], ask[1])

    def _primary(self) -> int:
        for w, b in enumerate(self.breakers):
            if b.serving:
                return w
        return -1

    def _valid(self, out: np.ndarray) -> bool:
        """Finite and inside the declared range (two reductions: NaN fails every comparison)."""
        if out.size != self.n_out:
            return False
        lo, hi = float(out.min()), float(out.max())
        return (
            math.isfinite(lo)
            and math.isfinite(hi)
            and self.cfg.out_low <= lo
            and hi <= self.cfg.out_high
        )

    def _agree(self, a: np.ndarray, b: np.ndarray) -> bool:
        """|a - b| <= atol + rtol * |b| everywhere (np.allclose's rule, ~10x cheaper here)."""
        excess = np.abs(a - b) - self.cfg.rtol * np.abs(b)
        return bool(excess.max() <= self.cfg.atol)

    def _on_answer(
        self,
        w: int,
        no: int,
        stamps,
        out: np.ndarray,
        now: int,
        ok: bool | None = None,
        agrees: bool | None = None,
    ) -> None:
        """Worker w's answer `out` [N] to event `no`, with its four stamps. When the caller
        checked a whole batch at once: `ok`, whether `out` is valid, and `agrees`, whether
        it agrees with the decision already made (None: not known, compare here)."""
        cap = self.cfg.max_inflight
        req = self._reqs[no % cap]
        bit = 1 << w
        if req.event_no != no or not (req.asked | req.shadow) & bit or req.answered & bit:
            self.counts["stale_answers"] += 1
            return
        req.answered |= bit
        slot = no % cap
        if ok is None:
            ok = self._valid(out)
        b = self.breakers[w]
        if not ok:
            self.counts["bad_outputs"] += 1
            self.recovery.trip(w, Trip.BAD_OUTPUT, now)
        else:
            self._answers[slot, w] = out
            self._ts[slot, w, :4] = stamps
            self._ts[slot, w, 4] = now + self._wall_offset
            req.valid |= bit
            if req.first < 0 and not req.shadow & bit:
                req.first = w
        if ok and req.shadow & req.valid and not req.checked:
            self._verify(req, now)  # a worker being readmitted: checked, never used
        if req.shadow & bit:
            self._maybe_unlinger(req)
            return
        in_time = now <= req.deadline
        if not in_time:
            self.counts["late_answers"] += 1
        if self._sample_rtt and b.serving and w == self._primary():
            self._rtt_sample(now - req.t0)
        if b.serving and (trip := b.answered(in_time)) is not None:
            self.recovery.trip_slow(w, trip, now)
        if req.decided:
            if ok and req.origin in (Origin.WORKER_A, Origin.WORKER_B, Origin.FALLBACK):
                self._cross_check(req, w, now, agrees)
            self._maybe_unlinger(req)
            return
        if not ok:
            if self.cfg.policy == Policy.HEDGE:
                self._hedge(req, now)  # the primary failed: ask the standby at once
            else:
                self._decide_if_answered(req, now)
            return
        if now > req.deadline:
            return  # too late to be used; the timer decides this one
        if self.cfg.policy == Policy.COMPARE:
            if self._pending_from_serving(req):
                return
            if req.valid == req.asked and req.asked == 0b11:
                if self._agree(self._answers[slot, 0], self._answers[slot, 1]):
                    self._decide(req, req.first, now)
                else:
                    self._disagreement(req, now, alarm=True)
                return
        self._decide(req, w, now)

    def _decide_if_answered(self, req: _Req, now: int) -> None:
        """Decide on a valid answer already in, if in time and nobody else is awaited."""
        trusted = sum(1 << w for w, b in enumerate(self.breakers) if b.health != Health.OUT)
        used = req.valid & req.asked & trusted
        if used and now <= req.deadline and not self._pending_from_serving(req):
            self._decide(req, _first_bit(used), now)

    def _pending_from_serving(self, req: _Req) -> bool:
        """Some serving worker was asked and has not answered yet."""
        waiting = req.asked & ~req.answered
        return any(waiting >> w & 1 and b.serving for w, b in enumerate(self.breakers))

    def _decide(self, req: _Req, w: int, now: int, origin: Origin | None = None) -> None:
        """Emit the decision: from worker w's answer, or `origin` FALLBACK/DEFAULT."""
        slot = req.event_no % self.cfg.max_inflight
        rec = req.rec
        if origin is None:
            origin = Origin(w)
            self._decided_out[slot] = self._answers[slot, w]
            ts = self._ts[slot, w]
            rec["ts_worker_start"] = ts[1]
            rec["ts_worker_end"] = ts[2]
            rec["ts_answer"] = ts[4]
            rec["model_version"] = self.versions[w]
        elif origin == Origin.DEFAULT:
            self._decided_out[slot] = self.default
            rec["model_version"] = 0
        req.decided = True
        req.origin = origin
        rec["origin"] = origin
        rec["ts_decision"] = now + self._wall_offset
        if now > req.deadline:
            assert origin == Origin.DEFAULT, "only the safe default may be late"
            self.counts["late_decisions"] += 1
        if self._n_done == len(self._out_rec):  # more decisions than polls: grow, rarely
            self._out_rec = np.resize(self._out_rec, 2 * len(self._out_rec))
            self._out_vec = np.resize(self._out_vec, (2 * len(self._out_vec), self.n_out))
            self._out_alarm = np.resize(self._out_alarm, 2 * len(self._out_alarm))
        i = self._n_done
        rec["seq"] = self.counts["decisions"]
        self._out_rec[i] = rec
        self._out_vec[i] = self._decided_out[slot]
        self._out_alarm[i] = req.alarm
        self._n_done += 1
        self.counts["decisions"] += 1
        self.by_origin[origin] += 1
        if (req.asked | req.shadow) & ~req.answered:
            req.linger_until = req.deadline + (
                self.cfg.linger_ns if self.cfg.linger_ns is not None else self.cfg.budget_ns
            )
            self._lingering.append((req.event_no, req))

    def _finish_unanswered(self, req: _Req, now: int) -> None:
        """No valid answer by decide_by: the fallback if it makes the deadline, else default."""
        if self.fallback is not None:
            slot = req.event_no % self.cfg.max_inflight
            t0 = self.clock.monotonic_ns()
            if t0 > req.deadline:  # already late (a backlog): computing it would only add to it
                self.counts["fallback_too_slow"] += 1
            elif self.fallback.answer_into(req.event_no, self._decided_out[slot]):
                t1 = self.clock.monotonic_ns()
                if t1 <= req.deadline:
                    rec = req.rec
                    rec["ts_worker_start"] = t0 + self._wall_offset
                    rec["ts_worker_end"] = rec["ts_answer"] = t1 + self._wall_offset
                    rec["model_version"] = self.fallback.version
                    self._decide(req, _NONE, t1, Origin.FALLBACK)
                    return
                self.counts["fallback_too_slow"] += 1
            now = self.clock.monotonic_ns()
        self.counts["deadline_misses"] += 1
        self._decide(req, _NONE, now, Origin.DEFAULT)

    def _hedge(self, req: _Req, now: int) -> None:
        for w, b in enumerate(self.breakers):
            bit = 1 << w
            if b.serving and not req.asked & bit:
                if self.links[w].send([header(Kind.ASK, req.event_no)]):
                    req.asked |= bit
                    self.counts["hedges"] += 1
                else:
                    self.recovery.send_failed(w, now)

    # -- cross checks ---------------------------------------------------------------------------

    def _cross_check(self, req: _Req, w: int, now: int, agrees: bool | None = None) -> None:
        """A second answer after the decision: count and referee a disagreement. `agrees`:
        the comparison, when the caller made it for a whole batch."""
        slot = req.event_no % self.cfg.max_inflight
        if agrees is None:
            agrees = self._agree(self._answers[slot, w], self._decided_out[slot])
        if not agrees:
            self._disagreement(req, now, alarm=False)

    def _disagreement(self, req: _Req, now: int, *, alarm: bool) -> None:
        """Two answers differ. 2oo2 emits the safe default with an alarm; either way the
        fallback referees and the worker it outvotes is taken out."""
        self.counts["disagreements"] += 1
        slot = req.event_no % self.cfg.max_inflight
        if alarm:
            self.counts["alarms"] += 1
            req.alarm = True
            self._decide(req, _NONE, now, Origin.DEFAULT)
        if self.fallback is None or not self.fallback.answer_into(req.event_no, self._ref):
            return  # no referee: counted, nobody blamed
        for w in (0, 1):
            if req.valid >> w & 1 and not self._agree(self._answers[slot, w], self._ref):
                self.recovery.trip(w, Trip.DIVERGENCE, now)

    def _verify(self, req: _Req, now: int) -> None:
        """Readmission check of the shadow worker on one request, once a reference exists."""
        slot = req.event_no % self.cfg.max_inflight
        w = _first_bit(req.shadow & req.valid)
        peer = 1 - w
        if req.valid >> peer & 1 and not req.shadow >> peer & 1:
            ref = self._answers[slot, peer]
        elif self.fallback is not None and self.fallback.answer_into(req.event_no, self._ref):
            ref = self._ref
        else:
            return
        req.checked = True
        b = self.breakers[w]
        if b.health != Health.VERIFYING:
            return
        if self._ts[slot, w, 4] - self._wall_offset > req.deadline:
            return  # late: proves nothing either way; slowness is the SLOW window's job
        b.verified(self._agree(self._answers[slot, w], ref), now)
        if b.serving:
            self._log(now, w, "readmitted", "")
        elif b.health == Health.OUT:
            self.recovery.taken_out(w, Trip.VERIFY_FAILED, now)

    def _maybe_unlinger(self, req: _Req) -> None:
        if req.linger_until and not (req.asked | req.shadow) & ~req.answered:
            req.linger_until = 0  # its deque entry is skipped when reached

    def _live_open(self) -> list[_Req]:
        return [r for no, r in self._open if r.event_no == no and not r.decided]

    # -- health ---------------------------------------------------------------------------------

    def _on_message(self, w: int, msg: Reply, now: int) -> None:
        b = self.breakers[w]
        b.seen(now)
        if msg.kind == Kind.ANSWER:
            self._on_answer(w, msg.id, msg.stamps, answer_array(msg.payload), now)
        elif msg.kind == Kind.ANSWERS:
            self._on_answers(w, msg, now)
        elif msg.kind == Kind.READY:
            self.recovery.on_ready(w, msg, now)
        elif msg.kind == Kind.STATE:
            self.recovery.on_state(w, msg, now)
        elif msg.kind == Kind.ERROR:
            self._log(now, w, "error", bytes(msg.payload or b"").decode(errors="replace"))

    def _on_answers(self, w: int, msg: Reply, now: int) -> None:
        """One ANSWERS message: each answer in turn, as if it came alone."""
        try:
            ans = unpack_answers(msg, self.n_out)
        except ValueError as exc:  # a garbled batch is a bad output, like a wrong-sized ANSWER
            self.counts["bad_outputs"] += 1
            self._log(now, w, "error", str(exc))
            self.recovery.trip(w, Trip.BAD_OUTPUT, now)
            return
        stamps, outs = ans["stamps"], ans["out"]  # [k, 4], [k, N]
        # _valid's rule for every answer at once: min/max are NaN when any value is
        lo, hi = outs.min(axis=1), outs.max(axis=1)
        ok = (np.isfinite(lo) & np.isfinite(hi) & (lo >= self.cfg.out_low)
              & (hi <= self.cfg.out_high)).tolist()  # fmt: skip
        ids = ans["id"].tolist()
        cap = self.cfg.max_inflight
        # Under race most answers come after their decision (the peer was first): _agree's
        # rule against the decided outputs for all at once. Only used for requests decided
        # before this message; their decided outputs do not change while it is handled.
        reqs = [self._reqs[no % cap] for no in ids]
        before = [r.decided and r.event_no == no for r, no in zip(reqs, ids, strict=True)]
        agrees = [None] * len(ids)
        if any(before):
            ref = self._decided_out[ans["id"] % cap]  # [k, N]
            excess = np.abs(outs - ref) - self.cfg.rtol * np.abs(ref)
            agreed = (excess.max(axis=1) <= self.cfg.atol).tolist()
            agrees = [a if b else None for a, b in zip(agreed, before, strict=True)]
        for j, no in enumerate(ids):
            self._on_answer(w, no, stamps[j], outs[j], now, ok[j], agrees[j])

    def _worker_out(self, w: int, now: int) -> None:
        """Worker w was taken out (recovery.py): its pending answers will not come."""
        bit = 1 << w
        for req in self._live_open():
            if req.asked & bit and not req.answered & bit:
                req.answered |= bit
                if self.cfg.policy == Policy.HEDGE:
                    self._hedge(req, now)
                else:
                    self._decide_if_answered(req, now)
            req.shadow &= ~bit

    def _check_timers(self, now: int) -> None:
        if self.cfg.policy == Policy.HEDGE:
            for no, req in self._open:
                if req.event_no != no or req.decided:
                    continue
                if req.t0 + self._hedge_delay > now:
                    break
                if now >= req.hedge_at and req.asked != 0b11:
                    req.hedge_at = req.deadline  # once
                    self._hedge(req, now)
        while self._open:
            no, req = self._open[0]
            if req.event_no != no or req.decided:
                self._open.popleft()
                continue
            if req.decide_by > now:
                break
            self._open.popleft()
            used = req.valid & req.asked
            if used and now <= req.deadline:  # compare: one answer, the other never came
                self._decide(req, _first_bit(used), now)
            else:
                self._finish_unanswered(req, now)
        while self._lingering:
            no, req = self._lingering[0]
            if req.event_no != no or not req.linger_until:
                self._lingering.popleft()
                continue
            if req.linger_until > now:
                break
            self._lingering.popleft()
            req.linger_until = 0
            missing = (req.asked | req.shadow) & ~req.answered
            for w, b in enumerate(self.breakers):
                if missing >> w & 1 and b.serving and (trip := b.answered(False)) is not None:
                    self.recovery.trip_slow(w, trip, now)

    def _rtt_sample(self, rtt: int) -> None:
        self._rtt[self._n_rtt % self._rtt.size] = rtt
        self._n_rtt += 1
        if self._n_rtt % 32 == 0:
            p95 = int(np.percentile(self._rtt[: min(self._n_rtt, self._rtt.size)], 95))
            self._hedge_delay = min(p95, self.cfg.budget_ns // 2)

    def _log(self, now: int, w: int, what: str, why: str) -> None:
        self.log.append((now, self.links[w].name, what, why))


def _first_bit(mask: int) -> int:
    return 0 if mask & 1 else 1
