import numpy as np

from redline.feeds.events import Flag
from redline.feeds.importers import semantics as sem
from redline.pipeline.cli.inspect_sequence import SourceSequence, per_source


def feed(semantics, seq, flags=None, batches=1):
    st = SourceSequence(semantics)
    seq = np.asarray(seq, np.uint64)
    flags = np.zeros(len(seq), np.uint8) if flags is None else np.asarray(flags, np.uint8)
    ts = np.arange(1, len(seq) + 1, dtype=np.int64)
    for part in np.array_split(np.arange(len(seq)), batches):
        st.add(seq[part], ts[part], flags[part])
    return st.report()


def test_contiguous_holes_fill_late_and_split_across_batches_alike():
    for batches in (1, 3):
        r = feed(sem.CONTIGUOUS, [0, 1, 4, 2, 2, 5, 8], batches=batches)
        # 1 -> 4 opens [2, 3], 2 fills one, the second 2 is a duplicate, 5 -> 8 opens [6, 7]
        assert (r["gaps"], r["missing"], r["late"], r["duplicates"]) == (2, 3, 2, 1)


def test_per_event_counts_flagged_gaps_and_ids_going_back_not_repeats_or_jumps():
    gap = int(Flag.GAP_BEFORE)
    r = feed(sem.PER_EVENT, [10, 10, 40, 40, 90, 80], [0, 0, 0, 0, gap, 0])
    assert (r["gaps"], r["missing"], r["late"], r["duplicates"]) == (1, None, 1, 0)


def test_per_source_sums_the_instruments_of_a_source():
    a, b = SourceSequence(sem.PER_INSTRUMENT), SourceSequence(sem.PER_INSTRUMENT)
    z = np.zeros(2, np.uint8)
    a.add(np.array([5, 7], np.uint64), np.array([1, 2]), z)  # one missing: 6
    b.add(np.array([100, 101], np.uint64), np.array([1, 2]), z)
    r = per_source({(4, 1): a, (4, 2): b})["4"]
    assert (r["events"], r["seq_first"], r["seq_last"], r["gaps"], r["missing"]) == (
        4,
        5,
        101,
        1,
        1,
    )
