"""Which importer reads a file, told from its first bytes, and one import of many files.

DBN (plain or zstd) or a Binance capture (plain or gzip); `import_files` groups the
files by format and merges what each importer returns (`output.Imported`). The
`redline import` command (pipeline/cli/import_files.py) is the front end.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import zstandard

from redline.feeds.importers import binance as binance_import
from redline.feeds.importers import dbn as dbn_import
from redline.feeds.importers.output import Imported

FORMATS = ("dbn", "binance")


def detect_format(path: Path) -> str:
    """'dbn' or 'binance' from the file's first bytes; ValueError otherwise."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[:4] == b"\x28\xb5\x2f\xfd":  # zstd
        head = zstandard.ZstdDecompressor().decompressobj().decompress(head)
    elif head[:2] == b"\x1f\x8b":  # gzip
        with gzip.open(path, "rb") as g:
            head = g.read(256)
    if head[:3] == b"DBN":
        return "dbn"
    first = head.split(b"\n", 1)[0]
    stamp, _, rest = first.partition(b" ")
    if stamp.isdigit() and rest.lstrip().startswith(b"{"):
        return "binance"
    raise ValueError(
        f"{path}: cannot tell the format from its first bytes ({head[:16]!r}); "
        f"pass --format with one of {', '.join(FORMATS)}"
    )


def import_files(paths: list[Path], fmt: str | None = None) -> Imported:
    """Import every file (formats detected unless `fmt`) into one result."""
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such file")
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    groups: dict[str, list[Path]] = {}
    for p in paths:
        groups.setdefault(fmt or detect_format(p), []).append(p)
    parts: list[Imported] = []
    if "dbn" in groups:
        parts.append(dbn_import.import_dbn(groups["dbn"]))
    for p in groups.get("binance", []):
        part = binance_import.import_binance(p)
        part.stats = {f"binance:{p.name}": part.stats.pop("binance"), **part.stats}
        part.stats["latency_ns"] = {
            f"{k} ({p.name})": v for k, v in part.stats["latency_ns"].items()
        }
        parts.append(part)
    result = parts[0]
    for part in parts[1:]:
        latency = {**result.stats.get("latency_ns", {}), **part.stats.get("latency_ns", {})}
        result = result.merge(part)
        result.stats["latency_ns"] = latency
    return result
