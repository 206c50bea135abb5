import pytest

from redline.pipeline.observe.worker_log import (
    WorkerEvent,
    append_worker_events,
    read_worker_log,
    worker_log_path,
)


def test_events_survive_a_round_trip_in_time_order(tmp_path):
    journal = tmp_path / "run.arrow"
    assert read_worker_log(journal) is None  # no log: unknown, not "no incidents"
    late, early = WorkerEvent(20, "b", "restart", "pid 7"), WorkerEvent(10, "a", "out", "crash")
    assert append_worker_events(journal, [late]) == 1
    assert append_worker_events(journal, [early]) == 1
    assert worker_log_path(journal) == tmp_path / "run.workers.jsonl"
    assert read_worker_log(journal) == [early, late]
    assert early.fault and not late.fault
    append_worker_events(journal, [])
    assert read_worker_log(journal) == [early, late]


def test_a_torn_last_line_is_left_out_and_a_bad_line_is_one_line(tmp_path):
    journal = tmp_path / "run.arrow"
    append_worker_events(journal, [WorkerEvent(10, "a", "out", "crash")])
    with open(worker_log_path(journal), "a") as f:
        f.write('{"ts_ns": 11, "worker": "a", "wh')  # the writer was killed mid-line
    assert read_worker_log(journal) == [WorkerEvent(10, "a", "out", "crash")]
    worker_log_path(journal).write_text('{"ts_ns": 1, "worker": "a", "what": "out"}\nnope\n')
    with pytest.raises(ValueError, match=r"run.workers.jsonl line 2: not a worker event"):
        read_worker_log(journal)
