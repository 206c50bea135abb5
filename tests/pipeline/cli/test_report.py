import json

import numpy as np
import pytest
from matplotlib.image import imread

from redline.feeds.clock import ReplayClock
from redline.feeds.events import Flag, Origin
from redline.pipeline.cli.main import main
from redline.pipeline.cli.report import PLOTS, default_out_dir
from redline.pipeline.observe.journal import Journal
from redline.pipeline.observe.latency import STAGE_NAMES, stage_durations
from redline.pipeline.observe.worker_log import WorkerEvent, append_worker_events

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write_journal(path, decisions) -> None:
    clock = ReplayClock(0)
    with Journal(path, clock=clock, flush_interval_ns=10_000_000) as j:
        for chunk in np.array_split(decisions, 9):
            j.append(chunk)
            clock.advance(7_000_000)


def _rank_value(values: np.ndarray, pct: float) -> int:
    s = np.sort(values)
    return int(s[max(int(pct * s.size / 100 + 0.5), 1) - 1])


@pytest.fixture
def journal(tmp_path, make_decisions):
    d = make_decisions(3000, seed=13, step_ns=2_000_000)  # 6 s of decisions
    d["flags"][:20] = Flag.BAD_TS_RECV
    d["model_version"][2000:] = 3  # a hot swap two thirds in
    path = tmp_path / "run.arrow"
    _write_journal(path, d)
    return path, d


def test_report_figures_json_and_plots(journal, tmp_path, capsys):
    path, d = journal
    out, jpath = tmp_path / "plots", tmp_path / "fig" / "report.json"
    assert main(["report", str(path), "--out", str(out), "--json", str(jpath)]) == 0
    fig = json.loads(jpath.read_text())

    assert fig["decisions"] == 3000
    by_origin = np.bincount(d["origin"], minlength=4)
    assert fig["decisions_by_origin"] == {o.name.lower(): int(by_origin[o]) for o in Origin}
    assert fig["deadline_misses"] == int(np.count_nonzero(d["ts_decision"] > d["deadline"]))
    assert fig["deadline_misses"] >= by_origin[Origin.DEFAULT]  # defaults land after it here
    assert fig["latency_excluded"] == 20
    assert fig["model_versions"] == {"2": 2000, "3": 1000}
    raw = stage_durations(d)
    assert raw["tick_to_decision"].size == 2980
    for name, figures in [("tick_to_decision", fig["latency_ns"]), *fig["stages"].items()]:
        assert set(figures) == {"p50", "p99", "p999", "max"}
        vals = raw[name]
        assert figures["max"] == int(vals.max())
        for key, pct in (("p50", 50), ("p99", 99), ("p999", 99.9)):
            # the exact sample of HDR's rank (round(pct * N)), within HDR's 0.1%
            want = _rank_value(vals, pct)
            assert want <= figures[key] <= want * 1.001 + 1
    assert set(fig["stages"]) == set(STAGE_NAMES)

    for name in PLOTS:
        png = out / name
        assert png.read_bytes()[:8] == PNG_MAGIC
        img = imread(png)
        assert img.shape[0] > 200 and img.shape[1] > 600
        assert img[..., :3].std() > 0.01  # something was drawn

    text = capsys.readouterr().out
    assert "tick_to_decision" in text and "compute" in text
    assert f"deadline misses {fig['deadline_misses']:,}" in text
    p99_us = fig["stages"]["compute"]["p99"] / 1e3
    assert f"{p99_us:,.1f}" in next(x for x in text.splitlines() if "compute" in x)


def test_default_out_dir_is_what_the_help_names(journal, tmp_path, capsys):
    path, _ = journal
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    # it said JOURNAL_report/, a folder that is never written
    assert "default: STEM_report/ beside the journal" in help_text
    assert "runs/run_report/ for runs/run.arrow" in help_text
    assert main(["report", str(path)]) == 0
    assert default_out_dir(path) == tmp_path / "run_report"  # run.arrow: STEM is run
    for name in PLOTS:
        assert (tmp_path / "run_report" / name).read_bytes()[:8] == PNG_MAGIC


def test_an_empty_journal_is_an_error_not_empty_plots(tmp_path, make_decisions, capsys):
    path = tmp_path / "empty.arrow"
    _write_journal(path, make_decisions(0))
    jpath = tmp_path / "e.json"
    assert main(["report", str(path), "--json", str(jpath)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "empty.arrow: the journal holds no decisions; nothing to report" in err
    assert not default_out_dir(path).exists() and not jpath.exists()


def test_missing_or_foreign_journal_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.arrow")]) == 2
    assert "nope.arrow does not exist" in capsys.readouterr().err
    junk = tmp_path / "junk.arrow"
    junk.write_text("hello")
    assert main(["report", str(junk)]) == 2
    assert "not a redline journal" in capsys.readouterr().err


def test_single_decision_journal_still_plots(tmp_path, make_decisions):
    path = tmp_path / "one.arrow"
    _write_journal(path, make_decisions(1))
    assert main(["report", str(path), "--out", str(tmp_path / "o")]) == 0
    for name in PLOTS:
        assert (tmp_path / "o" / name).read_bytes()[:8] == PNG_MAGIC


def _drawn_figures(monkeypatch) -> list:
    """The figures `redline report` saves, kept open to look at what was drawn."""
    from matplotlib.figure import Figure

    saved = []
    real = Figure.savefig

    def keep(fig, *args, **kwargs):
        real(fig, *args, **kwargs)
        renderer = fig.canvas.get_renderer()  # as saved; gone once the figure is closed
        legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
        fig.boxes_as_saved = (
            [lg.get_window_extent(renderer) for lg in legends],
            {ax.get_title(): ax.get_window_extent(renderer) for ax in fig.axes},
        )
        saved.append(fig)

    monkeypatch.setattr(Figure, "savefig", keep)
    return saved


def test_plots_mark_worker_faults_and_keep_legends_off_the_data(journal, tmp_path, monkeypatch):
    path, d = journal
    t0 = int(d["ts_decision"].min())
    events = [
        WorkerEvent(t0 + 2_000_000_000, "a", "out", "crash"),
        WorkerEvent(t0 + 2_400_000_000, "a", "restart", "pid 4242"),
        WorkerEvent(t0 + 3_100_000_000, "a", "readmitted"),
    ]
    assert append_worker_events(path, events) == 3
    figs = _drawn_figures(monkeypatch)
    jpath = tmp_path / "r.json"
    assert main(["report", str(path), "--out", str(tmp_path / "o"), "--json", str(jpath)]) == 0
    hist, over_time, per_second = figs
    assert json.loads(jpath.read_text())["worker_events"][0] == {
        "ts_ns": t0 + 2_000_000_000, "worker": "a", "what": "out", "why": "crash",
    }  # fmt: skip

    # the budget line: where the decisions' deadlines put it (2 ms after ts_recv)
    (ax,) = over_time.axes
    budget = [ln for ln in ax.get_lines() if ln.get_label().startswith("budget")]
    assert [ln.get_ydata()[0] for ln in budget] == [2000.0]
    t2t = hist.axes[0]
    assert any(ln.get_label() == "budget 2,000 µs" for ln in t2t.get_lines())

    # one marker per worker event, at its time, on both plots over time
    for fig in (over_time, per_second):
        marks = {
            ln.get_label(): ln.get_xdata()[0]
            for ln in fig.axes[0].get_lines()
            if ln.get_label().startswith("worker")
        }
        assert marks == {
            "worker a out (crash)": pytest.approx(2.0),
            "worker a restart (pid 4242)": pytest.approx(2.4),
            "worker a readmitted": pytest.approx(3.1),
        }

    # legends never cover the data: outside every axes
    for fig in figs:
        legends, axes = fig.boxes_as_saved
        assert legends
        for box in legends:
            for title, ax_box in axes.items():
                assert not box.overlaps(ax_box), title


def test_a_journal_without_a_worker_log_says_it_has_no_markers(journal, capsys):
    path, _ = journal
    assert main(["report", str(path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "no worker log (run.workers.jsonl beside the journal)" in out


def test_the_bundled_demo_preset_feeds_top_and_report(tmp_path):
    """`redline run demo`, then `redline top` and `redline report` with their defaults: the
    preset journals (it had no path) and serves /metrics (it had port 0)."""
    import subprocess
    import sys
    import time

    import pyarrow.parquet as pq

    from redline.replay_data import DIR

    quotes = pq.read_table(DIR / "market_quotes.parquet").slice(0, 300)
    pq.write_table(quotes, tmp_path / "q.parquet")
    cli = [sys.executable, "-m", "redline.pipeline.cli.main"]
    graph = subprocess.Popen([*cli, "run", "demo"], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([*cli, "top", "--json", "top.json"], cwd=tmp_path).returncode:
            assert time.monotonic() < deadline and graph.poll() is None, "no /metrics on 9464"
            time.sleep(0.5)
        up = json.loads((tmp_path / "top.json").read_text())["workers_up"]
        assert len(up) == 2 and all(up.values()), up
        pub = [*cli, "publish", "q.parquet", "--endpoint", "tcp://127.0.0.1:5555"]
        subprocess.run([*pub, "--socket", "push", "--speed", "max"], cwd=tmp_path, check=True)
        assert graph.wait(60) == 0, graph.stderr.read()
    finally:
        graph.kill()
    journal = tmp_path / "redline-demo" / "journal.arrow"
    report = subprocess.run(
        [*cli, "report", str(journal), "--json", "r.json"], cwd=tmp_path, capture_output=True
    )
    assert report.returncode == 0, report.stderr
    assert json.loads((tmp_path / "r.json").read_text())["decisions"] == 300
    for name in PLOTS:
        assert (tmp_path / "redline-demo" / "journal_report" / name).is_file()
