import numpy as np
import pytest

from redline.feeds import events as ev
from redline.feeds.sequence import SeqEvent, SequenceTracker


def _recs(seqs, source_id=1):
    r = ev.empty(ev.RecordType.QUOTE, len(seqs))
    r["seq"] = seqs
    r["source_id"] = source_id
    return r


@pytest.fixture
def log():
    return []


@pytest.fixture
def tracker(log):
    return SequenceTracker(lambda *e: log.append(e), reorder_window=4)


def test_in_order_batches_raise_nothing(tracker, log):
    tracker.observe(_recs([0, 1, 2]))
    tracker.observe(_recs([3]))
    tracker.observe(_recs([4, 5]))
    assert log == []
    assert tracker.state(1).expected == 6
    assert tracker.is_clean(1)


def test_gap_then_late_fill_is_out_of_order_then_recovered(tracker, log):
    r = _recs([0, 1, 4, 2, 3, 5])
    tracker.observe(r)
    assert log == [
        (SeqEvent.GAP, 1, 4, 2),
        (SeqEvent.OUT_OF_ORDER, 1, 2, 5),
        (SeqEvent.OUT_OF_ORDER, 1, 3, 5),
        (SeqEvent.RECOVERED, 1, 3, 5),
    ]
    assert (r["flags"] & ev.Flag.GAP_BEFORE).astype(bool).tolist() == [0, 0, 1, 0, 0, 0]
    st = tracker.state(1)
    assert (st.gaps, st.missing_total, st.out_of_order, st.lost) == (1, 2, 2, 0)
    assert tracker.is_clean(1)


def test_duplicates_are_told_apart_from_late_arrivals(tracker, log):
    tracker.observe(_recs([0, 1, 2, 1, 2]))
    assert log == [(SeqEvent.DUPLICATE, 1, 1, 3), (SeqEvent.DUPLICATE, 1, 2, 3)]
    assert tracker.state(1).duplicates == 2


def test_missing_events_are_given_up_after_the_reorder_window(tracker, log):
    tracker.observe(_recs([0, 3]))  # 1 and 2 missing
    assert not tracker.is_clean(1)
    tracker.observe(_recs([4, 5, 6]))  # each given up once 4 newer numbers passed it
    assert log[1:] == [
        (SeqEvent.LOST, 1, 1, 6),
        (SeqEvent.LOST, 1, 2, 7),
        (SeqEvent.RECOVERED, 1, 6, 7),
    ]
    assert tracker.state(1).lost == 2
    assert tracker.is_clean(1)
    tracker.observe(_recs([2]))  # too late now: counted as a duplicate
    assert log[-1][0] == SeqEvent.DUPLICATE


def test_sources_are_tracked_separately_within_one_batch(tracker, log):
    r = _recs([0, 0, 1, 1, 3])
    r["source_id"] = [1, 2, 1, 2, 2]
    tracker.observe(r)
    assert log == [(SeqEvent.GAP, 2, 3, 2)]
    assert tracker.is_clean(1) and not tracker.is_clean(2)
    assert tracker.totals()["sources_not_clean"] == 1


def test_joining_mid_stream_and_reset(log):
    t = SequenceTracker(lambda *e: log.append(e), first_seq=None)
    t.observe(_recs([100, 101]))
    assert log == []
    t.observe(_recs([50]))
    assert log == [(SeqEvent.DUPLICATE, 1, 50, 102)]
    t.reset(1)
    t.observe(_recs([7]))  # after a reset the next event starts the source afresh
    assert t.state(1).expected == 8


def test_first_event_after_a_gap_from_zero_is_a_gap(tracker, log):
    tracker.observe(_recs(np.array([2, 3])))
    assert log == [(SeqEvent.GAP, 1, 2, 0)]


def test_bad_window_is_rejected():
    with pytest.raises(ValueError, match="reorder_window must be >= 1"):
        SequenceTracker(reorder_window=0)


def test_mark_gaps_off_leaves_records_untouched(log):
    t = SequenceTracker(lambda *e: log.append(e), mark_gaps=False)
    r = _recs([0, 2])
    t.observe(r)
    assert log == [(SeqEvent.GAP, 1, 2, 1)]
    assert (r["flags"] == 0).all()


def test_the_fast_path_catches_disorder_and_other_sources_inside_a_batch(tracker, log):
    tracker.observe(_recs([0, 1]))
    tracker.observe(_recs([2, 4, 3, 5]))  # starts where expected, disordered inside
    assert log == [(SeqEvent.GAP, 1, 4, 3), (SeqEvent.OUT_OF_ORDER, 1, 3, 5),
                   (SeqEvent.RECOVERED, 1, 3, 5)]  # fmt: skip
    mixed = _recs([6, 0, 7])
    mixed["source_id"] = [1, 9, 1]
    tracker.observe(mixed)  # source 9 is new: starts at 0, no event
    assert tracker.state(9).expected == 1 and tracker.state(1).expected == 8
    assert len(log) == 3


def test_one_absurd_number_is_an_outlier_and_tracking_goes_on(tracker, log):
    tracker.observe(_recs([0, 1, 2]))
    tracker.observe(_recs([2**64 - 5]))  # one corrupt frame
    tracker.observe(_recs([3, 4, 5]))
    t = tracker.totals()
    assert t == {**t, "outliers": 1, "missing": 0, "duplicates": 0, "gaps": 0, "resets": 0}
    assert tracker.state(1).expected == 6 and tracker.is_clean(1)
    assert [e[0] for e in log] == [SeqEvent.OUTLIER]


def test_a_far_jump_followed_by_its_successor_is_a_restart_not_a_loss(tracker, log):
    tracker.observe(_recs([0, 1, 2, 3]))
    tracker.observe(_recs([5_000_000, 5_000_001, 5_000_002]))  # numbering restarted up there
    tracker.observe(_recs([0, 1]))  # ... and again from 0 (a publisher restart)
    t = tracker.totals()
    assert (t["resets"], t["outliers"], t["missing"], t["duplicates"]) == (2, 0, 0, 0)
    assert tracker.state(1).expected == 2 and tracker.is_clean(1)
