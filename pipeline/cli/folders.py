"""The output folder a command writes into, checked before any work: one line naming the
flag and the path when it cannot be a folder, instead of a traceback halfway through."""

from __future__ import annotations

from pathlib import Path


def output_folder(path: str | Path, flag: str = "--out") -> Path:
    """`path` as a folder, made with its parents if missing; ValueError naming `flag` when it
    is a file, sits under a file, or cannot be made."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path}: is a file; give a folder (new or existing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a parent on the way is a file
        raise ValueError(f"{flag} {path}: a part of the path is a file; give a folder") from None
    except PermissionError:
        raise ValueError(
            f"{flag} {path}: no permission to make it; give a folder you own"
        ) from None
    return path
