"""The graph end to end with a fake arbiter: one process and several from the
same TOML, stamps on every decision, graceful stop loses nothing."""

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from redline.feeds.events import QUOTE_DTYPE, STAGES, Batch, Origin, RecordType, Side
from redline.feeds.live.publisher import publish_batches
from redline.pipeline.cli.run import run_graph
from redline.pipeline.graph import config as gc
from redline.pipeline.observe.journal import read_journal

HERE = Path(__file__).parent
FAKE = HERE / "fake_arbiter.py"

GRAPH = """
[graph]
name = "t"
budget_us = 100000

[edges.ticks]
address = "ipc://{d}/ticks"
policy = "conflate"
hwm = 16

[edges.answers]
address = "ipc://{d}/answers"

[edges.decisions]
address = "ipc://{d}/decisions"

[nodes.feed]
kind = "feed"
source = "ipc://{d}/pub"
out = "ticks"

[nodes.arbiter]
kind = "arbiter"
in = "ticks"
out = "answers"
instruments = [1, 2]

[nodes.strategy]
kind = "strategy"
in = "answers"
out = "decisions"
threshold = 0.5
max_position = 1000000
max_orders_per_s = 1000000
stale_after_us = 10000000

[nodes.journal]
kind = "journal"
in = "decisions"
path = "{d}/journal.arrow"
flush_interval_ms = 20
"""


def quotes(n: int, n_inst: int = 3, step_ns: int = 200_000) -> np.ndarray:
    q = np.zeros(n, QUOTE_DTYPE)
    q["seq"] = np.arange(n)
    q["instrument_id"] = 1 + np.arange(n) % n_inst  # instrument 3 never asks for a decision
    q["ts_event"] = q["ts_recv"] = 1_000_000 + np.arange(n) * step_ns
    q["bid_px"] = 10_000 + np.arange(n) % 7
    q["ask_px"] = q["bid_px"] + 2
    q["bid_sz"] = q["ask_sz"] = 5
    return q


def write_graph(tmp_path: Path) -> Path:
    path = tmp_path / "graph.toml"
    path.write_text(GRAPH.format(d=tmp_path))
    return path


def publish_in_thread(endpoint: str, q: np.ndarray, speed: float | None) -> threading.Thread:
    t = threading.Thread(
        target=publish_batches,
        args=(iter([Batch(RecordType.QUOTE, q)]), endpoint),
        kwargs={
            "speed": speed,
            "wait_timeout_s": 60,
            "max_batch": 8,
            "context": zmq.Context(),
            "spin_ns": 0,
        },
        daemon=True,
    )
    t.start()
    return t


def check_accounting(figs: list[dict], journal: Path, published: np.ndarray) -> np.ndarray:
    """Every event is accounted for: decided, conflated away, or not a decision's."""
    nodes = {k: v for f in figs for k, v in f["node_stats"].items()}
    edges = {}
    for f in figs:
        for k, v in f["edge_stats"].items():
            edges.setdefault(k, {}).update(v)
    accepted = nodes["feed"]["events"]
    d = read_journal(journal)
    asked = nodes["arbiter"]["asked"]
    decisions = nodes["journal"]["decisions"]
    assert len(d) == decisions == asked == nodes["strategy"]["decisions"]
    assert all(e["sent"] == e["received"] for e in edges.values())  # ipc never loses
    # conflation only drops quotes, and each accepted quote of 1/2 asked for exactly one decision
    seen = published[:accepted]  # the publisher's order is the feed's (ipc loses nothing)
    deciding = seen[np.isin(seen["instrument_id"], [1, 2])]
    got = set(d["input_seq"].tolist())
    assert len(got) == len(d)  # no decision twice
    assert got <= set(deciding["seq"].tolist())
    assert accepted == (
        nodes["arbiter"]["events"] + nodes["arbiter"]["filtered"] + edges["ticks"]["drops"]
    )
    assert len(deciding) - len(got) <= edges["ticks"]["drops"]
    # the whole latency breakdown, in pipeline order, on every decision
    stamps = np.stack([d["ts_recv"]] + [d[s] for s in STAGES])
    assert (stamps > 0).all() and (np.diff(stamps, axis=0) >= 0).all()
    # misses are timing (not asserted); their count must match the journal's
    assert nodes["journal"]["deadline_misses"] == int((d["ts_decision"] > d["deadline"]).sum())
    assert set(d["origin"]) == {Origin.WORKER_A}
    want = np.where(d["input_seq"] % 2 == 0, Side.BID, Side.ASK)
    np.testing.assert_array_equal(d["side"], want)
    return d


def test_one_process_graph_decides_every_quote_asked(tmp_path):
    path = write_graph(tmp_path)
    published = quotes(600)
    pub = publish_in_thread(f"ipc://{tmp_path}/pub", published, speed=1.0)
    out = tmp_path / "one.json"
    rc = run_graph(gc.load(path), (), str(out), arbiter_factory=_fake())
    pub.join(10)
    assert rc == 0
    figs = json.loads(out.read_text())
    assert figs["events"] == 600 and figs["nodes_run"] == ["feed", "arbiter", "strategy", "journal"]
    d = check_accounting([figs], tmp_path / "journal.arrow", published)
    assert figs["decisions"] == len(d) > 0
    assert figs["decisions_by_origin"]["worker_a"] == len(d)
    assert figs["latency_ns"]["p50"] > 0 and set(figs["stages"]) >= {"features", "decide"}


def _fake():
    sys.path.insert(0, str(HERE))
    from fake_arbiter import FakeArbiter

    return FakeArbiter


def spawn(graph: Path, out: Path, *nodes: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(FAKE), str(graph), str(out), *nodes])


def test_same_toml_runs_as_two_processes(tmp_path):
    path = write_graph(tmp_path)
    published = quotes(600)
    back = spawn(path, tmp_path / "back.json", "strategy", "journal")
    front = spawn(path, tmp_path / "front.json", "feed", "arbiter")
    pub = publish_in_thread(f"ipc://{tmp_path}/pub", published, speed=1.0)
    try:
        assert front.wait(60) == 0 and back.wait(60) == 0
    finally:
        front.kill(), back.kill()
    pub.join(10)
    figs = [json.loads((tmp_path / f"{n}.json").read_text()) for n in ("front", "back")]
    assert figs[0]["events"] == 600 and figs[0]["nodes_run"] == ["feed", "arbiter"]
    check_accounting(figs, tmp_path / "journal.arrow", published)


def test_sigterm_mid_stream_drains_and_loses_nothing(tmp_path):
    path = write_graph(tmp_path)
    published = quotes(20_000)  # 4 s of quotes at speed 1
    proc = spawn(path, tmp_path / "all.json")
    pub = publish_in_thread(f"ipc://{tmp_path}/pub", published, speed=1.0)
    journal = tmp_path / "journal.arrow"
    deadline = time.monotonic() + 60
    while not (journal.exists() and journal.stat().st_size > 4096):  # decisions flowing
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    figs = json.loads((tmp_path / "all.json").read_text())
    assert 0 < figs["events"] < len(published)  # stopped mid-stream
    check_accounting([figs], journal, published)
    pub.join(10)


@pytest.mark.parametrize("wait", ["block", "busy"])
def test_thread_wait_modes_run_the_same_graph(tmp_path, wait):
    text = write_graph(tmp_path).read_text()
    text = text.replace('kind = "strategy"', f'kind = "strategy"\nwait = "{wait}"')
    spec = gc.parse(text)
    assert spec.nodes["strategy"].wait == wait
    published = quotes(300)
    pub = publish_in_thread(f"ipc://{tmp_path}/pub", published, speed=None)
    out = tmp_path / "w.json"
    assert run_graph(spec, (), str(out), arbiter_factory=_fake()) == 0
    pub.join(10)
    check_accounting([json.loads(out.read_text())], tmp_path / "journal.arrow", published)


def test_inproc_edge_split_across_processes_is_refused(tmp_path):
    from redline.pipeline.graph.runtime import Runtime

    text = GRAPH.format(d=tmp_path).replace(f"ipc://{tmp_path}/answers", "inproc://answers")
    with pytest.raises(gc.GraphError, match=r"edge 'answers'.*use ipc:// or tcp://"):
        Runtime(gc.parse(text), only=["arbiter"], arbiter_factory=_fake())
    with pytest.raises(gc.GraphError, match=r"no node \['nope'\]"):
        Runtime(gc.parse(text), only=["nope"], arbiter_factory=_fake())


def test_metrics_endpoint_is_scraped_over_http_while_the_graph_runs(tmp_path):
    import socket
    import urllib.request

    from redline.pipeline.graph.runtime import Runtime

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = gc.load(write_graph(tmp_path))
    rt = Runtime(spec, arbiter_factory=_fake(), metrics_port=port)
    published = quotes(3000, step_ns=500_000)  # 1.5 s at speed 1
    pub = publish_in_thread(f"ipc://{tmp_path}/pub", published, speed=1.0)
    done = threading.Event()
    runner = threading.Thread(target=lambda: (rt.run(), done.set()), daemon=True)
    runner.start()

    def scraped() -> tuple[str, float, float]:
        try:
            url = f"http://127.0.0.1:{port}/metrics"
            text = urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:
            return "", 0.0, 0.0
        values = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("redline_") and " " in line
        }
        return (
            text,
            values.get("redline_events_total", 0.0),
            values.get('redline_decisions_total{origin="worker_a"}', 0.0),
        )

    deadline = time.monotonic() + 60
    text, events, decisions = scraped()
    while not (events > 0 and decisions > 0):  # the graph is running and deciding
        assert time.monotonic() < deadline and not done.is_set(), text[-2000:]
        time.sleep(0.2)
        text, events, decisions = scraped()
    assert 'redline_drops_total{edge="ticks"}' in text
    assert "redline_stage_latency_seconds{" in text and 'stage="tick_to_decision"' in text
    runner.join(60)
    pub.join(10)
    assert done.is_set() and rt.metrics_port == port


OVERLOAD = """
[graph]
name = "o"
budget_us = 100000
metrics_port = {port}
drain_timeout_ms = 1500

[edges.ticks]
address = "ipc://{d}/ticks"
policy = "conflate"
hwm = 4

[edges.answers]
address = "ipc://{d}/answers"
hwm = 4

[edges.decisions]
address = "ipc://{d}/decisions"
hwm = 2

[nodes.feed]
kind = "feed"
source = "ipc://{d}/pub"
out = "ticks"

[nodes.arbiter]
kind = "arbiter"
in = "ticks"
out = "answers"

[nodes.strategy]
kind = "strategy"
in = "answers"
out = "decisions"

[nodes.journal]
kind = "journal"
in = "decisions"
path = "{d}/journal.arrow"
"""


def test_sigterm_with_a_stuck_downstream_ends_within_the_drain_timeout_and_counts_losses(
    tmp_path,
):
    """The journal's process is stopped (SIGSTOP): the decisions edge fills, backpressure
    reaches the feed, and the front process holds accepted records it can never deliver.
    SIGTERM must still end it by the drain timeout (metrics on: that loop once waited
    forever), count what it held as lost, say so, and exit non-zero."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = tmp_path / "graph.toml"
    path.write_text(OVERLOAD.format(d=tmp_path, port=port))
    back = spawn(path, tmp_path / "back.json", "journal")
    front = subprocess.Popen(
        [sys.executable, str(FAKE), str(path), str(tmp_path / "front.json"), "feed", "arbiter",
         "strategy"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    publish_in_thread(f"ipc://{tmp_path}/pub", quotes(20_000, n_inst=1), speed=1.0)
    try:
        deadline = time.monotonic() + 60
        journal = tmp_path / "journal.arrow"
        while not (journal.exists() and journal.stat().st_size > 4096):  # decisions flowing
            assert time.monotonic() < deadline and front.poll() is None
            time.sleep(0.05)
        back.send_signal(signal.SIGSTOP)
        time.sleep(1.0)  # the decisions edge fills; the front is held back
        front.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        rc = front.wait(30)
        took = time.monotonic() - t0
        err = front.stderr.read()
    finally:
        front.kill()
        back.send_signal(signal.SIGCONT)
        back.kill()
    assert rc == 3, err
    assert took < 1.5 + 5, took  # the drain timeout plus closing, not forever
    figs = json.loads((tmp_path / "front.json").read_text())
    assert figs["lost"] > 0 and figs["lost"] == sum(figs["lost_by_node"].values())
    assert "LOST" in err and f"{figs['lost']:,}" in err


def test_a_second_run_and_a_restart_after_kill_9_rotate_the_journal_and_lose_nothing(tmp_path):
    path = write_graph(tmp_path)
    journal = tmp_path / "journal.arrow"
    # a run killed mid-stream (a crash): its journal stays behind, readable
    crashed = spawn(path, tmp_path / "crashed.json")
    publish_in_thread(f"ipc://{tmp_path}/pub", quotes(20_000), speed=1.0)
    deadline = time.monotonic() + 60
    while not (journal.exists() and journal.stat().st_size > 4096):
        assert time.monotonic() < deadline and crashed.poll() is None
        time.sleep(0.05)
    crashed.kill()
    crashed.wait(10)
    kept = len(read_journal(journal))
    # the same graph file again, twice: each run starts a fresh journal, the earlier ones kept
    for run_no in (1, 2):
        published = quotes(300)
        pub = publish_in_thread(f"ipc://{tmp_path}/pub", published, speed=None)
        out = tmp_path / f"run{run_no}.json"
        assert run_graph(gc.load(path), (), str(out), arbiter_factory=_fake()) == 0
        pub.join(10)
        figs = json.loads(out.read_text())
        assert figs["previous_journal"] == str(tmp_path / f"journal.{run_no}.arrow")
        assert figs["lost_decisions"] == 0
        check_accounting([figs], journal, published)
    assert len(read_journal(tmp_path / "journal.1.arrow")) == kept > 0  # the crashed run's
