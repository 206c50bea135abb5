import os

from numba_cache import drop_stale


def _touch(path, text="", mtime=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_a_cache_older_than_any_module_it_depends_on_is_dropped(tmp_path):
    _touch(tmp_path / "feeds" / "wire.py", "from redline.feeds.events import X\n", 100)
    _touch(tmp_path / "feeds" / "events.py", "X = 1\n", 300)  # changed after the cache
    _touch(tmp_path / "feeds" / "zmq_drain.py", "from redline.feeds import wire\n", 100)
    _touch(tmp_path / "feeds" / "other.py", "import numpy\n", 100)
    pyc = tmp_path / "feeds" / "__pycache__"
    stale = [pyc / "zmq_drain.drain-60.py311.nbi", pyc / "zmq_drain.drain-60.py311.1.nbc"]
    fresh = [pyc / "other.f-3.py311.nbi", pyc / "events.g-1.py311.nbi"]
    for p in stale + fresh:
        _touch(p, mtime=200)
    _touch(fresh[1], mtime=400)  # written after events.py changed
    dropped = drop_stale(tmp_path)
    assert sorted(dropped) == sorted(stale)  # through wire, two imports away
    assert all(p.exists() for p in fresh) and not any(p.exists() for p in stale)
