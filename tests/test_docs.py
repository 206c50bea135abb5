"""The docs name only what exists: every source path and `redline.*` module they mention.

README.md, BENCHMARKS.md and docs/architecture.md describe the tree as it is now. The dated log
(docs/benchmarks-log.md) is history: it keeps the names of its day and is not checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "BENCHMARKS.md", "docs/architecture.md")
TOPS = ("feeds", "kernels", "strategies", "pipeline", "bench", "tests")
# A path starts at a top folder (not inside a longer path or a module name) and ends in .py.
PATH = re.compile(rf"(?<![\w./-])(?:{'|'.join(TOPS)})/[\w/.-]*?\.py\b")
MODULE = re.compile(r"(?<![\w.])redline(?:\.\w+)+")


def _text(doc: str) -> str:
    return (ROOT / doc).read_text()


@pytest.mark.parametrize("doc", DOCS)
def test_every_source_path_named_in_the_docs_exists(doc):
    named = sorted(set(PATH.findall(_text(doc))))
    assert named, f"{doc} names no source path: is the pattern still right?"
    missing = [p for p in named if not (ROOT / p).is_file()]
    assert not missing, f"{doc} names files that are not in the tree: {missing}"


def _module_file(parts: list[str]) -> Path | None:
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _defines(path: Path, name: str) -> bool:
    """`name` is defined or imported at some level of `path` (a cheap, import-free check)."""
    src = path.read_text()
    return re.search(rf"(?m)^\s*(?:def|class|async def)\s+{name}\b|\b{name}\s*[:=]|import.*\b{name}\b|\"{name}\"", src) is not None  # fmt: skip


def _problem(module: str) -> str | None:
    """Why `redline.a.b[.name]` names nothing in the tree, or None: a module file, or one name
    defined in a module file."""
    parts = module.split(".")[1:]
    if _module_file(parts):
        return None
    *head, name = parts
    found = _module_file(head) if head else None
    if found is None:
        return "no such module"
    return None if _defines(found, name) else f"{found.relative_to(ROOT)} defines no {name!r}"


@pytest.mark.parametrize("doc", DOCS)
def test_every_redline_module_named_in_the_docs_exists(doc):
    named = sorted(set(MODULE.findall(_text(doc))))
    bad = {m: p for m in named if (p := _problem(m))}
    assert not bad, f"{doc} names modules that are not in the tree: {bad}"


def test_benchmarks_links_its_log():
    assert "docs/benchmarks-log.md" in _text("BENCHMARKS.md")
    assert (ROOT / "docs/benchmarks-log.md").is_file()
