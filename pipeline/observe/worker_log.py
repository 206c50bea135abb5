"""The worker log: what happened to the workers, beside the decision journal.

The journal holds decisions only: a killed worker shows there as nothing more than
decisions from its peer. What happened to the workers (taken out and why, restarted,
readmitted, errors) is the arbiter's `events_log()`; written, in wall-clock ns like the
journal's stamps, to `STEM.workers.jsonl` beside `STEM.arrow`, it lets `redline report`
mark each fault and restart on its plots. One JSON object per line, `{"ts_ns", "worker",
"what", "why"}`, each line written whole and flushed, so a killed run keeps every line it
wrote; a torn last line (no newline) is left out, like the journal's torn last batch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

# What the arbiter logs that takes a worker out of service; the rest (restart, synced,
# readmitted, ready) is recovery.
FAULTS: frozenset[str] = frozenset({"out", "error", "refused", "resync"})


@dataclass(frozen=True)
class WorkerEvent:
    ts_ns: int  # wall clock, ns since the epoch (the journal's stamps)
    worker: str
    what: str  # out | restart | ready | synced | readmitted | error | refused | resync
    why: str = ""  # e.g. the trip reason of an `out`, the pid of a `restart`

    @property
    def fault(self) -> bool:
        return self.what in FAULTS


def worker_log_path(journal: str | os.PathLike) -> Path:
    """Where the worker log of the journal at `journal` lives: run.arrow -> run.workers.jsonl."""
    journal = Path(journal)
    return journal.with_name(journal.stem + ".workers.jsonl")


def append_worker_events(journal: str | os.PathLike, events: Iterable[WorkerEvent]) -> int:
    """Append `events` to the worker log of `journal`; returns how many were written."""
    lines = [json.dumps(asdict(e)) + "\n" for e in events]
    if lines:
        with open(worker_log_path(journal), "a", encoding="utf-8") as f:
            f.write("".join(lines))
            f.flush()
    return len(lines)


def read_worker_log(journal: str | os.PathLike) -> list[WorkerEvent] | None:
    """The worker events recorded beside `journal`, in time order; None when there is no
    worker log (not the same as a run without incidents: an empty list)."""
    path = worker_log_path(journal)
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")[:-1]  # the part after the last newline is torn or empty
    events = []
    for no, line in enumerate(lines, 1):
        try:
            events.append(WorkerEvent(**json.loads(line)))
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"{path} line {no}: not a worker event ({exc}); move the file aside to report "
                "without fault markers"
            ) from None
    return sorted(events, key=lambda e: e.ts_ns)
