"""Real CPU worker processes under faults, for every arbiter policy.

Two `redline worker` processes behind an Arbiter on a live clock, a steady event stream, and in
turn: kill -9, SIGSTOP then SIGCONT, injected delay, NaN and wrong values in worker A. For each
case: every input gets exactly one decision with its origin, a decision after its deadline is
always the tagged safe default, A is restarted and readmitted, and afterwards the answers agree
with B and with an independent replica of the model.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

import numpy as np
import pytest
import torch

from redline import kernels
from redline.feeds.clock import LiveClock
from redline.feeds.events import QUOTE_DTYPE, TRADE_DTYPE, Origin, RecordType
from redline.kernels.features import N_FEATURES
from redline.pipeline.arbiter.arbiter import Arbiter
from redline.pipeline.arbiter.breaker import Health
from redline.pipeline.arbiter.config import ArbiterConfig, BreakerConfig, Policy
from redline.pipeline.arbiter.fallback import CpuFallback, safe_default
from redline.pipeline.workers.engines import CpuEngine
from redline.pipeline.workers.link import close_all, spawn_pair

AGREE = ArbiterConfig()  # its rtol/atol: what the arbiter itself calls two answers agreeing

MS = 1_000_000
RATE = 400  # events/s: steady, and gentle on a 2 vCPU CI box
N_OUT = 3
GIVE_UP_S = 60  # liveness guard for a run loop on a loaded 2 vCPU box


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    # the graph's kind of model: the kernels' features in, so workers keep FeatureState
    m = torch.nn.Sequential(
        torch.nn.Linear(N_FEATURES, 16), torch.nn.ReLU(), torch.nn.Linear(16, N_OUT)
    )
    d = tmp_path_factory.mktemp("model")
    kernels.compile(m, precision="fp32", device="cpu").save(d)
    return d


class Stream:
    """One arbiter with two worker processes, a reference replica, and what it decided."""

    def __init__(self, policy: str, model_dir, tmp_path, breaker=None, **cfg) -> None:
        self.clock = LiveClock()
        plan = kernels.load(model_dir, device="cpu", backend="cpu")
        self.ref = CpuEngine(plan)
        fallback = CpuFallback(CpuEngine(kernels.load(model_dir, device="cpu")), self.clock)
        # Generous timings by default: these tests are about the faults, not the host.
        breaker = breaker or BreakerConfig(
            heartbeat_timeout_ns=1000 * MS, slow_max_misses=24, verify_count=8, backoff_ns=0
        )
        cfg = ArbiterConfig(
            policy=policy, budget_ns=50 * MS, breaker=breaker, **{"audit_every": 4, **cfg}
        )
        self.links = spawn_pair(model_dir)
        self.arb = Arbiter(self.links, cfg, self.clock, safe_default(N_OUT), fallback)
        self.arb.wait_ready(timeout_s=60)
        self.i = 0
        self.rate = RATE  # events/s
        self.recs: list[np.ndarray] = []
        self.outs: list[np.ndarray] = []

    def event(self, trade: bool | None = None) -> tuple[int, np.ndarray]:
        """A valid quote or trade (by default every third event a trade), on 5 instruments."""
        i = self.i
        if trade if trade is not None else i % 3 == 2:
            r = np.zeros((), TRADE_DTYPE)
            r["px"], r["sz"], r["aggressor"] = 1000 + (i * 7) % 9, 1 + i % 4, 1 + i % 2
            rtype = RecordType.TRADE
        else:
            r = np.zeros((), QUOTE_DTYPE)
            bid = 1000 + (i * 7) % 11
            r["bid_px"], r["ask_px"] = bid, bid + 1 + i % 3
            r["bid_sz"], r["ask_sz"] = 1 + i % 4, 1 + (i // 3) % 5
            rtype = RecordType.QUOTE
        r["instrument_id"], r["seq"] = i % 5, i
        r["ts_event"] = r["ts_recv"] = 10**18 + i * 2_500_000
        return rtype, r

    def _poll(self) -> None:
        b = self.arb.poll()
        self.recs.append(b.records.copy())
        self.outs.append(b.outputs.copy())

    def run(
        self, seconds: float, at: dict | None = None, until=None, batch: int = 1, one_by_one=False
    ) -> tuple[int, int]:
        """Submit at RATE for `seconds` (or until `until()` holds, at most GIVE_UP_S); returns the
        [first, last) input seqs submitted. at[k]: called before the k-th event of this run.

        With `batch` > 1 events come as a feed delivers them: batches of 1..batch records of
        one type (every third batch trades), each sent with `submit_batch` (one EVENTS message
        per worker) or, with `one_by_one`, the same records with `submit` each."""
        first = self.i
        t0 = time.monotonic()
        k = step = 0
        while True:
            elapsed = time.monotonic() - t0
            if (until is None and elapsed >= seconds) or (until is not None and until()):
                break
            if elapsed >= GIVE_UP_S:  # a liveness guard, not a timing assertion
                pytest.fail(f"gave up waiting after {GIVE_UP_S} s: {self.arb.stats()}")
            n = 1 if batch == 1 else 1 + (step * 5) % batch
            for x in range(k, k + n):
                if at and x in at:
                    at[x]()
            recs = []
            for _ in range(n):
                rtype, r = self.event(None if batch == 1 else step % 3 == 2)
                self.ref.apply(self.i + 1, rtype, r)
                recs.append(r)
                self.i += 1
            if n == 1 or one_by_one:
                for r in recs:
                    r["ts_recv"] = time.time_ns()  # seen now, as a feed stamps on arrival
                    self.arb.submit(r)
            else:
                batch_recs = np.stack(recs)
                batch_recs["ts_recv"] = time.time_ns()
                self.arb.submit_batch(batch_recs, rtype=rtype)
            k += n
            step += 1
            next_t = t0 + k / self.rate
            while (left := next_t - time.monotonic()) > 0:
                self._poll()
                self.arb.wait(int(left * 1e9))
            self._poll()
        return first, self.i

    def drain(self) -> None:
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            self._poll()
            self.arb.wait(5 * MS)

    def decisions(self):
        return np.concatenate(self.recs), np.concatenate(self.outs)


@pytest.fixture(scope="module", params=list(Policy))
def stream(request, model_dir, tmp_path_factory):
    s = Stream(request.param, model_dir, tmp_path_factory.mktemp("w"))
    yield s
    s.arb.close()
    close_all(s.links)


def _cont_later(pid: int, taken_out) -> None:
    # Stopped until the arbiter has taken it out (at least 0.4 s): the arbiter excuses lateness
    # up to twice its own measured scheduling delay, tens of ms on a quiet host but hundreds on
    # a host several times oversubscribed, where a fixed 0.4 s stop passed as a host pause and
    # was never seen. Continued then, so the recovery meets a process that runs again.
    end = time.monotonic() + GIVE_UP_S
    time.sleep(0.4)
    while not taken_out() and time.monotonic() < end:
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError):  # already taken out and killed: fine
        os.kill(pid, signal.SIGCONT)


FAULTS = {
    "kill9": lambda s: os.kill(s.links[0].pid, signal.SIGKILL),
    "stop_cont": lambda s: (os.kill(s.links[0].pid, signal.SIGSTOP), _later(s)),
    "delay": lambda s: s.arb.inject(0, "delay@0:0.08"),  # > the 50 ms budget
    "nan": lambda s: s.arb.inject(0, "nan@0"),
    "wrong": lambda s: s.arb.inject(0, "wrong@0:0.5"),
    # stops answering and heartbeating, without a signal: only silence gives it away
    "hang": lambda s: s.arb.inject(0, "hang@0"),
    # in batches (EVENTS): killed from outside, and killing itself at its 3rd answer, which is
    # in the middle of a batch's answers
    "kill9_batched": lambda s: os.kill(s.links[0].pid, signal.SIGKILL),
    "crash_mid_batch": lambda s: s.arb.inject(0, "crash@3"),
}
BATCHED = {"kill9_batched": 8, "crash_mid_batch": 8}  # fault -> feed batch size (1..n)


# What the breaker must name as the reason A was taken out.
REASONS = {
    "kill9": {"crash"},
    "stop_cont": {"heartbeat", "slow"},  # SIGCONT may come before the heartbeat timeout
    "delay": {"slow", "heartbeat"},
    "nan": {"bad_output"},
    "wrong": {"divergence"},
    "hang": {"heartbeat", "slow"},
    "kill9_batched": {"crash"},
    "crash_mid_batch": {"crash"},
}


def _later(s: Stream) -> None:
    import threading

    a = s.arb.breakers[0]
    before = sum(a.trips.values())
    taken_out = lambda: sum(a.trips.values()) > before  # noqa: E731
    threading.Thread(target=_cont_later, args=(s.links[0].pid, taken_out), daemon=True).start()


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_in_worker_a(stream, fault):
    s = stream
    a = s.arb.breakers[0]
    trips_before = sum(a.trips.values())
    pid_before = s.links[0].pid
    readmitted_before = a.readmissions
    batch = BATCHED.get(fault, 1)
    start, _ = s.run(0.25, batch=batch)
    tripped = lambda: sum(a.trips.values()) > trips_before  # noqa: E731
    s.run(0, at={0: lambda: FAULTS[fault](s)}, until=tripped, batch=batch)
    assert a.last_trip.name.lower() in REASONS[fault], s.arb.stats()
    s.run(0, until=lambda: a.health == Health.UP, batch=batch)
    assert s.links[0].pid != pid_before and a.readmissions > readmitted_before, s.arb.stats()
    st_mid = s.arb.stats()
    first_after, end = s.run(0.3, batch=batch)
    s.drain()
    recs, outs = s.decisions()
    seqs = recs["input_seq"].astype(np.int64)
    mine = (seqs >= start) & (seqs < end)
    # every input exactly one decision
    assert sorted(seqs[mine].tolist()) == list(range(start, end))
    assert set(recs["origin"][mine].tolist()) <= set(Origin)
    # only the safe default may come after its deadline
    late = mine & (recs["ts_decision"] > recs["deadline"])
    assert (recs["origin"][late] == Origin.DEFAULT).all(), np.unique(recs["origin"][late])
    # after readmission: A agrees with B (no new disagreements) and with the replica
    st = s.arb.stats()
    assert st["disagreements"] == st_mid["disagreements"], (fault, st)
    after = np.flatnonzero((seqs >= first_after) & (seqs < end))
    ref = np.zeros(N_OUT, np.float32)
    for j in after:
        if recs["origin"][j] in (Origin.WORKER_A, Origin.WORKER_B, Origin.FALLBACK):
            s.ref.answer_into(int(seqs[j]) + 1, ref)
            # "agrees" as the arbiter defines it: batch sizes differ by timing, so does rounding
            np.testing.assert_allclose(outs[j], ref, rtol=AGREE.rtol, atol=AGREE.atol)
    # the readmitted A makes decisions again (under hedge it is the primary); the figures say
    # why not when it fails (it did twice, only inside the whole suite on a loaded host)
    origins = np.unique(recs["origin"][after], return_counts=True)
    assert (recs["origin"][after] == Origin.WORKER_A).any(), (origins, s.arb.stats())


@pytest.mark.parametrize("policy", list(Policy))
def test_batches_through_events_decide_as_one_by_one(policy, model_dir, tmp_path):
    """The same feed batches through submit_batch (one EVENTS message per worker) and through
    submit (one EVENT per event), each on a fresh pair of real workers: the same decisions."""
    runs = []
    for one_by_one in (True, False):
        # hedge: a fixed delay near the budget and no audits, so A (the primary) decides
        # every one and origins compare; under race and compare who answers first is a race
        hedge = {"hedge_delay_ns": 40 * MS, "audit_every": 0} if policy == Policy.HEDGE else {}
        s = Stream(policy, model_dir, tmp_path, **hedge)
        try:
            s.run(0, until=lambda s=s: s.i >= 240, batch=9, one_by_one=one_by_one)
            s.drain()
            recs, outs = s.decisions()
            runs.append((recs, outs, s.arb.stats(), s.i))
        finally:
            s.arb.close()
            close_all(s.links)
    (ra, oa, sa, n), (rb, ob, sb, nb) = runs
    assert n == nb
    for recs in (ra, rb):  # every input exactly one decision, each from a worker
        assert sorted(recs["input_seq"].tolist()) == list(range(n))
        assert set(recs["origin"].tolist()) <= {Origin.WORKER_A, Origin.WORKER_B}
    ia, ib = np.argsort(ra["input_seq"]), np.argsort(rb["input_seq"])
    # one model call per batch: BLAS may round a row differently than at batch 1
    np.testing.assert_allclose(oa[ia], ob[ib], rtol=AGREE.rtol, atol=AGREE.atol)
    np.testing.assert_array_equal(ra["model_version"][ia], rb["model_version"][ib])
    assert sa["decisions"] == sb["decisions"] == n and sa["events"] == sb["events"] == n
    assert sa["disagreements"] == sb["disagreements"] == 0
    if policy == Policy.HEDGE:
        np.testing.assert_array_equal(ra["origin"][ia], rb["origin"][ib])
        assert sa["decisions_by_origin"] == sb["decisions_by_origin"]


@pytest.fixture
def busy_cores():
    """Every core kept busy by other processes (four per core), as users' machines are."""
    import subprocess
    import sys

    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(4 * (os.cpu_count() or 1))
    ]
    yield
    for p in procs:
        p.kill()
        p.wait()


def test_a_busy_host_trips_no_healthy_worker_but_real_faults_are_still_seen(
    model_dir, tmp_path, busy_cores
):
    """The default breaker (50 ms heartbeat timeout, 4 slow answers in 32) on a host whose
    every core is taken: silence and slowness are judged against the host's own measured
    delay, so nothing healthy is restarted; a SIGSTOPped and a killed worker still are."""
    s = Stream("race", model_dir, tmp_path, breaker=BreakerConfig(backoff_ns=0, verify_count=8))
    s.rate = 3000  # enough work that the workers feel the contention
    try:
        start, _ = s.run(8.0, batch=8)
        st = s.arb.stats()
        assert (st["failovers"], st["restarts"]) == (0, 0), (st["workers"], s.arb.events_log())
        a, b = s.arb.breakers
        os.kill(s.links[0].pid, signal.SIGSTOP)  # hung: alive, silent
        s.run(0, until=lambda: a.health != Health.UP, batch=8)
        assert a.last_trip.name.lower() in {"heartbeat", "slow"}, s.arb.stats()
        s.run(0, until=lambda: a.health == Health.UP, batch=8)  # restarted and readmitted
        os.kill(s.links[1].pid, signal.SIGKILL)
        _, end = s.run(0, until=lambda: b.health != Health.UP, batch=8)
        # a SIGKILLed process dies when next scheduled: on a host this busy it can stay
        # silent past the heartbeat timeout, or leave asks unanswered past the slowness rule,
        # before its exit is seen; whichever comes first, it is caught
        assert b.last_trip.name.lower() in {"crash", "heartbeat", "slow"}
        s.drain()
        recs, _ = s.decisions()
        seqs = recs["input_seq"].astype(np.int64)
        mine = (seqs >= start) & (seqs < end)
        assert sorted(seqs[mine].tolist()) == list(range(start, end))  # none lost
    finally:
        s.arb.close()
        close_all(s.links)
