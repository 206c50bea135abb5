"""The synthetic driving recording: sensor rates, latencies, the value layout
and the hard-braking episode a planner is tested against."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from redline.feeds import event_schema as es
from redline.feeds import events as ev
from redline.feeds.synthetic import driving as drv
from redline.replay_data import DIR as BUNDLED

MINUTES = 0.5


@pytest.fixture(scope="module")
def sensors():
    return drv.generate_driving(seed=5, minutes=MINUTES)


def _sensor(recs, sensor_id):
    sub = recs[recs["sensor_id"] == sensor_id]
    return sub[np.argsort(sub["seq"], kind="stable")]


def test_each_sensor_runs_at_its_rate_from_its_own_source(sensors):
    for sensor_id, rate in drv.RATES_HZ.items():
        s = _sensor(sensors, sensor_id)
        assert (s["source_id"] == drv.SENSOR_SOURCE_BASE + sensor_id).all()
        np.testing.assert_array_equal(s["seq"], np.arange(1, len(s) + 1))  # nothing lost
        period_ms = np.median(np.diff(s["ts_event"])) / 1e6
        assert period_ms == pytest.approx(1e3 / rate, rel=0.02)
        assert len(s) == pytest.approx(rate * MINUTES * 60, rel=0.03)
    frames = {i: np.diff(_sensor(sensors, i)["frame_id"].astype(np.int64)) for i in drv.RATES_HZ}
    assert (frames[drv.CAMERA_ID] > 1).any()  # the camera drops frames...
    assert all((frames[i] == 1).all() for i in (drv.RADAR_ID, drv.IMU_ID, drv.WHEEL_ID))


def test_latencies_differ_per_sensor_with_jitter(sensors):
    median = {}
    for sensor_id in drv.RATES_HZ:
        s = _sensor(sensors, sensor_id)
        lat = (s["ts_recv"] - s["ts_event"]).astype(np.float64)
        assert (lat > 0).all()
        assert lat.std() > 0.05 * np.median(lat)
        median[sensor_id] = np.median(lat)
    # IMU on a local bus < wheel speeds over CAN < radar < camera (vision pipeline).
    assert median[drv.IMU_ID] < median[drv.WHEEL_ID] < median[drv.RADAR_ID] < median[drv.CAMERA_ID]


def test_layout_constants_fit_the_sensor_vector():
    for prefix in ("RADAR_", "CAMERA_", "IMU_", "WHEEL_"):
        slots = [
            v
            for k, v in vars(drv).items()
            if k.startswith(prefix) and k != prefix + "ID" and isinstance(v, int)
        ]
        assert len(slots) == len(set(slots)) and max(slots) < ev.SENSOR_WIDTH, prefix


def _lead_accel(radar, wheel):
    """Lead acceleration seen from the sensors: ego speed minus radar closing speed."""
    t = radar["ts_event"] / 1e9
    ego = np.interp(t, wheel["ts_event"] / 1e9, wheel["values"][:, drv.WHEEL_SPEED])
    lead = ego - radar["values"][:, drv.RADAR_CLOSING_SPEED]
    k = 5  # 0.25 s baseline smooths the differentiated noise
    return t[k:], (lead[k:] - lead[:-k]) / (t[k:] - t[:-k])


def test_hard_braking_episode_is_in_every_sensor(sensors):
    radar, camera = _sensor(sensors, drv.RADAR_ID), _sensor(sensors, drv.CAMERA_ID)
    imu, wheel = _sensor(sensors, drv.IMU_ID), _sensor(sensors, drv.WHEEL_ID)
    t_lead, a_lead = _lead_accel(radar, wheel)
    assert a_lead.min() < -7.0 and np.median(a_lead) > -1.0
    t0 = t_lead[np.argmin(a_lead)]
    # The gap closes from cruise (~44 m) to a near miss and the closing speed peaks.
    rng_m = radar["values"][:, drv.RADAR_RANGE]
    assert rng_m[:20].mean() > 35.0 and 3.0 < np.quantile(rng_m, 0.01) < 15.0
    assert radar["values"][:, drv.RADAR_CLOSING_SPEED].max() > 8.0
    # The ego brakes hard after the lead (smoothed IMU, 0.1 s windows).
    ax = np.convolve(imu["values"][:, drv.IMU_ACCEL_X], np.ones(10) / 10, mode="valid")
    t_imu = imu["ts_event"][9:] / 1e9
    assert ax.min() < -6.0 and t_imu[np.argmin(ax)] > t0
    # The camera sees brake lights during the episode and not while cruising.
    lights = camera["values"][:, drv.CAMERA_BRAKE_LIGHTS]
    t_cam = camera["ts_event"] / 1e9
    assert lights[np.abs(t_cam - t0) < 0.5].mean() > 0.9 and lights[t_cam < t0 - 5].max() == 0


def test_driving_is_deterministic_per_seed(sensors):
    again = drv.generate_driving(seed=5, minutes=MINUTES)
    np.testing.assert_array_equal(again, sensors)
    other = drv.generate_driving(seed=6, minutes=MINUTES)
    assert not np.array_equal(other["values"], sensors["values"])
    with pytest.raises(ValueError, match="minutes >= 1/6"):
        drv.generate_driving(seed=5, minutes=0.1)


def test_bundled_driving_file_is_sorted_by_receipt():
    table = pq.read_table(BUNDLED / "driving_sensors.parquet")
    recs = es.from_arrow(table, es.record_type_from_schema(table.schema), "driving_sensors")
    key = np.lexsort((recs["seq"], recs["source_id"], recs["ts_recv"]))
    np.testing.assert_array_equal(key, np.arange(len(recs)))
    assert set(np.unique(recs["sensor_id"])) == set(drv.RATES_HZ)
    assert np.isfinite(recs["values"]).all()
