"""`redline export DATA OUT_BAG [--storage mcap|sqlite3] [--types auto|standard|redline]`: SENSOR records -> a ROS 2 bag.

DATA is a SENSOR Parquet file, a folder a bag import wrote (its sensors.parquet), or
`bundled` (the bundled driving recording). One topic per sensor, header stamps from
`ts_event`, log times from `ts_recv`; `--types auto` (default) writes a sensor as its
standard message (Range, Imu, TwistStamped) where that carries its records exactly, else
as redline_msgs/msg/SensorReading, so `redline import OUT_BAG` gives the records back
unchanged; `--types standard` writes standard types only and names, per sensor, what they
leave out (see `feeds/importers/ros2_export.py`). OUT_BAG must not exist.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from redline.feeds.importers import ros2_export
from redline.pipeline.cli.json_out import add_json_arg, write_json


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export SENSOR records (the driving recording, a bag import) to a ROS 2 bag",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("data", metavar="DATA", help="SENSOR Parquet file, import folder, or 'bundled'")
    p.add_argument("out", metavar="OUT_BAG", help="the bag folder to write (must not exist)")
    p.add_argument("--storage", choices=ros2_export.STORAGES, default="mcap",
                   help="bag storage (default: mcap)")  # fmt: skip
    p.add_argument("--types", choices=ros2_export.TYPES, default="auto",
                   help="message types (default: auto, exact)")  # fmt: skip
    add_json_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    data = Path(args.data)
    if args.data == "bundled":
        from redline.replay_data import DIR

        data = DIR / "driving_sensors.parquet"
    t0 = time.perf_counter()
    records = ros2_export.read_sensors(data)
    topics = ros2_export.export_bag(records, args.out, args.storage, args.types)
    seconds = time.perf_counter() - t0
    print(
        f"redline export: {data} -> {args.out} ({args.storage}): {len(records):,} records on "
        f"{len(topics)} topic(s) in {seconds:.2f} s"
    )
    for t in topics:
        print(f"  {t.name} ({t.msgtype}): {t.messages:,} messages of sensor {t.sensor_id}")
        if t.lost:
            print(
                f"  {t.name}: {t.msgtype} does not carry {', '.join(t.lost)}; a re-import "
                f"differs there (--types auto keeps every field)",
                file=sys.stderr,
            )
    write_json(
        args.json,
        {
            "records": len(records),
            "storage": args.storage,
            "seconds": round(seconds, 4),
            "topics": [
                {
                    "topic": t.name,
                    "type": t.msgtype,
                    "sensor_id": t.sensor_id,
                    "messages": t.messages,
                    "not_carried": t.lost,
                }
                for t in topics
            ],
        },
    )
    return 0
