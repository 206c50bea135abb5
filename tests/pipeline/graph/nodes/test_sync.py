"""The sync node in memory: fused frames from radar and wheel speeds, a stale radar flagged and
blanked, and the closed loop's lockstep (a frame goes out only once the last was commanded)."""

import numpy as np

from redline.feeds import events as ev
from redline.feeds.clock import ReplayClock
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.harness import Harness
from redline.pipeline.graph.nodes.sync import V_CLOSING, V_GAP, V_HEALTH, V_SPEED, SyncNode
from redline.strategies.acc_aeb import Health

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
RADAR, WHEEL = 1, 4


def sensor(sensor_id: int, t_ms: list[int], values: list[tuple[float, float]]) -> np.ndarray:
    r = ev.empty(ev.RecordType.SENSOR, len(t_ms))
    r["ts_event"] = [T0 + t * MS for t in t_ms]
    r["ts_recv"] = r["ts_event"] + 2 * MS
    r["sensor_id"] = sensor_id
    r["values"][:, :2] = values
    return r


def node(clock, **kw) -> Harness:
    spec = gc.SyncSpec(in_="sensors", out="frames", max_age_ms=(150, 60), **kw)
    return Harness(SyncNode("sync", spec, clock))


def test_frames_fuse_radar_and_wheel_and_a_silent_radar_is_stale_past_its_age():
    clock = ReplayClock(T0)
    h = node(clock)
    h.push(sensor(RADAR, [0], [(40.0, 1.5)]))
    h.push(sensor(WHEEL, [20, 100, 160, 200], [(27.0, 0)] * 4))  # radar 0 ms old ... 200 ms
    h.end()
    h.run()
    out = h.records()
    v = out["values"]
    assert out["seq"].tolist() == [1, 2, 3, 4] and (out["sensor_id"] == 0).all()
    assert out["ts_event"].tolist() == [T0 + t * MS for t in (20, 100, 160, 200)]
    assert out["ts_recv"].tolist() == [T0 + t * MS + 2 * MS for t in (20, 100, 160, 200)]
    assert v[:2, V_GAP].tolist() == [40.0, 40.0] and v[:2, V_CLOSING].tolist() == [1.5, 1.5]
    assert v[:, V_SPEED].tolist() == [27.0] * 4
    # 160 ms after the radar's last record: past its 150 ms max age, blanked and flagged.
    assert np.isnan(v[2:, V_GAP]).all() and np.isnan(v[2:, V_CLOSING]).all()
    assert v[:, V_HEALTH].tolist() == [0, 0, Health.STALE_INPUT, Health.STALE_INPUT]
    assert np.isfinite(v[:, :4]).all()  # what the workers read stays finite
    assert h.node.stats()["stale"] == {"range": 2, "speed": 0} and h.node.done


def test_a_wheel_frame_before_any_radar_is_flagged_missing():
    clock = ReplayClock(T0)
    h = node(clock)
    h.push(sensor(WHEEL, [0], [(27.0, 0)]))
    h.end()
    h.run()
    assert h.records()["values"][0, V_HEALTH] == Health.STALE_INPUT
    assert h.node.stats()["missing"] == {"range": 1, "speed": 0}


def test_approximate_sync_pairs_by_source_time_within_the_slop():
    clock = ReplayClock(T0)
    h = node(clock, policy="approximate", slop_ms=10)
    h.push(sensor(RADAR, [0, 50, 100], [(40.0, 1.0), (39.0, 1.0), (38.0, 1.0)]))
    h.push(sensor(WHEEL, [4, 24, 44, 64, 84, 104], [(float(s), 0) for s in range(6)]))
    h.end()
    h.run()
    out = h.records()
    # radar 0 with wheel 4, radar 50 with wheel 44 (6 ms, vs 14 for 64), radar 100 with 104
    assert out["values"][:, V_SPEED].tolist() == [0.0, 2.0, 5.0]
    assert out["values"][:, V_GAP].tolist() == [40.0, 39.0, 38.0]
    assert (out["values"][:, V_HEALTH] == 0).all()


class _Loop:
    """A stand-in closed loop: the world is what the test says; commands counted."""

    def __init__(self):
        self.commands = 0
        self.sensed: list[int] = []

    def sense(self, t_ns):
        self.sensed.append(t_ns)
        return 10.0, 2.0, 20.0

    def actuate(self, cmd):
        self.commands += 1


def test_in_closed_loop_each_frame_waits_for_the_last_command_and_sees_the_world():
    clock = ReplayClock(T0)
    h = node(clock)
    loop = _Loop()
    h.node.attach(loop)
    h.push(sensor(RADAR, [0], [(40.0, 1.5)]))
    h.push(sensor(WHEEL, [20, 40, 60], [(27.0, 0)] * 3))
    h.end()
    h.run()
    assert len(h.records()) == 1 and not h.node.done  # frame 2 waits for frame 1's command
    loop.actuate(-1.0)
    h.run()
    loop.actuate(-1.0)
    h.run()
    out = h.records()
    assert out["seq"].tolist() == [1, 2, 3] and h.node.done
    assert loop.sensed == [T0 + t * MS for t in (20, 40, 60)]
    assert out["values"][:, V_GAP].tolist() == [10.0] * 3  # the simulated ego's view ...
    assert out["values"][:, V_SPEED].tolist() == [20.0] * 3  # ... not the recording's


def test_behind_latest_sends_the_newest_waiting_frame_and_counts_the_ones_it_overtook():
    # A live planner slower than the sensors: while frame 1 waits for its command, frames 2-4
    # arrive. Lockstep would send 2, 3, 4 one command each, ever further behind; "latest"
    # sends 4 and counts 2 and 3 as superseded.
    clock = ReplayClock(T0)
    h = node(clock, behind="latest")
    loop = _Loop()
    h.node.attach(loop)
    h.push(sensor(RADAR, [0], [(40.0, 1.5)]))
    h.push(sensor(WHEEL, [20], [(27.0, 0)]))
    h.run()
    h.push(sensor(WHEEL, [40, 60, 80], [(27.0, 0)] * 3))
    h.end()
    h.run()
    assert len(h.records()) == 1 and h.node.held() == 3
    loop.actuate(-1.0)
    h.run()
    out = h.records()
    assert out["seq"].tolist() == [1, 2]
    assert out["ts_event"].tolist() == [T0 + 20 * MS, T0 + 80 * MS]
    assert loop.sensed == [T0 + 20 * MS, T0 + 80 * MS]  # the world stepped to the newest frame
    stats = h.node.stats()
    assert (stats["frames"], stats["superseded"]) == (2, 2)
    loop.actuate(-1.0)
    h.run()
    assert h.node.done


def test_frames_piling_up_for_the_loop_hold_the_node_back_instead_of_reading_on():
    # The graph fell behind: frames wait for commands. Past 64 the node reads no more input and
    # says it is held back, so the runtime waits on it (reading on as "work" spun the loop and
    # starved the planner whose commands would free the frames).
    clock = ReplayClock(T0)
    h = node(clock)
    loop = _Loop()
    h.node.attach(loop)
    h.push(sensor(RADAR, [0], [(40.0, 1.5)]))
    h.push(sensor(WHEEL, [20 * k for k in range(1, 101)], [(27.0, 0)] * 100))
    h.run()
    assert len(h.records()) == 1 and h.node.held() == 99 and h.node.held_back()
    h.push(sensor(WHEEL, [3000], [(27.0, 0)]))
    assert h.node.step() == 0 and h.node.inputs[0].ready()  # left unread: nothing to do
    for _ in range(100):
        loop.actuate(0.0)
        h.node.step()  # one frame per command; below 64 waiting it reads on
    loop.actuate(0.0)
    h.end()
    h.run()
    assert len(h.records()) == 101 and h.node.done and not h.node.held_back()
