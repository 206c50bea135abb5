"""ROS 2 bags written by rosbags' own Writer (no ROS install), in MCAP and sqlite3 storage,
imported into SENSOR records; round trips through the export."""

import json
import sys

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from redline.feeds import events as ev
from redline.feeds.importers.ros2_bag import import_bag
from redline.feeds.importers.ros2_export import export_bag, read_sensors
from redline.pipeline.cli.main import main
from redline.replay_data import DIR

STORE = get_typestore(Stores.ROS2_HUMBLE)
T = STORE.types
BASE = 1_700_000_000 * 10**9
STORAGES = ["mcap", "sqlite3"]


def header(ns: int):
    sec, nanosec = divmod(ns, 10**9)
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id="base_link"
    )


def vec(x, y, z):
    return T["geometry_msgs/msg/Vector3"](x=x, y=y, z=z)


def range_msg(stamp, r):
    return T["sensor_msgs/msg/Range"](header=header(stamp), radiation_type=1, field_of_view=0.1,
                                      min_range=0.5, max_range=200.0, range=r)  # fmt: skip


def imu_msg(stamp, acc, gyro):
    return T["sensor_msgs/msg/Imu"](
        header=header(stamp),
        orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
        orientation_covariance=np.zeros(9),
        angular_velocity=vec(*gyro),
        angular_velocity_covariance=np.zeros(9),
        linear_acceleration=vec(*acc),
        linear_acceleration_covariance=np.zeros(9),
    )


def twist_msg(stamp, speed):
    twist = T["geometry_msgs/msg/Twist"](linear=vec(speed, 0.4, 0.0), angular=vec(0.0, 0.0, 0.2))
    return T["geometry_msgs/msg/TwistStamped"](header=header(stamp), twist=twist)


def fix_msg(stamp):
    status = T["sensor_msgs/msg/NavSatStatus"](status=0, service=1)
    return T["sensor_msgs/msg/NavSatFix"](header=header(stamp), status=status, latitude=48.1,
                                          longitude=11.5, altitude=520.0,
                                          position_covariance=np.zeros(9),
                                          position_covariance_type=0)  # fmt: skip


ACC1, GYRO1 = (0.5, -0.25, 9.75), (0.01, 0.02, 0.03)
ACC2, GYRO2 = (-3.5, 0.125, 9.5), (-0.001, 0.0, 0.3)
# (topic, type, log time, message), in the order written: the imu's first message goes in
# before the radar's of the same log time, and the radar's third stamp goes back
MESSAGES = [
    ("/imu/data", "sensor_msgs/msg/Imu", BASE + 1000, imu_msg(BASE + 900, ACC1, GYRO1)),
    ("/front_radar", "sensor_msgs/msg/Range", BASE + 1000, range_msg(BASE + 100, 42.5)),
    ("/gps/fix", "sensor_msgs/msg/NavSatFix", BASE + 1200, fix_msg(BASE + 1100)),
    ("/vehicle/twist", "geometry_msgs/msg/TwistStamped", BASE + 1500, twist_msg(BASE + 1400, 27.5)),
    ("/imu/data", "sensor_msgs/msg/Imu", BASE + 2000, imu_msg(BASE + 1900, ACC2, GYRO2)),
    ("/gps/fix", "sensor_msgs/msg/NavSatFix", BASE + 2200, fix_msg(BASE + 2100)),
    ("/front_radar", "sensor_msgs/msg/Range", BASE + 3000, range_msg(BASE + 2000, 41.0)),
    ("/vehicle/twist", "geometry_msgs/msg/TwistStamped", BASE + 4000, twist_msg(BASE + 3600, 26.0)),
    ("/front_radar", "sensor_msgs/msg/Range", BASE + 5000, range_msg(BASE + 1950, 39.25)),
]
# (ts_recv, ts_event, source_id, seq, sensor_id, values...): replay's order, ties by source
EXPECTED = [
    (1000, 100, 101, 1, 1, [42.5]),
    (1000, 900, 103, 1, 3, [*ACC1, *GYRO1]),
    (1500, 1400, 104, 1, 4, [27.5]),
    (2000, 1900, 103, 2, 3, [*ACC2, *GYRO2]),
    (3000, 2000, 101, 2, 1, [41.0]),
    (4000, 3600, 104, 2, 4, [26.0]),
    (5000, 1950, 101, 3, 1, [39.25]),
]


def write_bag(path, storage, messages=MESSAGES):
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conns = {}
        for topic, msgtype, log_ns, msg in messages:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msgtype, typestore=STORE)
            w.write(conns[topic], log_ns, STORE.serialize_cdr(msg, msgtype))
    return path


def expected_records():
    recs = ev.empty(ev.RecordType.SENSOR, len(EXPECTED))
    for i, (recv, event, source, seq, sensor, values) in enumerate(EXPECTED):
        recs[i]["ts_recv"], recs[i]["ts_event"] = BASE + recv, BASE + event
        recs[i]["source_id"], recs[i]["seq"], recs[i]["frame_id"] = source, seq, seq
        recs[i]["sensor_id"], recs[i]["ts_recv_source"] = sensor, ev.TsSource.USER
        recs[i]["values"][: len(values)] = values
    return recs


def assert_same(a, b):
    assert a.dtype == b.dtype and len(a) == len(b)
    for name in a.dtype.names:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("storage", STORAGES)
def test_a_library_written_bag_imports_exactly(tmp_path, storage):
    imp = import_bag(write_bag(tmp_path / "bag", storage))
    assert_same(imp.sensors, expected_records())
    by_topic = {t.name: (t.messages, t.sensor_id, t.mapped_by) for t in imp.topics}
    assert by_topic == {
        "/front_radar": (3, 1, "type default"),
        "/imu/data": (2, 3, "topic name"),
        "/vehicle/twist": (2, 4, "type default"),
        "/gps/fix": (2, None, ""),
    }
    assert [(t.name, t.msgtype) for t in imp.skipped] == [("/gps/fix", "sensor_msgs/msg/NavSatFix")]
    fig = imp.figures()
    assert (fig["events"], fig["skipped_topics"], fig["skipped_messages"]) == (7, 1, 2)
    assert fig["by_sensor"] == {"1": 3, "3": 2, "4": 2}


def test_the_command_names_the_skipped_topic_and_inspect_reads_the_import(tmp_path, capsys):
    bag = write_bag(tmp_path / "bag", "mcap")
    out = tmp_path / "out"
    assert main(["import", str(bag), str(out), "--json", str(tmp_path / "f.json")]) == 0
    cap = capsys.readouterr()
    assert "7 sensor records from 3 topic(s), 1 topic(s) skipped (2 messages)" in cap.out
    assert "/front_radar (sensor_msgs/msg/Range): 3 messages -> sensor 1 radar" in cap.out
    skipped = cap.err.strip().splitlines()
    assert len(skipped) == 1
    assert "/gps/fix (sensor_msgs/msg/NavSatFix): skipped 2 messages" in skipped[0]
    figures = json.loads((tmp_path / "f.json").read_text())
    assert (figures["events"], figures["skipped_topics"]) == (7, 1)
    assert_same(read_sensors(out), expected_records())
    assert main(["inspect", str(out)]) == 0
    assert "SENSOR 7" in capsys.readouterr().out
    # a second import over the first needs --overwrite, and then replaces it
    assert main(["import", str(bag), str(out)]) == 2
    assert main(["import", str(bag), str(out), "--overwrite"]) == 0


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("types", ["auto", "standard", "redline"])
def test_export_then_import_gives_the_same_events(tmp_path, storage, types):
    first = import_bag(write_bag(tmp_path / "bag", storage)).sensors
    topics = export_bag(first, tmp_path / "again", storage, types)
    assert all(not t.lost for t in topics)  # an import's records fit the standard types
    kinds = {t.msgtype for t in topics}
    if types == "redline":
        assert kinds == {"redline_msgs/msg/SensorReading"}
    else:
        assert kinds == {"sensor_msgs/msg/Range", "sensor_msgs/msg/Imu",
                         "geometry_msgs/msg/TwistStamped"}  # fmt: skip
    assert_same(import_bag(tmp_path / "again").sensors, first)


def test_topic_map_and_topics_that_collide(tmp_path, capsys):
    two_ranges = [*MESSAGES, ("/rear_sonar", "sensor_msgs/msg/Range", BASE + 6000,
                              range_msg(BASE + 5900, 1.5))]  # fmt: skip
    bag = write_bag(tmp_path / "bag", "sqlite3", two_ranges)
    with pytest.raises(ValueError, match="/front_radar and /rear_sonar both map to sensor 1"):
        import_bag(bag)
    assert main(["import", str(bag), str(tmp_path / "o1")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--topic-map /rear_sonar=ID" in err[0]
    assert main(["import", str(bag), str(tmp_path / "o2"), "--topic-map", "/rear_sonar=7"]) == 0
    assert "/rear_sonar (sensor_msgs/msg/Range): 1 messages -> sensor 7" in capsys.readouterr().out
    recs = read_sensors(tmp_path / "o2")
    sonar = recs[recs["sensor_id"] == 7]
    assert (len(sonar), int(sonar["source_id"][0]), float(sonar["values"][0, 0])) == (1, 107, 1.5)
    for bad, says in (("/nope=2", "no such topic"), ("/gps/fix=2", "is not imported"),
                      ("/rear_sonar", "TOPIC=SENSOR_ID")):  # fmt: skip
        assert main(["import", str(bag), str(tmp_path / "o3"), "--topic-map", bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err


def test_a_type_defined_otherwise_than_the_standard_is_refused(tmp_path):
    msgtype = "sensor_msgs/msg/Range"
    with Writer(tmp_path / "bag", version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection("/radar", msgtype, msgdef="float64 range\n",
                                rihs01="RIHS01_" + "0" * 64)  # fmt: skip
        w.write(conn, BASE, STORE.serialize_cdr(range_msg(BASE, 1.0), msgtype))
    with pytest.raises(ValueError, match="/radar: the bag's definition of sensor_msgs/msg/Range"):
        import_bag(tmp_path / "bag")


def corrupt_cases(tmp_path):
    absent = tmp_path / "absent_bag"
    no_meta = tmp_path / "no_meta"
    no_meta.mkdir()
    bad_yaml = write_bag(tmp_path / "bad_yaml", "mcap")
    (bad_yaml / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    cut = write_bag(tmp_path / "cut", "mcap")
    data = next(cut.glob("*.mcap"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    garbage = write_bag(tmp_path / "garbage", "sqlite3")
    db = next(garbage.glob("*.db3"))
    db.write_bytes(b"not a database" * 100)
    gps_only = write_bag(tmp_path / "gps_only", "mcap", [m for m in MESSAGES if m[0] == "/gps/fix"])
    return [absent, no_meta, bad_yaml, cut, garbage, gps_only]


def test_an_absent_or_corrupt_bag_is_one_line_and_exit_2(tmp_path, capsys):
    for bag in corrupt_cases(tmp_path):
        out = tmp_path / f"out_{bag.name}"
        assert main(["import", str(bag), str(out), "--format", "ros2"]) == 2, bag
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(bag) in err[0], err
        if bag.name == "gps_only":
            assert "nothing to import: /gps/fix (sensor_msgs/msg/NavSatFix)" in err[0]
        assert not out.exists()  # nothing written


def test_without_rosbags_the_import_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    bag = write_bag(tmp_path / "bag", "mcap")
    for name in [m for m in sys.modules if m == "rosbags" or m.startswith("rosbags.")]:
        monkeypatch.setitem(sys.modules, name, None)  # `import rosbags...` raises ImportError
    assert main(["import", str(bag), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rosbags" in err[0] and "pip install 'redline[ros]'" in err[0]


@pytest.mark.slow
@pytest.mark.parametrize("storage", STORAGES)
def test_the_bundled_driving_recording_round_trips_exactly(tmp_path, storage, capsys):
    bundled = read_sensors(DIR / "driving_sensors.parquet")
    bag = tmp_path / "drive"
    assert main(["export", "bundled", str(bag), "--storage", storage]) == 0
    assert main(["import", str(bag), str(tmp_path / "out")]) == 0
    assert_same(read_sensors(tmp_path / "out"), bundled)
    assert "0 topic(s) skipped" in capsys.readouterr().out
