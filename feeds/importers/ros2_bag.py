"""ROS 2 bag (MCAP or sqlite3 storage) -> redline SENSOR records, through `rosbags`.

A bag is a folder holding `metadata.yaml` (what `ros2 bag record` writes), or one `.mcap`
or `.db3` file. Each message becomes one SENSOR record: its header stamp is `ts_event`,
the bag's log (receive) time `ts_recv`. The message types read, and which values each
fills, are in `ros2_types.py`; a topic of any other type is named and skipped, its
messages counted.

Which sensor a standard-typed topic is, first match wins:
1. `--topic-map TOPIC=SENSOR_ID` (repeatable);
2. the topic's first name component is a driving sensor's name (`/radar/...` -> 1,
   `/camera/...` -> 2, `/imu/...` -> 3, `/wheel/...` -> 4), as the export names them;
3. its type's default: Range -> radar (1), Imu -> imu (3), TwistStamped -> wheel (4).
`source_id` is 100 + sensor id, as in the driving recording. Two topics landing on one
sensor is an error that names both and the fix. A `redline_msgs/msg/SensorReading` topic
carries its own ids. Records are written in replay's order: (ts_recv, source_id, seq).
"""

from __future__ import annotations

import sqlite3
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from redline.feeds import events as ev
from redline.feeds.importers import destination
from redline.feeds.importers import ros2_types as rt
from redline.feeds.importers import semantics as sem
from redline.feeds.importers.destination import SENSORS_FILE
from redline.feeds.importers.output import latency_ns, write_records

_MAX_SENSOR = 0xFFFF - rt.source_of(0)  # source_id is uint16
_BAG_FILES = (".mcap", ".db3")


class _PlanError(Exception):
    """A bag read fine whose topics cannot be mapped: its message is the one line to show."""


def is_bag(path: Path) -> bool:
    """A path the bag import reads (checked by shape only; reading says what is wrong)."""
    return path.is_dir() or path.suffix in _BAG_FILES


def parse_topic_map(items: list[str] | None) -> dict[str, int]:
    """`TOPIC=SENSOR_ID` items -> {topic: sensor id}; ValueError naming the bad item."""
    out: dict[str, int] = {}
    for item in items or []:
        topic, sep, sid = item.rpartition("=")
        if not sep or not topic or not sid.isdigit() or not 1 <= int(sid) <= _MAX_SENSOR:
            raise ValueError(
                f"--topic-map {item!r}: give TOPIC=SENSOR_ID with a sensor id 1..{_MAX_SENSOR}, "
                f"e.g. /front_radar/range=1"
            )
        if topic in out:
            raise ValueError(f"--topic-map: {topic} mapped twice; map each topic once")
        out[topic] = int(sid)
    return out


@dataclass
class Topic:
    """One topic of the bag and what the import made of it."""

    name: str
    msgtype: str
    messages: int = 0
    sensor_id: int | None = None  # standard types; None: skipped or self-describing
    mapped_by: str = ""  # "--topic-map", "topic name", "type default"; "" when skipped

    @property
    def imported(self) -> bool:
        return self.msgtype == rt.REDLINE or self.msgtype in rt.FIELDS


@dataclass
class BagImport:
    """The SENSOR records of one bag, and how each topic was read."""

    path: Path
    sensors: np.ndarray
    topics: list[Topic] = field(default_factory=list)

    @property
    def skipped(self) -> list[Topic]:
        return [t for t in self.topics if not t.imported]

    def write(self, out: str | Path, overwrite: bool = False) -> Path:
        """Write the records to OUT (a folder: `OUT/sensors.parquet`, or a `.parquet` file)
        by the rules of `destination.py`; returns the file written."""
        out = Path(out)
        path = out if out.suffix == ".parquet" else out / SENSORS_FILE
        sources = {int(s): sem.CONTIGUOUS for s in np.unique(self.sensors["source_id"])}
        destination.write(out, {path: lambda p: write_records(p, self.sensors, sources)}, overwrite)
        return path

    def figures(self) -> dict[str, Any]:
        """Stable keys for `--json`."""
        ids, counts = np.unique(self.sensors["sensor_id"], return_counts=True)
        return {
            "events": len(self.sensors),
            "by_sensor": {str(int(i)): int(n) for i, n in zip(ids, counts, strict=True)},
            "topics": [
                {
                    "topic": t.name,
                    "type": t.msgtype,
                    "messages": t.messages,
                    "sensor_id": t.sensor_id,
                    "mapped_by": t.mapped_by,
                    "imported": t.imported,
                }
                for t in self.topics
            ],
            "skipped_topics": len(self.skipped),
            "skipped_messages": sum(t.messages for t in self.skipped),
            "latency_ns": latency_ns(self.sensors),
        }

    def lines(self) -> tuple[list[str], list[str]]:
        """(what was imported, one line per skipped topic) for the command to print."""
        info = []
        for t in self.topics:
            if t.msgtype == rt.REDLINE:
                info.append(f"  {t.name} ({t.msgtype}): {t.messages:,} messages, ids as carried")
            elif t.imported:
                sid = t.sensor_id or 0
                info.append(
                    f"  {t.name} ({t.msgtype}): {t.messages:,} messages -> sensor {sid} "
                    f"{rt.sensor_name(sid)}, source {rt.source_of(sid)} (by {t.mapped_by})"
                )
        lat = latency_ns(self.sensors)
        if "p50" in lat:
            info.append(
                f"  latency (ts_recv - ts_event, {lat['count']:,} records): "
                f"p50 {lat['p50'] / 1e6:.2f} ms, p99 {lat['p99'] / 1e6:.2f} ms"
            )
        skipped = [
            f"  {t.name} ({t.msgtype}): skipped {t.messages:,} messages, type not imported "
            f"(imported: {rt.SUPPORTED})"
            for t in self.skipped
        ]
        return info, skipped


def import_bag(path: str | Path, topic_map: dict[str, int] | None = None) -> BagImport:
    """Read a bag into SENSOR records; ValueError (one line: where, what, the fix) on a
    bag that is absent, corrupt, or holds nothing this import reads."""
    rb = rt.rosbags()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such bag; give a ROS 2 bag folder (holding metadata.yaml) or a "
            f".mcap/.db3 file"
        )
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        raise ValueError(
            f"{path}: not a ROS 2 bag (no metadata.yaml in the folder); give the folder "
            f"`ros2 bag record` wrote, or its .mcap/.db3 file"
        )
    store = rt.typestore(rb)
    # what a corrupt bag raises, from the storage reader or the CDR decoder
    errors = (rb.rosbag2.ReaderError, rb.typesys.TypesysError, rb.serde.SerdeError,
              sqlite3.Error, struct.error, IndexError, KeyError, ValueError)  # fmt: skip
    try:
        with rb.rosbag2.Reader(path) as reader:
            topics = _plan(path, reader.connections, topic_map or {}, store)
            wanted = [c for c in reader.connections if topics[c.topic].imported]
            rows: dict[str, list[tuple]] = {t: [] for t in topics}
            # (an empty filter reads every topic: nothing to read then)
            for conn, log_ns, raw in reader.messages(connections=wanted) if wanted else ():
                msg = store.deserialize_cdr(raw, conn.msgtype)
                rows[conn.topic].append((log_ns, *_scalars(msg, conn.msgtype)))
            for conn in reader.connections:  # skipped topics: counted from the bag's index
                if not topics[conn.topic].imported:
                    topics[conn.topic].messages += conn.msgcount
    except _PlanError as exc:
        raise ValueError(str(exc)) from None
    except errors as exc:
        raise ValueError(
            f"{path}: cannot read the bag ({type(exc).__name__}: {' '.join(str(exc).split())}); "
            f"nothing imported"
        ) from None
    parts = []
    for name, topic in topics.items():
        if topic.imported:
            topic.messages = len(rows[name])
            parts.append(_records(topic, rows[name]))
    if not parts or not sum(len(p) for p in parts):
        kinds = ", ".join(f"{t.name} ({t.msgtype})" for t in topics.values()) or "no topics"
        raise ValueError(f"{path}: nothing to import: {kinds}; imported types: {rt.SUPPORTED}")
    _one_topic_per_source(parts, list(topics.values()), path)
    recs = np.concatenate(parts)
    order = np.lexsort((recs["seq"], recs["source_id"], recs["ts_recv"]))
    return BagImport(path, recs[order], list(topics.values()))


def _plan(path: Path, connections, topic_map: dict[str, int], store) -> dict[str, Topic]:
    """Each topic's sensor, by the rules of the module doc; the bag's type definitions of
    the types read must be the ones redline knows."""
    topics: dict[str, Topic] = {}
    for c in sorted(connections, key=lambda c: c.topic):
        known = topics.setdefault(c.topic, Topic(c.topic, c.msgtype))
        if known.msgtype != c.msgtype:
            raise _PlanError(
                f"{path}: topic {c.topic} carries two types ({known.msgtype}, {c.msgtype}); "
                f"redline reads one type per topic"
            )
        if known.imported and c.digest and c.digest != store.hash_rihs01(c.msgtype):
            raise _PlanError(
                f"{path}: topic {c.topic}: the bag's definition of {c.msgtype} differs from "
                f"the one redline reads (hash {c.digest}); re-record with the standard type"
            )
    for name in topic_map:
        t = topics.get(name)
        if t is None:
            raise _PlanError(
                f"--topic-map {name}: no such topic in {path} (topics: "
                f"{', '.join(topics) or 'none'})"
            )
        if t.msgtype not in rt.FIELDS:
            raise _PlanError(
                f"--topic-map {name}: its type {t.msgtype} "
                + ("carries its own sensor ids" if t.imported else "is not imported")
                + "; map only topics of "
                + ", ".join(rt.FIELDS)
            )
    claimed: dict[int, str] = {}
    for t in topics.values():
        if t.msgtype not in rt.FIELDS:
            continue
        first = t.name.strip("/").split("/")[0]
        if t.name in topic_map:
            t.sensor_id, t.mapped_by = topic_map[t.name], "--topic-map"
        elif first in rt.SENSOR_BY_NAME:
            t.sensor_id, t.mapped_by = rt.SENSOR_BY_NAME[first], "topic name"
        else:
            t.sensor_id, t.mapped_by = rt.DEFAULT_SENSOR[t.msgtype], "type default"
        if t.sensor_id in claimed:
            raise _PlanError(
                f"{path}: topics {claimed[t.sensor_id]} and {t.name} both map to sensor "
                f"{t.sensor_id} ({rt.sensor_name(t.sensor_id)}); give one another id with "
                f"--topic-map {t.name}=ID"
            )
        claimed[t.sensor_id] = t.name
    return topics


_REDLINE_FIELDS = ("sensor_id", "frame_number", "seq", "instrument_id", "source_id",
                   "ts_recv_source", "flags")  # fmt: skip
_RECORD_FIELDS = ("sensor_id", "frame_id", "seq", "instrument_id", "source_id",
                  "ts_recv_source", "flags")  # fmt: skip


def _scalars(msg, msgtype: str) -> tuple:
    """What a record takes from one message, as plain numbers (no message kept in memory):
    the stamp, then the carried fields (REDLINE: `_REDLINE_FIELDS` and 8 values)."""
    if msgtype == rt.REDLINE:
        return (rt.stamp_ns(msg.header), *(getattr(msg, f) for f in _REDLINE_FIELDS),
                *msg.values.tolist())  # fmt: skip
    return (rt.stamp_ns(msg.header), *(g(msg) for g in rt.GETTERS[msgtype]))


def _records(topic: Topic, rows: list[tuple]) -> np.ndarray:
    """One topic's rows (log time, then `_scalars`) as SENSOR records, in log order."""
    n = len(rows)
    recs = ev.empty(ev.RecordType.SENSOR, n)
    if not n:
        return recs
    rows.sort(key=lambda r: r[0])  # stable: equal log times keep the bag's order
    cols = list(zip(*rows, strict=True))
    recs["ts_recv"], recs["ts_event"] = cols[0], cols[1]
    if topic.msgtype == rt.REDLINE:
        for i, name in enumerate(_RECORD_FIELDS):
            recs[name] = cols[2 + i]
        recs["values"] = np.array(cols[2 + len(_RECORD_FIELDS) :], np.float32).T
        return recs
    sid = topic.sensor_id or 0
    recs["seq"] = recs["frame_id"] = np.arange(1, n + 1)
    recs["sensor_id"] = sid
    recs["source_id"] = rt.source_of(sid)
    recs["ts_recv_source"] = rt.USER
    recs["values"][:, : len(cols) - 2] = np.array(cols[2:], np.float32).T
    return recs


def _one_topic_per_source(parts, topics: list[Topic], path: Path) -> None:
    """A source fed by two topics would interleave two sequences: refused, naming both."""
    seen: dict[int, str] = {}
    names = [t.name for t in topics if t.imported]
    for name, part in zip(names, parts, strict=True):
        for s in np.unique(part["source_id"]):
            if int(s) in seen:
                raise ValueError(
                    f"{path}: topics {seen[int(s)]} and {name} both carry source {int(s)}; "
                    f"give one another id with --topic-map"
                )
            seen[int(s)] = name
