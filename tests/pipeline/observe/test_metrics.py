import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from redline.feeds.clock import ReplayClock
from redline.feeds.events import Origin, RecordType, empty
from redline.pipeline.cli.report import journal_figures
from redline.pipeline.observe.journal import Journal, read_journal
from redline.pipeline.observe.latency import STAGE_NAMES, count_deadline_misses
from redline.pipeline.observe.metrics import Metrics


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def metrics():
    clock = ReplayClock(0)
    m = Metrics(clock=clock, edges=["feed->prefetch", "arbiter->worker_a"], workers=["a", "b"])
    m.clock = clock  # for the tests
    yield m
    m.stop()


def test_scrape_over_http_reports_what_was_observed(metrics, make_decisions):
    d = make_decisions(2000, seed=9)
    metrics.observe_events(5000)
    metrics.observe_decisions(d[:700])
    metrics.observe_decisions(d[700:])
    metrics.drop("feed->prefetch", 3)
    metrics.drop("feed->prefetch")
    metrics.failover()
    metrics.set_worker_health("a", True)
    metrics.set_model_version("a", 7)
    metrics.set_model_version("b", 6)
    metrics.clock.advance(2_500_000_000)
    port = metrics.start(0)
    assert port > 0
    got = _scrape(port)

    assert got[("redline_events_total", ())] == 5000
    by_origin = np.bincount(d["origin"], minlength=len(Origin))
    for o in Origin:
        assert got[("redline_decisions_total", (("origin", o.name.lower()),))] == by_origin[o]
    assert got[("redline_deadline_misses_total", ())] == count_deadline_misses(d) > 0
    assert got[("redline_drops_total", (("edge", "feed->prefetch"),))] == 4
    assert got[("redline_drops_total", (("edge", "arbiter->worker_a"),))] == 0
    assert got[("redline_failovers_total", ())] == 1
    assert got[("redline_worker_up", (("worker", "a"),))] == 1
    assert got[("redline_worker_up", (("worker", "b"),))] == 0
    assert got[("redline_model_version", (("worker", "a"),))] == 7
    assert got[("redline_uptime_seconds", ())] == 2.5

    summary = metrics.latency.summary()
    name = "redline_stage_latency_seconds"
    for stage, figures in [("tick_to_decision", summary["latency_ns"]), *summary["stages"].items()]:
        for q, key in (("0.5", "p50"), ("0.99", "p99"), ("0.999", "p999")):
            assert got[(name, (("quantile", q), ("stage", stage)))] == pytest.approx(
                figures[key] / 1e9
            )
        assert got[("redline_stage_latency_max_seconds", (("stage", stage),))] == pytest.approx(
            figures["max"] / 1e9
        )
    assert got[(name + "_count", (("stage", "tick_to_decision"),))] == d.size
    n_default = int(by_origin[Origin.DEFAULT])
    assert got[(name + "_count", (("stage", "compute"),))] == d.size - n_default
    t2d = (d["ts_decision"] - d["ts_recv"]).sum() / 1e9
    assert got[(name + "_sum", (("stage", "tick_to_decision"),))] == pytest.approx(t2d)


def test_empty_endpoint_shows_zeros_and_no_quantiles(metrics):
    got = _scrape(metrics.start(0))
    assert got[("redline_events_total", ())] == 0
    assert got[("redline_decisions_total", (("origin", "default"),))] == 0
    for stage in ("tick_to_decision", *STAGE_NAMES):
        assert got[("redline_stage_latency_seconds_count", (("stage", stage),))] == 0
    assert not any(k[0] == "redline_stage_latency_seconds" for k in got)


def test_two_graphs_in_one_process_do_not_collide(metrics):
    other = Metrics(clock=ReplayClock(0))
    other.observe_events(2)
    metrics.observe_events(1)
    try:
        assert _scrape(other.start(0))[("redline_events_total", ())] == 2
        assert _scrape(metrics.start(0))[("redline_events_total", ())] == 1
        with pytest.raises(RuntimeError, match="already serving"):
            metrics.start(0)
    finally:
        other.stop()


def test_observe_refuses_wrong_records(metrics):
    with pytest.raises(TypeError, match="DECISION_DTYPE"):
        metrics.observe_decisions(empty(RecordType.TRADE, 1))


def test_journal_listener_feeds_metrics_and_the_report_agrees(tmp_path, make_decisions):

    clock = ReplayClock(0)
    m = Metrics(clock=clock)
    d = make_decisions(1500, seed=17)
    path = tmp_path / "j.arrow"
    with Journal(
        path, clock=clock, flush_interval_ns=1_000_000, on_flush=[m.observe_decisions]
    ) as j:
        for chunk in np.array_split(d, 40):
            clock.advance(400_000)
            j.append(chunk)  # flushes every third append (1.2 ms > 1 ms)
        assert j.pending > 0
        assert m.latency.decisions == d.size - j.pending  # fed per flushed batch
    assert m.latency.decisions == d.size
    fig = journal_figures(read_journal(path))
    summary = m.latency.summary()
    assert fig["latency_ns"] == summary["latency_ns"]
    assert fig["stages"] == summary["stages"]
    got = _scrape(m.start(0))
    m.stop()
    assert got[("redline_deadline_misses_total", ())] == fig["deadline_misses"]
    for origin, n in fig["decisions_by_origin"].items():
        assert got[("redline_decisions_total", (("origin", origin),))] == n
