"""SENSOR records -> a ROS 2 bag (MCAP or sqlite3 storage), the inverse of `ros2_bag.py`.

One topic per sensor, one message per record, written at its `ts_recv` (the bag's log
time) with `ts_event` as the header stamp, in replay's order (ts_recv, source_id, seq).
The message type per sensor (`types`):
- `standard`: `ros2_types.STANDARD_OF_SENSOR` (radar and camera Range, imu Imu, wheel
  TwistStamped); what the type does not carry is listed per sensor (`Topic.lost`), so
  a re-import differs exactly there and the command says so;
- `redline`: `redline_msgs/msg/SensorReading`, every field;
- `auto` (default): standard where it carries the sensor's records exactly, else redline.
So `import(export(R)) == R` for `auto` and `redline`, whatever R holds.

The bag is written under a temporary name beside OUT and renamed into place once closed:
a failure leaves no half-written bag.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from redline.feeds import events as ev
from redline.feeds.event_schema import SchemaError, from_arrow, record_type_from_schema
from redline.feeds.importers import ros2_types as rt
from redline.feeds.importers.ros2_bag import SENSORS_FILE

STORAGES = ("mcap", "sqlite3")
TYPES = ("auto", "standard", "redline")


def read_sensors(path: str | Path) -> np.ndarray:
    """The SENSOR records of a Parquet file, or of `sensors.parquet` in an import folder."""
    path = Path(path)
    if path.is_dir():
        path = path / SENSORS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file; give a SENSOR Parquet file (e.g. the bundled "
            f"driving_sensors.parquet) or a folder a bag import wrote"
        )
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"{path}: cannot read as Parquet ({exc})") from None
    try:
        rtype = record_type_from_schema(table.schema, str(path))
        if rtype != ev.RecordType.SENSOR:
            raise ValueError(
                f"{path}: holds {rtype.name} records; a bag export takes SENSOR records"
            )
        return from_arrow(table, rtype, str(path))
    except SchemaError as exc:
        raise ValueError(str(exc)) from None


@dataclass
class Topic:
    """One topic written."""

    name: str
    msgtype: str
    sensor_id: int
    messages: int
    lost: list[str] = field(default_factory=list)  # fields the type does not carry


def not_carried(recs: np.ndarray, msgtype: str) -> list[str]:
    """What of one sensor's records (in export order) `msgtype` does not carry, so that a
    re-import (ros2_types' rules for standard types) would differ; [] when it is exact."""
    sid = int(recs["sensor_id"][0])
    width = len(rt.FIELDS[msgtype])
    used = [i for i in range(width, ev.SENSOR_WIDTH) if np.any(recs["values"][:, i])]
    lost = [f"values[{i}]" if i == j else f"values[{i}..{j}]" for i, j in _runs(used)]
    counted = np.arange(1, len(recs) + 1, dtype=np.uint64)
    checks = {
        "seq": np.any(recs["seq"] != counted),
        "frame_id": np.any(recs["frame_id"] != counted),
        "source_id": np.any(recs["source_id"] != rt.source_of(sid)),
        "instrument_id": np.any(recs["instrument_id"] != 0),
        "ts_recv_source": np.any(recs["ts_recv_source"] != rt.USER),
        "flags": np.any(recs["flags"] != 0),
    }
    return lost + [name for name, differs in checks.items() if differs]


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted ints as (first, last)."""
    out: list[tuple[int, int]] = []
    for i in ids:
        if out and out[-1][1] == i - 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def _plan(recs: np.ndarray, types: str) -> list[Topic]:
    out = []
    for sid in (int(s) for s in np.unique(recs["sensor_id"])):
        mine = recs[recs["sensor_id"] == sid]
        standard = rt.STANDARD_OF_SENSOR.get(sid)
        if types == "standard" and standard is None:
            raise ValueError(
                f"sensor {sid}: no standard message type (radar, camera, imu and wheel have "
                f"one); export with --types auto or redline"
            )
        lost = not_carried(mine, standard) if standard else ["everything"]
        if types == "redline" or (types == "auto" and lost):
            out.append(Topic(rt.redline_topic(sid), rt.REDLINE, sid, len(mine)))
        else:
            out.append(Topic(rt.standard_topic(sid), standard, sid, len(mine), lost))
    return out


def _check_stamps(recs: np.ndarray) -> None:
    """Header stamps are int32 seconds; log times unsigned: refuse what would wrap."""
    for name, hi in (("ts_event", rt.STAMP_MAX_NS), ("ts_recv", np.iinfo(np.int64).max)):
        bad = (recs[name] < 0) | (recs[name] >= hi)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"record {i} (source {recs['source_id'][i]}, seq {recs['seq'][i]}): {name} "
                f"{recs[name][i]} does not fit a ROS 2 time (0 .. 2038-01-19)"
            )


def export_bag(
    records: np.ndarray, out: str | Path, storage: str = "mcap", types: str = "auto"
) -> list[Topic]:
    """Write `records` (SENSOR) to a new bag at `out`; returns the topics written."""
    rb = rt.rosbags()
    out = Path(out)
    if storage not in STORAGES:
        raise ValueError(f"--storage {storage!r}: use one of {', '.join(STORAGES)}")
    if types not in TYPES:
        raise ValueError(f"--types {types!r}: use one of {', '.join(TYPES)}")
    if out.exists():
        raise ValueError(f"{out}: already exists; a bag is written to a new folder")
    if not len(records):
        raise ValueError("no SENSOR records to export")
    recs = records[np.lexsort((records["seq"], records["source_id"], records["ts_recv"]))]
    _check_stamps(recs)
    topics = _plan(recs, types)
    store = rt.typestore(rb)
    plugin = getattr(rb.rosbag2.StoragePlugin, storage.upper())
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)  # ours: left by an export that was killed
    try:
        with rb.rosbag2.Writer(tmp / out.name, version=9, storage_plugin=plugin) as writer:
            conns = {t.sensor_id: writer.add_connection(t.name, t.msgtype, typestore=store)
                     for t in topics}  # fmt: skip
            types_of = {t.sensor_id: t.msgtype for t in topics}
            # Python scalars per column: indexing numpy records one by one is ~5x slower
            names = [n for n in ev.SENSOR_DTYPE.names if n != "values"]
            columns = [recs[n].tolist() for n in names]
            for row, values in zip(zip(*columns, strict=True), recs["values"], strict=True):
                rec = dict(zip(names, row, strict=True), values=values)
                sid, msgtype = rec["sensor_id"], types_of[rec["sensor_id"]]
                if msgtype == rt.REDLINE:
                    msg = rt.build_redline(store, rec)
                else:
                    hdr = rt.header(store, rec["ts_event"], rt.sensor_name(sid))
                    msg = rt.build_standard(store, msgtype, hdr, values)
                writer.write(conns[sid], rec["ts_recv"], store.serialize_cdr(msg, msgtype))
        os.replace(tmp / out.name, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return topics
