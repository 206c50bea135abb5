"""The failover arbiter: every event reaches both workers, every decision is accounted for.

Use (the graph's view; see `workers/link.spawn_pair` for real worker processes):

    links = spawn_pair(model_dir, endpoints=("ipc:///tmp/a", "ipc:///tmp/b"))
    engine = CpuEngine(redline.kernels.load(model_dir, device="cpu"))   # workers/engines.py
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
`submit_batch(..., decide=[...])` for the records flagged False. `poll` returns `Decisions`:
DECISION records (views into buffers reused by the next poll, copy what you keep) with the
model output behind each, and `alarms` (True where 2oo2 tripped). Each decision carries its
origin (WORKER_A/B, FALLBACK, DEFAULT), model version (0 for DEFAULT: no model), deadline and
the stamps `ts_request`, `ts_worker_start`, `ts_worker_end`, `ts_answer`, `ts_decision`
(wall-clock ns); `ts_feed`/`ts_features` are passed to `submit` by the caller (the graph's own
stages) or left 0. The arbiter's stamps are its monotonic clock plus a fixed offset to wall
time taken at construction, so spans between them are pure monotonic durations.

Policies (`ArbiterConfig.policy`, policy.py says whom each asks):
- race: ask both; the first valid answer decides; the second is checked when it arrives.
- hedge: ask the primary; ask the standby after the hedge delay or at once when the primary
  fails; every `audit_every`-th request also goes to the standby.
- compare (2oo2): wait for both until `decide_by`; disagreement beyond rtol/atol emits the safe
  default with an alarm. With one worker out it runs 1oo1 on the other.

Deadline rule: one deadline per decision, `ts_recv + budget` (from the moment the system saw the
event; intake.py), the same one the strategy and the journal judge by. A request decides by
`decide_by = deadline - reserve` (reserve = the fallback's cost). Nothing valid by then: the fallback answers if it finishes before the deadline, else the
safe default. A decision emitted after its deadline is always the safe default. A disagreement
is refereed by the fallback (2-out-of-3) and the outvoted worker is tripped (DIVERGENCE).

The parts, one concept each: intake.py (numbering, the event ring, fan-out), inflight.py (the
requests and their deadlines), policy.py (whom to ask), checks.py (valid answers, agreement),
outbox.py (decisions until the next poll), referee.py (who is right when answers differ),
recovery.py (worker health: trips, restarts, rebuilds, readmission; breaker.py per worker),
report.py (what `stats()` returns),
versions.py (which model version answers which event: the hot swap's flips, swap.py).
This file is the request state machine that joins them: answers in, decisions out.
"""

from __future__ import annotations

import time

import numpy as np

from redline.feeds.clock import Clock
from redline.feeds.events import Origin
from redline.pipeline.arbiter.breaker import Breaker, Health, Trip
from redline.pipeline.arbiter.checks import AnswerCheck
from redline.pipeline.arbiter.config import REQUEST_COUNTERS, ArbiterConfig, Decisions, WorkerLink
from redline.pipeline.arbiter.event_ring import EventRing
from redline.pipeline.arbiter.fallback import CpuFallback
from redline.pipeline.arbiter.inflight import NONE, InflightTable, Request
from redline.pipeline.arbiter.intake import Intake
from redline.pipeline.arbiter.outbox import Outbox
from redline.pipeline.arbiter.policy import AskPolicy
from redline.pipeline.arbiter.recovery import Recovery
from redline.pipeline.arbiter.referee import Referee
from redline.pipeline.arbiter.report import arbiter_stats
from redline.pipeline.arbiter.versions import ModelVersions
from redline.pipeline.transport.waiting import wait_any
from redline.pipeline.workers.protocol import Kind, Reply, answer_array, header, unpack_answers


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
        self._wall = clock.now_ns() - now  # stamps: wall = monotonic + offset
        self.breakers = tuple(Breaker(link.name, cfg.breaker, now) for link in links)
        self.table = InflightTable(cfg.max_inflight, n, cfg.budget_ns, self._wall)
        self.check = AnswerCheck(n, cfg.out_low, cfg.out_high, cfg.rtol, cfg.atol)
        self.policy = AskPolicy(cfg, self.breakers)
        self.outbox = Outbox(cfg.max_inflight, n)
        ring = EventRing(cfg.replay_depth)
        self.intake = Intake(
            self.links, self.breakers, ring, self.table, self.policy, fallback, self._open,
            self._wall,
        )  # fmt: skip
        self._closed = False
        self._lag = [-1, -1]  # per worker, this poll: how late its oldest message was read
        self.counts: dict[str, int] = dict.fromkeys(REQUEST_COUNTERS, 0)
        self.by_origin = dict.fromkeys(Origin, 0)
        self.log: list[tuple[int, str, str, str]] = []  # (t mono, worker, what, why)
        self.recovery = Recovery(
            self.links,
            self.breakers,
            ring,
            cfg,
            n_out=n,
            has_referee=fallback is not None,
            event_no=lambda: self.intake.event_no,
            on_out=self._worker_out,
        )
        self.versions = self.recovery.versions  # model version per worker, from READY
        self.models = ModelVersions(self.links)  # hot swap: which version answers which event
        self.by_version: dict[int, int] = {}  # decisions per model version (0: the default)
        self.referee = Referee(self.table, self.check, fallback, self.breakers, self.recovery)
        for link in links:
            link.start()

    @property
    def event_no(self) -> int:
        """Events taken in so far."""
        return self.intake.event_no

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
            rtype = self.intake.rtype(record.dtype)
        if raw is None:
            raw = memoryview(np.ascontiguousarray(record)).cast("B")
        now = self.clock.monotonic_ns()
        no, reqs, failed = self.intake.one(record, decide, ts_feed, ts_features, rtype, raw, now)
        self.counts["events"] += 1
        self._after_send(failed, reqs, now)
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

        The same decisions as `submit` of each record in turn, for ~1/n of the messages.
        `decide`: one bool for all, or one per record. Returns the event number of the first
        record; record i is event first + i. Never blocks."""
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
            rtype = self.intake.rtype(records.dtype)
        decides = [decide] * n if isinstance(decide, bool) else [bool(d) for d in decide]
        if len(decides) != n:
            raise ValueError(f"submit_batch: {len(decides)} decide flags for {n} records")
        if n == 1:
            return self.submit(
                records[:1], decide=decides[0], ts_feed=ts_feed, ts_features=ts_features,
                rtype=rtype,
            )  # fmt: skip
        now = self.clock.monotonic_ns()
        first, reqs, failed = self.intake.batch(records, decides, ts_feed, ts_features, rtype, now)
        self.counts["events"] += n
        self._after_send(failed, reqs, now)
        return first

    def poll(self, now: int | None = None) -> Decisions:
        """Handle worker messages and timers; return the decisions made since the last poll."""
        if now is None:
            now = self.clock.monotonic_ns()
        if self._closed:
            return self.outbox.take()
        lag = self._lag
        lag[0] = lag[1] = -1
        for w, link in enumerate(self.links):
            if link.ready():  # most polls find nothing: ask first, cheaply
                for msg in link.recv():
                    self._on_message(w, msg, now)
        if lag[0] >= 0 and lag[1] >= 0:
            # Both workers' messages waited: this process was late to read them. One worker's
            # old messages alone say that worker was stopped, not the host.
            self.recovery.host.observe(min(lag), now)
        self.recovery.check_health(now)
        self._check_timers(now)
        return self.outbox.take()

    def wait(self, max_ns: int) -> None:
        """Block until a worker message arrives, the next deadline timer is due, or `max_ns`.

        For loops that should sleep rather than spin (on 2 cores a spinning arbiter starves
        the workers). Links without a channel (fakes, a worker being restarted) are not waited
        on."""
        now = self.clock.monotonic_ns()
        due = now + max_ns
        req = self.table.next_undecided()
        if req is not None:
            due = min(due, req.decide_by)
            if self.policy.hedge and req.asked != 0b11:
                due = min(due, req.hedge_at)
        channels = [c for c in (link.waitable() for link in self.links) if c is not None]
        if due > now and channels:
            wait_any(channels, (due - now) / 1e9)
            woke = self.clock.monotonic_ns()
            if woke > due and not any(c.ready() for c in channels):  # a timer overslept:
                self.recovery.host.observe(woke - due, woke)  # the host held this process

    def inject(self, worker: int, spec: str) -> None:
        """Send a fault (faults.FaultSpec text, e.g. "nan@5") to worker 0 (A) or 1 (B)."""
        self.links[worker].send([header(Kind.FAULT), spec.encode()])

    def stats(self) -> dict:
        """Counters with the stable keys of the --json reports, plus per-worker health."""
        return arbiter_stats(self)

    @property
    def wall_offset_ns(self) -> int:
        """Add to an `events_log` time to get wall-clock ns (the journal's stamps)."""
        return self._wall

    def events_log(self) -> list[tuple[int, str, str, str]]:
        """What happened to the workers, in time order: (t mono, worker, what, why)."""
        return sorted([*self.log, *self.recovery.log], key=lambda e: e[0])

    def close(self) -> None:
        """Stop both workers for good. Undecided requests become the safe default (never
        silently lost): one more `poll()` hands them back, and restarts nothing."""
        now = self.clock.monotonic_ns()
        self._closed = True
        for req in self.table.undecided():
            self.counts["unanswered"] += 1
            self._decide(req, NONE, now, Origin.DEFAULT)
        self.table.clear_undecided()
        for link in self.links:
            link.send([header(Kind.STOP)])
            link.stop()
        self.recovery.run_queue.close()

    # -- requests -------------------------------------------------------------------------------

    def _open(self, no: int, now: int, seen: int) -> Request:
        """Open event `no`'s request, seen by the system at `seen`; an undecided one in its slot
        (the ring wrapped) gets the safe default first, counted as backpressure."""
        old = self.table.occupant(no)
        if old is not None:
            self.counts["backpressure"] += 1
            self._decide(old, NONE, now, Origin.DEFAULT)
        reserve = self.cfg.margin_ns + (self.fallback.cost_ns if self.fallback else 0)
        return self.table.open(no, now, seen, reserve, self.policy.delay_ns)

    def _read_late(self, w: int, sent_wall: int, now: int) -> None:
        """Worker w's message, stamped `sent_wall`, read at `now`: keep its worst lag."""
        if sent_wall > 0:
            self._lag[w] = max(self._lag[w], now + self._wall - sent_wall)

    def _after_send(self, failed: list[int], reqs: list[Request], now: int) -> None:
        """After every worker got its message: failovers for the sends that failed (a
        failover may ask the peer about these events, so not before), then decide the
        requests nobody in service was asked about now rather than at the deadline."""
        for w in failed:
            self.recovery.send_failed(w, now)
        for req in reqs:
            if not req.asked and not req.decided:
                self._finish_unanswered(req, now)

    def _on_message(self, w: int, msg: Reply, now: int) -> None:
        self.breakers[w].seen(now)
        if msg.kind in _SENT_AT:
            self._read_late(w, msg.stamps[_SENT_AT[msg.kind]], now)
        if msg.kind == Kind.ANSWER:
            out = answer_array(msg.payload)
            ok = self.check.valid_one(out) and self.models.tag_ok(msg.id, msg.version)
            self._on_answer(w, msg.id, msg.stamps, out, now, ok)
        elif msg.kind == Kind.ANSWERS:
            self._on_answers(w, msg, now)
        elif msg.kind == Kind.READY:
            if self.breakers[w].health == Health.STARTING and self.models.schedule:
                self.models.replay(w, msg.version)  # before its state is rebuilt
            self.recovery.on_ready(w, msg, now)
        elif msg.kind in (Kind.LOADED, Kind.SHADOWED):  # hot swap: versions.py
            if why := self.models.on_loaded(w, msg):  # a restarted worker could not reload
                self._log(now, w, "error", f"reloading a model version: {why}")
                self.recovery.trip(w, Trip.START_TIMEOUT, now)
        elif msg.kind == Kind.STATE:
            self.recovery.on_state(w, msg, now)
        elif msg.kind == Kind.ERROR:
            self._log(now, w, "error", bytes(msg.payload or b"").decode(errors="replace"))

    def _on_answers(self, w: int, msg: Reply, now: int) -> None:
        """One ANSWERS message: each answer in turn, as if it came alone, checked together."""
        try:
            ans = unpack_answers(msg, self.n_out)
        except ValueError as exc:  # a garbled batch is a bad output, like a wrong-sized ANSWER
            self.counts["bad_outputs"] += 1
            self._log(now, w, "error", str(exc))
            self.recovery.trip(w, Trip.BAD_OUTPUT, now)
            return
        stamps, outs = ans["stamps"], ans["out"]  # [k, 4], [k, N]
        if len(stamps):  # sent together: one lag for the message
            self._read_late(w, int(stamps[-1, 3]), now)
        ok = self.check.valid(outs).tolist()
        ids = ans["id"].tolist()
        if ids:  # each answer from the version serving its event (versions.py)
            tags = self.models.tags_ok(ids[0], ids[-1], msg.version)
            if tags is None:
                ok = [
                    o and self.models.tag_ok(no, msg.version) for o, no in zip(ok, ids, strict=True)
                ]
            elif not tags:
                ok = [False] * len(ids)
        # Under race most answers come after their decision (the peer was first): the
        # agreement rule against the decided outputs for all at once. Only for requests
        # decided before this message; their decided outputs do not change while it is handled.
        current = [self.table.current(no) for no in ids]
        before = [r is not None and r.decided for r in current]
        agrees: list[bool | None] = [None] * len(ids)
        if any(before):
            ref = self.table.decided_out[ans["id"] % self.table.capacity]  # [k, N]
            agreed = self.check.agree(outs, ref).tolist()
            agrees = [a if b else None for a, b in zip(agreed, before, strict=True)]
        for j, no in enumerate(ids):
            self._on_answer(w, no, stamps[j], outs[j], now, ok[j], agrees[j])

    def _on_answer(
        self, w: int, no: int, stamps, out: np.ndarray, now: int, ok: bool, agrees=None
    ) -> None:
        """Worker w's answer `out` [N] to event `no`, with its four stamps; `ok`: whether it is
        valid; `agrees`: whether it agrees with the decision already made (None: not known
        yet, compared here when needed)."""
        req = self.table.current(no)
        bit = 1 << w
        if req is None or not (req.asked | req.shadow) & bit or req.answered & bit:
            self.counts["stale_answers"] += 1
            return
        req.answered |= bit
        slot = self.table.slot(no)
        b = self.breakers[w]
        if not ok:
            self.counts["bad_outputs"] += 1
            self.recovery.trip(w, Trip.BAD_OUTPUT, now)
        else:
            self.table.answers[slot, w] = out
            self.table.stamps[slot, w, :4] = stamps
            self.table.stamps[slot, w, 4] = now + self._wall
            req.valid |= bit
            if req.first < 0 and not req.shadow & bit:
                req.first = w
        if ok and req.shadow & req.valid and not req.checked:  # being readmitted: checked,
            shadow = _first_bit(req.shadow & req.valid)  # never used
            if self.referee.verify(req, shadow, now):
                self._log(now, shadow, "readmitted", "")
        if req.shadow & bit:
            self._maybe_unlinger(req)
            return
        in_time = now <= req.deadline
        if not in_time:
            self.counts["late_answers"] += 1
        if self.policy.samples_rtt and b.serving and w == self.policy.primary():
            self.policy.round_trip(now - req.t0)
        # Slowness is the worker's only if it sent late, later than the host's recent delay
        # of this process and its wait for a CPU explain, and later than its peer: read late,
        # held off its core, or late with its peer too, it was held up by the host, not slow.
        sent = int(stamps[3]) - self._wall if stamps[3] > 0 else now
        late = not in_time and sent - req.deadline > self.recovery.excused_ns(now)
        late = late and not self.recovery.held_by_host(w, req.t0, sent - req.deadline)
        own_miss = late and self._peer_in_time(req, w)
        if late and not own_miss:
            self.recovery.counts["overload"] += 1  # both late: the host, not this worker
        if b.serving and (trip := b.answered(not own_miss)) is not None:
            self.recovery.trip_slow(w, trip, now)
        if req.decided:
            if ok and req.origin in (Origin.WORKER_A, Origin.WORKER_B, Origin.FALLBACK):
                if agrees is None:
                    agrees = self.check.agree_one(out, self.table.decided_out[slot])
                if not agrees:
                    self._disagreement(req, now, alarm=False)
            self._maybe_unlinger(req)
            return
        if not ok:
            if self.policy.hedge:
                self._hedge(req, now)  # the primary failed: ask the standby at once
            else:
                self._decide_if_answered(req, now)
            return
        if now > req.deadline:
            return  # too late to be used; the timer decides this one
        if self.cfg.policy == "compare":
            if self._pending_from_serving(req):
                return
            if req.valid == req.asked and req.asked == 0b11:
                answers = self.table.answers[slot]
                if self.check.agree_one(answers[0], answers[1]):
                    self._decide(req, req.first, now)
                else:
                    self._disagreement(req, now, alarm=True)
                return
        self._decide(req, w, now)

    def _peer_in_time(self, req: Request, w: int) -> bool:
        """Worker w's peer answered `req` validly and sent it by the deadline, or was not asked
        (then w is judged alone). A peer that was late too, or has not answered yet, means
        the host, not w, is slow."""
        peer = 1 - w
        bit = 1 << peer
        if not (req.asked | req.shadow) & bit:
            return True
        if not req.valid & bit:
            return False
        sent = self.table.stamps[self.table.slot(req.event_no), peer, 3] - self._wall
        return sent <= req.deadline

    def _decide_if_answered(self, req: Request, now: int) -> None:
        """Decide on a valid answer already in, if in time and nobody else is awaited."""
        trusted = sum(1 << w for w, b in enumerate(self.breakers) if b.health != Health.OUT)
        used = req.valid & req.asked & trusted
        if used and now <= req.deadline and not self._pending_from_serving(req):
            self._decide(req, _first_bit(used), now)

    def _pending_from_serving(self, req: Request) -> bool:
        """Some serving worker was asked and has not answered yet."""
        waiting = req.asked & ~req.answered
        return any(waiting >> w & 1 and b.serving for w, b in enumerate(self.breakers))

    def _decide(self, req: Request, w: int, now: int, origin: Origin | None = None) -> None:
        """Emit the decision: from worker w's answer, or `origin` FALLBACK/DEFAULT."""
        slot = self.table.slot(req.event_no)
        rec, decided = req.rec, self.table.decided_out
        if origin is None:
            origin = Origin(w)
            decided[slot] = self.table.answers[slot, w]
            ts = self.table.stamps[slot, w]
            rec["ts_worker_start"] = ts[1]
            rec["ts_worker_end"] = ts[2]
            rec["ts_answer"] = ts[4]
            version = self.models.expected(req.event_no) or self.versions[w]
            rec["model_version"] = version
        elif origin == Origin.DEFAULT:
            decided[slot] = self.default
            rec["model_version"] = version = 0
        else:  # the fallback: its caller set the version
            version = int(rec["model_version"])
        req.decided = True
        req.origin = origin
        rec["origin"] = origin
        rec["ts_decision"] = now + self._wall
        if now > req.deadline:
            assert origin == Origin.DEFAULT, "only the safe default may be late"
            self.counts["late_decisions"] += 1
        rec["seq"] = self.counts["decisions"]
        self.by_version[version] = self.by_version.get(version, 0) + 1
        self.outbox.add(rec, decided[slot], req.alarm)
        self.counts["decisions"] += 1
        self.by_origin[origin] += 1
        if (req.asked | req.shadow) & ~req.answered:
            linger = self.cfg.linger_ns if self.cfg.linger_ns is not None else self.cfg.budget_ns
            self.table.linger(req, req.deadline + linger)

    def _finish_unanswered(self, req: Request, now: int) -> None:
        """No valid answer by decide_by: the fallback if it makes the deadline, else default."""
        if self.fallback is not None:
            slot = self.table.slot(req.event_no)
            t0 = self.clock.monotonic_ns()
            if t0 > req.deadline:  # already late (a backlog): computing it would only add to it
                self.counts["fallback_too_slow"] += 1
            elif self.fallback.answer_into(req.event_no, self.table.decided_out[slot]):
                t1 = self.clock.monotonic_ns()
                if t1 <= req.deadline:
                    rec = req.rec
                    rec["ts_worker_start"] = t0 + self._wall
                    rec["ts_worker_end"] = rec["ts_answer"] = t1 + self._wall
                    rec["model_version"] = self.fallback.version_of(req.event_no)
                    self._decide(req, NONE, t1, Origin.FALLBACK)
                    return
                self.counts["fallback_too_slow"] += 1
            now = self.clock.monotonic_ns()
        self.counts["unanswered"] += 1
        self._decide(req, NONE, now, Origin.DEFAULT)

    def _hedge(self, req: Request, now: int) -> None:
        for w, b in enumerate(self.breakers):
            bit = 1 << w
            if b.serving and not req.asked & bit:
                if self.links[w].send([header(Kind.ASK, req.event_no)]):
                    req.asked |= bit
                    self.counts["hedges"] += 1
                else:
                    self.recovery.send_failed(w, now)

    # -- cross checks ---------------------------------------------------------------------------

    def _disagreement(self, req: Request, now: int, *, alarm: bool) -> None:
        """Two answers differ. 2oo2 emits the safe default with an alarm; either way the
        referee takes out the worker it outvotes."""
        self.counts["disagreements"] += 1
        if alarm:
            self.counts["alarms"] += 1
            req.alarm = True
            self._decide(req, NONE, now, Origin.DEFAULT)
        self.referee.blame(req, now)

    def _maybe_unlinger(self, req: Request) -> None:
        if req.linger_until and not (req.asked | req.shadow) & ~req.answered:
            req.linger_until = 0  # its queue entry is skipped when reached

    # -- health and timers ----------------------------------------------------------------------

    def _worker_out(self, w: int, now: int) -> None:
        """Worker w was taken out (recovery.py): its pending answers will not come."""
        bit = 1 << w
        for req in self.table.undecided():
            if req.asked & bit and not req.answered & bit:
                req.answered |= bit
                if self.policy.hedge:
                    self._hedge(req, now)
                else:
                    self._decide_if_answered(req, now)
            req.shadow &= ~bit

    def _check_timers(self, now: int) -> None:
        if self.policy.hedge:
            for req in self.table.waiting_for_hedge(now, self.policy.delay_ns):
                if now >= req.hedge_at and req.asked != 0b11:
                    req.hedge_at = req.deadline  # once
                    self._hedge(req, now)
        for req in self.table.pop_due(now):
            used = req.valid & req.asked
            if used and now <= req.deadline:  # compare: one answer, the other never came
                self._decide(req, _first_bit(used), now)
            else:
                self._finish_unanswered(req, now)
        for req in self.table.pop_lingered(now):
            missing = (req.asked | req.shadow) & ~req.answered
            paused = now - req.deadline <= self.recovery.excused_ns(now)  # a host pause
            for w, b in enumerate(self.breakers):
                if not (missing >> w & 1 and b.serving):
                    continue
                excused = paused or not self._peer_in_time(req, w)
                if (trip := b.answered(excused)) is not None:
                    self.recovery.trip_slow(w, trip, now)

    def _log(self, now: int, w: int, what: str, why: str) -> None:
        self.log.append((now, self.links[w].name, what, why))


# Where a worker message carries its send stamp: HEARTBEAT s0, ANSWER(S) s3.
_SENT_AT = {Kind.HEARTBEAT: 0, Kind.ANSWER: 3}


def _first_bit(mask: int) -> int:
    return 0 if mask & 1 else 1
