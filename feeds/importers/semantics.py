"""What a source's `seq` means, so a reader checks each source by its own rules.

An importer knows how its venue numbers messages; it records one of these per source_id
in the Parquet key-value metadata of every file it writes (`redline.sequence`, JSON
{"<source_id>": semantics}), and `redline inspect` checks each source accordingly:

- `contiguous`: 0, 1, 2, ... per source: a jump is a gap, a repeat a duplicate (redline's
  own recordings; files without the key are read as this).
- `contiguous per instrument`: the same, per instrument of the source (Binance trade ids).
- `per event`: increasing ids with jumps, every record of one venue event sharing its id
  (Binance update ids `u`); the venue's own rule (`pu`, `U`) finds gaps at import, which
  flags the record after each with GAP_BEFORE: those flags are the gaps.
- `shared`: one sequence shared across instruments and several records (a CME channel,
  via Databento): a file holding some of its instruments cannot tell a gap from another
  instrument's message; only numbers going back are counted.
- `none`: the numbers are the importer's own (Tardis CSV): nothing to check.
"""

from __future__ import annotations

import json

CONTIGUOUS = "contiguous"
PER_INSTRUMENT = "contiguous per instrument"
PER_EVENT = "per event"
SHARED = "shared"
NONE = "none"
ALL = (CONTIGUOUS, PER_INSTRUMENT, PER_EVENT, SHARED, NONE)
KEY = b"redline.sequence"


def encode(semantics: dict[int, str]) -> bytes:
    """The metadata value for sources -> semantics."""
    for source, s in semantics.items():
        if s not in ALL:
            raise ValueError(f"source {source}: sequence semantics {s!r} is not one of {ALL}")
    return json.dumps({str(k): v for k, v in sorted(semantics.items())}).encode()


def decode(metadata: dict[bytes, bytes] | None, where: str) -> dict[int, str]:
    """Sources -> semantics from a file's schema metadata ({} when it has none)."""
    raw = (metadata or {}).get(KEY)
    if raw is None:
        return {}
    try:
        out = {int(k): str(v) for k, v in json.loads(raw).items()}
    except (ValueError, AttributeError):
        raise ValueError(f"{where}: {KEY.decode()} metadata {raw[:80]!r} is not a JSON object "
                         f"of source ids; re-import the file") from None  # fmt: skip
    bad = {k: v for k, v in out.items() if v not in ALL}
    if bad:
        k, v = next(iter(bad.items()))
        raise ValueError(f"{where}: source {k}: sequence semantics {v!r} is not one of {ALL}")
    return out
