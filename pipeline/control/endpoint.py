"""A graph's control endpoint opened from its `[control]` table, and said where to find.

    server = open_control(runtime)   # bound, journaling, published for `redline ctl`
    ...
    server.close()                   # closed, and no longer published

ipc by default, in the run's private directory (transport/run_dir.py); tcp only with CURVE and
an allow-list (the config refuses anything else). The command journal goes where `[control]
journal` says, else beside the decision journal (`STEM.control.jsonl`), else into the run's
directory (a graph that journals nothing keeps its commands only while it runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redline.pipeline.control.discovery import publish, withdraw
from redline.pipeline.control.handlers import register_graph_handlers
from redline.pipeline.control.journal import CommandJournal, control_journal_path
from redline.pipeline.control.server import ControlServer
from redline.pipeline.transport.control_socket import ControlSocket
from redline.pipeline.transport.curve import Curve, read_public, read_secret
from redline.pipeline.transport.run_dir import run_dir


def open_control(runtime: Any) -> ControlServer:
    """Bind the endpoint of `runtime`'s graph, register the graph's own handlers (handlers.py)
    and publish its address (discovery.py). On failure the runtime is closed (its workers are
    already running) and the error raised: one line, like any bad config."""
    try:
        server = _open(runtime)
    except BaseException:
        runtime.control = None  # not assigned yet: close() must find nothing to close
        runtime.close()
        raise
    register_graph_handlers(runtime.control_handlers, runtime, server)
    return server


def _open(runtime: Any) -> ControlServer:
    spec = runtime.spec
    c = spec.control
    curve = None
    if c.address.startswith("tcp://"):
        public, secret = read_secret(c.curve_secret_key_file)
        curve = Curve(public, secret, frozenset(map(read_public, c.allowed_client_keys)))
    sock = ControlSocket(
        runtime.transport.context, c.address or f"ipc://{run_dir()}/control", curve
    )
    journal = CommandJournal(_journal(spec))
    server = ControlServer(sock, runtime.control_handlers, journal, runtime.clock)
    server_key = curve.public.decode() if curve else ""
    published: list[Path] = []
    server.on_serve(lambda: published.append(publish(spec.graph.name, sock.address, server_key)))
    server.on_close(lambda: [withdraw(p, sock.address) for p in published])
    return server


def _journal(spec: Any) -> Path:
    if spec.control.journal:
        return Path(spec.control.journal)
    paths = [n.path for n in spec.nodes.values() if getattr(n, "path", "")]
    if paths:
        return control_journal_path(paths[0])
    return run_dir() / "commands.jsonl"


def refusals(runtime: Any) -> list[tuple[str, str, int]]:
    """(plane, endpoint, handshakes refused so far) of each endpoint of `runtime`'s graph that
    counts them: the control endpoint, tcp edges read here, and the worker links (a worker's
    count of foreign peers, from its heartbeats). /metrics shows them (graph/runtime.py)."""
    out = [("control", "control", runtime.control.refused)] if runtime.control else []
    out += [
        ("data", e, r.port.refused)
        for e, r in runtime.receivers.items()
        if runtime.spec.edges[e].address.startswith("tcp://")
    ]
    arbiters = [n.arb for n in runtime.nodes.values() if n.kind == "arbiter"]
    return out + [("data", link.name, link.refused) for a in arbiters for link in a.links]
