"""`redline demo` end to end, small: real publisher process, real ZeroMQ, two
worker processes, chaos on; asserts the contract of the summary."""

import json

import pytest

from redline.feeds.events import Origin
from redline.pipeline.cli import main as cli
from redline.pipeline.cli.demo import RECORDINGS, count_events
from redline.pipeline.observe.journal import read_journal
from redline.pipeline.observe.worker_log import read_worker_log
from redline.replay_data import DIR


def test_demo_accounts_for_every_event_and_fails_over(tmp_path):
    out = tmp_path / "demo.json"
    argv = ["demo", "--seconds", "3", "--speed", "3", "--out", str(tmp_path), "--json", str(out)]
    assert cli.main([*argv, "--no-progress"]) == 0
    f = json.loads(out.read_text())
    for key in ("events", "decisions", "decisions_by_origin", "lost_decisions", "deadline_misses",
                "failovers", "latency_ns", "stages", "events_per_s", "peak_rss_mb"):  # fmt: skip
        assert key in f, key
    assert f["events"] == count_events([str(DIR / r) for r in RECORDINGS], 3, (1,)) > 0
    assert f["lost_decisions"] == 0
    assert sum(f["decisions_by_origin"].values()) == f["decisions"] > 0
    # every event the feed accepted: sent to the workers, filtered (other instrument) or conflated
    arb = f["arbiter_node"]
    assert f["events"] == arb["events"] + arb["filtered"] + f["conflated"]["ticks"]
    assert f["killed_worker_pid"] and f["failovers"] >= 1
    d = read_journal(tmp_path / "journal.arrow")
    assert len(d) == f["decisions"]
    assert f["deadline_misses"] == int((d["ts_decision"] > d["deadline"]).sum())
    assert set(f["latency_ns"]) == {"p50", "p99", "p999", "max"} and f["latency_ns"]["p50"] > 0
    assert {Origin(o).name.lower() for o in set(d["origin"])} <= set(f["decisions_by_origin"])
    assert (tmp_path / "latency_histograms.png").stat().st_size > 0
    # the kill is in the worker log beside the journal (the plots mark it), at the journal's time
    events = read_worker_log(tmp_path / "journal.arrow")
    faults = [e for e in events if e.fault]
    assert faults and faults[0].worker == "A"
    assert d["ts_decision"].min() < faults[0].ts_ns < d["ts_decision"].max()
    assert any(e.what == "restart" for e in events)


def test_demo_with_the_book_serves_the_book_model_on_every_event(tmp_path):
    from redline.kernels.plans.demo_model import book_model_dir
    from redline.kernels.plans.numpy_loader import load_cpu_plan
    from redline.kernels.training import edge
    from redline.pipeline.cli.demo import BOOK

    out = tmp_path / "demo.json"
    argv = ["demo", "--book", "--no-chaos", "--seconds", "2", "--speed", "3", "--out",
            str(tmp_path), "--json", str(out), "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    f = json.loads(out.read_text())
    files = [str(DIR / r) for r in (*RECORDINGS, BOOK)]
    assert f["events"] == count_events(files, 2, (1,)) > count_events(files[:2], 2, (1,))
    assert f["lost_decisions"] == 0 and f["model_edge"] == edge(str(book_model_dir()))
    d = read_journal(tmp_path / "journal.arrow")
    served = {int(v) for v in d["model_version"][d["origin"] == Origin.WORKER_A]}
    assert served == {int(load_cpu_plan(book_model_dir()).version_id)}


@pytest.mark.parametrize(
    "argv, expect",
    [
        (["--speed", "-1"], "argument --speed: '-1': give a speed in (0, 1000] or 'max'"),
        (["--speed", "0"], "argument --speed: '0': give a speed in (0, 1000] or 'max'"),
        (["--seconds", "0"], "argument --seconds: '0': give seconds of the recording in (0, 3600]"),
        (["--seconds", "-5"], "argument --seconds: '-5'"),
        (["--instruments", "x"], "argument --instruments: 'x': give instrument ids separated"),
        (["--instruments", "9"], "--instruments: [9] not in the bundled recording (it has [1, 2"),
    ],
)
def test_a_bad_demo_argument_is_one_line_naming_it_and_exit_2(argv, expect, capsys):
    try:
        rc = cli.main(["demo", *argv])
    except SystemExit as exc:  # argparse's own checks exit from inside parse_args
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err


def test_demo_out_naming_a_file_is_refused(tmp_path, capsys):
    f = tmp_path / "f.txt"
    f.write_text("x")
    assert cli.main(["demo", "--out", str(f)]) == 2
    assert f"--out {f}: is a file; give a folder" in capsys.readouterr().err
