"""`--json PATH`: every command that reports figures writes them with stable keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    return obj


def write_json(path: str | Path | None, figures: dict[str, Any]) -> None:
    """Write `figures` to `path` (no-op when None), creating parent folders."""
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain(figures), indent=2, sort_keys=False) + "\n")


def add_json_arg(parser) -> None:
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
