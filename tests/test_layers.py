"""The tree is the architecture: layers, the transport seam, the package list, file sizes.

Read from the source with `ast`, every import counted (module level and inside functions), so a
cycle or a leak fails here before it fails in a user's process.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = (
    "feeds",
    "kernels",
    "strategies",
    "venue",
    "pipeline",
)  # a layer imports only those before it
# Where ZeroMQ may be imported: the feeds' wire and live sources (ZeroMQ is the protocol they
# speak with other processes) and the graph's transport. Nothing else sees a socket.
ZMQ_HOMES = ("feeds/wire/", "feeds/live/", "pipeline/transport/")
# Files over ~400 lines, each with the reason it stays whole.
LONG_FILES: dict[str, str] = {
    "bench/bench_feeds.py": "throughput and paired one-way latency, each beside its bare pyzmq "
    "loop measured in the same run, and the sender processes both need",
    "bench/bench_failover.py": "the direct-worker baseline, then closed- and open-loop runs per "
    "policy with and without a kill: one comparison, one file",
    "pipeline/arbiter/arbiter.py": "the request state machine, answers in and decisions out: "
    "every transition reads and writes the same request; intake, the in-flight table, policy, "
    "checks, referee, outbox and recovery are files of their own",
    "pipeline/graph/runtime.py": "one run's lifecycle: builds the nodes, runs them (all or some "
    "per process, three wait modes) with the control plane they share (signals, the /metrics "
    "loop, the control endpoint) and drains them, counting losses; each node kind, the metrics "
    "and the endpoint are files of their own",
}


def _modules() -> dict[str, Path]:
    out = {}
    for top in LAYERS:
        for path in (ROOT / top).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            name = ".".join(("redline", *parts))
            out[name] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every module `path` imports (a `from x import y` that names a module counts as x.y)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[1])


def test_a_lower_layer_never_imports_a_higher_one():
    bad = []
    for name, path in MODULES.items():
        for dep in _imports(path):
            redline = dep.startswith("redline.") and dep.split(".")[1] in LAYERS
            if redline and _layer(dep) > _layer(name):
                bad.append(f"{path.relative_to(ROOT)} imports {dep}")
    assert not bad, "layers are feeds < kernels < strategies < venue < pipeline:\n" + "\n".join(bad)


def _package(module: str) -> str:
    """The sub-package a module belongs to (redline.pipeline.arbiter.breaker -> ...arbiter)."""
    path = MODULES[module]
    return module if path.name == "__init__.py" else module.rsplit(".", 1)[0]


def test_sub_packages_import_each_other_without_cycles():
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        src = _package(name)
        for dep in _imports(path):
            if dep in MODULES and _package(dep) != src:
                # a package's __init__ is its parent's business, not a dependency of siblings
                graph.setdefault(src, set()).add(_package(dep))
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # a package and its own parent (redline.feeds and redline.feeds.wire) may meet in __init__
    cycles = [c for c in cycles if not _parent_child(c)]
    assert not cycles, "sub-package import cycles:\n" + "\n".join(cycles)


def _parent_child(cycle: str) -> bool:
    nodes = cycle.split(" -> ")
    return len(set(nodes)) == 2 and any(a.startswith(b + ".") for a in nodes for b in nodes)


def test_zeromq_stays_behind_the_transport_seam():
    leaks = [
        str(path.relative_to(ROOT))
        for path in MODULES.values()
        if any(d == "zmq" or d.startswith("zmq.") for d in _imports(path))
        and not str(path.relative_to(ROOT)).startswith(ZMQ_HOMES)
    ]
    assert not leaks, f"zmq imported outside {ZMQ_HOMES}: {leaks}"


def test_every_package_is_installed():
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    assert found <= listed, f"add to pyproject.toml [tool.setuptools] packages: {found - listed}"


def test_no_module_shadows_the_standard_library():
    import sys

    shadows = [n for n in MODULES if n.rsplit(".", 1)[-1] in sys.stdlib_module_names]
    assert not shadows, shadows


@pytest.mark.parametrize("top", [*LAYERS, "tests", "bench"])
def test_files_stay_small_or_say_why(top):
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / top).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    unexplained = {p: n for p, n in long.items() if p not in LONG_FILES}
    assert not unexplained, f"over 400 lines without a stated reason in LONG_FILES: {unexplained}"
    stale = [p for p in LONG_FILES if p.startswith(top + "/") and p not in long]
    assert not stale, f"LONG_FILES entries no longer long (remove them): {stale}"


def test_every_source_module_has_a_docstring():
    missing = [
        str(p.relative_to(ROOT))
        for p in MODULES.values()
        if ast.get_docstring(ast.parse(p.read_text())) is None
        and p.read_text().strip()  # an empty __init__ says nothing to explain
    ]
    assert not missing, missing


def test_tests_mirror_the_source_tree():
    """Every test file names a source module beside it (tests/<pkg>/test_<module>.py), so the
    tree reads the same in both places; a few cross-cutting tests are named here."""
    cross = {
        "tests/test_layers.py",
        "tests/feeds/wire/test_frames_fuzz.py",
        "tests/pipeline/workers/test_worker_faults.py",
        "tests/kernels/test_gpu.py",  # every kernel on a real GPU, compiled
        "tests/pipeline/workers/test_cuda_engine.py",  # engines.py's CudaEngine, GPU only
    }
    orphans = []
    for t in (ROOT / "tests").rglob("test_*.py"):
        rel = str(t.relative_to(ROOT))
        if rel in cross:
            continue
        pkg = t.parent.relative_to(ROOT / "tests")
        stem = re.sub(r"^test_", "", t.stem)
        if not ((ROOT / pkg / f"{stem}.py").exists() or (ROOT / pkg / stem).is_dir()):
            orphans.append(rel)
    assert not orphans, f"tests with no source module of that name beside them: {orphans}"
