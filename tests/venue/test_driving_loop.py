"""The closed loop: the Euro NCAP rear-end grid with the reference planner, the minimal-risk
path under a stale radar, a missed deadline and a fault, and a contact that physics forces."""

import numpy as np
import pytest

from redline.strategies.acc_aeb import Health
from redline.venue.driving_loop import KMH, Case, euro_ncap_grid, run_case, run_grid

FRAMES = 400  # 20 s at 20 Hz


def test_the_whole_grid_ends_without_a_collision():
    cases = euro_ncap_grid()
    assert len(cases) == 9 + 11 + 4  # CCRs 10-50, CCRm 30-80 in 5 km/h steps, 4 CCRb
    out = run_grid(cases)
    assert [o.name for o in out if o.collision] == []
    assert all(o.min_gap_m > 1.0 and o.impact_speed_ms == 0.0 for o in out)
    assert all(sum(o.commands.values()) == FRAMES for o in out)  # no frame uncounted
    assert all(o.commands["model"] == 0 for o in out)  # reserved, never issued yet
    by_name = {o.name: o for o in out}
    hard = by_name["CCRb -6 m/s2 12 m"]  # the one case comfort braking cannot handle
    assert hard.commands["emergency"] > 0 and hard.peak_decel_ms2 == pytest.approx(9.0, abs=0.05)
    # Everywhere else ACC's own bound holds: never past -3.5 m/s^2.
    assert max(o.peak_decel_ms2 for o in out if o is not hard) <= 3.5 + 1e-6
    # CCRs starts at TTC 4 s: the min TTC is below that but the ego stops short (s0 = 2 m).
    assert 0.0 < by_name["CCRs 50 km/h"].min_ttc_s < 4.0


@pytest.mark.parametrize("bit", [Health.STALE_INPUT, Health.DEADLINE_MISS, Health.FAULT])
def test_minimal_risk_engages_for_the_window_and_releases(bit):
    # CCRm 80 km/h with the health bit set from 1 s to 3 s: 40 frames of 50 ms.
    case = Case("CCRm 80 km/h, unhealthy 1-3 s", 80, 20, 60 * KMH * 4, health=(1.0, 3.0, int(bit)))
    out = run_case(case)
    assert not out.collision
    assert out.commands["minimal_risk"] == 40
    assert out.commands["reference"] == FRAMES - 40  # released as soon as it was healthy again


def test_a_contact_that_physics_forces_is_reported_with_its_speed():
    # 5 m from a stopped lead at 80 km/h (22.2 m/s): stopping needs 22.2^2 / (2 * 9) = 27 m, and
    # the 5 m pass in ~0.23 s, while the brakes build up. So contact, at nearly full speed.
    out = run_case(Case("too close", 80, 0, 5.0))
    assert out.collision and out.min_gap_m == 0.0
    assert 18.0 < out.impact_speed_ms < 80 * KMH
    assert out.commands["emergency"] > 0


def test_the_planner_behind_the_recorded_lead_keeps_its_distance():
    # The bundled recording's driver reacted late to the lead's emergency stop (-8 m/s^2):
    # 8-9 m apart at the closest, time to collision 1.44 s. In closed loop behind the same lead
    # path the planner never gets near that.
    from redline.replay_data import DIR
    from redline.venue.driving_loop import lead_from_recording, run_recording

    lead = lead_from_recording(DIR / "driving_sensors.parquet")
    assert 26 < lead.ego_v0 < 28 and lead.v.min() < 5  # cruising at ~97 km/h; the lead stopped hard
    o = run_recording(DIR / "driving_sensors.parquet")
    assert not o.collision and o.min_gap_m > 20 and o.min_ttc_s > 3
    assert sum(o.commands.values()) == len(lead.x) // 10 + (len(lead.x) % 10 > 0)


def test_a_recording_without_sensors_is_refused_by_name():
    from redline.replay_data import DIR
    from redline.venue.driving_loop import run_recording

    with pytest.raises(ValueError, match="no SENSOR records; give a driving recording"):
        run_recording(DIR / "market_quotes.parquet")


def test_the_live_loop_moves_the_ego_by_its_commands_and_counts_a_contact_once():
    # A lead standing 10 m ahead; the ego at 10 m/s. Sensed every 50 ms of source time.
    from redline.venue.driving_loop import DT_S, LeadPath, LiveLoop

    n = 2000
    lead = LeadPath(np.full(n, 10.0), np.zeros(n), 1_000, np.zeros(n), np.full(n, 10.0))
    braking, coasting = LiveLoop(lead), LiveLoop(lead)
    for k in range(60):
        t = 1_000 + int(k * 0.05e9)
        braking.sense(t)
        braking.actuate(-9.0)  # stops within 10^2 / 18 = 5.6 m plus the actuator lag
        coasting.sense(t)
        coasting.actuate(0.0)
    assert braking.collisions == 0 and 2.0 < braking.min_gap_m < 5.0 and braking.v == 0.0
    assert coasting.collisions == 1 and coasting.min_gap_m == 0.0  # contact at 1 s, once
    assert coasting.log[0] == (0.0, 10.0, 10.0, 0.0)
    assert coasting.log[-1][0] == pytest.approx(59 * 0.05, abs=DT_S)
    assert braking.commands == 60


def test_the_grid_with_the_learned_term_in_place_of_the_idm_has_no_collision():
    # The model path: kernels/plans/driving_model.py's shipped weights decide every frame that
    # emergency braking does not; it stops behind a standing lead near the IDM's 2 m.
    from redline.kernels.plans import driving_model

    outcomes = run_grid(model=driving_model.fixed())
    assert [o.name for o in outcomes if o.collision] == []
    assert all(o.commands["reference"] == 0 and o.commands["model"] > 0 for o in outcomes)
    assert min(o.min_gap_m for o in outcomes) > 1.0
