"""Where an import lands (OUT): checked before any work, written so no import is ever mixed.

OUT is a folder (one Parquet file per record type plus the instrument table) or a single
`.parquet` file with its table beside it:

    OUT/quotes.parquet  OUT/trades.parquet  OUT/book.parquet  OUT/instruments.parquet
    OUT.parquet  OUT.instruments.parquet

Rules, so that `redline inspect OUT/*` always reads exactly one import:
- a folder that holds anything, or a file that exists, is refused unless `overwrite`;
- `overwrite` replaces an earlier import only: a folder holding files no import writes is
  refused (nothing of the user's is deleted), and the earlier import's files that this
  import does not write (its book, say) are removed, never left beside the new ones;
- every file is written under a temporary name (`.NAME.partial`, which no `*.parquet`
  glob matches) and renamed into place only once all are written; on any failure the
  temporaries are removed and OUT keeps what it held before.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from redline.feeds import events as ev

FILE_NAMES: dict[ev.RecordType, str] = {
    ev.RecordType.QUOTE: "quotes.parquet",
    ev.RecordType.TRADE: "trades.parquet",
    ev.RecordType.BOOK_DELTA: "book.parquet",
}
INSTRUMENTS_FILE = "instruments.parquet"
SENSORS_FILE = "sensors.parquet"  # a ROS 2 bag import's SENSOR records (ros2_bag.py)
_PARTIAL = ".partial"
_OURS = {*FILE_NAMES.values(), INSTRUMENTS_FILE, SENSORS_FILE}


def instruments_beside(out: Path) -> Path:
    """The instrument table written beside a single-file OUT."""
    return out.with_name(out.stem + "." + INSTRUMENTS_FILE)


def _is_ours(name: str) -> bool:
    """A file an import writes, or the temporary of one left by an import that was killed."""
    if name.startswith(".") and name.endswith(_PARTIAL):
        name = name[1 : -len(_PARTIAL)]
    return name in _OURS


def check(out: str | Path, overwrite: bool = False) -> None:
    """ValueError, naming OUT and the fix, unless this import may be written to `out`."""
    out = Path(out)
    if out.suffix == ".parquet":
        if out.is_dir():
            raise ValueError(f"{out}: is a folder; give a new folder or a .parquet file as OUT")
        taken = [p for p in (out, instruments_beside(out)) if p.exists()]
        if taken and not overwrite:
            raise ValueError(
                f"{taken[0]}: already exists; pass --overwrite to replace it, or give a new OUT"
            )
        return
    if out.exists() and not out.is_dir():
        raise ValueError(
            f"{out}: is a file, not a folder; give a new or empty folder (or a .parquet file) "
            f"as OUT"
        )
    present = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not present:
        return
    shown = ", ".join(present[:4]) + (", ..." if len(present) > 4 else "")
    if not overwrite:
        raise ValueError(
            f"{out}: folder is not empty ({shown}); pass --overwrite to replace the earlier "
            f"import there, or give a new folder"
        )
    strangers = [n for n in present if not _is_ours(n)]
    if strangers:
        raise ValueError(
            f"{out}: holds {', '.join(strangers[:4])}, which no import writes; --overwrite "
            f"replaces an earlier import only: give a new folder"
        )


def write(
    out: str | Path, files: dict[Path, Callable[[Path], None]], overwrite: bool = False
) -> None:
    """Write each file of `files` (final path -> writer of a path) into `out` by the rules of
    the module doc."""
    out = Path(out)
    check(out, overwrite)
    folder = out.parent if out.suffix == ".parquet" else out
    made = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"{out}: a part of the path is a file; give a folder") from None
    temps: list[Path] = []
    try:
        for final, writer in files.items():
            temps.append(final.with_name(f".{final.name}{_PARTIAL}"))
            writer(temps[-1])
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        if made and not any(folder.iterdir()):
            folder.rmdir()
        raise
    if folder is out:  # the earlier import's files this one does not replace go first
        for old in out.iterdir():
            if _is_ours(old.name) and old not in files and old not in temps:
                old.unlink()
    for tmp, final in zip(temps, files, strict=True):
        os.replace(tmp, final)
