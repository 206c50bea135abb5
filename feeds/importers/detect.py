"""Which importer reads a file, told from its first bytes, and one import of many files.

DBN (plain or zstd), a Binance capture (plain or gzip) or Tardis.dev CSV (plain or gzip),
and a Binance exchangeInfo
answer (JSON), told by its content whatever `--format` says: it gives the captures'
symbols their tick, lot and face value. `import_files` groups the files by format and
merges what each importer returns (`output.Imported`). A Parquet
file is refused whatever `--format` says: one of ours needs no import, and no importer
reads any other. The `redline import` command (pipeline/cli/import_files.py) is the
front end.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from redline.feeds.event_schema import SchemaError, record_type_from_schema
from redline.feeds.importers import binance as binance_import
from redline.feeds.importers import compressed, exchange_info
from redline.feeds.importers import dbn as dbn_import
from redline.feeds.importers import tardis as tardis_import
from redline.feeds.importers.output import Imported
from redline.feeds.instruments import REQUIRED_COLUMNS

FORMATS = ("dbn", "binance", "tardis")
_PARQUET_MAGIC = b"PAR1"


def detect_format(path: Path) -> str:
    """'dbn', 'binance' or 'tardis' from the file's first bytes; ValueError otherwise."""
    head = compressed.head(path)
    if head[:4] == _PARQUET_MAGIC:
        raise ValueError(parquet_refusal(path))
    if head[:3] == b"DBN":
        return "dbn"
    first = head.split(b"\n", 1)[0]
    stamp, _, rest = first.partition(b" ")
    if stamp.isdigit() and rest.lstrip().startswith(b"{"):
        return "binance"
    if tardis_import.looks_like(head):
        return "tardis"
    raise ValueError(
        f"{path}: cannot tell the format from its first bytes ({head[:16]!r}); pass --format "
        f"with one of {', '.join(FORMATS)} (supported: {binance_import.SUPPORTED}, and a "
        f"Binance exchangeInfo JSON beside a Binance capture)"
    )


def parquet_refusal(path: Path) -> str:
    """Why a Parquet file is not imported, and what reads it instead."""
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        return f"{path}: a Parquet file that cannot be read ({exc}); import reads DBN and Binance captures"
    try:
        rtype = record_type_from_schema(schema)
    except SchemaError:
        pass
    else:
        return (
            f"{path}: already a redline recording ({rtype.name} records); `redline inspect` "
            f"and `redline publish` read it directly, no import needed"
        )
    if set(schema.names) >= REQUIRED_COLUMNS:
        return (
            f"{path}: already a redline instrument table; it goes beside its recording as it "
            f"is, no import needed"
        )
    return (
        f"{path}: a Parquet file, but not a redline recording (columns "
        f"{', '.join(schema.names[:6])}); import reads Databento DBN and Binance captures"
    )


def import_files(paths: list[Path], fmt: str | None = None) -> Imported:
    """Import every file (formats detected unless `fmt`) into one result."""
    seen: dict[Path, Path] = {}
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such file")
        if p.resolve() in seen:
            raise ValueError(f"{p}: given twice (as {seen[p.resolve()]}); name each file once")
        seen[p.resolve()] = p
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    groups: dict[str, list[Path]] = {}
    terms: dict[str, exchange_info.Terms] = {}
    infos: list[Path] = []
    for p in paths:
        head = compressed.head(p)
        if head[:4] == _PARQUET_MAGIC:
            raise ValueError(parquet_refusal(p))
        if exchange_info.looks_like(head):
            terms |= exchange_info.read(p)
            infos.append(p)
            continue
        groups.setdefault(fmt or detect_format(p), []).append(p)
    if infos and "binance" not in groups:
        raise ValueError(
            f"{', '.join(str(p) for p in infos)}: an exchangeInfo answer gives Binance symbols "
            f"their terms, but no Binance capture is in this import; give the capture with it"
        )
    parts: list[Imported] = []
    if "dbn" in groups:
        parts.append(dbn_import.import_dbn(groups["dbn"]))
    if "tardis" in groups:
        parts.append(tardis_import.import_tardis(groups["tardis"]))
    for p in groups.get("binance", []):
        part = binance_import.import_binance(p, terms)
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
