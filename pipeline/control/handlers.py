"""The commands a running graph carries out itself: status, drain, kill switch, worker restart.

    register_graph_handlers(runtime.control_handlers, runtime, server)

`swap`, `rollback` and `confirm` are the arbiter node's (its SwapCoordinator,
pipeline/arbiter/swap.py); registered here when an arbiter node runs in this process. The
runtime's nodes are read by their `kind` (this package sits beside
the graph, not above it), and everything here is safe from the runtime's loop while nodes run
on it or on their own threads: reads of counters, a flag the strategy reads per batch, the
runtime's own `stop()`, and a signal to a worker process.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from redline.pipeline.control.commands import Handlers

_FAULT_KEYS = ("failovers", "restarts", "send_failures", "overload", "unanswered")


def register_graph_handlers(handlers: Handlers, runtime: Any, server: Any) -> None:
    """Add this graph's own handlers to `handlers` (a verb already registered is kept)."""

    async def status() -> dict[str, Any]:
        return graph_status(runtime, server)

    async def drain() -> dict[str, Any]:
        runtime.stop()
        return {"draining": True, "drain_timeout_s": runtime.drain_timeout_s}

    async def kill_switch(on: bool) -> dict[str, Any]:
        traders = [n.trader for n in _nodes(runtime, "strategy")]
        if not traders:
            raise ValueError("kill-switch: no strategy node runs in this process")
        for t in traders:
            t.kill_switch = on  # read by the trader per decision: no new risk while on
        # decisions made before the switch (exact when the strategy shares this loop)
        decided = sum(n.decisions for n in _nodes(runtime, "strategy"))
        return {"kill_switch": on, "decisions": decided}

    async def restart_worker(worker: str) -> dict[str, Any]:
        arbiters = _nodes(runtime, "arbiter")
        if not arbiters:
            raise ValueError("restart-worker: no arbiter node runs in this process")
        w = "AB".index(worker)
        links = arbiters[0].arb.links
        pid = links[w].pid if w < len(links) else None
        if not pid or links[w].exited():
            raise ValueError(f"restart-worker: worker {worker} is not running now (recovery "
                             "restarts it when its backoff ends); ask status")  # fmt: skip
        # The crash path recovery.py runs for any dead worker: out of service (its peer and the
        # fallback answer meanwhile), restarted, its state rebuilt and verified, readmitted.
        os.kill(pid, signal.SIGKILL)
        return {"worker": worker, "stopped_pid": pid, "then": "recovery restarts and readmits it"}

    table = [("status", status), ("drain", drain), ("kill-switch", kill_switch),
             ("restart-worker", restart_worker)]  # fmt: skip
    arbiters = _nodes(runtime, "arbiter")
    # The model swap: the first arbiter node's coordinator. An arbiter with no record of model
    # versions (a test's stand-in) cannot swap: those verbs then stay unregistered.
    if arbiters and hasattr(arbiters[0].arb, "models"):
        node = arbiters[0]
        table += [("swap", _refusal_is_error(node.swap)),
                  ("rollback", _refusal_is_error(node.rollback)),
                  ("confirm", _refusal_is_error(node.confirm))]  # fmt: skip
    for verb, fn in table:
        if verb not in handlers:
            handlers.register(verb, fn)


def _refusal_is_error(fn):
    """The swap coordinator answers a refusal (a failed canary, nothing to roll back to) with
    `ok: False` and why; the control plane's error reply (ctl exit 1) carries it."""

    async def call(**kwargs: Any) -> dict[str, Any]:
        reply = await fn(**kwargs)
        if reply.get("ok") is False:
            raise ValueError(reply.get("error") or reply.get("reason") or "refused")
        return reply

    return call


def graph_status(runtime: Any, server: Any) -> dict[str, Any]:
    """What `redline ctl status` shows."""
    out: dict[str, Any] = {
        "graph": runtime.spec.graph.name,
        "pid": os.getpid(),
        "nodes": list(runtime.nodes),
        "draining": runtime.draining,
        "events": sum(n.events for n in _nodes(runtime, "feed")),
        "decisions": sum(n.decisions for n in _nodes(runtime, "strategy")),
        "journaled": sum(n.events for n in _nodes(runtime, "journal")),
        "kill_switch": any(n.trader.kill_switch for n in _nodes(runtime, "strategy")),
        "control": server.stats(),
        "edges_refused": {
            e: n["refused"] for e, n in runtime.stats()["edges"].items() if "refused" in n
        },
    }
    for node in _nodes(runtime, "arbiter"):
        stats = node.arb.stats()
        out["workers"] = stats.get("workers", {})
        out["faults"] = {k: stats.get(k, 0) for k in _FAULT_KEYS}
        out["versions"] = {
            link.name: v for link, v in zip(node.arb.links, node.arb.versions, strict=True)
        }
    return out


def _nodes(runtime: Any, kind: str) -> list[Any]:
    return [n for n in runtime.nodes.values() if n.kind == kind]
