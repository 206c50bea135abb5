"""Runs a graph: all of its nodes in one process, or some (`only=`) per process.

The same `GraphSpec` runs either way: every edge's reader binds its address
and every writer connects, so with ipc:// or tcp:// edges each process can
start in any order. mem:// and inproc:// edges only join nodes of one process.

The control plane (signals, metrics, drain) runs on uvloop. Each node waits
for input as its spec says (`wait`):

- "await": an asyncio task; wakes on its sockets' FDs through the loop (all
  such nodes share one thread, so no GIL hand-offs between them).
- "block": its own thread, blocked in select on its inputs' descriptors; the cheapest
  wake-up on a loaded machine (FLOORS.md: asyncio adds tens of µs to a hop).
- "busy": its own thread, spinning on non-blocking reads; only pays where a
  core is free (on 2 vCPU it starves libzmq's I/O thread: FLOORS.md).

SIGINT/SIGTERM: the feed stops taking in events and sends end-of-stream; each
node forwards it once what it accepted has gone downstream (the arbiter waits
for every decision it asked for); the journal flushes and closes; `run()`
returns 0. The drain lasts at most `drain_timeout_s` (an overloaded or stuck
downstream cannot hold it forever): then every node ends anyway, what they
still held is counted per node in `lost`, and `run()` returns EXIT_LOST.
The control endpoint (pipeline/control/, verbs on `control_handlers`) is served on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from redline.feeds.clock import Clock, LiveClock
from redline.feeds.sequence import SequenceTracker
from redline.pipeline.control.commands import Handlers
from redline.pipeline.control.endpoint import open_control, refusals
from redline.pipeline.graph import config as gc
from redline.pipeline.graph import nodes as gn
from redline.pipeline.graph.arbiter_build import build_arbiter
from redline.pipeline.graph.node_specs import SIGNAL_TRADER
from redline.pipeline.transport.address import is_process_local
from redline.pipeline.transport.edge import Receiver, Sender
from redline.pipeline.transport.opener import Transport
from redline.pipeline.transport.waiting import any_ready, unwatch, wait_any, watch

_HELD_RETRY_S = 0.001  # a node held back by a full output retries its flush this often
EXIT_LOST = 3  # run() after a drain that lost accepted records (counted in `lost`)


class Runtime:
    """A graph (or part of one) built and ready to run."""

    def __init__(
        self,
        spec: gc.GraphSpec,
        *,
        only: Sequence[str] = (),
        clock: Clock | None = None,
        context: Any = None,  # a zmq.Context to share (tests)
        drain_timeout_s: float | None = None,
        arbiter_factory: Callable[[gc.ArbiterSpec, Clock, gc.GraphSpec], Any] | None = None,
        metrics_port: int | None = None,
    ) -> None:
        unknown = [n for n in only if n not in spec.nodes]
        if unknown:
            raise gc.GraphError(
                f"graph '{spec.graph.name}': no node {unknown} (nodes: {', '.join(spec.nodes)})"
            )
        self.spec = spec
        self.local = [n for n in spec.order() if not only or n in only]
        if only:
            _check_split(spec, self.local)
        self.clock = clock or LiveClock()
        self.transport = Transport(context, spec.security.curve(), spec.security.insecure)
        self.drain_timeout_s = (
            spec.graph.drain_timeout_ms / 1000 if drain_timeout_s is None else drain_timeout_s
        )
        self._arbiter_factory = arbiter_factory or build_arbiter
        self.nodes: dict[str, gn.Node] = {}
        self.receivers: dict[str, Receiver] = {}
        self.senders: dict[str, Sender] = {}
        self._stop_at: float | None = None
        self._wakes: dict[str, asyncio.Event] = {}  # await nodes' wake-ups, by node name
        # Prometheus endpoint of this process: the graph's port unless overridden; 0 = off.
        self.metrics_port = spec.graph.metrics_port if metrics_port is None else metrics_port
        if metrics_port is None and self.metrics_port and only:
            # Processes of one graph on one host must not collide: each serves the graph's
            # port plus the position of its first node in flow order (feed first: +0).
            self.metrics_port += spec.order().index(self.local[0])
        self.metrics = None
        self.started_ns = 0
        self.ended_ns = 0
        self.forced: set[str] = set()  # nodes cut off at the drain timeout
        self.lost: dict[str, int] = {}  # node -> records it accepted and could not deliver
        self.control_handlers = Handlers()  # control verbs -> what carries them out
        self._build()
        order = spec.order()  # one process serves the endpoint: the arbiter's, or the first's
        host = next((n for n in order if isinstance(spec.nodes[n], gc.ArbiterSpec)), order[0])
        self.control = open_control(self) if spec.control.enabled and host in self.local else None

    def _build(self) -> None:
        spec = self.spec
        # Readers bind first so inproc writers in this process find them.
        t = self.transport
        for name in self.local:
            for e in spec.nodes[name].inputs:
                edge = spec.edges[e]
                self.receivers[e] = t.receiver(e, edge.address, edge.policy, edge.hwm)
        for name in self.local:
            for e in spec.nodes[name].outputs:
                edge = spec.edges[e]
                self.senders[e] = t.sender(
                    e, edge.address, edge.policy, edge.hwm,
                    max_bytes=edge.max_bytes, overflow=edge.overflow,
                )  # fmt: skip
        # Downstream first, so the feed (which starts taking events) is built last.
        for name in reversed(self.local):
            node_spec = spec.nodes[name]
            node = self._make(name, node_spec)
            node.inputs = [self.receivers[e] for e in node_spec.inputs]
            outs = node_spec.outputs
            node.output = self.senders[outs[0]] if outs else None
            self.nodes[name] = node
        self.nodes = {n: self.nodes[n] for n in self.local}

    def _make(self, name: str, s: gc.NodeSpec) -> gn.Node:
        if isinstance(s, gc.FeedSpec):
            edge = self.spec.edges[s.out]
            tracker = SequenceTracker()
            zmq_only = {} if s.source.startswith("udp://") else {
                "kind": s.socket,
                "rcvhwm": edge.hwm if edge.policy == "block" else 0,
            }  # fmt: skip
            source = self.transport.feed(s.source, clock=self.clock, tracker=tracker, **zmq_only)
            return gn.FeedNode(name, s, self.clock, source, tracker)
        if isinstance(s, gc.FeaturesSpec):
            return gn.FeaturesNode(name, s, self.clock)
        if isinstance(s, gc.ArbiterSpec):
            arbiter = self._arbiter_factory(s, self.clock, self.spec)
            if isinstance(s, gc.FrameArbiterSpec):
                return gn.FrameArbiterNode(name, s, self.clock, arbiter)
            readers = [n for n in self.spec.nodes.values() if s.out in n.inputs]
            venue = any(isinstance(n, gc.StrategySpec) and n.strategy != SIGNAL_TRADER
                        for n in readers)  # fmt: skip
            return gn.ArbiterNode(name, s, self.clock, arbiter, keep_asked_quotes=venue)
        if isinstance(s, gc.SyncSpec):
            return gn.SyncNode(name, s, self.clock)
        if isinstance(s, gc.PlannerSpec):
            return gn.PlannerNode(name, s, self.clock)
        if isinstance(s, gc.StrategySpec):
            return gn.StrategyNode(name, s, self.clock)
        if isinstance(s, gc.JournalSpec):
            return gn.JournalNode(name, s, self.clock)
        raise AssertionError(f"unhandled node kind {type(s).__name__}")

    # -- running ------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until every local node is done; returns 0 after a clean drain."""
        import uvloop

        return uvloop.run(self.run_async())

    async def run_async(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(RuntimeError, ValueError):  # not the main thread
                loop.add_signal_handler(sig, self.stop)
        self.started_ns = self.clock.now_ns()
        tasks = []
        metrics = None
        if self.metrics_port:
            metrics = asyncio.create_task(self._metrics_loop(), name="metrics")
        control = self.control and asyncio.create_task(self.control.serve(), name="control")
        self._wakes = {
            name: asyncio.Event() for name, n in self.nodes.items() if n.spec.wait == "await"
        }
        for node in self.nodes.values():
            if node.spec.wait == "await":
                tasks.append(asyncio.create_task(self._await_loop(node), name=node.name))
            else:
                loop_fn = self._busy_loop if node.spec.wait == "busy" else self._block_loop
                tasks.append(asyncio.create_task(asyncio.to_thread(loop_fn, node), name=node.name))
        try:
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                # A node raised: the others end now, without draining, and are waited for, so
                # no node thread outlives the graph or steps on the sockets closed below.
                self._abort()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        finally:
            # The control plane ends with the nodes, whether they drained or were cut off at
            # the drain timeout (it once waited forever for a node that could never flush).
            for task in (metrics, control):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if self.metrics is not None:
                self.metrics.stop()
            self.ended_ns = self.clock.now_ns()
            self._count_losses()
            self._write_worker_log()
            self.close()
        return EXIT_LOST if self.lost else 0

    def _write_worker_log(self) -> None:
        """What happened to the workers, beside this process's journal (observe/worker_log.py),
        so `redline report` can mark each fault and restart. A process without both an arbiter
        and a journal (one node per process) writes none."""
        from redline.pipeline.observe.worker_log import WorkerEvent, append_worker_events

        arbiters = [n.arb for n in self.nodes.values() if isinstance(n, gn.ArbiterNode)]
        events = [
            WorkerEvent(t + a.wall_offset_ns, worker, what, why)
            for a in arbiters
            for t, worker, what, why in a.events_log()
        ]
        for n in self.nodes.values():
            if isinstance(n, gn.JournalNode) and n.journal is not None:
                append_worker_events(n.journal.path, events)

    def _count_losses(self) -> None:
        """What nodes cut off at the drain timeout still held, per node: records taken in
        and not handed on, records waiting on their output edge, and records waiting unread
        on their input edges (taken off now, so they are counted, not silently dropped)."""
        for name in self.forced:
            node = self.nodes[name]
            held = node.held()
            if node.output is not None:
                held += node.output.pending()
            for rx in node.inputs:
                held += rx.discard()
            if held:
                self.lost[name] = held

    async def _metrics_loop(self, period_s: float = 0.2) -> None:
        """Control plane: serve /metrics and feed it counters from the nodes."""
        from redline.pipeline.observe.metrics import Metrics

        arbiters = [n for n in self.nodes.values() if isinstance(n, gn.ArbiterNode)]
        workers = [link.name for a in arbiters for link in a.arb.links]
        m = Metrics(clock=self.clock, edges=list(self.spec.edges), workers=workers)
        for node in self.nodes.values():
            if isinstance(node, gn.JournalNode):
                node.listeners.append(m.observe_decisions)
        self.metrics = m
        try:
            self.metrics_port = m.start(self.metrics_port)
        except OSError as exc:  # the run goes on; the endpoint is what failed, and it says so
            print(f"redline: /metrics not served on port {self.metrics_port}: {exc.strerror}; "
                  "set [graph] metrics_port to a free port", file=sys.stderr)  # fmt: skip
            self.metrics = None
            return
        seen: dict[str, int] = {}

        def bump(key: str, value: int, fn) -> None:
            if value > seen.get(key, 0):
                fn(value - seen.get(key, 0))
                seen[key] = value

        while True:  # until cancelled when the nodes end
            for n in self.nodes.values():
                if isinstance(n, gn.FeedNode):
                    bump(f"events:{n.name}", n.events, m.observe_events)
                    bump(f"drop:i:{n.name}", n.ingress_drops, lambda k, e=n.spec.out: m.drop(e, k))
            for e, snd in self.senders.items():
                bump(f"drop:s:{e}", snd.drops, lambda k, e=e: m.drop(e, k))
            for e, rcv in self.receivers.items():
                bump(f"drop:r:{e}", rcv.drops, lambda k, e=e: m.drop(e, k))
            for plane, endpoint, total in refusals(self):
                m.refused_total(plane, endpoint, total)
            for a in arbiters:
                bump(f"failovers:{a.name}", a.arb.stats().get("failovers", 0), m.failover)
                for w, (link, b) in enumerate(zip(a.arb.links, a.arb.breakers, strict=True)):
                    m.set_worker_health(link.name, b.serving)
                    m.set_model_version(link.name, a.arb.versions[w])
            await asyncio.sleep(period_s)

    @property
    def draining(self) -> bool:
        return self._stop_at is not None

    def stop(self) -> None:
        """Graceful stop: the feed ends intake; the rest drain (see module doc)."""
        if self._stop_at is None:
            self._stop_at = time.monotonic() + self.drain_timeout_s
        for node in self.nodes.values():
            node.stop_intake()

    def _abort(self) -> None:
        """stop() with no time to drain: every node ends at its next look at the clock (see
        _overdue), the await nodes woken to look."""
        self.stop()
        self._stop_at = time.monotonic()
        for wake in self._wakes.values():
            wake.set()

    def _overdue(self, node: gn.Node) -> bool:
        if self._stop_at is not None and time.monotonic() > self._stop_at:
            node.finish()  # upstream never ended: end here so downstream can
            if not node.done:
                self.forced.add(node.name)  # what it still holds is counted as lost
            return True
        return False

    async def _await_loop(self, node: gn.Node) -> None:
        # A ZeroMQ descriptor is edge-triggered: it fires when its readiness may have
        # changed, so ask ready() after each step before sleeping on it (waiting.py).
        loop = asyncio.get_running_loop()
        wake = self._wakes[node.name]
        # The await node reading this one's output in this process, woken directly: through
        # its socket's FD it would run only after this node's next step (the arbiter's next
        # slice of submits: the demo's `decide` stage measured ~0.8 ms p50 that way).
        reader = self._local_reader(node)
        watched: list = []
        fds: list[int] = []
        try:
            while not node.done and not self._overdue(node):
                if node.step():
                    if reader is not None:
                        reader.set()  # queued before this task's own turn below
                    await asyncio.sleep(0)  # let the other nodes of this loop run
                    continue
                now = node.waitables()
                if now != watched:  # first pass, or a worker was restarted
                    unwatch(loop, fds)
                    watched, fds = now, watch(loop, now, wake.set)
                wake.clear()
                # A node held back by a full output takes no input: waiting input must not
                # count as work, or this loop spins without yielding and the downstream
                # node that would make room never runs (seen: a features node froze the demo).
                held = node.held_back()
                if not held and any_ready(watched):
                    continue
                timeout = _HELD_RETRY_S if held else node.timeout_s()
                # uvloop timers tick in ms: a shorter one fires at once and spins the loop.
                timer = loop.call_later(0.1 if timeout is None else max(timeout, 0.001), wake.set)
                await wake.wait()
                timer.cancel()
        finally:
            unwatch(loop, fds)

    def _local_reader(self, node: gn.Node) -> asyncio.Event | None:
        """The wake event of the await node in this process that reads `node`'s output."""
        outs = node.spec.outputs
        if not outs:
            return None
        reader = self.spec.consumer_of(outs[0])
        return self._wakes.get(reader)

    def _block_loop(self, node: gn.Node) -> None:
        while not node.done and not self._overdue(node):
            if node.step():
                continue
            waitables = node.waitables()
            held = node.held_back()
            if held:  # input can't wake it (see _await_loop): only its other waitables.
                # A feed's publisher socket counts as input: ready while the feed is held, it
                # once made this loop spin holding the GIL, and the await nodes it starved
                # took ~5 ms (the switch interval) per GIL handoff: 3,000 quotes in minutes.
                intake = node.intake()
                waitables = [w for w in waitables if w not in intake]
            timeout = _HELD_RETRY_S if held else node.timeout_s()
            if waitables:
                wait_any(waitables, 0.1 if timeout is None else max(timeout, 0.0001))
            else:
                time.sleep(timeout or 0.001)

    def _busy_loop(self, node: gn.Node) -> None:
        while not node.done and not self._overdue(node):
            node.step()

    def close(self) -> None:
        if self.control is not None:
            self.control.close()  # and withdrawn from discovery; closing twice is harmless
        for node in self.nodes.values():
            node.close()
        for s in self.senders.values():
            s.close()
        for r in self.receivers.values():
            r.close()
        self.transport.close()

    # -- reporting ------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Per node and per edge (sent, received, drops) figures of this process."""
        edges: dict[str, dict[str, int]] = {}
        for name, s in self.senders.items():
            edges.setdefault(name, {}).update(
                sent=s.sent,
                sender_drops=s.drops,
                overflow_drops=s.overflow_drops,
                max_backlog=s.max_backlog,
                max_backlog_bytes=s.max_backlog_bytes,
            )
        for name, r in self.receivers.items():
            edges.setdefault(name, {}).update(received=r.received, receiver_drops=r.drops)
            if self.spec.edges[name].address.startswith("tcp://"):  # peers without our key
                edges[name]["refused"] = r.port.refused
        for e in edges.values():
            e["drops"] = e.get("sender_drops", 0) + e.get("receiver_drops", 0)
        return {
            "graph": self.spec.graph.name,
            "nodes": {n: node.stats() for n, node in self.nodes.items()},
            "edges": edges,
            "lost": dict(self.lost),
            "seconds": (self.ended_ns - self.started_ns) / 1e9 if self.ended_ns else None,
        }


def _check_split(spec: gc.GraphSpec, local: list[str]) -> None:
    """inproc edges cannot cross a process boundary: say which one does."""
    for e, edge in spec.edges.items():
        ends = {spec.producer_of(e), spec.consumer_of(e)}
        if is_process_local(edge.address) and len(ends & set(local)) == 1:
            raise gc.GraphError(
                f"edge '{e}': field 'address' is {edge.address}, which only joins nodes of one "
                f"process, but its nodes {sorted(ends)} run apart; use ipc:// or tcp://"
            )
