"""What an importer returns, and the Parquet file of one record type.

One record type per Parquet file, each sorted by `ts_recv` (stable, so records
with the same stamp keep the source's order), tagged with the record type in
the schema metadata (`events.to_arrow`) and with what each source's `seq` means
(`semantics.py`), plus the instrument table. Where the
files go, and how OUT is checked and replaced, is `destination.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from redline.feeds import event_schema as es
from redline.feeds import events as ev
from redline.feeds.importers import destination, semantics
from redline.feeds.importers.destination import FILE_NAMES, INSTRUMENTS_FILE
from redline.feeds.instruments import InstrumentTable

_ROW_GROUP = 1 << 20  # rows per Parquet row group: replay reads a group at a time


@dataclass
class Imported:
    """Records of one import, by type, plus the instruments they refer to."""

    quotes: np.ndarray = field(default_factory=lambda: ev.empty(ev.RecordType.QUOTE, 0))
    trades: np.ndarray = field(default_factory=lambda: ev.empty(ev.RecordType.TRADE, 0))
    book: np.ndarray = field(default_factory=lambda: ev.empty(ev.RecordType.BOOK_DELTA, 0))
    instruments: InstrumentTable = field(default_factory=InstrumentTable)
    stats: dict[str, Any] = field(default_factory=dict)
    sequence: dict[int, str] = field(default_factory=dict)  # source_id -> semantics.py name

    def by_type(self) -> dict[ev.RecordType, np.ndarray]:
        return {
            ev.RecordType.QUOTE: self.quotes,
            ev.RecordType.TRADE: self.trades,
            ev.RecordType.BOOK_DELTA: self.book,
        }

    @property
    def events(self) -> int:
        return len(self.quotes) + len(self.trades) + len(self.book)

    def merge(self, other: Imported) -> Imported:
        """Both imports in one, each type re-sorted by ts_recv (stable: self first)."""
        inst = InstrumentTable(list(self.instruments))
        for i in other.instruments:
            if i.instrument_id not in inst:
                inst.add(i)
            elif inst[i.instrument_id] != i:
                raise ValueError(
                    f"instrument {i.instrument_id} defined twice with different terms: "
                    f"{inst[i.instrument_id]} vs {i}"
                )
        for source, s in other.sequence.items():
            if self.sequence.get(source, s) != s:
                raise ValueError(
                    f"source {source} numbered two ways ({self.sequence[source]!r} and {s!r}) "
                    f"by two inputs; import them separately"
                )
        merged = {
            t: sort_by_recv(np.concatenate([a, other.by_type()[t]]))
            for t, a in self.by_type().items()
        }
        return Imported(
            quotes=merged[ev.RecordType.QUOTE],
            trades=merged[ev.RecordType.TRADE],
            book=merged[ev.RecordType.BOOK_DELTA],
            instruments=inst,
            stats={**self.stats, **other.stats},
            sequence={**self.sequence, **other.sequence},
        )

    def write(self, out: str | Path, overwrite: bool = False) -> dict[str, Path]:
        """Write to a folder (one file per non-empty type plus the instrument table), or to
        a single `.parquet` file when the import holds exactly one record type (the table
        then goes beside it as `<name>.instruments.parquet`), by the rules of
        `destination.py` (OUT not empty is refused unless `overwrite`). Returns what was
        written."""
        out = Path(out)
        present = {t: a for t, a in self.by_type().items() if len(a)}
        if out.suffix == ".parquet":
            if len(present) != 1:
                names = sorted(FILE_NAMES[t] for t in present) or ["nothing"]
                raise ValueError(
                    f"{out}: this import holds {', '.join(names)}; give a directory as OUT "
                    f"to write one file per record type"
                )
            paths = {t: out for t in present}
            inst_path = destination.instruments_beside(out)
        else:
            paths = {t: out / FILE_NAMES[t] for t in present}
            inst_path = out / INSTRUMENTS_FILE
        seq = self.sequence
        files = {
            paths[t]: (lambda p, r=recs: write_records(p, r, seq)) for t, recs in present.items()
        }
        files[inst_path] = self.instruments.write
        destination.write(out, files, overwrite)
        written = {t.name.lower(): paths[t] for t in present}
        return {**written, "instruments": inst_path}


def sort_by_recv(records: np.ndarray) -> np.ndarray:
    """Records in `ts_recv` order, stable; no copy when already sorted."""
    ts = records["ts_recv"]
    if len(ts) < 2 or bool(np.all(ts[1:] >= ts[:-1])):
        return records
    return records[np.argsort(ts, kind="stable")]


def write_records(path: Path, records: np.ndarray, sequence: dict[int, str] | None = None) -> None:
    """One record type to Parquet, with the semantics of the sources it holds."""
    table = pa.Table.from_batches([es.to_arrow(sort_by_recv(records))])
    present = {int(s) for s in np.unique(records["source_id"])}
    mine = {s: v for s, v in (sequence or {}).items() if s in present}
    if mine:
        meta = {**(table.schema.metadata or {}), semantics.KEY: semantics.encode(mine)}
        table = table.replace_schema_metadata(meta)
    pq.write_table(table, path, compression="zstd", row_group_size=_ROW_GROUP,
                   **es.parquet_layout(table.schema))  # fmt: skip


def latency_ns(records: np.ndarray) -> dict[str, int]:
    """ts_recv - ts_event percentiles over records whose stamps can be trusted
    (SNAPSHOT and BAD_TS_RECV records are excluded and counted; so are records whose
    source gives no event time, ts_event 0, under `no_ts_event`)."""
    bad = (records["flags"] & (ev.Flag.SNAPSHOT | ev.Flag.BAD_TS_RECV)) != 0
    unknown = records["ts_event"] == 0
    keep = ~bad & ~unknown
    lat = records["ts_recv"][keep] - records["ts_event"][keep]
    out = {
        "excluded": int(bad.sum()),
        "no_ts_event": int((unknown & ~bad).sum()),
        "count": len(lat),
    }
    if len(lat):
        p50, p99, p999 = np.percentile(lat, [50, 99, 99.9])
        out.update(p50=int(p50), p99=int(p99), p999=int(p999), max=int(lat.max()))
    return out


def latency_by_type(quotes: np.ndarray, trades: np.ndarray, book: np.ndarray) -> dict[str, dict]:
    """latency_ns per record type; the book's over event ends (LAST deltas),
    one figure per venue event rather than one per level it touched."""
    book_ends = book[(book["flags"] & ev.Flag.LAST) != 0]
    recs = {"quotes": quotes, "trades": trades, "book": book_ends}
    return {name: latency_ns(r) for name, r in recs.items() if len(r)}
