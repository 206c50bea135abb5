"""The ROS 2 message types a bag import or export maps onto SENSOR records, both ways.

Shared by the import (`ros2_bag.py`) and the export (`ros2_export.py`), so a round trip
reads exactly what was written. `rosbags` (pure Python, the `ros` extra) is imported
lazily: without it, only the bag commands fail, with one line saying how to install it.

Standard types carry the leading value slots of the driving layouts
(`feeds/synthetic/driving.py`), so a planner reads an imported bag like the bundled
recording:

| type | default sensor | values[...] <- message field |
|---|---|---|
| sensor_msgs/msg/Range | radar (1) | [0] range |
| sensor_msgs/msg/Imu | imu (3) | [0..2] linear_acceleration x y z, [3..5] angular_velocity x y z |
| geometry_msgs/msg/TwistStamped | wheel (4) | [0] twist.linear.x (ego speed) |

Every other slot is 0. ROS 2 headers carry no frame counter, so `seq` and `frame_id`
count a topic's messages from 1 in log order, and `ts_recv_source` is USER (the
recorder stamps a message as it takes it from the middleware).

`redline_msgs/msg/SensorReading` (`REDLINE_MSG`) carries a whole record: the export
uses it for a sensor whose records a standard type would not carry exactly. Its
definition is stored in the bag (MCAP schema record, sqlite3 message_definitions), so any
ROS 2 tool can decode it without a redline package.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from redline.feeds import events as ev
from redline.feeds.synthetic.driving import (
    CAMERA_ID,
    IMU_ID,
    RADAR_ID,
    SENSOR_NAMES,
    SENSOR_SOURCE_BASE,
    WHEEL_ID,
)

RANGE = "sensor_msgs/msg/Range"
IMU = "sensor_msgs/msg/Imu"
TWIST = "geometry_msgs/msg/TwistStamped"
REDLINE = "redline_msgs/msg/SensorReading"
REDLINE_MSG = """\
# One redline SENSOR record (feeds/events.py): header.stamp is ts_event, the bag's
# log time is ts_recv; header.frame_id names the sensor.
std_msgs/Header header
uint16 sensor_id
uint64 frame_number
uint64 seq
uint32 instrument_id
uint16 source_id
uint8 ts_recv_source
uint8 flags
float32[8] values
"""
INSTALL = "pip install 'redline[ros]'"

# message field read into values[i] for each standard type
FIELDS: dict[str, tuple[str, ...]] = {
    RANGE: ("range",),
    IMU: (
        "linear_acceleration.x",
        "linear_acceleration.y",
        "linear_acceleration.z",
        "angular_velocity.x",
        "angular_velocity.y",
        "angular_velocity.z",
    ),
    TWIST: ("twist.linear.x",),
}
GETTERS: dict[str, tuple[Callable[[Any], float], ...]] = {
    t: tuple(operator.attrgetter(f) for f in fields) for t, fields in FIELDS.items()
}
DEFAULT_SENSOR = {RANGE: RADAR_ID, IMU: IMU_ID, TWIST: WHEEL_ID}
# the export's standard type and topic per sensor (the import's name convention reads back
# the sensor from the topic's first component)
STANDARD_OF_SENSOR = {RADAR_ID: RANGE, CAMERA_ID: RANGE, IMU_ID: IMU, WHEEL_ID: TWIST}
_TOPIC_LEAF = {RANGE: "range", IMU: "data", TWIST: "twist"}
SENSOR_BY_NAME = {name: sid for sid, name in SENSOR_NAMES.items()}
STAMP_MAX_NS = 2**31 * 10**9  # header.stamp.sec is int32
USER = int(ev.TsSource.USER)  # a recorder stamps a message as the middleware hands it over
SUPPORTED = ", ".join((RANGE, IMU, TWIST, REDLINE))


def rosbags() -> SimpleNamespace:
    """The rosbags modules used here; ValueError (one line, the fix) when not installed."""
    try:
        from rosbags import rosbag2, serde, typesys
    except ImportError:
        raise ValueError(
            f"ROS 2 bags are read and written with the rosbags package, which is not "
            f"installed; {INSTALL}"
        ) from None
    return SimpleNamespace(rosbag2=rosbag2, serde=serde, typesys=typesys)


def typestore(rb: SimpleNamespace):
    """ROS 2 Humble's standard types plus redline's SensorReading."""
    store = rb.typesys.get_typestore(rb.typesys.Stores.ROS2_HUMBLE)
    store.register(rb.typesys.get_types_from_msg(REDLINE_MSG, REDLINE))
    return store


def sensor_name(sensor_id: int) -> str:
    return SENSOR_NAMES.get(sensor_id, f"sensor{sensor_id}")


def standard_topic(sensor_id: int) -> str:
    return f"/{sensor_name(sensor_id)}/{_TOPIC_LEAF[STANDARD_OF_SENSOR[sensor_id]]}"


def redline_topic(sensor_id: int) -> str:
    return f"/redline/{sensor_name(sensor_id)}"


def source_of(sensor_id: int) -> int:
    return SENSOR_SOURCE_BASE + sensor_id


def stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def header(store, ts_event: int, frame: str):
    sec, nanosec = divmod(int(ts_event), 1_000_000_000)
    t = store.types
    return t["std_msgs/msg/Header"](
        stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame
    )


def build_standard(store, msgtype: str, hdr, values) -> Any:
    """The standard message of one record's carried value slots (`FIELDS`)."""
    t = store.types
    if msgtype == RANGE:
        # 0 .. +inf: redline keeps no range limits, so no consumer drops a reading
        return t[RANGE](header=hdr, radiation_type=0, field_of_view=0.0,
                        min_range=0.0, max_range=float("inf"),
                        range=float(values[0]))  # fmt: skip
    vec = t["geometry_msgs/msg/Vector3"]
    if msgtype == IMU:
        unknown = np.zeros(9)
        unknown[0] = -1.0  # REP 145: no orientation estimate
        return t[IMU](
            header=hdr,
            orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
            orientation_covariance=unknown,
            angular_velocity=vec(x=float(values[3]), y=float(values[4]), z=float(values[5])),
            angular_velocity_covariance=np.zeros(9),
            linear_acceleration=vec(x=float(values[0]), y=float(values[1]), z=float(values[2])),
            linear_acceleration_covariance=np.zeros(9),
        )
    zero = vec(x=0.0, y=0.0, z=0.0)
    twist = t["geometry_msgs/msg/Twist"](linear=vec(x=float(values[0]), y=0.0, z=0.0), angular=zero)
    return t[TWIST](header=hdr, twist=twist)


def build_redline(store, rec: dict[str, Any]) -> Any:
    """The SensorReading of one SENSOR record (`rec`: its fields as Python scalars, `values`
    an array): every field."""
    sid = rec["sensor_id"]
    return store.types[REDLINE](
        header=header(store, rec["ts_event"], sensor_name(sid)),
        sensor_id=sid,
        frame_number=rec["frame_id"],
        seq=rec["seq"],
        instrument_id=rec["instrument_id"],
        source_id=rec["source_id"],
        ts_recv_source=rec["ts_recv_source"],
        flags=rec["flags"],
        values=rec["values"],
    )
