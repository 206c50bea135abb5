"""Where the real recordings for checks live (never inside the repo).

`$REDLINE_REALDATA` when set, else `shared/realdata` beside the checkout
(`<repo>/../shared/realdata`). Tests and benchmarks that read it skip when it
is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def realdata_dir(repo_root: Path | None = None) -> Path | None:
    """The recordings folder, or None when there is none."""
    env = os.environ.get("REDLINE_REALDATA")
    path = Path(env) if env else (repo_root or REPO_ROOT) / ".." / "shared" / "realdata"
    return path.resolve() if path.is_dir() else None
