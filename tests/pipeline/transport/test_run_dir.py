"""The private per-run directory for ipc sockets: owner-only, gone after a clean exit, swept
after a crash."""

import os
import stat
import subprocess
import sys

import pytest

from redline.pipeline.transport import run_dir as rd
from redline.replay_data import DIR

# A graph's worker pair on the run's sockets; then a clean exit, or a crash (SIGKILL: no exit
# handler runs). The workers bind their sockets inside the run directory.
RUN = """
import os, signal, sys, time
from redline.pipeline.workers.link import spawn_pair
links = spawn_pair(sys.argv[1])
for link in links:
    link.start()
path = links[0].endpoint[len("ipc://"):]
while not os.path.exists(path):
    time.sleep(0.01)
print(os.path.dirname(path), flush=True)
for link in links:
    link.stop()
if sys.argv[2] == "crash":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _run(tmp_path, how):
    env = os.environ | {"XDG_RUNTIME_DIR": str(tmp_path)}
    p = subprocess.run(
        [sys.executable, "-c", RUN, str(DIR / "model"), how],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return p, tmp_path / f"redline-{os.getuid()}"


def test_a_clean_run_leaves_no_socket_behind_and_its_directory_was_private(tmp_path):
    p, base = _run(tmp_path, "clean")
    assert p.returncode == 0, p.stderr
    used = p.stdout.strip()
    assert os.path.dirname(used) == str(base)  # the sockets were in the run's directory
    assert stat.S_IMODE(base.stat().st_mode) == 0o700
    assert list(base.iterdir()) == []  # and it went at exit


def test_a_crashed_runs_directory_is_removed_by_the_next_run(tmp_path, monkeypatch):
    p, base = _run(tmp_path, "crash")
    assert p.returncode == -9
    left = list(base.iterdir())
    assert [str(d) for d in left] == [p.stdout.strip()]  # the crashed run's directory stayed
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    mine = rd.run_dir()  # the next run: sweeps the dead one, makes its own
    assert [d.name for d in base.iterdir()] == [mine.name]
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700


def test_a_shared_directory_is_refused_with_what_to_do(tmp_path, monkeypatch):
    base = tmp_path / f"redline-{os.getuid()}"
    base.mkdir(mode=0o777)
    base.chmod(0o777)  # as if another user had made it open to all
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    with pytest.raises(PermissionError, match="not a private directory of this user"):
        rd.run_dir()
