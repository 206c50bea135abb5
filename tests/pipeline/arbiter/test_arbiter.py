"""The arbiter's policies, deadlines and failure handling, in memory on a ReplayClock.

Workers here are `FakeLink`s: they speak the real protocol frames and compute with a real
`CpuEngine`, but deliver their replies when the test clock says so, so every timing path is
exercised without sleeps or processes (tests/pipeline/workers/test_worker_faults.py does it for real).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from redline.feeds.clock import ReplayClock
from redline.feeds.events import QUOTE_DTYPE, Origin
from redline.pipeline.arbiter.arbiter import Arbiter
from redline.pipeline.arbiter.breaker import Health
from redline.pipeline.arbiter.config import ArbiterConfig, BreakerConfig, Policy
from redline.pipeline.arbiter.fallback import CpuFallback, safe_default
from redline.pipeline.workers.engines import CpuEngine

sys.path.insert(0, str(Path(__file__).parent))
from fake_link import FakeLink, N, TinyPlan

US = 1_000
MS = 1_000_000


def quote(i: int) -> np.ndarray:
    q = np.zeros((), QUOTE_DTYPE)
    q["instrument_id"] = 1 + i % 3
    q["seq"] = i
    q["bid_px"], q["ask_px"] = 100 + i % 7, 101 + i % 5
    q["bid_sz"], q["ask_sz"] = i % 4, 3
    q["ts_recv"] = i
    return q


def make(policy, lat=(100 * US, 150 * US), fallback=True, **cfg):
    clock = ReplayClock(10**12)
    links = (FakeLink("A", clock, lat[0]), FakeLink("B", clock, lat[1]))
    breaker = BreakerConfig(heartbeat_timeout_ns=5 * MS, verify_count=4, **cfg.pop("breaker", {}))
    conf = ArbiterConfig(policy=policy, budget_ns=1 * MS, breaker=breaker, **cfg)
    fb = CpuFallback(CpuEngine(TinyPlan()), clock, floor_ns=100 * US) if fallback else None
    arb = Arbiter(links, conf, clock, safe_default(N), fb)
    run(arb, clock, 0, until_ready=True)
    return arb, clock, links


def run(arb, clock, n, start=0, step=200 * US, at=None, until_ready=False):
    """Submit n quotes `step` apart, polling every 10 µs; `at[i]` is called before event i.
    Returns (records, outputs, alarms, the input seqs submitted)."""
    recs, outs, alarms, nos = [], [], [], []

    def collect():
        b = arb.poll()
        recs.append(b.records.copy())
        outs.append(b.outputs.copy())
        alarms.append(b.alarms.copy())

    if until_ready:
        for _ in range(10_000):
            if all(b.serving for b in arb.breakers):
                return None
            clock.advance(10 * US)
            collect()
        raise AssertionError("fake workers never became ready")
    for i in range(start, start + n):
        if at and i in at:
            at[i]()
        q = quote(i)
        q["ts_recv"] = clock.now_ns()  # seen now, as a feed stamps on arrival
        arb.submit(q)
        nos.append(i)
        for _ in range(step // (10 * US)):
            clock.advance(10 * US)
            collect()
    for _ in range(300):  # drain past the last deadline
        clock.advance(10 * US)
        collect()
    return np.concatenate(recs), np.concatenate(outs), np.concatenate(alarms), nos


def check_accounted(recs, seqs):
    """Every input exactly one decision; only the safe default may be late."""
    assert sorted(recs["input_seq"].tolist()) == seqs
    late = recs["ts_decision"] > recs["deadline"]
    assert (recs["origin"][late] == Origin.DEFAULT).all()


def expected(i: int, upto: int) -> np.ndarray:
    """The model answer a correct replica gives for event i of a stream starting at 0."""
    e = CpuEngine(TinyPlan())
    for j in range(upto + 1):
        e.apply(j + 1, 1, quote(j))
    out = np.zeros(N, np.float32)
    e.answer_into(i + 1, out)
    return out


@pytest.mark.parametrize("policy", list(Policy))
def test_healthy_pair_every_event_one_decision_from_a_worker(policy):
    arb, clock, _ = make(policy)
    recs, outs, _, nos = run(arb, clock, 40)
    check_accounted(recs, nos)
    # A answers in 100 µs, B in 150 µs: A decides under race and hedge, and first under compare
    assert (recs["origin"] == Origin.WORKER_A).all()
    assert (recs["model_version"] == 7).all()
    np.testing.assert_allclose(outs[-1], expected(39, 39), rtol=1e-6)
    assert (recs["ts_answer"] - recs["ts_request"] >= 100 * US).all()
    if policy == Policy.COMPARE:  # waited for B's answer too
        assert (recs["ts_decision"] - recs["ts_request"] >= 150 * US).all()
    assert arb.stats()["disagreements"] == 0


def test_race_first_valid_answer_wins_when_primary_is_slower():
    arb, clock, _ = make("race", lat=(400 * US, 120 * US))
    recs, _, _, nos = run(arb, clock, 20)
    check_accounted(recs, nos)
    assert (recs["origin"] == Origin.WORKER_B).all()


@pytest.mark.parametrize("policy", list(Policy))
@pytest.mark.parametrize("fault", ["crash", "hang", "nan", "wrong", "slow"])
def test_fault_in_one_worker_loses_no_decision_and_it_is_readmitted(policy, fault):
    arb, clock, (a, _b) = make(policy, audit_every=4)

    def inject():
        if fault == "slow":
            a.latency_ns = 3 * MS  # every answer misses its deadline
        else:
            a.mode = fault

    recs, _outs, _, nos = run(arb, clock, 200, at={20: inject})
    check_accounted(recs, nos)
    st = arb.stats()
    assert st["failovers"] >= 1, st
    assert a.starts >= 2  # it was restarted
    assert arb.breakers[0].health == Health.UP and arb.breakers[0].readmissions >= 2
    assert (recs["origin"] != Origin.DEFAULT).sum() >= 195 or fault == "wrong"
    if fault in ("crash", "hang", "nan", "slow"):  # B (or the fallback) covered every one
        assert st["decisions_by_origin"]["default"] == 0, st
    # after readmission A answers again and agrees with B
    recs2, outs2, _, nos2 = run(arb, clock, 30, start=200)
    check_accounted(recs2, nos2)
    assert (recs2["origin"] == Origin.WORKER_A).all()
    np.testing.assert_allclose(outs2[-1], expected(229, 229), rtol=1e-6)
    assert arb.stats()["disagreements"] == st["disagreements"]


def test_wrong_values_under_compare_emit_safe_default_with_alarm_and_blame_the_liar():
    arb, clock, (_a, b) = make("compare")
    recs, outs, alarms, nos = run(arb, clock, 10, at={3: lambda: setattr(b, "mode", "wrong")})
    check_accounted(recs, nos)
    i = int(np.flatnonzero(recs["input_seq"] == 3)[0])
    assert recs["origin"][i] == Origin.DEFAULT and alarms[i]
    np.testing.assert_array_equal(outs[i], safe_default(N))
    st = arb.stats()
    assert st["alarms"] == 1 and st["workers"]["B"]["trips"]["divergence"] == 1
    assert st["workers"]["A"]["trips"]["divergence"] == 0


def test_compare_without_referee_alarms_but_blames_nobody():
    arb, clock, (_a, b) = make("compare", fallback=False)
    recs, _, alarms, nos = run(arb, clock, 6, at={2: lambda: setattr(b, "mode", "wrong")})
    check_accounted(recs, nos)
    assert alarms.sum() == 4 and (recs["origin"][alarms] == Origin.DEFAULT).all()
    assert arb.stats()["failovers"] == 0


def test_hedge_asks_standby_after_fixed_delay_when_primary_is_slow():
    arb, clock, (_a, _b) = make("hedge", lat=(700 * US, 100 * US), hedge_delay_ns=200 * US)
    recs, _, _, nos = run(arb, clock, 10)
    check_accounted(recs, nos)
    assert (recs["origin"] == Origin.WORKER_B).all()
    assert arb.stats()["hedges"] == 10
    # decided at ~200 µs (hedge) + 100 µs (B), before A's 700 µs
    assert (recs["ts_decision"] - recs["ts_request"] < 400 * US).all()


def test_hedge_delay_follows_primary_p95():
    arb, clock, _ = make("hedge", lat=(120 * US, 100 * US), audit_every=0)
    run(arb, clock, 64)
    assert 110 * US <= arb.stats()["hedge_delay_ns"] <= 140 * US
    assert arb.stats()["hedges"] == 0


def test_both_out_fallback_answers_then_default_without_fallback():
    for fb, origin in ((True, Origin.FALLBACK), (False, Origin.DEFAULT)):
        arb, clock, (a, b) = make("race", fallback=fb)
        a.mode = b.mode = "hang"
        recs, outs, _, nos = run(arb, clock, 5)  # 4 ms in all: within the heartbeat timeout
        check_accounted(recs, nos)
        assert (recs["origin"] == origin).all()
        if fb:
            np.testing.assert_allclose(outs[-1], expected(4, 4), rtol=1e-6)
            assert (recs["model_version"] == 7).all()
        else:
            assert (recs["model_version"] == 0).all() and (outs == 0).all()


def test_late_poll_yields_only_tagged_default():
    arb, clock, _ = make("race")
    arb.submit(quote(0))
    clock.advance(3 * MS)  # the caller did not poll in time
    recs = arb.poll().records
    assert len(recs) == 1 and recs["origin"][0] == Origin.DEFAULT
    assert recs["ts_decision"][0] > recs["deadline"][0]
    assert arb.stats()["late_decisions"] == 1


def test_restarted_worker_is_rebuilt_from_ring_when_peer_is_down_too():
    arb, clock, (a, b) = make("race", breaker={"backoff_ns": 0})
    both = {5: lambda: (setattr(a, "mode", "crash"), setattr(b, "mode", "crash"))}
    recs, _, _, nos = run(arb, clock, 30, at=both)
    check_accounted(recs, nos)
    assert (recs["origin"][5:10] == Origin.FALLBACK).all()
    assert all(br.serving for br in arb.breakers)
    synced = [why for _, _, what, why in arb.events_log() if what == "synced"]
    # both came back with no healthy peer: each was rebuilt from the whole ring
    assert len(synced) == 4 and all(w.startswith("as of 0, ") for w in synced[2:])
    assert all(int(w.split()[3]) > 5 for w in synced[2:])
    recs, outs, _, nos = run(arb, clock, 5, start=30)
    assert (recs["origin"] == Origin.WORKER_A).all()
    np.testing.assert_allclose(outs[-1], expected(34, 34), rtol=1e-6)


def test_config_errors_name_the_field():
    with pytest.raises(
        ValueError,
        match="field 'policy' is 'fast'; invalid enum value 'fast'; valid: race, hedge, compare",
    ):
        ArbiterConfig(policy="fast")
    with pytest.raises(ValueError, match="field 'budget_ns' is 0; expected int >= 1"):
        ArbiterConfig(budget_ns=0)
    with pytest.raises(ValueError, match="hedge_delay_ns"):
        ArbiterConfig(budget_ns=10, hedge_delay_ns=20)
    with pytest.raises(ValueError, match="slow_max_misses"):
        BreakerConfig(slow_window=4, slow_max_misses=5)


def test_close_hands_back_undecided_requests_as_safe_default():
    arb, clock, _ = make("compare")
    arb.submit(quote(0))
    arb.submit(quote(1))
    clock.advance(10 * US)  # before any answer
    assert len(arb.poll().records) == 0
    arb.close()
    last = arb.poll()
    assert sorted(last.records["input_seq"].tolist()) == [0, 1]
    assert (last.records["origin"] == Origin.DEFAULT).all()
    assert arb.stats()["unanswered"] == 2
    clock.advance(100 * MS)
    assert len(arb.poll().records) == 0
    assert [link.starts for link in arb.links] == [1, 1]  # closed: nothing restarted


def test_both_slow_is_overload_not_a_fault_nobody_restarted():
    arb, clock, (a, b) = make("race")
    a.latency_ns = b.latency_ns = 3 * MS  # the host, not one worker, is slow
    recs, _, _, nos = run(arb, clock, 60)
    check_accounted(recs, nos)
    st = arb.stats()
    assert st["failovers"] == 0 and a.starts == b.starts == 1
    assert st["overload"] > 0
    assert (recs["origin"] == Origin.FALLBACK).all()  # fallback answered in budget each time


def _run_in_batches(policy: str, one_by_one: bool, at=None):
    """The same 120 quotes in batches of 1..9 (all submitted at one clock instant each),
    through submit_batch (one EVENTS per worker) or submit (one EVENT per event)."""
    arb, clock, links = make(policy, audit_every=4)
    sizes = [1 + (7 * j) % 9 for j in range(40)]
    recs, outs, alarms = [], [], []

    def poll_for(steps: int) -> None:
        for _ in range(steps):
            clock.advance(10 * US)
            b = arb.poll()
            recs.append(b.records.copy())
            outs.append(b.outputs.copy())
            alarms.append(b.alarms.copy())

    i = 0
    for j, k in enumerate(sizes):
        if i >= 120:
            break
        if at and j in at:
            at[j](links)
        batch = np.concatenate([quote(x).reshape(1) for x in range(i, min(i + k, 120))])
        decide = [x % 5 != 3 for x in range(i, i + len(batch))]  # some events feed state only
        if one_by_one:
            for r, d in zip(batch, decide, strict=True):
                arb.submit(r, decide=d)
        else:
            arb.submit_batch(batch, decide=decide)
        i += len(batch)
        poll_for(30)
    poll_for(300)
    return np.concatenate(recs), np.concatenate(outs), np.concatenate(alarms), arb.stats()


@pytest.mark.parametrize("policy", list(Policy))
@pytest.mark.parametrize("fault", ["none", "crash", "nan", "wrong"])
def test_batch_through_events_decides_exactly_as_one_by_one(policy, fault):
    def inject(links):
        links[0].mode = fault

    at = None if fault == "none" else {5: inject}
    single = _run_in_batches(policy, True, at)
    batched = _run_in_batches(policy, False, at)

    # A batch's rows go through the model together: a row may differ from its batch-1 answer
    # in the last bits (BLAS), so outputs compare to within float32 rounding, the rest exactly.
    def same_outputs(a, b):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    if fault == "none":  # the very same decisions in the same order, every field
        np.testing.assert_array_equal(single[0], batched[0])
        same_outputs(single[1], batched[1])
        np.testing.assert_array_equal(single[2], batched[2])

    # A crash found by a failed send is known after the whole batch was targeted, so the
    # batch's requests are hedged to B rather than sent to it as primary: answers (and so
    # decisions) may come in another order. Per input, every field but that order is equal.
    def by_input(run):
        i = np.argsort(run[0]["input_seq"], kind="stable")
        return [x[i] for x in run[:3]]

    (ra, oa, aa), (rb, ob, ab) = by_input(single), by_input(batched)
    fields = [f for f in ra.dtype.names if f != "seq"]
    np.testing.assert_array_equal(ra[fields], rb[fields])  # origins, stamps, versions
    same_outputs(oa, ob)
    np.testing.assert_array_equal(aa, ab)
    check_accounted(batched[0], [x for x in range(120) if x % 5 != 3])
    for key in ("decisions", "failovers", "unanswered", "disagreements", "alarms"):
        assert single[3][key] == batched[3][key], key
    assert single[3]["decisions_by_origin"] == batched[3]["decisions_by_origin"]


def test_the_deadline_runs_from_when_the_event_was_seen_not_when_the_arbiter_took_it():
    arb, clock, _ = make("race")  # budget 1 ms; A answers in 100 µs; fallback reserve 100 µs
    q = quote(1)
    q["ts_recv"] = clock.now_ns() - 950 * US  # queued 950 µs before the arbiter took it
    arb.submit(q)
    recs = []
    for _ in range(200):
        clock.advance(10 * US)
        recs.append(arb.poll().records.copy())
    (rec,) = np.concatenate(recs)
    assert rec["deadline"] == q["ts_recv"] + 1 * MS  # one deadline: ts_recv + budget
    # 50 µs were left: no worker answer could make it, so the fallback decided at once
    assert rec["origin"] == Origin.FALLBACK and rec["ts_decision"] <= rec["deadline"]
