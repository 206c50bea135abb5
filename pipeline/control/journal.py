"""The command journal: every accepted control command, one JSON line, with who sent it.

`STEM.control.jsonl` beside the decision journal `STEM.arrow` (or where the graph's `[control]`
table says). Each line `{"ts_ns", "key_id", "verb", "args", "ok", "error"}` is written whole and
flushed as the command is answered, so a killed run keeps every line it wrote.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def control_journal_path(journal: str | os.PathLike) -> Path:
    """run.arrow -> run.control.jsonl."""
    journal = Path(journal)
    return journal.with_name(journal.stem + ".control.jsonl")


class CommandJournal:
    """Appends command lines to `path` (made on the first line)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.lines = 0

    def append(self, ts_ns: int, key_id: str, verb: str, args: tuple[str, ...],
               error: str = "") -> None:  # fmt: skip
        line: dict[str, Any] = {"ts_ns": ts_ns, "key_id": key_id, "verb": verb,
                                "args": list(args), "ok": not error, "error": error}  # fmt: skip
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
        self.lines += 1


def read_commands(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The journal's whole lines (a torn last line is left out)."""
    text = Path(path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]
