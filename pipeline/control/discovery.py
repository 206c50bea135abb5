"""Where a running graph's control endpoint is: one small file per graph, so `redline ctl`
finds `redline demo` from another terminal with no address typed.

    path = publish("demo", "ipc:///run/user/1000/redline-1000/4242-ab12cd34/control")
    find()          # {"graph": "demo", "address": ..., "pid": 4242, "server_key": ""}
    withdraw(path, address)  # at exit, if the file is still ours

The files live in `redline-UID/control/` (transport/run_dir.py: the owner's alone), one per
serving process (GRAPH.PID.json: two runs of one graph never overwrite each other's, and `find`
asks which one is meant); a file whose process is gone (kill -9) is removed by the next `find`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from redline.pipeline.transport.run_dir import control_dir


def _file(graph: str) -> Path:
    return control_dir() / f"{re.sub(r'[^A-Za-z0-9_-]', '_', graph)}.{os.getpid()}.json"


def publish(graph: str, address: str, server_key: str = "") -> Path:
    """Say that this process serves `graph`'s control endpoint at `address`."""
    path = _file(graph)
    tmp = path.with_suffix(".tmp")
    info = {"graph": graph, "address": address, "pid": os.getpid(), "server_key": server_key}
    tmp.write_text(json.dumps(info) + "\n")
    tmp.replace(path)  # whole or not at all: a reader never sees half a file
    return path


def withdraw(path: Path, address: str) -> None:
    """Remove the file if it still names this endpoint (a later run of the graph may have
    replaced it)."""
    info = _read(path)
    if info is not None and info.get("pid") == os.getpid() and info.get("address") == address:
        path.unlink(missing_ok=True)


def running() -> list[dict[str, Any]]:
    """Every graph whose process is alive; stale files are removed."""
    out = []
    for path in sorted(control_dir().glob("*.json")):
        info = _read(path)
        if info is None or not _alive(info.get("pid", 0)):
            path.unlink(missing_ok=True)
            continue
        out.append(info)
    return out


def find(graph: str | None = None) -> dict[str, Any]:
    """The endpoint of `graph`, or of the one graph running when `graph` is None."""
    live = running()
    if graph is not None:
        live = [g for g in live if g["graph"] == graph]
    if not live:
        which = f"graph {graph!r}" if graph else "graph"
        raise FileNotFoundError(
            f"no running {which} found in {control_dir()}; start one (`redline demo`) or "
            "pass --address"
        )
    if len(live) > 1:
        names = ", ".join(f"{g['graph']} (pid {g['pid']}, {g['address']})" for g in live)
        raise ValueError(f"several graphs are running: {names}; pass --graph NAME or --address")
    return live[0]


def _read(path: Path) -> dict[str, Any] | None:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and "address" in info else None


def _alive(pid: int) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
