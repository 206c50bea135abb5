"""Graph nodes against a real publisher: the feed's ingress is bounded and
follows its edge's policy, and every drop is counted."""

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from redline.feeds.events import QUOTE_DTYPE, STAGES, TRADE_DTYPE, Batch, RecordType
from redline.feeds.live.publisher import publish_batches
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.nodes import arbiter as arbiter_node
from redline.pipeline.graph.nodes import feed as feed_node
from redline.pipeline.graph.runtime import Runtime
from redline.pipeline.observe.journal import read_journal

sys.path.insert(0, str(Path(__file__).parent))
from fake_arbiter import FakeArbiter

# The end of both test graphs: a strategy and a journal reading the arbiter's answers.
STRATEGY_AND_JOURNAL = """
[nodes.strategy]
kind = "strategy"
in = "answers"
out = "decisions"
max_position = 1000000
max_orders_per_s = 1000000
stale_after_us = 100000000

[nodes.journal]
kind = "journal"
in = "decisions"
path = "{d}/journal.arrow"
"""

GRAPH = (
    """
[graph]
name = "slow"
budget_us = 10000000

[edges.ticks]
address = "inproc://slow/ticks"
policy = "{policy}"
hwm = 4

[edges.answers]
address = "inproc://slow/answers"

[edges.decisions]
address = "inproc://slow/decisions"

[nodes.feed]
kind = "feed"
wait = "block"            # its own thread: it keeps reading while the arbiter is busy
source = "inproc://slow/pub"
socket = "{socket}"
out = "ticks"

[nodes.arbiter]
kind = "arbiter"
in = "ticks"
out = "answers"
"""
    + STRATEGY_AND_JOURNAL
)

FRAME = 1  # quotes per publisher frame


class SlowArbiter(FakeArbiter):
    """The fake arbiter taking `delay_s` per event: a graph slower than its feed."""

    delay_s = 0.0002

    def submit(self, record, **kw) -> int:
        time.sleep(self.delay_s)
        return super().submit(record, **kw)


def quotes(n: int, n_inst: int = 3) -> np.ndarray:
    q = np.zeros(n, QUOTE_DTYPE)
    q["seq"] = np.arange(n)
    q["instrument_id"] = 1 + np.arange(n) % n_inst
    q["ts_event"] = q["ts_recv"] = 1_000_000 + np.arange(n) * 1000
    q["bid_px"] = 10_000 + np.arange(n)
    q["ask_px"] = q["bid_px"] + 2
    q["bid_sz"] = q["ask_sz"] = 5
    return q


def run_slow_graph(tmp_path, policy: str, socket: str, published: np.ndarray, sndhwm: int):
    """Publish `published` as fast as possible into the graph; return its stats, the
    journal and the publisher's largest lead over the arbiter (events pulled - events taken)."""
    ctx = zmq.Context()
    spec = gc.parse(GRAPH.format(policy=policy, socket=socket, d=tmp_path))
    arbiters: list[SlowArbiter] = []

    def factory(*args):
        arbiters.append(SlowArbiter(*args))
        return arbiters[-1]

    lead = [0]

    def frames():  # the publisher pulls one frame at a time: see how far ahead it gets
        for i in range(0, len(published), FRAME):
            taken = arbiters[0].events if arbiters else 0
            lead[0] = max(lead[0], i - taken)
            yield Batch(RecordType.QUOTE, published[i : i + FRAME])

    pub = threading.Thread(
        target=publish_batches,
        args=(frames(), "inproc://slow/pub"),
        kwargs={
            "speed": None,
            "socket": "push" if socket == "pull" else "pub",
            "max_batch": FRAME,
            "wait_timeout_s": 30,
            "context": ctx,
            "sndhwm": sndhwm,
        },
        daemon=True,
    )
    pub.start()
    rt = Runtime(spec, context=ctx, arbiter_factory=factory)
    assert rt.run() == 0
    pub.join(10)
    stats = rt.stats()
    ctx.destroy(linger=0)
    return stats, read_journal(tmp_path / "journal.arrow"), lead[0]


def test_conflating_ingress_keeps_the_latest_quote_per_instrument_and_counts_drops(tmp_path):
    published = quotes(3000)
    stats, d, _ = run_slow_graph(tmp_path, "conflate", "sub", published, sndhwm=0)
    feed, arb = stats["nodes"]["feed"], stats["nodes"]["arbiter"]
    ticks = stats["edges"]["ticks"]
    assert feed["events"] == len(published) and feed["ingress_drops"] == 0
    # every published quote reached the slow arbiter or was counted as dropped on its edge
    assert arb["events"] + ticks["drops"] == len(published)
    assert ticks["drops"] > len(published) // 2  # the arbiter could never have taken them all
    assert len(d) == arb["events"] == arb["asked"]
    # what survived is each instrument's newest quote, and the last one always survives
    seqs = d["input_seq"]
    assert (np.diff(seqs.astype(np.int64)) > 0).all()
    last = {i: int(published["seq"][published["instrument_id"] == i][-1]) for i in (1, 2, 3)}
    assert set(last.values()) <= set(seqs.tolist())


def test_blocking_ingress_holds_the_publisher_back_and_drops_nothing(tmp_path):
    published = quotes(3000)
    stats, d, lead = run_slow_graph(tmp_path, "block", "pull", published, sndhwm=4)
    feed, arb = stats["nodes"]["feed"], stats["nodes"]["arbiter"]
    assert feed["events"] == arb["events"] == len(d) == len(published)
    assert stats["edges"]["ticks"]["drops"] == feed["ingress_drops"] == 0
    np.testing.assert_array_equal(np.sort(d["input_seq"]), published["seq"])
    # The publisher never got far ahead of the slow arbiter: every queue between is bounded.
    # Frames: publisher HWM 4 + ingress HWM 4; ticks: HWM 4 + 4 messages in the transport, the
    # feed's writer backlog (up to the edge's hwm, 4, while the transport is full), one waiting
    # in the feed and one in the arbiter, each up to _MAX_BATCHES frames coalesced; plus a
    # slice. (Without the writer backlog the bound was 19 short in 2 runs of many: 683 > 664.)
    bound = (
        (4 + 4) * FRAME
        + (4 + 4 + 4 + 1 + 1) * feed_node._MAX_BATCHES * FRAME
        + arbiter_node._SUBMIT_SLICE
    )
    assert 0 < lead <= bound < len(published), (lead, bound)


def test_sub_ingress_with_a_blocking_edge_is_refused():
    text = GRAPH.format(policy="block", socket="sub", d="/tmp")
    with pytest.raises(gc.GraphError, match=r"node 'feed': field 'socket' is 'sub'.*'pull'"):
        gc.parse(text)


FEATURES_GRAPH = (
    """
[graph]
name = "features"
budget_us = 10000000

[edges.ticks]
address = "inproc://f/ticks"
policy = "block"

[edges.ready]
address = "inproc://f/ready"
policy = "block"

[edges.answers]
address = "inproc://f/answers"

[edges.decisions]
address = "inproc://f/decisions"

[nodes.feed]
kind = "feed"
source = "inproc://f/pub"
socket = "pull"
out = "ticks"

[nodes.features]
kind = "features"
in = "ticks"
out = "ready"
max_instruments = 8

[nodes.arbiter]
kind = "arbiter"
in = "ready"
out = "answers"
"""
    + STRATEGY_AND_JOURNAL
)


def test_features_node_keeps_the_kernel_features_and_stamps_its_stage(tmp_path):
    from redline.kernels.features import FeatureState

    ctx = zmq.Context()
    published = quotes(600)
    published["ts_event"] = 1_000_000_000 + np.arange(600) * 7_000_000  # features move with time
    published["bid_px"] = 10_000 + (np.arange(600) * 37) % 11
    published["ask_px"] = published["bid_px"] + 1 + np.arange(600) % 3
    pub = threading.Thread(
        target=publish_batches,
        args=([Batch(RecordType.QUOTE, published)], "inproc://f/pub"),
        kwargs={"speed": None, "socket": "push", "max_batch": 16, "context": ctx},
        daemon=True,
    )
    pub.start()
    rt = Runtime(
        gc.parse(FEATURES_GRAPH.format(d=tmp_path)), context=ctx, arbiter_factory=FakeArbiter
    )
    assert rt.run() == 0
    pub.join(10)
    node = rt.nodes["features"]
    assert node.stats()["updates"] == node.events == len(published)
    # the node's state is the kernel's, fed the same events in order
    ref = FeatureState(np.ones(3))
    rows = published["instrument_id"].astype(np.int64) - 1
    outq, _ = ref.scan(published, rows, np.zeros(0, TRADE_DTYPE), np.zeros(0, np.int64))
    assert np.count_nonzero(outq[-1]) > 4  # the features moved
    for inst in (1, 2, 3):
        last = np.flatnonzero(published["instrument_id"] == inst)[-1]
        np.testing.assert_array_equal(node.features(inst), outq[last])
    # every decision carries the features stage between the feed's and the request's stamps
    d = read_journal(tmp_path / "journal.arrow")
    assert len(d) == len(published)
    stamps = np.stack([d["ts_recv"]] + [d[s] for s in STAGES])
    assert (stamps > 0).all() and (np.diff(stamps, axis=0) >= 0).all()
    assert (d["ts_features"] > d["ts_feed"]).all()
    ctx.destroy(linger=0)


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        ("max_instruments = 8", "max_instruments = 0", "node 'features': field 'max_instruments'"),
        ("max_instruments = 8", "max_rows = 8", "node 'features': unknown field 'max_rows'"),
        ('out = "ready"', 'out = "nowhere"', "node 'features': field 'out' names edge 'nowhere'"),
    ],
)
def test_features_node_errors_name_the_node_and_field(old, new, expect):
    text = FEATURES_GRAPH.format(d="/tmp").replace(old, new)
    with pytest.raises(gc.GraphError) as err:
        gc.parse(text)
    assert expect in str(err.value), err.value


class _Ready:
    """A publisher socket with frames waiting: always ready."""

    def fileno(self) -> int:
        return 0  # never selected: wait_any asks ready() first

    def ready(self) -> bool:
        return True


class _HeldFeed:
    """A feed whose out edge stays full while its publisher has frames waiting."""

    done = False

    def __init__(self) -> None:
        self.source = _Ready()
        self.steps = 0

    def step(self) -> int:
        self.steps += 1
        return 0

    def held_back(self) -> bool:
        return True

    def waitables(self) -> list:
        return [self.source]

    def intake(self) -> list:
        return [self.source]

    def timeout_s(self) -> None:
        return None


def test_a_held_back_feed_thread_sleeps_instead_of_spinning_on_its_waiting_publisher():
    # It once woke at once on the ready publisher socket, stepped, and found itself held
    # again, ~10^4 times a second holding the GIL: the graph's other nodes, in the event
    # loop's thread, waited ~5 ms for each GIL handoff and 3,000 quotes took minutes.
    node, end = _HeldFeed(), time.monotonic() + 0.2
    runtime = type("R", (), {"_overdue": staticmethod(lambda n: time.monotonic() > end)})()
    Runtime._block_loop(runtime, node)
    # it retries its flush every _HELD_RETRY_S (1 ms), so at most ~200 steps in 0.2 s
    assert 0 < node.steps <= 400, node.steps
