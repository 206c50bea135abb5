"""`redline run GRAPH [--node NAME ...]`: run a graph, or some of its nodes.

With no --node the whole graph runs in this process; with --node each
process runs its share of the SAME file (ipc:// or tcp:// edges), e.g.

    redline run graph.toml --node journal &
    redline run graph.toml --node strategy &
    redline run graph.toml --node arbiter &
    redline run graph.toml --node feed

SIGINT/SIGTERM drains and exits 0 (see runtime.py). A drain cut off by its
timeout (`[graph] drain_timeout_ms`, or --drain-timeout) counts what each node
still held as lost, says so, and exits 3. `--json PATH` writes this process's
figures: per node, per edge (sent, received, drops), `lost` per node, and for
a journal node the contract keys (decisions, latency_ns, stages, ...).
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable, Sequence
from typing import Any

from redline.pipeline.cli.json_out import add_json_arg, write_json
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.runtime import EXIT_LOST, Runtime


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="run a graph (TOML file or bundled preset), or some of its nodes"
    )
    p.add_argument("graph", help=f"graph file, or a bundled preset: {', '.join(gc.presets())}")
    p.add_argument(
        "--node",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this node (repeat for several); default: the whole graph",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=None,
        metavar="S",
        help="seconds a stop may take to drain (default: the graph's drain_timeout_ms, 10 s)",
    )
    add_json_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    spec = gc.load(args.graph)
    if args.drain_timeout is not None and not 0 < args.drain_timeout <= 3600:
        raise ValueError(f"--drain-timeout {args.drain_timeout}: give seconds in (0, 3600]")
    return run_graph(spec, args.node, args.json, drain_timeout_s=args.drain_timeout)


def run_graph(
    spec: gc.GraphSpec,
    only: Sequence[str] = (),
    json_path: str | None = None,
    *,
    drain_timeout_s: float | None = None,
    arbiter_factory: Callable | None = None,
) -> int:
    """Build, run to the end of the stream (or a signal), report. Returns the exit code."""
    if drain_timeout_s is None:
        drain_timeout_s = spec.graph.drain_timeout_ms / 1000
    rt = Runtime(spec, only=only, drain_timeout_s=drain_timeout_s, arbiter_factory=arbiter_factory)
    names = ", ".join(rt.local)
    print(f"redline run: graph '{spec.graph.name}', nodes {names}", file=sys.stderr, flush=True)
    code = rt.run()
    figures = summarize(rt)
    write_json(json_path, figures)
    dropped = ", ".join(f"{e} {n}" for e, n in figures["drops_by_edge"].items()) or "none"
    decided = (
        f", {figures['decisions']:,} decisions journaled, lost {figures['lost_decisions']}"
        if figures["lost_decisions"] is not None
        else ""
    )
    print(
        f"redline run: {names} done: {figures['events']} events in{decided}, "
        f"{figures['drops']} dropped by backpressure (per edge: {dropped})",
        file=sys.stderr,
    )
    if figures["undecided"]:
        kinds = ", ".join(f"{k} {n:,}" for k, n in figures["undecided"].items())
        print(
            f"redline run: {kinds} records came in that no node decides on (see the warning above)",
            file=sys.stderr,
        )
    if figures.get("previous_journal"):
        print(
            f"redline run: the earlier run's journal is kept as {figures['previous_journal']}; "
            f"this run writes {figures['journal']}",
            file=sys.stderr,
        )
    if figures["lost_decisions"]:
        print(
            f"redline run: LOST {figures['lost_decisions']:,} decisions asked for and never "
            "journaled",
            file=sys.stderr,
        )
        code = code or EXIT_LOST
    if figures["lost"]:
        per_node = ", ".join(f"{n} {k:,}" for n, k in figures["lost_by_node"].items())
        print(
            f"redline run: LOST {figures['lost']:,} accepted records at the drain timeout "
            f"({drain_timeout_s:g} s; per node: {per_node}): downstream could not take them",
            file=sys.stderr,
        )
    return code


def summarize(rt: Runtime) -> dict[str, Any]:
    stats = rt.stats()
    nodes = stats["nodes"]
    figures: dict[str, Any] = {
        "graph": stats["graph"],
        "nodes_run": list(nodes),
        "events": sum(n["events"] for n in nodes.values() if n["kind"] == "feed"),
        "drops": sum(e["drops"] for e in stats["edges"].values()),
        "drops_by_edge": {name: e["drops"] for name, e in stats["edges"].items()},
        "lost": sum(stats["lost"].values()),
        "lost_by_node": stats["lost"],
        "seconds": stats["seconds"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    asked = sum(n["asked"] for n in nodes.values() if n["kind"] == "arbiter")
    figures["undecided"] = {}
    for n in nodes.values():
        for kind, k in n.get("undecided", {}).items():
            figures["undecided"][kind] = figures["undecided"].get(kind, 0) + k
    for n in nodes.values():
        if n["kind"] == "journal":
            for key in ("decisions", "decisions_by_origin", "deadline_misses", "latency_ns"):
                figures[key] = n[key]
            figures["stages"] = n["stages"]
            figures["journal"] = n["journal"]
            figures["previous_journal"] = n["previous_journal"]
    kinds = {n["kind"] for n in nodes.values()}
    # Known where asking and journaling run in this process; split runs compare two --json.
    figures["lost_decisions"] = (
        asked - figures["decisions"] if {"arbiter", "journal"} <= kinds else None
    )
    figures["node_stats"] = nodes
    figures["edge_stats"] = stats["edges"]
    return figures
