"""A private directory per run for the ipc sockets the process makes (the workers' links).

    path = run_dir() / "redline-w0"     # $XDG_RUNTIME_DIR or the temp dir, then
                                        # redline-UID/PID-TAG/, mode 0700

Why: socket files left in the shared temp folder piled up by the hundred, and any process of
any user could connect to a socket there. Here the parent `redline-UID` and the run's own
directory are the owner's alone (0700, checked, never followed through a link someone else
planted), the run's directory is removed when the process exits, and the next run removes
those whose process is gone (a kill -9 runs no exit handler).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import stat
import tempfile
import uuid
from pathlib import Path

_RUN_DIR: Path | None = None


def base_dir() -> Path:
    """`redline-UID` under $XDG_RUNTIME_DIR (a per-user tmpfs where there is one) or the temp dir."""
    root = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(root) / f"redline-{os.getuid()}"


def run_dir() -> Path:
    """This process's private directory, made on first use and removed at exit."""
    global _RUN_DIR
    if _RUN_DIR is None or _RUN_DIR.parent != base_dir():
        base = _private(base_dir())
        sweep(base)
        _RUN_DIR = _private(base / f"{os.getpid()}-{uuid.uuid4().hex[:8]}")
        atexit.register(shutil.rmtree, _RUN_DIR, ignore_errors=True)
    return _RUN_DIR


def control_dir() -> Path:
    """`redline-UID/control`, private like the run directories: where each running graph says
    where its control endpoint is (pipeline/control/discovery.py), so `redline ctl` finds it."""
    return _private(_private(base_dir()) / "control")


def sweep(base: Path) -> list[Path]:
    """Remove the run directories under `base` whose process is gone; returns them."""
    removed = []
    for child in base.iterdir():
        pid = child.name.partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


def _private(path: Path) -> Path:
    """`path` as a directory only this user can open: made 0700, or checked if it exists."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    st = path.lstat()  # lstat: a symlink planted at the name is refused, not followed
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(
            f"{path}: not a private directory of this user (owner uid {st.st_uid}, mode "
            f"{stat.filemode(st.st_mode)}); remove it or set XDG_RUNTIME_DIR elsewhere"
        )
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process of that pid: alive
        return True
    return True
