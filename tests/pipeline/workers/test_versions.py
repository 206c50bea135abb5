"""Model versions in a worker engine (the bookkeeping the CPU and CUDA engines share), and the
previous version timed in shadow beside the new one: what the swap's watch judges by."""

from __future__ import annotations

import numpy as np
import pytest

from redline.feeds.events import RecordType
from redline.pipeline.workers.engines import CpuEngine, on_version_message
from redline.pipeline.workers.faults import FaultPlan
from redline.pipeline.workers.protocol import Kind, decode_reply
from redline.pipeline.workers.versions import VersionBook

from .test_engines import Identity, quote


class Scaled(Identity):
    """The identity times `k`: each version's answers say which version computed them."""

    max_batch = 4

    def __init__(self, version_id: int, k: float) -> None:
        self.version_id, self.version, self.k = version_id, f"v{version_id}", k

    def run_into(self, x, out):
        out[...] = x * self.k


def engine(n: int = 12) -> CpuEngine:
    e = CpuEngine(Scaled(3, 1.0))
    for no in range(1, n + 1):
        e.apply(no, RecordType.QUOTE, quote(1, no, no + 1))
    return e


def test_the_book_answers_each_event_with_its_version_and_never_drops_the_serving_one():
    book = VersionBook(3, "plan3")
    book.add(4, "plan4")
    assert book.use(10, 4) == "plan4"
    book.use(20, 3)  # the flip back: 4 stays loaded
    assert [book.version_of(n) for n in (1, 9, 10, 19, 20)] == [3, 3, 4, 4, 3]
    nos = np.array([8, 9, 10, 19, 20, 21], np.uint64)
    assert book.version_spans(nos) == [(0, 2, 3), (2, 4, 4), (4, 6, 3)]
    with pytest.raises(ValueError, match="serving"):
        book.drop(3)
    assert book.drop(4) == "plan4"
    with pytest.raises(LookupError, match="version 4 of event 15 is unloaded"):
        book.entry_of(15)
    with pytest.raises(ValueError, match="not loaded"):
        book.use(30, 4)


def test_the_shadow_is_timed_on_the_same_rows_and_the_answer_stays_the_serving_versions():
    e = engine()
    e.add_plan(Scaled(4, 2.0))
    e.use(5, 4)
    e.start_shadow(3, every=1, period_ns=10**12)
    out = np.zeros(8, np.float32)
    e.answer_into(12, out)
    assert out[:2].tolist() == [24, 26]  # version 4's answer (x2), not the shadow's
    e.answer_into(3, out)  # a late ask before the flip: version 3's, not timed
    assert out[:2].tolist() == [3, 4]
    batch = np.zeros((6, 8), np.float32)
    assert e.answer_batch_into(np.arange(7, 13, dtype=np.uint64), batch).all()
    assert batch[:, 0].tolist() == [14, 16, 18, 20, 22, 24]
    assert e.shadow.n == 3  # one single-row call and two calls of the batch (max_batch 4)
    assert e.shadow.pairs[:3, 0].tolist() == [1, 4, 2]  # rows per call
    assert (e.shadow.pairs[:3, 1:] > 0).all()


@pytest.mark.parametrize(
    ("fault", "new_ms", "old_ms"),
    [("slow_new@0:0.004", 4, 0), ("slow@0:0.004", 4, 4)],
)
def test_a_slower_new_version_shows_in_the_pairs_and_a_host_slowdown_in_both(fault, new_ms, old_ms):
    e = engine()
    e.faults = FaultPlan()
    e.faults.arm(fault)
    e.add_plan(Scaled(4, 2.0))
    e.use(1, 4)
    e.start_shadow(3, every=1, period_ns=10**12)
    out = np.zeros(8, np.float32)
    for no in range(1, 9):
        e.faults.before_answer()
        e.answer_into(no, out)
    pairs = e.shadow.pairs[: e.shadow.n]
    assert len(pairs) == 8
    new, old = np.median(pairs[:, 1]) / 1e6, np.median(pairs[:, 2]) / 1e6
    # A sleep lasts at least what it asks; a busy host only adds to it.
    assert new >= new_ms and old >= old_ms
    if not old_ms:
        assert new / old > 10  # the new version alone is slow
    else:
        assert 0.5 < new / old < 2  # both slowed alike


def test_shadow_messages_sample_report_and_flush_before_a_flip():
    e = engine()
    e.add_plan(Scaled(4, 2.0))
    e.use(1, 4)
    every = np.uint32(2).tobytes()
    assert on_version_message(e, Kind.SHADOW, 3, 10**12, every) is None  # nothing held yet
    out = np.zeros(8, np.float32)
    for no in range(1, 9):
        e.answer_into(no, out)
    assert e.shadow.n == 4  # one call in two
    assert not e.shadow.due(e.shadow.last_report + 10**11)  # the period has not passed
    # The flip back first hands over what was timed under version 4.
    frames = on_version_message(e, Kind.USE, 3, 9, b"")
    msg = decode_reply(frames)
    assert (msg.kind, msg.id, msg.version, msg.stamps[0]) == (Kind.SHADOWED, 4, 3, 4)
    pairs = np.frombuffer(msg.payload, np.int64).reshape(-1, 3)
    assert pairs[:, 0].tolist() == [1, 1, 1, 1] and e.shadow.n == 0
    e.answer_into(9, out)
    assert e.shadow.n == 0  # version 3 serves: nothing to time it against
    assert on_version_message(e, Kind.SHADOW, 0, 0, b"") is None and e._shadow is None
    with pytest.raises(ValueError, match="SHADOW: model version 7 is not loaded"):
        on_version_message(e, Kind.SHADOW, 7, 10**6, b"")
    e.start_shadow(4)
    e.drop(4)  # dropping the timed version stops the timing
    assert e.shadow.version == 0 and e._shadow is None
