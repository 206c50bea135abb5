"""`redline export`: SENSOR records -> a ROS 2 bag, read back by `redline import`."""

import json

import numpy as np
import pytest

from redline.feeds import events as ev
from redline.feeds.importers import ros2_types
from redline.feeds.importers.output import write_records
from redline.feeds.importers.ros2_export import export_bag, read_sensors
from redline.pipeline.cli.main import main
from redline.replay_data import DIR

T0 = 1_763_540_100 * 10**9


def sensors(imu_temperature: float = 0.0) -> np.ndarray:
    """A radar at 10 Hz and an IMU at 20 Hz, numbered as a bag import numbers them."""
    parts = []
    for sid, n, period in ((1, 5, 100_000_000), (3, 10, 50_000_000)):
        r = ev.empty(ev.RecordType.SENSOR, n)
        r["ts_event"] = T0 + np.arange(n) * period
        r["ts_recv"] = r["ts_event"] + 2_000_000 + sid
        r["seq"] = r["frame_id"] = np.arange(1, n + 1)
        r["sensor_id"], r["source_id"], r["ts_recv_source"] = sid, 100 + sid, ev.TsSource.USER
        r["values"][:, 0] = 40.0 - np.arange(n) if sid == 1 else 0.25
        if sid == 3:
            r["values"][:, 1:6] = [0.5, 9.75, 0.01, -0.02, 0.125]
            r["values"][:, 6] = imu_temperature
        parts.append(r)
    recs = np.concatenate(parts)
    return recs[np.lexsort((recs["seq"], recs["source_id"], recs["ts_recv"]))]


def parquet(tmp_path, recs, name="s.parquet"):
    write_records(tmp_path / name, recs)
    return tmp_path / name


def same(a, b, skip=()):
    return all(np.array_equal(a[n], b[n]) for n in a.dtype.names if n not in skip)


def test_auto_writes_standard_types_where_they_carry_everything(tmp_path, capsys):
    recs = sensors(imu_temperature=31.5)  # the IMU's temperature has no Imu field
    data, bag = parquet(tmp_path, recs), tmp_path / "bag"
    assert main(["export", str(data), str(bag), "--json", str(tmp_path / "e.json")]) == 0
    assert capsys.readouterr().err == ""  # nothing left out
    topics = {
        t["topic"]: t["type"] for t in json.loads((tmp_path / "e.json").read_text())["topics"]
    }
    assert topics == {"/radar/range": "sensor_msgs/msg/Range",
                      "/redline/imu": "redline_msgs/msg/SensorReading"}  # fmt: skip
    assert main(["import", str(bag), str(tmp_path / "out")]) == 0
    assert same(read_sensors(tmp_path / "out"), recs)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_standard_names_what_it_leaves_out_and_only_that_differs(tmp_path, capsys, storage):
    recs = sensors(imu_temperature=31.5)
    recs["flags"][recs["sensor_id"] == 1] = ev.Flag.GAP_BEFORE
    data, bag = parquet(tmp_path, recs), tmp_path / "bag"
    assert main(["export", str(data), str(bag), "--types", "standard", "--storage", storage]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert "/radar/range: sensor_msgs/msg/Range does not carry flags;" in err[0]
    assert "/imu/data: sensor_msgs/msg/Imu does not carry values[6];" in err[1]
    back = import_back(bag, tmp_path / "out")
    assert same(back, recs, skip=("flags", "values"))
    assert not back["flags"].any()
    assert np.array_equal(back["values"][:, :6], recs["values"][:, :6])
    assert not back["values"][:, 6].any()


def import_back(bag, out):
    assert main(["import", str(bag), str(out)]) == 0
    return read_sensors(out)


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    data = parquet(tmp_path, sensors())
    odd = sensors()
    odd["sensor_id"][0], odd["source_id"][0] = 9, 109
    late = sensors()
    late["ts_event"][3] = 2**31 * 10**9  # past what a header stamp (int32 s) holds
    (tmp_path / "taken").mkdir()
    cases = [
        ([str(data), str(tmp_path / "taken")], "already exists"),
        ([str(DIR / "market_quotes.parquet"), str(tmp_path / "b1")], "holds QUOTE records"),
        ([str(tmp_path / "none.parquet"), str(tmp_path / "b2")], "no such file"),
        (
            [
                str(parquet(tmp_path, odd, "odd.parquet")),
                str(tmp_path / "b3"),
                "--types",
                "standard",
            ],
            "sensor 9: no standard message type",
        ),
        (
            [str(parquet(tmp_path, late, "late.parquet")), str(tmp_path / "b4")],
            "ts_event 2147483648000000000 does not fit",
        ),
    ]
    for argv, says in cases:
        assert main(["export", *argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
    assert not any((tmp_path / f"b{i}").exists() for i in range(1, 5))
    assert list((tmp_path / "taken").iterdir()) == []


def test_a_failed_export_leaves_no_bag_behind(tmp_path, monkeypatch):
    calls = []

    def fail_on_the_third(store, msgtype, hdr, values):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return build(store, msgtype, hdr, values)

    build = ros2_types.build_standard
    monkeypatch.setattr(ros2_types, "build_standard", fail_on_the_third)
    with pytest.raises(RuntimeError, match="disk full"):
        export_bag(sensors(), tmp_path / "bag", "mcap", "standard")
    assert list(tmp_path.iterdir()) == []  # neither the bag nor its temporary
