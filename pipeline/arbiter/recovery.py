"""Worker recovery: take a worker out, restart it, rebuild its state, readmit it.

The arbiter (arbiter.py) runs the requests; this runs the two workers' lives around their
breakers (breaker.py):

    trip ──► out: SIGKILL, its pending answers written off (`on_out`) ──► restart (backoff)
      ──► READY ──► sync: the peer's snapshot + the events since from the EventRing, or the
      ring alone when no peer is in service ──► RESTORE sent ──► VERIFYING (the arbiter checks
      `verify_count` live answers) ──► UP

    rec = Recovery(links, breakers, ring, cfg, n_out=N, has_referee=True,
                   event_no=lambda: arb.event_no, on_out=arb._worker_out)
    rec.on_ready(w, msg, now); rec.on_state(w, msg, now)    # READY / STATE from worker w
    rec.trip(w, Trip.BAD_OUTPUT, now); rec.trip_slow(w, Trip.SLOW, now)
    rec.send_failed(w, now); rec.taken_out(w, reason, now)  # (after breaker.verified failed)
    rec.check_health(now)                                   # each poll: exits, timeouts, restarts

It keeps its own `counts` (config.RECOVERY_COUNTERS: failovers, restarts, send_failures,
overload, unverified_readmissions, cpu_wait_excused), its own `log` of what happened to each
worker, and the model version each worker reported; the arbiter hears of a worker taken out
through `on_out`.
"""

from __future__ import annotations

from collections.abc import Callable

from redline.feeds.wire.frames import pack_slots
from redline.pipeline.arbiter.breaker import Breaker, Health, Trip
from redline.pipeline.arbiter.config import RECOVERY_COUNTERS, ArbiterConfig, WorkerLink
from redline.pipeline.arbiter.event_ring import EventRing
from redline.pipeline.arbiter.host_delay import HostDelay
from redline.pipeline.arbiter.run_queue import RunQueueWait
from redline.pipeline.workers.protocol import Kind, Reply, header

# Silence judged against the host: the heartbeat timeout plus this many times the arbiter's own
# recent scheduling delay (a 100 ms pause of the arbiter allows 400 ms more of silence).
HEARTBEAT_SLACK = 4
# Slowness likewise: an answer late by less than this many host pauses is the host's doing.
SLOW_SLACK = 2


class Recovery:
    """Health checks, trips, restarts and state rebuilds for the arbiter's two workers."""

    def __init__(
        self,
        links: tuple[WorkerLink, WorkerLink],
        breakers: tuple[Breaker, Breaker],
        ring: EventRing,
        cfg: ArbiterConfig,
        *,
        n_out: int,
        has_referee: bool,
        event_no: Callable[[], int],
        on_out: Callable[[int, int], None],
    ) -> None:
        self.links = links
        self.breakers = breakers
        self.ring = ring
        self.cfg = cfg
        self.counts: dict[str, int] = dict.fromkeys(RECOVERY_COUNTERS, 0)
        self.log: list[tuple[int, str, str, str]] = []  # (t mono, worker, what, why)
        self.n_out = n_out
        self.has_referee = has_referee  # a fallback can check a worker when its peer cannot
        self.event_no = event_no  # events forwarded so far
        self.on_out = on_out  # (w, now): worker w's pending answers will not come
        self.versions = [0, 0]  # model version each worker reported in READY
        self.host = HostDelay()  # the arbiter's own scheduling delay, from message lags
        self.run_queue = RunQueueWait(len(links))  # each worker's wait for a CPU
        self._syncing_from: list[int] = [-1, -1]  # peer asked for a snapshot on our behalf

    def on_ready(self, w: int, msg: Reply, now: int) -> None:
        """READY from a (re)started worker: check it, then rebuild its state."""
        b = self.breakers[w]
        if b.health != Health.STARTING:
            return
        self.versions[w] = msg.version
        if msg.stamps[0] != self.n_out:
            self._log(now, w, "refused", f"{msg.stamps[0]} outputs, expected {self.n_out}")
            self.trip(w, Trip.START_TIMEOUT, now)
            return
        b.ready(now)
        self._log(now, w, "ready", f"pid {self.links[w].pid}")
        self._start_sync(w, now)

    def on_state(self, peer: int, msg: Reply, now: int) -> None:
        """STATE (a snapshot) from `peer`, asked for on behalf of the worker being rebuilt."""
        w = self._syncing_from[peer]
        self._syncing_from[peer] = -1
        if w < 0 or self.breakers[w].health != Health.SYNCING:
            return
        self._restore(w, msg.id, msg.payload, now)

    def trip_slow(self, w: int, trip: Trip, now: int) -> None:
        """SLOW takes a worker out only if its peer is in service and keeps up (a miss counts
        only when the worker sent its answer late, not when this process read it late: see
        Arbiter._on_answer). When both miss deadlines the host is overloaded, and a restart (which must replay the backlog) would
        make it worse; a slow last worker is still better than none. The fallback and the safe
        default carry the deadlines meanwhile, and `overload` counts it."""
        peer = self.breakers[1 - w]
        if not peer.serving or peer.misses * 2 >= self.cfg.breaker.slow_max_misses:
            self.counts["overload"] += 1
            return
        self.trip(w, trip, now)

    def held_by_host(self, w: int, since: int, late_ns: int) -> bool:
        """Worker w, late by `late_ns` on a request sent at `since`, waited for a CPU at least
        that long meanwhile (run_queue.py): the host's doing, not the worker's."""
        held = self.run_queue.waited_since(w, since) >= late_ns
        self.counts["cpu_wait_excused"] += held
        return held

    def excused_ns(self, now: int) -> int:
        """How late past a deadline a worker may answer before it counts against it: what the
        host's recent scheduling delay explains (SLOW_SLACK times its peak)."""
        self.host.decay(now)
        return int(SLOW_SLACK * self.host.peak_ns)

    def send_failed(self, w: int, now: int) -> None:
        self.counts["send_failures"] += 1
        self.trip(w, Trip.CRASH, now)

    def trip(self, w: int, reason: Trip, now: int) -> None:
        b = self.breakers[w]
        if b.health == Health.OUT:
            return
        b.trip(reason, now)
        self.taken_out(w, reason, now)

    def taken_out(self, w: int, reason: Trip, now: int) -> None:
        """Worker w's breaker is OUT (just tripped, or failed its readmission check)."""
        self.counts["failovers"] += 1
        self._log(now, w, "out", reason.name.lower())
        self.links[w].stop()
        if self._syncing_from[w] >= 0:  # it was giving a snapshot: the other rebuilds by replay
            other = self._syncing_from[w]
            self._syncing_from[w] = -1
            if self.breakers[other].health == Health.SYNCING:
                self._restore(other, self.ring.first - 1, b"", now)
        self.on_out(w, now)

    def check_health(self, now: int) -> None:
        """Exited processes, missed heartbeats and sync/start timeouts; restarts when due."""
        self.host.decay(now)
        slack = int(HEARTBEAT_SLACK * self.host.peak_ns)
        for w, (link, b) in enumerate(zip(self.links, self.breakers, strict=True)):
            self.run_queue.sample(w, getattr(link, "pid", None), now)
            if b.health != Health.OUT and link.exited():
                self.trip(w, Trip.CRASH, now)
            elif (trip := b.overdue(now, slack)) is not None:
                # silent, but for how long was it waiting for a CPU? (not when SIGSTOPped)
                held = self.run_queue.waited_since(w, b.last_seen) if trip == Trip.HEARTBEAT else 0
                if not held or b.overdue(now, slack + held) is not None:
                    self.trip(w, trip, now)
            if b.restart_due(now):
                link.start()
                b.restarted(now)
                self.counts["restarts"] += 1
                self._log(now, w, "restart", f"pid {link.pid}")

    def _start_sync(self, w: int, now: int) -> None:
        peer = 1 - w
        if self.event_no() == 0:  # nothing happened yet: empty state is the right state
            self._restore(w, 0, b"", now)
        elif self.breakers[peer].serving:
            self._syncing_from[peer] = w
            if not self.links[peer].send([header(Kind.SNAPSHOT)]):
                self.send_failed(peer, now)
        else:  # no healthy peer: rebuild from the ring alone
            self._restore(w, self.ring.first - 1, b"", now)

    def _restore(self, w: int, as_of: int, blob, now: int) -> None:
        try:
            rtypes, nos, slots = self.ring.since(as_of)
        except LookupError as exc:
            self._log(now, w, "resync", str(exc))
            self.trip(w, Trip.START_TIMEOUT, now)
            return
        frames = [header(Kind.RESTORE, as_of, s0=len(nos)), blob, *pack_slots(rtypes, nos, slots)]
        if not self.links[w].send(frames):
            self.send_failed(w, now)
            return
        b = self.breakers[w]
        b.synced(now)
        self._log(now, w, "synced", f"as of {as_of}, {len(nos)} replayed")
        peer_ok = self.breakers[1 - w].serving
        if b.health == Health.VERIFYING and self.event_no() == 0:
            b.verify_left = 0
            b.verified(True, now)  # nothing to compare yet
        elif b.health == Health.VERIFYING and not peer_ok and not self.has_referee:
            self.counts["unverified_readmissions"] += 1
            b.verify_left = 0
            b.verified(True, now)
        if b.serving:
            self._log(now, w, "readmitted", "")

    def _log(self, now: int, w: int, what: str, why: str) -> None:
        self.log.append((now, self.links[w].name, what, why))
