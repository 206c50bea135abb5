"""The synthetic driving recording: an ego car following a lead on a highway,
with one hard-braking episode of the lead (~ -8 m/s^2) and a late driver.

Four sensors, each its own source with its own rate, latency and noise; all
are SENSOR records whose `values` vector (float32, SENSOR_WIDTH = 8) has the
layout below, fixed per `sensor_id`. `source_id = 100 + sensor_id`,
`instrument_id = 0`, `frame_id` is the sensor's own frame counter (it skips
where the sensor dropped a frame; `seq` does not, nothing is lost on the wire).
Speeds are m/s, ranges m, angles rad, accelerations m/s^2.

| sensor | id | rate | latency | values[0..7] |
|---|---|---|---|---|
| radar | 1 | 20 Hz | ~18 ms | range, closing speed, azimuth, RCS dBsm, SNR dB, confidence, track id, coasted |
| camera | 2 | 30 Hz | ~55 ms | range, closing speed, lead lateral offset, lead width, ego lane offset, lane curvature 1/m, brake lights, confidence |
| IMU | 3 | 100 Hz | ~1.2 ms | accel x (forward), accel y (left), accel z, roll rate, pitch rate, yaw rate, temperature C, 0 |
| wheel | 4 | 50 Hz | ~6 ms | ego speed, wheel speed FL, FR, RL, RR, steering angle, brake pressure bar, throttle 0..1 |

Closing speed is positive when the gap shrinks. The radar coasts (predicts
its track, `coasted` = 1, lower confidence) when it misses a detection.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from redline.feeds import events as ev
from redline.feeds.synthetic.network import Link, receive_times

DRIVE_START_NS = int(datetime(2026, 11, 19, 8, 15, tzinfo=UTC).timestamp()) * 10**9
SENSOR_SOURCE_BASE = 100  # source_id = SENSOR_SOURCE_BASE + sensor_id

RADAR_ID, CAMERA_ID, IMU_ID, WHEEL_ID = 1, 2, 3, 4

# values layout per sensor_id (index into SENSOR records' `values`)
RADAR_RANGE, RADAR_CLOSING_SPEED, RADAR_AZIMUTH, RADAR_RCS = 0, 1, 2, 3
RADAR_SNR, RADAR_CONFIDENCE, RADAR_TRACK_ID, RADAR_COASTED = 4, 5, 6, 7
CAMERA_RANGE, CAMERA_CLOSING_SPEED, CAMERA_LEAD_LATERAL, CAMERA_LEAD_WIDTH = 0, 1, 2, 3
CAMERA_LANE_OFFSET, CAMERA_LANE_CURVATURE, CAMERA_BRAKE_LIGHTS, CAMERA_CONFIDENCE = 4, 5, 6, 7
IMU_ACCEL_X, IMU_ACCEL_Y, IMU_ACCEL_Z, IMU_ROLL_RATE = 0, 1, 2, 3
IMU_PITCH_RATE, IMU_YAW_RATE, IMU_TEMPERATURE = 4, 5, 6
WHEEL_SPEED, WHEEL_FL, WHEEL_FR, WHEEL_RL, WHEEL_RR = 0, 1, 2, 3, 4
WHEEL_STEER, WHEEL_BRAKE, WHEEL_THROTTLE = 5, 6, 7

SENSOR_NAMES = {RADAR_ID: "radar", CAMERA_ID: "camera", IMU_ID: "imu", WHEEL_ID: "wheel"}
RATES_HZ = {RADAR_ID: 20.0, CAMERA_ID: 30.0, IMU_ID: 100.0, WHEEL_ID: 50.0}
LINKS = {
    RADAR_ID: Link(18e6, 1.5e6, wander=0.05),
    CAMERA_ID: Link(55e6, 4e6, wander=0.05, stalls_per_s=0.01, stall_ns=80e6),
    IMU_ID: Link(1.2e6, 0.15e6, wander=0.05),
    WHEEL_ID: Link(6e6, 1.2e6, wander=0.05),
}
TS_SOURCES = {
    RADAR_ID: ev.TsSource.KERNEL,
    CAMERA_ID: ev.TsSource.USER,  # stamped after the vision pipeline hands it over
    IMU_ID: ev.TsSource.KERNEL,
    WHEEL_ID: ev.TsSource.KERNEL,
}

LEAD_BRAKE_ACCEL = -8.0  # m/s^2: the lead's emergency stop
LEAD_BRAKE_TO = 4.0  # m/s: the lead brakes down to this speed, holds, then recovers
DRIVER_REACTION_S = 1.4  # the recorded driver reacts late: a near miss
DRIVER_BRAKE_ACCEL = -7.5
BRAKE_AT_FRACTION = 0.45  # the episode starts this far into the recording
DT = 0.005  # ground-truth step, s
CRUISE = 27.0  # m/s (~97 km/h)


def _truth(rng: np.random.Generator, duration_s: float) -> dict[str, np.ndarray]:
    """Ground truth on a DT grid: ego and lead kinematics, road and lane geometry."""
    n = int(duration_s / DT) + 2
    t = np.arange(n) * DT
    t_brake = BRAKE_AT_FRACTION * duration_s
    wobble = np.cumsum(rng.standard_normal(n)) * 0.02 * np.sqrt(DT)  # lead's speed noise
    lead_target = (CRUISE + 1.5 * np.sin(2 * np.pi * t / 40.0) + wobble).tolist()
    # Python lists: this loop is scalar, and list indexing is ~5x cheaper than numpy's.
    x_e, v_e, a_e = [0.0] * n, [0.0] * n, [0.0] * n
    x_l, v_l, a_l = [0.0] * n, [0.0] * n, [0.0] * n
    gap0 = 4.0 + 1.5 * CRUISE
    x_e[0], v_e[0], a_e[0] = 0.0, CRUISE, 0.0
    x_l[0], v_l[0], a_l[0] = gap0, CRUISE, 0.0
    phase, held_until = 0, 0.0  # lead: 0 cruise, 1 brake, 2 hold, 3 recover
    driver = 0  # ego: 0 follows, 1 has not noticed yet, 2 brakes hard
    for k in range(1, n):
        tk = k * DT
        if phase == 0 and tk >= t_brake:
            phase, driver = 1, 1
        if phase == 1 and v_l[k - 1] <= LEAD_BRAKE_TO:
            phase, held_until = 2, tk + 2.0
        if phase == 2 and tk >= held_until:
            phase = 3
        if phase == 1:
            want = LEAD_BRAKE_ACCEL
        elif phase == 2:
            want = 0.0
        else:
            want = min(max(0.6 * (lead_target[k] - v_l[k - 1]), -1.5), 1.5)
        # Jerk limit (40 m/s^3): -8 m/s^2 is reached in 0.2 s.
        a_l[k] = a_l[k - 1] + min(max(want - a_l[k - 1], -40 * DT), 40 * DT)
        if driver == 1 and tk >= t_brake + DRIVER_REACTION_S:
            driver = 2
        if driver == 2 and v_e[k - 1] <= v_l[k - 1]:
            driver = 0
        if driver == 1:
            want_e = a_e[k - 1]  # has not noticed: carries on
        elif driver == 2:
            want_e = DRIVER_BRAKE_ACCEL
        else:
            gap = x_l[k - 1] - x_e[k - 1]
            follow = 0.25 * (gap - (4.0 + 1.5 * v_e[k - 1])) + 0.6 * (v_l[k - 1] - v_e[k - 1])
            want_e = min(max(follow, -3.5), 1.8)
        a_e[k] = a_e[k - 1] + min(max(want_e - a_e[k - 1], -30 * DT), 30 * DT)
        v_l[k] = max(v_l[k - 1] + a_l[k] * DT, 0.0)
        v_e[k] = max(v_e[k - 1] + a_e[k] * DT, 0.0)
        x_l[k] = x_l[k - 1] + v_l[k] * DT
        x_e[k] = x_e[k - 1] + v_e[k] * DT
    x_e, v_e, a_e, x_l, a_l = map(np.asarray, (x_e, v_e, a_e, x_l, a_l))
    v_l = np.asarray(v_l)
    curvature = 0.002 * np.sin(2 * np.pi * t / 60.0)
    return {
        "t": t,
        "range": x_l - x_e,
        "closing": v_e - v_l,
        "ego_speed": v_e,
        "ego_accel": a_e,
        "lead_accel": a_l,
        "curvature": curvature,
        "lead_lateral": 0.3 * np.sin(2 * np.pi * t / 23.0),
        "lane_offset": 0.2 * np.sin(2 * np.pi * t / 17.0),
        "steer": 2.8 * curvature + 0.01 * np.sin(2 * np.pi * t / 17.0),
    }


def _sample_times(rng: np.random.Generator, rate_hz: float, duration_s: float) -> np.ndarray:
    """A sensor's sample instants (s): its own period, phase and clock jitter."""
    period = 1.0 / rate_hz
    k = np.arange(int(duration_s * rate_hz))
    t = rng.uniform(0, period) + k * period + rng.normal(0.0, period * 0.01, k.size)
    return np.maximum.accumulate(np.clip(t, 0.0, duration_s - DT))


def _radar(rng, truth, t, n) -> np.ndarray:
    at = {key: np.interp(t, truth["t"], truth[key]) for key in ("range", "closing", "lead_lateral")}
    v = np.zeros((n, ev.SENSOR_WIDTH))
    v[:, RADAR_RANGE] = at["range"] + rng.normal(0, 0.12, n)
    outlier = rng.random(n) < 0.003  # multipath ghost
    v[outlier, RADAR_RANGE] += rng.normal(0, 3.0, outlier.sum())
    v[:, RADAR_CLOSING_SPEED] = at["closing"] + rng.normal(0, 0.08, n)
    v[:, RADAR_AZIMUTH] = np.arctan2(at["lead_lateral"], at["range"]) + rng.normal(0, 0.003, n)
    v[:, RADAR_RCS] = 10.0 + rng.normal(0, 2.0, n)
    v[:, RADAR_SNR] = (
        45.0 - 20 * np.log10(np.maximum(at["range"], 1.0) / 10) + rng.normal(0, 1.5, n)
    )
    v[:, RADAR_CONFIDENCE] = np.clip(0.95 + rng.normal(0, 0.02, n), 0, 1)
    v[:, RADAR_TRACK_ID] = 17
    # Missed detections (~2%): the tracker coasts on its last range and closing speed.
    for k in np.flatnonzero(rng.random(n) < 0.02):
        if k:
            dt = t[k] - t[k - 1]
            v[k, RADAR_RANGE] = v[k - 1, RADAR_RANGE] - v[k - 1, RADAR_CLOSING_SPEED] * dt
            v[k, RADAR_CLOSING_SPEED] = v[k - 1, RADAR_CLOSING_SPEED]
            v[k, RADAR_CONFIDENCE], v[k, RADAR_COASTED] = 0.4, 1.0
    return v


def _camera(rng, truth, t, n) -> np.ndarray:
    at = {key: np.interp(t, truth["t"], truth[key]) for key in truth if key != "t"}
    r = at["range"]
    v = np.zeros((n, ev.SENSOR_WIDTH))
    # Monocular range: error grows with range, plus a 3% scale bias.
    v[:, CAMERA_RANGE] = r * 1.03 + rng.normal(0, 1, n) * (0.2 + 0.02 * r)
    v[:, CAMERA_CLOSING_SPEED] = at["closing"] + rng.normal(0, 1, n) * (0.5 + 0.02 * r)
    v[:, CAMERA_LEAD_LATERAL] = at["lead_lateral"] + rng.normal(0, 0.1, n)
    v[:, CAMERA_LEAD_WIDTH] = 1.85 + rng.normal(0, 0.05, n)
    v[:, CAMERA_LANE_OFFSET] = at["lane_offset"] + rng.normal(0, 0.03, n)
    v[:, CAMERA_LANE_CURVATURE] = at["curvature"] + rng.normal(0, 1e-4, n)
    v[:, CAMERA_BRAKE_LIGHTS] = at["lead_accel"] < -1.0
    v[:, CAMERA_CONFIDENCE] = np.clip(0.98 - 0.004 * r + rng.normal(0, 0.02, n), 0, 1)
    return v


def _imu(rng, truth, t, n) -> np.ndarray:
    at = {
        key: np.interp(t, truth["t"], truth[key]) for key in ("ego_speed", "ego_accel", "curvature")
    }
    speed = at["ego_speed"]
    jerk = np.gradient(at["ego_accel"], t) if n > 1 else np.zeros(n)
    road = rng.normal(0, 0.15, (n, 3))  # road vibration on top of sensor noise
    v = np.zeros((n, ev.SENSOR_WIDTH))
    v[:, IMU_ACCEL_X] = at["ego_accel"] + 0.03 + road[:, 0]
    v[:, IMU_ACCEL_Y] = speed**2 * at["curvature"] + road[:, 1]
    v[:, IMU_ACCEL_Z] = 9.81 + road[:, 2]
    v[:, IMU_ROLL_RATE] = rng.normal(0, 0.002, n)
    v[:, IMU_PITCH_RATE] = -0.004 * jerk + rng.normal(0, 0.002, n)  # nose dives under braking
    v[:, IMU_YAW_RATE] = speed * at["curvature"] + 0.001 + rng.normal(0, 0.002, n)
    v[:, IMU_TEMPERATURE] = 31.0 + 0.5 * t / max(t[-1], 1.0) + rng.normal(0, 0.05, n)
    return v


def _wheel(rng, truth, t, n) -> np.ndarray:
    at = {key: np.interp(t, truth["t"], truth[key]) for key in ("ego_speed", "ego_accel", "steer")}
    v = np.zeros((n, ev.SENSOR_WIDTH))
    for col in (WHEEL_FL, WHEEL_FR, WHEEL_RL, WHEEL_RR):
        # CAN wheel speeds: 0.05 km/h resolution, per-wheel tyre-radius error.
        raw = at["ego_speed"] * (1 + rng.normal(0, 0.003)) + rng.normal(0, 0.03, n)
        v[:, col] = np.round(np.maximum(raw, 0) * 3.6 / 0.05) * 0.05 / 3.6
    v[:, WHEEL_SPEED] = v[:, WHEEL_FL : WHEEL_RR + 1].mean(axis=1)
    v[:, WHEEL_STEER] = at["steer"] + rng.normal(0, 0.002, n)
    v[:, WHEEL_BRAKE] = np.maximum(-at["ego_accel"] - 0.3, 0) * 12.0  # ~12 bar per m/s^2
    v[:, WHEEL_THROTTLE] = np.clip(0.18 + 0.12 * at["ego_accel"], 0, 1)
    return v


_READERS = {RADAR_ID: _radar, CAMERA_ID: _camera, IMU_ID: _imu, WHEEL_ID: _wheel}
CAMERA_DROP_RATE = 0.01  # frames the vision pipeline drops (frame_id skips)


def generate_driving(seed: int, minutes: float) -> np.ndarray:
    """SENSOR records of every sensor (each sensor in seq order; unsorted across sensors)."""
    if not minutes * 60.0 >= 10.0:
        raise ValueError(f"driving recording needs minutes >= 1/6 (10 s), got {minutes}")
    duration = minutes * 60.0
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, 2]).spawn(5)]
    truth = _truth(rngs[0], duration)
    parts = []
    for sensor_id, rng in zip(_READERS, rngs[1:], strict=True):
        t = _sample_times(rng, RATES_HZ[sensor_id], duration)
        frame = np.arange(t.size, dtype=np.uint64) + rng.integers(1, 10_000)
        if sensor_id == CAMERA_ID:
            keep = rng.random(t.size) >= CAMERA_DROP_RATE
            t, frame = t[keep], frame[keep]
        values = _READERS[sensor_id](rng, truth, t, t.size)
        recs = ev.empty(ev.RecordType.SENSOR, t.size)
        recs["ts_event"] = DRIVE_START_NS + np.round(t * 1e9).astype(np.int64)
        recs["ts_recv"] = receive_times(rng, recs["ts_event"], LINKS[sensor_id])
        recs["seq"] = np.arange(1, t.size + 1)
        recs["source_id"] = SENSOR_SOURCE_BASE + sensor_id
        recs["ts_recv_source"] = TS_SOURCES[sensor_id]
        recs["sensor_id"] = sensor_id
        recs["frame_id"] = frame
        recs["values"] = values.astype(np.float32)
        parts.append(recs)
    return np.concatenate(parts)
