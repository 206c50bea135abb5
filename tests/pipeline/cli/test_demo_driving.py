"""The driving graph end to end (pipeline/cli/demo_driving.py): the bundled drive published over
ZeroMQ into sync -> frame arbiter with two worker processes -> planner, the loop closed, and the
minimal-risk maneuver engaged through the graph by faults caused for real: a radar gone silent,
both workers killed, both workers too slow for the deadline."""

import json

import pytest

from redline.feeds.events import Origin
from redline.pipeline.cli.demo_driving import Faults, run_driving
from redline.pipeline.cli.main import main
from redline.strategies.acc_aeb import CommandOrigin

KEYS = {"frames", "commands_by_origin", "collisions", "min_ttc_s", "latency_ns"}
SAFE = (CommandOrigin.MINIMAL_RISK, CommandOrigin.EMERGENCY)  # AEB may override the maneuver


@pytest.fixture(scope="module")
def model():
    from redline.kernels.plans import driving_model

    return driving_model.bundled_dir()


def _quiet(_: str) -> None:
    pass


def test_the_driving_demo_runs_closed_loop_with_a_worker_killed_and_writes_its_figures(tmp_path):
    out, js = tmp_path / "out", tmp_path / "driving.json"
    code = main(["demo", "--driving", "--seconds", "6", "--speed", "2", "--out", str(out),
                 "--json", str(js)])  # fmt: skip
    f = json.loads(js.read_text())
    assert code == 0, f
    assert set(f) >= KEYS
    assert f["frames"] == f["commands"] == sum(f["commands_by_origin"].values())
    # Paced, a frame the planner fell behind on is superseded by a newer one (a loaded host):
    # every one of the 300 either got its command or was counted.
    assert f["frames"] + f["sync"]["superseded"] == 300
    assert f["lost"] == 0 and f["collisions"] == 0
    assert set(f["latency_ns"]) == {"p50", "p99", "p999", "max"} and f["latency_ns"]["p50"] > 0
    # Worker A was killed halfway: both workers' answers became commands, A was restarted.
    assert len(f["killed_worker_pids"]) == 1 and f["restarts"] >= 1
    assert f["decisions_by_origin"]["worker_a"] > 0 and f["decisions_by_origin"]["worker_b"] > 0
    assert f["commands_by_origin"]["model"] > 0  # the learned term drove
    assert f["commands_by_origin"]["emergency"] > 0  # the lead's hard stop
    assert (out / "driving.png").stat().st_size > 10_000 and (out / "journal.arrow").exists()


def test_a_silent_radar_engages_the_minimal_risk_maneuver_until_the_end(tmp_path, model):
    f, rt, _ = run_driving(3, 2.0, tmp_path, Faults(radar_stops_s=1.0), model=model, log=_quiet)
    assert f["lost"] == 0
    assert f["sync"]["stale"]["range"] > 0 and f["mrm_causes"]["stale_input"] > 0
    # From the radar's max age (150 ms) after it went silent, every command is the maneuver:
    # the gap is blanked, so neither the model nor emergency braking has anything to act on.
    after = [how for t, _, how, _ in rt.nodes["planner"].log if t > 1.0 + 0.15 + 0.05]
    assert len(after) > 50 and set(after) == {CommandOrigin.MINIMAL_RISK}


def test_both_workers_killed_engages_the_minimal_risk_maneuver(tmp_path, model):
    f, rt, _ = run_driving(3, 2.0, tmp_path, Faults(kill_all_at=20), model=model, log=_quiet)
    assert f["lost"] == 0 and len(f["killed_worker_pids"]) == 2
    log = rt.nodes["planner"].log
    unserved = [how for _, _, how, origin in log if origin in (Origin.FALLBACK, Origin.DEFAULT)]
    # Until a worker is back, the fallback (a fault) or the default (a miss) answered, and
    # every such command is the maneuver (or emergency braking, which outranks it).
    assert unserved and set(unserved) <= set(SAFE)
    assert CommandOrigin.MINIMAL_RISK in unserved
    assert f["mrm_causes"]["fault"] + f["mrm_causes"]["deadline_miss"] > 0
    assert f["restarts"] >= 2


def test_workers_too_slow_for_the_deadline_engage_the_minimal_risk_maneuver(tmp_path, model):
    # No fallback: what no worker answers by the deadline is the safe default, a missed deadline.
    faults = Faults(slow_at=20, slow_s=0.05)  # 50 ms per answer against a 20 ms budget
    f, rt, _ = run_driving(3, 2.0, tmp_path, faults, fallback=False, model=model, log=_quiet)
    assert f["lost"] == 0 and f["decisions_by_origin"]["default"] > 0
    assert f["mrm_causes"]["deadline_miss"] > 0
    late = [how for _, _, how, origin in rt.nodes["planner"].log if origin == Origin.DEFAULT]
    assert set(late) <= set(SAFE) and CommandOrigin.MINIMAL_RISK in late


def test_scenarios_json_has_the_same_keys_and_one_row_per_case(tmp_path):
    from redline.venue.driving_loop import euro_ncap_grid

    js = tmp_path / "grid.json"
    assert main(["scenarios", "--json", str(js)]) == 0
    g = json.loads(js.read_text())
    assert set(g) >= KEYS | {"cases"}
    assert len(g["cases"]) == len(euro_ncap_grid()) and g["collisions"] == 0
    assert g["frames"] == sum(g["commands_by_origin"].values())
    assert g["frames"] == sum(sum(c["commands_by_origin"].values()) for c in g["cases"])
    assert g["latency_ns"] is None  # no graph in the grid: nothing to time
