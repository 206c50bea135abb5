"""A graph is a value: named nodes joined by named edges, read from TOML.

Every edge is a ZeroMQ address with a backpressure policy, so one file runs
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
from typing import Literal

import msgspec

Wait = Literal["await", "busy", "block"]  # how a node waits for input; see runtime.py
Policy = Literal["block", "conflate"]
SCHEMES = ("inproc://", "ipc://", "tcp://")


class GraphError(ValueError):
    """A graph file is wrong; the message names the file, node or edge, and field."""


class _Spec(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class EdgeSpec(_Spec, kw_only=True):
    """One edge: where it lives and what happens when its reader falls behind."""

    address: str
    policy: Policy = "block"  # block: the writer waits; conflate: keep the latest per instrument
    hwm: int = 1000  # messages queued before the policy applies


class _NodeSpec(_Spec, tag_field="kind", kw_only=True):
    wait: Wait = "await"

    @property
    def inputs(self) -> tuple[str, ...]:
        src = getattr(self, "in_", None)
        return (src,) if src else ()

    @property
    def outputs(self) -> tuple[str, ...]:
        dst = getattr(self, "out", None)
        return (dst,) if dst else ()


class FeedNode(_NodeSpec, tag="feed", kw_only=True):
    """Ingress: subscribes to a publisher (stamps `ts_recv`), checks sequence
    numbers (flags gaps) and stamps `ts_feed` as it hands events on.

    The ingress follows the out edge's policy (see graph_nodes.FeedNode):
    `conflate` drains eagerly and keeps the latest quote per instrument;
    `block` queues at most `hwm` messages (RCVHWM) and stops reading while
    downstream is full, so a PUSH publisher with a send HWM blocks. A SUB
    socket cannot push back (a full queue drops at the publisher), so `block`
    needs `socket = "pull"`."""

    source: str  # the publisher's ZeroMQ address
    out: str
    socket: Literal["sub", "pull"] = "sub"  # sub: XPUB/PUB publisher; pull: PUSH publisher


class FeaturesNode(_NodeSpec, tag="features", kw_only=True):
    """Keeps every instrument's features current as events pass (the kernels'
    feature state) and stamps `ts_features`; optional, between feed and arbiter."""

    in_: str = msgspec.field(name="in")
    out: str
    max_instruments: int = 1024  # rows of feature state; one more instrument is an error


class WorkerSpec(_Spec, kw_only=True):
    name: str
    device: str = "auto"  # auto: CUDA when present, else CPU


class ArbiterNode(_NodeSpec, tag="arbiter", kw_only=True):
    """Sends every event of `instruments` (all when empty) to both workers (hot
    standby: their feature state is resident and current), asks for a decision
    on each of their quotes and picks an answer by the deadline (budget)."""

    in_: str = msgspec.field(name="in")
    out: str
    policy: Literal["race", "hedge", "compare"] = "race"
    workers: tuple[WorkerSpec, ...] = (WorkerSpec(name="a"), WorkerSpec(name="b"))
    model: str = ""  # model folder; empty = the bundled demo model
    instruments: tuple[int, ...] = ()  # whose events go to the workers; empty = all
    fallback: bool = True  # in-process CPU fallback before the safe default


class StrategyNode(_NodeSpec, tag="strategy", kw_only=True):
    """Model answer -> order decision with risk checks; stamps `ts_decision`."""

    in_: str = msgspec.field(name="in")
    out: str = ""  # empty: decisions end here (counted, not forwarded)
    threshold: float = 0.2  # |score| above which the strategy trades
    qty: int = 1  # lots per order
    max_position: int = 10  # lots, per instrument, either side
    max_orders_per_s: int = 50  # per instrument
    stale_after_us: int = 50_000  # no new risk on data older than this
    flatten_on_default: bool = False  # safe default: flatten instead of doing nothing


class JournalNode(_NodeSpec, tag="journal", kw_only=True):
    """Sink: appends every decision to the journal, flushed on an interval."""

    in_: str = msgspec.field(name="in")
    path: str = ""  # empty: count decisions, write nothing
    flush_interval_ms: int = 100


NodeSpec = FeedNode | FeaturesNode | ArbiterNode | StrategyNode | JournalNode
_KIND_TYPES: dict[str, type] = {
    "feed": FeedNode,
    "features": FeaturesNode,
    "arbiter": ArbiterNode,
    "strategy": StrategyNode,
    "journal": JournalNode,
}
KINDS: tuple[str, ...] = tuple(_KIND_TYPES)


class GraphHead(_Spec, kw_only=True):
    name: str
    budget_us: int = 2000  # each decision's deadline = ts_feed + budget
    metrics_port: int = 0  # Prometheus endpoint; 0 = off


class GraphSpec(_Spec, kw_only=True):
    graph: GraphHead
    nodes: dict[str, NodeSpec]
    edges: dict[str, EdgeSpec]

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
    g = spec.graph
    if g.budget_us <= 0:
        raise _fail(where, f"[graph] field 'budget_us' must be > 0, got {g.budget_us}")
    if not 0 <= g.metrics_port < 65536:
        raise _fail(where, f"[graph] field 'metrics_port' must be 0..65535, got {g.metrics_port}")
    if not spec.nodes:
        raise _fail(where, "the graph has no [nodes]")
    for name, edge in spec.edges.items():
        if not edge.address.startswith(SCHEMES):
            raise _fail(
                where,
                f"edge '{name}': field 'address' is {edge.address!r}; "
                f"it must start with one of {', '.join(SCHEMES)}",
            )
        if edge.hwm <= 0:
            raise _fail(where, f"edge '{name}': field 'hwm' must be > 0, got {edge.hwm}")
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
        if isinstance(node, ArbiterNode):
            names = [w.name for w in node.workers]
            if len(names) != 2 or len(set(names)) != 2:
                raise _fail(
                    where,
                    f"node '{name}': field 'workers' needs two workers with distinct names, got {names}",
                )
        if isinstance(node, FeedNode) and node.socket == "sub":
            edge = spec.edges.get(node.out)
            if edge is not None and edge.policy == "block":
                raise _fail(
                    where,
                    f"node '{name}': field 'socket' is 'sub' but its out edge '{node.out}' has "
                    "policy 'block': a SUB socket cannot hold a publisher back (a full queue "
                    "drops); use socket = 'pull' with a PUSH publisher, or policy = 'conflate'",
                )
        if isinstance(node, FeaturesNode) and node.max_instruments <= 0:
            raise _fail(
                where,
                f"node '{name}': field 'max_instruments' must be > 0, got {node.max_instruments}",
            )
        if isinstance(node, StrategyNode):
            for f in ("qty", "max_position", "max_orders_per_s", "stale_after_us"):
                if getattr(node, f) <= 0:
                    raise _fail(
                        where, f"node '{name}': field '{f}' must be > 0, got {getattr(node, f)}"
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
    extra = set(raw) - {"graph", "nodes", "edges"}
    if extra:
        raise _fail(
            where, f"unknown table(s) {sorted(extra)}; valid: [graph], [nodes.*], [edges.*]"
        )
    for table in ("graph", "nodes", "edges"):
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
    spec = GraphSpec(graph=head, nodes=nodes, edges=edges)
    _check(spec, where)
    return spec


def _convert(raw: object, typ: type, where: str, noun: str):
    if not isinstance(raw, dict):
        raise _fail(where, f"{noun} must be a table, got {raw!r}")
    try:
        return msgspec.convert(raw, typ)
    except msgspec.ValidationError as exc:
        raise _fail(where, f"{noun}: {_plain_error(str(exc), raw)}") from None


def _plain_error(msg: str, raw: dict) -> str:
    # msgspec: "Expected `int`, got `str` - at `$.hwm`" -> "field 'hwm': expected int, got str"
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
    text = text.replace("`", "")
    return f"field '{field}': {text}" if field else text


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
    """Names of the bundled graphs in `redline.pipeline.graphs`."""
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
