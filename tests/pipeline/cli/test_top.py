import json
import socket

import numpy as np
import pytest
from rich.console import Console

from redline.feeds.clock import ReplayClock
from redline.pipeline.cli.main import main
from redline.pipeline.cli.top import parse_scrape, rates, render, scrape
from redline.pipeline.observe.metrics import Metrics


@pytest.fixture
def endpoint(make_decisions):
    clock = ReplayClock(0)
    m = Metrics(clock=clock, edges=["feed->prefetch"], workers=["a", "b"])
    d = make_decisions(1000, seed=21)
    m.observe_events(4000)
    m.observe_decisions(d)
    m.drop("feed->prefetch", 12)
    m.failover(2)
    m.set_worker_health("a", True)
    m.set_model_version("a", 5)
    clock.advance(2_000_000_000)
    port = m.start(0)
    yield m, clock, d, f"http://127.0.0.1:{port}/metrics"
    m.stop()


def _text(renderable) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_snapshot_from_a_live_endpoint(endpoint):
    m, _, d, url = endpoint
    snap = scrape(url)
    assert snap.events == 4000
    assert sum(snap.decisions.values()) == d.size
    assert snap.decisions["default"] == np.count_nonzero(d["origin"] == 3)
    assert snap.drops == {"feed->prefetch": 12}
    assert snap.failovers == 2
    assert snap.workers == {"a": 1, "b": 0}
    assert snap.model_versions == {"a": 5}
    assert snap.uptime_s == 2.0
    summary = m.latency.summary()
    assert snap.stages["tick_to_decision"]["p99"] == pytest.approx(summary["latency_ns"]["p99"])
    assert snap.stages["compute"]["p50"] == pytest.approx(summary["stages"]["compute"]["p50"])
    assert snap.stages["compute"]["count"] == m.latency.stages["compute"].count
    assert rates(snap) == {"events_per_s": 2000.0, "decisions_per_s": 500.0}


def test_rates_between_polls_use_graph_time(endpoint, make_decisions):
    m, clock, _, url = endpoint
    first = scrape(url)
    m.observe_events(300)
    m.observe_decisions(make_decisions(50, seed=1))
    clock.advance(500_000_000)
    second = scrape(url)
    assert rates(second, first) == {"events_per_s": 600.0, "decisions_per_s": 100.0}
    assert rates(second, second) == {"events_per_s": None, "decisions_per_s": None}


def test_render_shows_the_figures(endpoint):
    m, _, _, url = endpoint
    snap = scrape(url)
    text = _text(render(snap))
    p99_us = m.latency.summary()["stages"]["compute"]["p99"] / 1e3
    compute_line = next(line for line in text.splitlines() if "compute" in line)
    assert f"{p99_us:,.1f}" in compute_line
    assert "2,000/s" in text  # events rate
    assert "DOWN" in text  # worker b
    assert "v5" in text
    assert "drops feed->prefetch" in text and "12" in text
    assert "failovers 2" in text


def test_empty_stages_render_as_dashes():
    snap = parse_scrape(
        "# TYPE redline_events_total counter\nredline_events_total 0\n"
        "# TYPE redline_stage_latency_seconds summary\n"
        'redline_stage_latency_seconds_count{stage="compute"} 0\n'
        'redline_stage_latency_seconds_sum{stage="compute"} 0\n'
    )
    line = next(x for x in _text(render(snap)).splitlines() if "compute" in x)
    assert line.count("–") == 4


def test_top_once_prints_and_exits(endpoint, capsys):
    _, _, _, url = endpoint
    assert main(["top", "--url", url, "--once"]) == 0
    out = capsys.readouterr().out
    assert "tick_to_decision" in out and "latency (µs)" in out


def test_unreachable_or_foreign_endpoint_is_a_clear_error(capsys):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["top", "--url", f"http://127.0.0.1:{port}/metrics", "--once"]) == 2
    assert f"cannot scrape http://127.0.0.1:{port}/metrics" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a redline metrics endpoint"):
        parse_scrape("# TYPE up gauge\nup 1\n")


def test_live_mode_polls_and_shows_rates_between_polls(endpoint, monkeypatch, capsys):
    m, clock, _, url = endpoint
    polls = []

    def fake_sleep(seconds: float) -> None:  # graph time moves, no real waiting
        polls.append(seconds)
        if len(polls) == 1:
            m.observe_events(700)
            clock.advance(1_000_000_000)
        elif len(polls) == 2:
            m.stop()  # endpoint gone: top keeps the last frame and says why
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr("redline.pipeline.cli.top.time.sleep", fake_sleep)
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["top", "--url", url, "--interval", "0.25"]) == 0
    assert polls == [0.25, 0.25, 0.25]
    out = capsys.readouterr().out
    assert "events 4,700 (700/s)" in out  # rate from the two polls, not since start
    assert "cannot scrape" in out


def test_json_writes_one_snapshot_with_the_contract_keys(endpoint, tmp_path, capsys):
    m, _, d, url = endpoint
    path = tmp_path / "top.json"
    assert main(["top", "--url", url, "--json", str(path)]) == 0  # no live screen: one snapshot
    fig = json.loads(path.read_text())
    assert fig["events"] == 4000 and fig["decisions"] == d.size
    assert fig["decisions_by_origin"]["default"] == np.count_nonzero(d["origin"] == 3)
    assert fig["failovers"] == 2 and fig["drops_by_edge"] == {"feed->prefetch": 12}
    assert fig["workers_up"] == {"a": True, "b": False} and fig["model_versions"] == {"a": 5}
    summary = m.latency.summary()
    assert fig["latency_ns"]["p99"] == pytest.approx(summary["latency_ns"]["p99"], abs=1)
    assert fig["latency_ns"]["max"] == summary["latency_ns"]["max"]
    assert fig["stages"]["compute"]["count"] == m.latency.stages["compute"].count
    assert "tick_to_decision" not in fig["stages"]
    assert fig["events_per_s"] == 2000.0 and fig["uptime_s"] == 2.0
    assert [s["events"] for s in fig["snapshots"]] == [4000]
    assert "tick_to_decision" in capsys.readouterr().out


def test_count_takes_n_snapshots_with_rates_between_them(endpoint, tmp_path, monkeypatch):
    m, clock, _, url = endpoint

    def fake_sleep(seconds: float) -> None:  # graph time moves, no real waiting
        m.observe_events(500)
        clock.advance(500_000_000)

    monkeypatch.setattr("redline.pipeline.cli.top.time.sleep", fake_sleep)
    path = tmp_path / "top.json"
    assert main(["top", "--url", url, "--count", "3", "--json", str(path)]) == 0
    fig = json.loads(path.read_text())
    assert [s["events"] for s in fig["snapshots"]] == [4000, 4500, 5000]
    assert [s["events_per_s"] for s in fig["snapshots"]] == [2000.0, 1000.0, 1000.0]
    assert fig["events"] == 5000 and fig["uptime_s"] == 3.0  # the last one on top


def test_a_count_below_one_is_one_line(endpoint, capsys):
    _, _, _, url = endpoint
    assert main(["top", "--url", url, "--count", "0"]) == 2
    assert "--count 0: give at least 1 snapshot" in capsys.readouterr().err
