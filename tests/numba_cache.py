"""Drop numba cache files that their dependencies have outdated.

numba's cache (`cache=True`) notices only its own function's source file
changing. A cached function that inlines another module's njit function (the
ZeroMQ loop calls `wire.check_frame`, the L3 book the L2 book's helpers) or
freezes another module's constants (record offsets, enum values) keeps the old
machine code when only that other module changes. Before the tests run, every
cache file older than a redline module its source imports, directly or not,
is removed, so numba compiles it afresh.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGES = ("feeds", "kernels", "pipeline", "strategies")  # redline.<name> = <root>/<name>


def _modules(root: Path) -> dict[str, Path]:
    return {
        f"redline.{p.parent.name}.{p.stem}": p for d in PACKAGES for p in (root / d).glob("*.py")
    }


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The redline modules `path` imports (`from redline.x import y` may name a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out.update(n for n in names if n in known)
    return out


def newest_dependency(root: Path) -> dict[str, float]:
    """Module -> the newest mtime among its source and every redline module it imports."""
    known = _modules(root)
    graph = {name: _imports(path, known) for name, path in known.items()}
    out: dict[str, float] = {}
    for name in known:
        seen, todo = {name}, [name]
        while todo:
            for dep in graph[todo.pop()] - seen:
                seen.add(dep)
                todo.append(dep)
        out[name] = max(known[m].stat().st_mtime for m in seen)
    return out


def drop_stale(root: Path) -> list[Path]:
    """Remove cache files (`<pkg>/__pycache__/<module>.<function>-<line>.py3x.*nb?`) older
    than their module's newest dependency; returns what was removed."""
    newest = newest_dependency(root)
    dropped = []
    for d in PACKAGES:
        for cache in (root / d / "__pycache__").glob("*.nb[ic]"):
            module = f"redline.{d}.{cache.name.split('.', 1)[0]}"
            if module in newest and cache.stat().st_mtime < newest[module]:
                cache.unlink(missing_ok=True)
                dropped.append(cache)
    return dropped
