"""A graph is a value: named nodes joined by named edges, read from TOML.

Every edge is an address (mem://, inproc://, ipc://, tcp://) with a backpressure policy, so one file runs
in one process (all nodes), in several (`redline run graph.toml --node NAME`
per process, ipc) or across hosts (tcp) without code changes. A graph is
checked completely when loaded: unknown keys, bad types, dangling or unused
edges and cycles fail with an error naming the node (or edge) and the field.

    [graph]
    name = "demo"
    budget_us = 2000          # latency budget: each decision's deadline

    [edges.ticks]
    address = "ipc:///tmp/redline-demo/ticks"
    policy = "conflate"       # keep-latest per instrument; drops are counted
    hwm = 1000

    [nodes.feed]
    kind = "feed"
    source = "tcp://127.0.0.1:5555"
    out = "ticks"
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from redline.feeds.settings import (
    DurationMs,
    DurationUs,
    Port,
    Settings,
    plain,
)
from redline.pipeline.control.config import ControlSpec
from redline.pipeline.graph.node_specs import (
    _KIND_TYPES,
    KINDS,
    ArbiterSpec,
    BaseNodeSpec,
    FeaturesSpec,
    FeedSpec,
    FrameArbiterSpec,
    JournalSpec,
    NodeSpec,
    PlannerSpec,
    StrategySpec,
    SyncSpec,
    Wait,
    WorkerSpec,
)
from redline.pipeline.transport.address import address_problem, feed_source_problem
from redline.pipeline.transport.security import SecuritySpec

# The node kinds live in node_specs.py; callers read them here too (gc.ArbiterSpec, ...).
__all__ = [
    "KINDS",
    "ArbiterSpec",
    "BaseNodeSpec",
    "EdgeSpec",
    "FeaturesSpec",
    "FeedSpec",
    "FrameArbiterSpec",
    "GraphError",
    "GraphHead",
    "GraphSpec",
    "JournalSpec",
    "NodeSpec",
    "PlannerSpec",
    "StrategySpec",
    "SyncSpec",
    "Wait",
    "WorkerSpec",
    "load",
    "parse",
    "preset_text",
    "presets",
    "with_addresses",
]

EdgePolicy = Literal["block", "conflate"]
Hwm = Annotated[int, msgspec.Meta(gt=0, le=2**31 - 1)]  # ZeroMQ takes an int


class GraphError(ValueError):
    """A graph file is wrong; the message names the file, node or edge, and field."""


class EdgeSpec(Settings):
    """One edge: where it lives and what happens when its reader falls behind."""

    address: str
    policy: EdgePolicy = (
        "block"  # block: the writer waits; conflate: keep the latest per instrument
    )
    hwm: Hwm = 1000  # messages queued before the policy applies (in the transport, and again
    # at the writer: the backlog a node keeps while the transport is full)
    max_bytes: Annotated[int, msgspec.Meta(gt=0, le=1 << 34)] = 64 << 20  # writer backlog bytes
    overflow: Literal["drop", "block"] = "drop"  # conflate: trades past the bounds dropped
    # (counted) or held, holding the writer back


_OPTIONAL_TABLES = {"control": ControlSpec, "security": SecuritySpec}  # [control], [security]
_TABLES = ("graph", "nodes", "edges", *_OPTIONAL_TABLES)


class GraphHead(Settings):
    name: str
    budget_us: DurationUs = 2000  # each decision's deadline = ts_recv + budget
    metrics_port: Port = 0  # Prometheus endpoint; 0 = off
    drain_timeout_ms: DurationMs = 10_000  # a stop drains at most this long, then counts losses


class GraphSpec(msgspec.Struct, frozen=True, kw_only=True):
    graph: GraphHead
    nodes: dict[str, NodeSpec]
    edges: dict[str, EdgeSpec]
    control: ControlSpec = ControlSpec()  # the control endpoint (pipeline/control/config.py)
    security: SecuritySpec = SecuritySpec()  # tcp edges' CURVE (pipeline/transport/security.py)

    @property
    def budget_ns(self) -> int:
        return self.graph.budget_us * 1000

    def producer_of(self, edge: str) -> str:
        return next(n for n, spec in self.nodes.items() if edge in spec.outputs)

    def consumer_of(self, edge: str) -> str:
        return next(n for n, spec in self.nodes.items() if edge in spec.inputs)

    def order(self) -> list[str]:
        """Node names, upstream first (the graph is acyclic once loaded)."""
        return _topological(self)


def _fail(where: str, what: str) -> GraphError:
    return GraphError(f"{where}: {what}")


def _check(spec: GraphSpec, where: str) -> None:
    """What the types cannot say: edges joined end to end, worker names, policies that
    need a socket kind, settings that depend on the graph's budget. (Types and bounds were
    checked while decoding.)"""
    if not spec.nodes:
        raise _fail(where, "the graph has no [nodes]")
    for name, edge in spec.edges.items():
        problem = address_problem(edge.address)
        if problem:
            raise _fail(where, f"edge '{name}': field 'address' is {edge.address!r}; {problem}")
    producers: dict[str, str] = {}
    consumers: dict[str, str] = {}
    for name, node in spec.nodes.items():
        for field, edges, seen in (
            ("in", node.inputs, consumers),
            ("out", node.outputs, producers),
        ):
            for e in edges:
                if e not in spec.edges:
                    raise _fail(
                        where,
                        f"node '{name}': field '{field}' names edge '{e}', which is not in "
                        f"[edges] (known: {', '.join(sorted(spec.edges)) or 'none'})",
                    )
                if e in seen:
                    raise _fail(
                        where,
                        f"node '{name}': field '{field}': edge '{e}' is already used by node "
                        f"'{seen[e]}'; an edge joins exactly one writer to one reader",
                    )
                seen[e] = name
        if isinstance(node, ArbiterSpec):
            names = [w.name for w in node.workers]
            if len(names) != 2 or len(set(names)) != 2:
                raise _fail(
                    where,
                    f"node '{name}': field 'workers' needs two workers with distinct names, got {names}",
                )
            try:
                node.arbiter_config(spec.budget_ns)
            except ValueError as exc:  # e.g. a hedge delay past the graph's budget
                raise _fail(where, f"node '{name}': {exc}") from None
        if isinstance(node, FeedSpec):
            problem = feed_source_problem(node.source)
            if problem:
                raise _fail(where, f"node '{name}': field 'source' is {node.source!r}; {problem}")
        if isinstance(node, FeedSpec) and node.socket == "sub":
            edge = spec.edges.get(node.out)
            if edge is not None and edge.policy == "block":
                raise _fail(
                    where,
                    f"node '{name}': field 'socket' is 'sub' but its out edge '{node.out}' has "
                    "policy 'block': a SUB socket cannot hold a publisher back (a full queue "
                    "drops); use socket = 'pull' with a PUSH publisher, or policy = 'conflate'",
                )
    for e in spec.edges:
        if e not in producers:
            raise _fail(where, f"edge '{e}' has no writer: no node has out = '{e}'")
        if e not in consumers:
            raise _fail(where, f"edge '{e}' has no reader: no node has in = '{e}'")
    _topological(spec, where)


def _topological(spec: GraphSpec, where: str = "graph") -> list[str]:
    """Depth-first order; a cycle raises naming a node on it."""
    done: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            loop = [*path[path.index(name) :], name]
            raise _fail(where, f"node '{name}': field 'out' closes a cycle {' -> '.join(loop)}")
        state[name] = 1
        for e in spec.nodes[name].outputs:
            visit(spec.consumer_of(e), [*path, name])
        state[name] = 2
        done.append(name)

    for name in spec.nodes:
        visit(name, [])
    return done[::-1]


def parse(text: str, where: str = "graph") -> GraphSpec:
    """A graph from TOML text; `where` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(where, f"not valid TOML: {exc}") from None
    extra = set(raw) - set(_TABLES)
    if extra:
        raise _fail(where, f"unknown table(s) {sorted(extra)}; valid: {', '.join(_TABLES)}")
    for table in _TABLES:
        if not isinstance(raw.get(table, {}), dict):
            raise _fail(where, f"'{table}' must be a table, got {type(raw[table]).__name__}")
    if "graph" not in raw:
        raise _fail(where, "missing the [graph] table (name, budget_us)")
    head = _convert(raw["graph"], GraphHead, where, "[graph]")
    nodes = {
        n: _convert(v, NodeSpec, where, f"node '{n}'") for n, v in raw.get("nodes", {}).items()
    }
    edges = {
        n: _convert(v, EdgeSpec, where, f"edge '{n}'") for n, v in raw.get("edges", {}).items()
    }
    more = {t: _convert(raw.get(t, {}), c, where, f"[{t}]") for t, c in _OPTIONAL_TABLES.items()}
    spec = GraphSpec(graph=head, nodes=nodes, edges=edges, **more)
    _check(spec, where)
    return spec


def _convert(raw: object, typ: type, where: str, noun: str):
    if not isinstance(raw, dict):
        raise _fail(where, f"{noun} must be a table, got {raw!r}")
    try:
        return msgspec.convert(raw, typ)
    except msgspec.ValidationError as exc:
        raise _fail(where, f"{noun}: {_plain_error(str(exc), raw, typ)}") from None


def _plain_error(msg: str, raw: dict, typ: type) -> str:
    """msgspec's "Expected `int` >= 1 - at `$.hwm`" -> "field 'hwm' is 0; expected int >= 1"."""
    text, _, at = msg.rpartition(" - at ") if " - at " in msg else (msg, "", "")
    field = at.strip("`").removeprefix("$").lstrip(".")
    unknown = re.match(r"Object contains unknown field `(.+)`", text)
    if unknown and field:
        return f"field '{field}': unknown field '{unknown[1]}'"
    if unknown:
        kind = raw.get("kind")
        cls = _KIND_TYPES.get(kind) if isinstance(kind, str) else None
        valid = ["kind", *sorted(_toml_fields(cls))] if cls else None
        suffix = f" (valid: {', '.join(valid)})" if valid else ""
        return f"unknown field '{unknown[1]}'{suffix}"
    missing = re.match(r"Object missing required field `(.+)`", text)
    if missing:
        inner = f"{field}." if field else ""
        return f"missing required field '{inner}{missing[1]}'"
    if field == "kind" or (not field and "kind" in text):
        return f"field 'kind' is {raw.get('kind')!r}; valid: {', '.join(KINDS)}"
    kind = raw.get("kind")
    return plain(msg, raw, _KIND_TYPES.get(kind, typ) if isinstance(kind, str) else typ)


def _toml_fields(cls: type) -> list[str]:
    return [f.encode_name for f in msgspec.structs.fields(cls)]


def load(path: str | Path) -> GraphSpec:
    """Read and check a graph file; a preset name (see `presets()`) also works."""
    p = Path(path)
    if not p.exists() and str(path) in presets():
        return parse(preset_text(str(path)), where=f"preset '{path}'")
    if not p.exists():
        raise FileNotFoundError(
            f"graph file {path} not found (bundled presets: {', '.join(presets())})"
        )
    return parse(p.read_text(), where=str(p))


def presets() -> list[str]:
    """Names of the bundled graphs in `redline.pipeline.graph.presets`."""
    root = resources.files("redline.pipeline.graph") / "presets"
    return sorted(f.name.removesuffix(".toml") for f in root.iterdir() if f.name.endswith(".toml"))


def preset_text(name: str) -> str:
    return (resources.files("redline.pipeline.graph") / "presets" / f"{name}.toml").read_text()


def with_addresses(spec: GraphSpec, **addresses: str) -> GraphSpec:
    """The same graph with some edges moved (e.g. to a test's tmp folder)."""
    edges = dict(spec.edges)
    for name, addr in addresses.items():
        if name not in edges:
            raise GraphError(f"with_addresses: no edge '{name}' (known: {sorted(edges)})")
        edges[name] = msgspec.structs.replace(edges[name], address=addr)
    return msgspec.structs.replace(spec, edges=edges)
