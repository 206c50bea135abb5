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


def test_default_out_dir_and_empty_journal(tmp_path, make_decisions, capsys):
    path = tmp_path / "empty.arrow"
    _write_journal(path, make_decisions(0))
    jpath = tmp_path / "e.json"
    assert main(["report", str(path), "--json", str(jpath)]) == 0
    fig = json.loads(jpath.read_text())
    assert fig["decisions"] == 0 and fig["deadline_misses"] == 0
    assert fig["latency_ns"] == {"p50": None, "p99": None, "p999": None, "max": None}
    for name in PLOTS:
        assert (default_out_dir(path) / name).read_bytes()[:8] == PNG_MAGIC
    assert default_out_dir(path) == tmp_path / "empty_report"


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
