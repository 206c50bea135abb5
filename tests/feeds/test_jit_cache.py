import ast
import importlib.util
import os
import time
from pathlib import Path

import numba
import pytest

from redline.feeds import jit_cache

# A tree like the installed one: events changed (t=300) after every cache but one was written
# (t=200); zmq_drain reaches it through frames, plans/plan through zmq_drain as well.
SOURCES = {
    "feeds/__init__.py": "",
    "feeds/events.py": "X = 1\n",
    "feeds/wire/__init__.py": "",
    "feeds/wire/frames.py": "from ..events import X\n",  # relative
    "feeds/wire/zmq_drain.py": "from redline.feeds.wire import frames\n",  # names a module
    "feeds/books/__init__.py": "",
    "feeds/books/ladder.py": "import numpy\n",
    "kernels/__init__.py": "",
    "kernels/plans/__init__.py": "",
    "kernels/plans/plan.py": "def f():\n    import redline.feeds.wire.zmq_drain\n",
    "strategies/__init__.py": "",
    "pipeline/__init__.py": "",
}
STALE = [
    "feeds/wire/__pycache__/zmq_drain.drain-60.py311.nbi",
    "feeds/wire/__pycache__/zmq_drain.drain-60.py311.1.nbc",
    "kernels/plans/__pycache__/plan.f-3.py311.nbi",
]
FRESH = [
    "feeds/books/__pycache__/ladder.apply-37.py311.nbi",  # depends on nothing that changed
    "feeds/__pycache__/events.g-1.py311.nbi",  # written after events changed
]


def _write(path: Path, text: str = "", mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    for name, text in SOURCES.items():
        _write(tmp_path / name, text, 300 if name == "feeds/events.py" else 100)
    for name in STALE + FRESH:
        _write(tmp_path / name, mtime=200)
    os.utime(tmp_path / FRESH[1], (400, 400))
    return tmp_path


def test_a_cache_older_than_a_transitive_dependency_in_a_nested_package_is_dropped(tree):
    dropped = jit_cache.drop_stale(tree)
    assert sorted(dropped) == sorted(tree / p for p in STALE)
    assert all((tree / p).exists() for p in FRESH)
    assert not any((tree / p).exists() for p in STALE)


def test_the_fast_path_does_nothing_while_the_stamp_is_current(tree):
    assert len(jit_cache.check(tree)) == len(STALE)  # no stamp yet: the precise check
    assert (tree / "feeds/__pycache__" / jit_cache.STAMP).read_text() == str(300 * 10**9)
    planted = _write(tree / STALE[0], mtime=200)  # stale, but no source changed since
    assert jit_cache.check(tree) == []
    assert planted.exists()


def test_a_source_edited_after_the_stamp_runs_the_precise_check(tree):
    jit_cache.check(tree)
    planted = _write(tree / STALE[0], mtime=200)
    _write(tree / "strategies/__init__.py", '"""Edited."""\n')  # mtime: now; no cache uses it
    assert jit_cache.check(tree) == [planted]
    assert jit_cache.check(tree) == []  # stamped again


# A cached function as numba compiles it; the import inside is read by the guard only.
PROBE = """import numba


def _never_called():
    from redline.feeds.events import X


@numba.njit(cache=True)
def add_one(x):
    return x + 1
"""


@pytest.mark.parametrize("numba_cache_dir", [False, True], ids=["__pycache__", "NUMBA_CACHE_DIR"])
def test_the_files_numba_itself_writes_are_found(tree, monkeypatch, numba_cache_dir):
    if numba_cache_dir:
        monkeypatch.setenv("NUMBA_CACHE_DIR", str(tree / "numba-cache"))
        monkeypatch.setattr(numba.config, "CACHE_DIR", str(tree / "numba-cache"))  # read once
    probe = _write(tree / "feeds/books/probe.py", PROBE)
    jit_cache.check(tree)  # the planted stale caches go
    spec = importlib.util.spec_from_file_location("redline_jit_cache_probe", probe)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.add_one(1) == 2
    written = sorted(tree.rglob("probe.*.nb?"))
    assert {p.suffix for p in written} == {".nbi", ".nbc"}
    assert all(("numba-cache" in p.parts) == numba_cache_dir for p in written)
    assert jit_cache.check(tree) == []  # no source changed
    if numba_cache_dir:  # the stamp sits with the caches it vouches for
        assert len(list((tree / "numba-cache").glob(f"feeds_*/{jit_cache.STAMP}"))) == 1
    later = time.time() + 10  # past the caches even on a coarse filesystem clock
    _write(tree / "feeds/events.py", "X = 2\n", later)
    dropped = jit_cache.check(tree)
    assert set(written) <= set(dropped)
    assert (tree / FRESH[0]).exists()  # ladder does not import events


def test_an_unwritable_folder_or_a_broken_source_does_not_raise(tree):
    _write(tree / "feeds/wire/frames.py", "def broken(:\n")  # mid-edit
    # What root cannot write either: a folder where the stamp and a stale cache file go.
    (tree / "feeds/__pycache__" / jit_cache.STAMP).mkdir()
    (tree / STALE[1]).unlink()
    (tree / STALE[1]).mkdir()
    locked = [tree / "feeds/__pycache__", tree / "feeds/wire/__pycache__"]
    for d in locked:
        d.chmod(0o555)  # stamp and caches, for anyone but root
    try:
        assert tree / STALE[2] in jit_cache.check(tree)  # the rest of the check still ran
        jit_cache.check(tree)  # no stamp was written: the precise check again
    finally:
        for d in locked:
            d.chmod(0o755)
    assert (tree / STALE[1]).is_dir()
    assert jit_cache.check(tree / "absent") == []


def _uses_numba_cache(path: str) -> bool:
    """A `cache=` keyword anywhere, unless it is a literal False."""
    return any(
        isinstance(node, ast.keyword)
        and node.arg == "cache"
        and not (isinstance(node.value, ast.Constant) and node.value.value is False)
        for node in ast.walk(ast.parse(Path(path).read_bytes()))
    )


def test_every_module_with_a_numba_cache_imports_redline_feeds_so_the_guard_runs_first():
    import redline.feeds

    root = jit_cache.ROOT
    assert Path(root, "feeds") == Path(redline.feeds.__file__).parent
    deps = jit_cache.dependencies()
    cached = [p for p in deps if _uses_numba_cache(p)]
    assert os.path.join(root, "kernels", "features.py") in cached
    assert os.path.join(root, "feeds", "books", "l3.py") in cached  # sub-packages are seen
    feeds = os.path.join(root, "feeds") + os.sep  # importing any of it runs feeds/__init__
    outside = [p for p in cached if not any(d.startswith(feeds) for d in deps[p])]
    assert outside == []
