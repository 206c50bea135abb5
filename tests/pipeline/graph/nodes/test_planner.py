"""The planner node in memory: who answered decides the health bits, the model's answer is the
learned term, and every command is tagged by origin and counted by cause."""

import numpy as np

from redline.feeds.clock import ReplayClock
from redline.feeds.events import Origin
from redline.pipeline.graph import config as gc
from redline.pipeline.graph.harness import Harness
from redline.pipeline.graph.nodes.frame_arbiter import FRAME_ANSWER_DTYPE
from redline.pipeline.graph.nodes.planner import PlannerNode
from redline.strategies.acc_aeb import CommandOrigin as C
from redline.strategies.acc_aeb import Health

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
BUDGET = 20 * MS


def answers(origins, health=0, score=0.1) -> np.ndarray:
    """Frames 20 ms apart at 20 m/s, 60 m behind a lead at the same speed."""
    a = np.zeros(len(origins), FRAME_ANSWER_DTYPE)
    a["ts_event"] = a["ts_recv"] = T0 + np.arange(len(origins)) * 20 * MS
    a["deadline"] = a["ts_recv"] + BUDGET
    a["input_seq"] = np.arange(1, len(origins) + 1)
    a["origin"] = origins
    a["score"] = score
    a["gap"], a["closing"], a["speed"], a["health"] = 60.0, 0.0, 20.0, health
    return a


def run(a: np.ndarray, clock: ReplayClock, late_ns: int = 0) -> tuple[PlannerNode, np.ndarray]:
    h = Harness(PlannerNode("planner", gc.PlannerSpec(in_="answers", out="commands"), clock))
    for i in range(len(a)):
        clock.advance(max(int(a["ts_recv"][i]) - clock.now_ns(), 0) + 1 * MS + late_ns * (i == 1))
        h.push(a[i : i + 1])
        h.run()
    h.end()
    h.run()
    return h.node, h.records()


def test_workers_answers_are_the_model_term_and_the_commands_go_out_stamped():
    clock = ReplayClock(T0)
    node, out = run(answers([Origin.WORKER_A, Origin.WORKER_B, Origin.WORKER_A]), clock)
    assert [how for _, _, how, _ in node.log] == [C.MODEL] * 3
    assert out["score"][-1] > 0.0  # jerk-limited towards the model's +0.1 from cruising at 0
    assert (out["ts_decision"] == out["ts_recv"] + 1 * MS).all()  # the clock when decided
    assert out["input_seq"].tolist() == [1, 2, 3]
    assert node.commands_by_origin() == {"model": 3, "reference": 0, "emergency": 0,
                                         "minimal_risk": 0, "safe_default": 0}  # fmt: skip


def test_fallback_default_stale_and_a_late_command_engage_the_maneuver_by_cause():
    clock = ReplayClock(T0)
    origins = [Origin.FALLBACK, Origin.DEFAULT, Origin.WORKER_A, Origin.WORKER_B]
    a = answers(origins)
    a["health"][3] = Health.STALE_INPUT  # the sync flagged the last frame
    node, out = run(a, clock)
    hows = [how for _, _, how, _ in node.log]
    assert hows == [C.MINIMAL_RISK, C.MINIMAL_RISK, C.MODEL, C.MINIMAL_RISK]
    assert node.mrm_causes == {"stale_input": 1, "deadline_miss": 1, "fault": 1}
    assert out["score"][1] < out["score"][0] < 0.0  # decelerating, jerk-limited towards -2.5
    # A command emitted after its deadline makes the next frame's decision a miss too.
    clock = ReplayClock(T0)
    node, _ = run(answers([Origin.WORKER_A] * 3), clock, late_ns=BUDGET)
    assert [how for _, _, how, _ in node.log] == [C.MODEL, C.MODEL, C.MINIMAL_RISK]
    assert node.mrm_causes["deadline_miss"] == 1
