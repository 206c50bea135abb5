"""`redline run --node NAME`: the same TOML as one process per node, with the
real arbiter and its two CPU worker processes, decides exactly what the
one-process run decides."""

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import zmq

from redline.feeds.events import Origin, RecordType
from redline.feeds.replay.reader import replay
from redline.feeds.wire.frames import encode, encode_end
from redline.pipeline.cli.run import run_graph
from redline.pipeline.graph import config as gc
from redline.pipeline.observe.journal import read_journal
from redline.replay_data import DIR

GRAPH = """
[graph]
name = "workers"
# Decisions must come from the workers, never the deadline's default. One deadline runs from
# ts_recv, stamped by the feed process, which takes the whole stream while the arbiter process
# may still be starting its workers: with every core busy that took over 5 s (all 300 late).
budget_us = 120000000

# Block edges, nothing conflated: both runs see every event. The HWMs are above the stream's
# length: a process that exits while its reader's queue is full loses what waits in the
# kernel (libzmq discards it at the close), so the writers' exit must not race a full queue.
[edges.ticks]
address = "ipc://{d}/ticks"
policy = "block"
hwm = 100000

[edges.answers]
address = "ipc://{d}/answers"

[edges.decisions]
address = "ipc://{d}/decisions"

[nodes.feed]
kind = "feed"
source = "ipc://{d}/pub"
socket = "pull"
out = "ticks"

[nodes.arbiter]
kind = "arbiter"
in = "ticks"
out = "answers"
workers = [{{ name = "a", device = "cpu" }}, {{ name = "b", device = "cpu" }}]

[nodes.strategy]
kind = "strategy"
in = "answers"
out = "decisions"
max_position = 1000000
max_orders_per_s = 1000000
stale_after_us = 1000000000

[nodes.journal]
kind = "journal"
in = "decisions"
path = "{d}/journal.arrow"
"""

NODES = ("journal", "strategy", "arbiter", "feed")
N_QUOTES = 300


def recording() -> list[tuple[RecordType, np.ndarray]]:
    """The bundled market recording's first N_QUOTES quotes, with the trades among them."""
    out, quotes = [], 0
    paths = [str(DIR / "market_quotes.parquet"), str(DIR / "market_trades.parquet")]
    for rtype, recs in replay(paths, batch_rows=64):
        if rtype == RecordType.QUOTE:
            recs = recs[: N_QUOTES - quotes]
            quotes += len(recs)
        if len(recs):
            out.append((rtype, recs))
        if quotes >= N_QUOTES:
            return out
    raise AssertionError("the bundled recording has fewer quotes than the test needs")


def publish(d: Path, batches, done: threading.Event) -> threading.Thread:
    """PUSH into the feed's PULL: the blocking ticks edge holds the publisher back and nothing
    drops. The socket stays open until `done`: libzmq discards what still waits in the kernel
    when a PUSH closes while the feed's bounded ingress is full (measured on ipc)."""

    def run() -> None:
        ctx = zmq.Context()
        sock = ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.SNDHWM, 16)
        sock.bind(f"ipc://{d}/pub")
        for rtype, recs in batches:
            sock.send(encode(recs, rtype))
        sock.send(encode_end())
        done.wait(120)
        ctx.destroy(linger=0)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def decisions(d: Path, batches) -> np.ndarray:
    quotes = np.concatenate([r for t, r in batches if t == RecordType.QUOTE])
    j = read_journal(d / "journal.arrow")
    # every quote asked for exactly one decision, and a worker gave it
    assert sorted(j["input_seq"].tolist()) == sorted(quotes["seq"].tolist())
    assert set(j["origin"].tolist()) <= {Origin.WORKER_A, Origin.WORKER_B}
    return j[np.argsort(j["input_seq"], kind="stable")]


def test_one_process_per_node_with_real_workers_decides_like_one_process(tmp_path):
    batches = recording()
    one, multi = tmp_path / "one", tmp_path / "multi"
    for d in (one, multi):
        d.mkdir()
        (d / "graph.toml").write_text(GRAPH.format(d=d))

    done = threading.Event()
    pub = publish(one, batches, done)
    assert run_graph(gc.load(one / "graph.toml"), (), str(one / "run.json")) == 0
    done.set()
    pub.join(30)

    cmd = [sys.executable, "-m", "redline.pipeline.cli.main", "run", str(multi / "graph.toml")]
    procs = {
        n: subprocess.Popen([*cmd, "--node", n, "--json", str(multi / f"{n}.json")]) for n in NODES
    }
    done = threading.Event()
    pub = publish(multi, batches, done)
    try:
        for n, p in procs.items():
            assert p.wait(90) == 0, n
    finally:
        for p in procs.values():
            p.kill()
        done.set()
    pub.join(30)

    figs = {n: json.loads((multi / f"{n}.json").read_text()) for n in NODES}
    assert all(f["nodes_run"] == [n] for n, f in figs.items())
    arb = figs["arbiter"]["node_stats"]["arbiter"]
    assert arb["asked"] == N_QUOTES and arb["arbiter"]["restarts"] == 0
    a, b = decisions(one, batches), decisions(multi, batches)
    # The same inputs give the same decisions, whichever worker answered first. (Not `px`:
    # the order goes at the quote current when the answer is emitted, which depends on timing.)
    for field in ("input_seq", "side", "qty", "model_version"):
        np.testing.assert_array_equal(a[field], b[field], err_msg=field)
    # Scores to float32 rounding: the workers score a feed batch in one call, and how the
    # events fall into batches depends on timing, which changes BLAS's rounding by an ulp or
    # two (seen in CI: 2 of 300 scores 4.8e-7 apart).
    np.testing.assert_allclose(a["score"], b["score"], rtol=1e-5, atol=1e-6)
    assert (a["side"] != 0).any()  # the strategy traded: the comparison means something


def test_a_feed_of_records_no_node_decides_on_is_said_and_counted(tmp_path, capsys):
    # The driving recording into a trading graph: 0 decisions, and before this not a word.
    sensors = []
    for rtype, recs in replay([str(DIR / "driving_sensors.parquet")], batch_rows=64):
        sensors.append((rtype, recs))
        if len(sensors) == 4:
            break
    n = sum(len(r) for _, r in sensors)
    (tmp_path / "graph.toml").write_text(GRAPH.format(d=tmp_path))
    done = threading.Event()
    pub = publish(tmp_path, sensors, done)
    assert run_graph(gc.load(tmp_path / "graph.toml"), (), str(tmp_path / "run.json")) == 0
    done.set()
    pub.join(30)
    err = capsys.readouterr().err
    assert "redline: arbiter: SENSOR records arrive, and this graph decides only on QUOTE" in err
    assert f"redline run: SENSOR {n:,} records came in that no node decides on" in err
    figures = json.loads((tmp_path / "run.json").read_text())
    assert figures["undecided"] == {"SENSOR": n} and figures["decisions"] == 0
