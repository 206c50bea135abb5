"""`redline backtest --mode faithful`: the recording pushed through the live graph.

The QUOTE and TRADE records fast mode reads go through the graph `redline run` runs, in replay
order: a feed node (fed here by the recording: each record keeps its recorded `ts_recv` and
flags, and the graph's clock is a ReplayClock moved to each batch's last `ts_recv`), the
arbiter with two real worker processes, the strategy node trading the simulated L1 venue through
the very `Backtest` fast mode feeds (pipeline/graph/nodes/paper_trader.py), and a journal node.
Every edge blocks and none conflates, so nothing is dropped. The budget and the workers'
heartbeat timeout are an hour of data time: on a recording whose events lie less than an hour
apart no deadline runs out and no worker is judged hung when the clock jumps a quiet spell, so
every decision is a worker's and the strategy steps on every quote, as in fast mode. Since
nothing expires, the recording itself holds back while UNANSWERED quotes wait for an answer,
so the arbiter's requests in flight never outgrow its table.

    bt, result, figures = run_faithful(paths, "ema_cross", module, params, legs, ids, common)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from redline.feeds.clock import ReplayClock
from redline.feeds.events import Batch, RecordType, record_type_of
from redline.feeds.sequence import SequenceTracker
from redline.feeds.settings import HOUR_NS
from redline.pipeline.graph import config as gc
from redline.pipeline.graph import nodes as gn
from redline.pipeline.graph.runtime import Runtime

BATCH_ROWS = 256  # records per feed batch: the feed coalesces a run of one kind per message
# Quotes handed to the graph and not yet answered, at most: the arbiter node takes in whatever
# arrives, and with deadlines an hour away nothing expires, so past its `max_inflight` it would
# decide the oldest requests by the safe default (seen: 528 on the bundled recording).
UNANSWERED = 8192
MAX_INFLIGHT = 2 * UNANSWERED

GRAPH = """
[graph]
name = "backtest-faithful"
budget_us = {hour_us}      # data time: the replay clock moves only with the recording
drain_timeout_ms = 3600000

[control]
enabled = false            # a backtest takes no operator commands

[edges.ticks]
address = "inproc://{tag}/ticks"
policy = "block"
hwm = 64

[edges.answers]
address = "inproc://{tag}/answers"
policy = "block"
hwm = 10000

[edges.decisions]
address = "inproc://{tag}/decisions"
policy = "block"
hwm = 10000

[nodes.feed]
kind = "feed"
source = "inproc://{tag}/recording"  # not opened: the runner feeds the recording in
socket = "pull"
out = "ticks"

[nodes.arbiter]
kind = "arbiter"
in = "ticks"
out = "answers"
policy = "race"
model = {model}
max_inflight = {max_inflight}

[nodes.arbiter.breaker]
heartbeat_timeout_ns = {hour_ns}

[nodes.strategy]
kind = "strategy"
in = "answers"
out = "decisions"

[nodes.journal]
kind = "journal"
in = "decisions"
"""


class RecordingSource:
    """A feed source (feeds/live/source.py) over recorded events in replay order. A record
    keeps the `ts_recv` and flags it was recorded with (a live feed stamps on arrival; this
    arrival is the recorded one), and each batch moves `clock` to its last `ts_recv`. With
    `hold_at`, it hands out no more while that many of its quotes wait for an answer."""

    def __init__(self, paths: list[str], clock: ReplayClock, tracker: SequenceTracker) -> None:
        from redline.feeds.replay.reader import replay

        self._batches = iter(replay(paths, batch_rows=BATCH_ROWS))
        self.clock = clock
        self.tracker = tracker
        self.ended = False
        self.handed = 0
        self.quotes = 0  # QUOTE records handed out
        self._answered: Callable[[], int] | None = None
        self._limit = 0
        self._efd = os.eventfd(1, os.EFD_NONBLOCK | os.EFD_CLOEXEC)  # readable: come and get
        self._armed = True

    def hold_at(self, answered: Callable[[], int], limit: int) -> None:
        """Hand out nothing while `limit` quotes or more are unanswered (`answered()`: how
        many have been). Held, the descriptor is not readable: the feed node looks again
        on its timer (FeedNode: 0.1 s), with thousands of quotes still queued behind."""
        self._answered, self._limit = answered, limit

    def _held(self) -> bool:
        return self._answered is not None and self.quotes - self._answered() >= self._limit

    def ready(self) -> bool:
        return not self.ended and not self._held()

    def fileno(self) -> int:
        return self._efd

    def recv_batch(self, timeout: float | None = 0.0) -> Batch | None:
        if self.ended or self._arm(not self._held()):
            return None
        got = next(self._batches, None)
        if got is None:
            self.ended = True
            self._arm(False)
            return None
        records = got[1].copy()  # the reader reuses its buffers
        self.clock.set(max(int(records["ts_recv"][-1]), self.clock.now_ns()))
        self.tracker.observe(records)
        self.handed += len(records)
        rtype = record_type_of(records.dtype)
        if rtype == RecordType.QUOTE:
            self.quotes += len(records)
        return Batch(rtype, records)

    def _arm(self, readable: bool) -> bool:
        """Make the descriptor readable or not; True when it is not (held or ended)."""
        if readable != self._armed:
            if readable:
                os.eventfd_write(self._efd, 1)
            else:
                os.eventfd_read(self._efd)
            self._armed = readable
        return not readable

    def stats(self) -> dict[str, Any]:
        return {"endpoint": "recording", "records": self.handed}

    def close(self) -> None:
        self._batches.close()  # its read-ahead thread stops, also when the graph ended early
        if self._efd >= 0:
            os.close(self._efd)
            self._efd = -1


class RecordingRuntime(Runtime):
    """The runtime with its feed node reading `source` instead of opening its address."""

    def __init__(self, spec: gc.GraphSpec, source: RecordingSource, **kw) -> None:
        self.source = source
        super().__init__(spec, **kw)

    def _make(self, name: str, s: gc.NodeSpec) -> gn.Node:
        if isinstance(s, gc.FeedSpec):
            return gn.FeedNode(name, s, self.clock, self.source, self.source.tracker)
        return super()._make(name, s)


def graph_spec(
    model: str, strategy: str, params, ids: list[int], journal: str = ""
) -> gc.GraphSpec:
    """The faithful graph: unique inproc addresses, the strategy node set to `strategy`, the
    decision journal written to `journal` ("": counted only)."""
    text = GRAPH.format(tag=f"bt-{uuid.uuid4().hex[:12]}", hour_us=HOUR_NS // 1000,
                        hour_ns=HOUR_NS, model=msgspec.json.encode(model).decode(),
                        max_inflight=MAX_INFLIGHT)  # fmt: skip
    spec = gc.parse(text)
    nodes = dict(spec.nodes)
    values = {k: getattr(params, k) for k in params.__struct_fields__}
    nodes["strategy"] = msgspec.structs.replace(
        nodes["strategy"], strategy=strategy, params=values, instruments=tuple(ids)
    )
    nodes["journal"] = msgspec.structs.replace(nodes["journal"], path=journal)
    return msgspec.structs.replace(spec, nodes=nodes)


def run_faithful(paths: list[str], name: str, module, params, legs, ids: list[int],
                 common: dict, journal: str = "") -> tuple[Any, Any, dict]:  # fmt: skip
    """Run the recording through the graph; (the strategy node's Backtest, its Result, the
    graph's figures). `module`: the registered strategy (model_signal: its live binding is
    made here); `common`: Backtest's keyword settings, as fast mode gives them; `journal`:
    where the decision journal goes ("": not written)."""
    from redline.feeds.replay.files import event_paths
    from redline.pipeline.graph.nodes.paper_trader import PaperTrader
    from redline.strategies.model_signal_live import LiveSignal
    from redline.venue.backtest import Backtest

    # the QUOTE and TRADE files: what fast mode's venue and features read
    files = [str(f) for f in event_paths(paths, (RecordType.QUOTE, RecordType.TRADE))]
    # model_signal's plan (its own, or the kernel-feature model it defaults to: not the graph's
    # default, whose book features this quotes-and-trades replay could not feed); else the
    # graph's default, whose scores these strategies do not read.
    model = str(module.model_dir(params)) if hasattr(module, "model_dir") else ""
    spec = graph_spec(model, name, params, ids, journal)
    first = _first_ts_recv(files)
    clock = ReplayClock(first)
    source = RecordingSource(files, clock, SequenceTracker(first_seq=None, mark_gaps=False))
    live = LiveSignal() if hasattr(module, "stream") else None
    bt = Backtest(live or module, params, legs, ids, **common)
    rt = RecordingRuntime(spec, source, clock=clock)  # starts the workers, warm
    arbiter = rt.nodes["arbiter"]
    source.hold_at(lambda: arbiter.answered, UNANSWERED)
    node = rt.nodes["strategy"]
    node.trader = PaperTrader(bt, live)  # the runner's venue settings (a journal's latency too)
    code = rt.run()
    stats = rt.stats()
    nodes = stats["nodes"]
    arb, sink = nodes["arbiter"], nodes["journal"]
    counts = arb["arbiter"]
    figures = {
        "graph_exit": code,
        "decisions_by_origin": sink["decisions_by_origin"],
        "lost_decisions": arb["asked"] - sink["decisions"],
        "lost": sum(stats["lost"].values()),
        "drops": sum(e["drops"] for e in stats["edges"].values()),
        "missing_quote": node.trader.missing_quote,
        "restarts": counts.get("restarts", 0),
        "backpressure_defaults": counts.get("backpressure", 0),
    }
    return bt, bt.finish(), figures


def _first_ts_recv(files: list[str]) -> int:
    """The earliest ts_recv of `files` (the replay clock starts there; it never goes back)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    firsts = [pc.min(pq.read_table(f, columns=["ts_recv"])["ts_recv"]).as_py() for f in files]
    firsts = [t for t in firsts if t is not None]
    if not firsts:
        raise ValueError(f"{' '.join(files)}: no events to replay")
    return int(min(firsts))
