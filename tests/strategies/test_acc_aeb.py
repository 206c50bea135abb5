"""The acc_aeb planner: the IDM by hand, limits, emergency braking, the minimal-risk maneuver."""

import numpy as np
import pytest

from redline.strategies import acc_aeb
from redline.strategies.acc_aeb import CommandOrigin as O
from redline.strategies.acc_aeb import Health, PlannerSettings

P = PlannerSettings().vector()
INF = np.inf


def run(frames, p=P):
    """Frames of (t, gap, closing, speed, health) through one planner: [(command, origin)]."""
    state = acc_aeb.new_state()
    return [acc_aeb.step(state, p, *f) for f in frames]


def test_idm_matches_the_published_formula_by_hand():
    # v = 20, gap 30, not closing, 2000 set: s* = 2 + 20 * 1.6 = 34;
    # a = 0.73 * (1 - (20 / 33.3)^4 - (34 / 30)^2) = 0.73 * (1 - 0.130130 - 1.284444) = -0.302640
    assert acc_aeb.idm(P, 30.0, 0.0, 20.0) == pytest.approx(-0.302640, abs=1e-5)
    # closing at 2 m/s adds v * dv / (2 sqrt(ab)) = 20 * 2 / (2 * 1.104128) = 18.114
    assert acc_aeb.idm(P, 30.0, 2.0, 20.0) == pytest.approx(
        0.73 * (1 - 0.130130 - (52.114 / 30) ** 2), abs=1e-3
    )
    assert acc_aeb.idm(P, INF, 0.0, 0.0) == pytest.approx(0.73)  # free road from standstill


def test_reference_commands_are_jerk_limited_and_clipped_to_acc_bounds():
    # Gap 15 m at 25 m/s, not closing: s* = 42, IDM wants 0.73 * (1 - 0.3177 - 7.84) = -5.2,
    # more than ACC may (-3.5). TTC is infinite and stopping behind a steady lead needs nothing,
    # so no emergency braking.
    frames = [(0.05 * i, 15.0, 0.0, 25.0, 0) for i in range(40)]
    out = run(frames)
    cmds = [c for c, _ in out]
    assert {o for _, o in out} == {O.REFERENCE}
    assert cmds[0] == -3.5  # first frame: nothing to limit the jerk against yet
    p = PlannerSettings(max_accel=5.0).vector()  # a bigger IDM a, still clipped to 2.0
    up = run([(0.05 * i, INF, 0.0, 0.0, 0) for i in range(60)], p)
    assert up[1][0] == pytest.approx(up[0][0])  # starts at the clip already
    assert max(c for c, _ in up) == 2.0
    # Cruising at the set speed (IDM 0), then towards -3.5 at 2.5 m/s^3: -0.125 per 50 ms frame.
    down = run([(0.0, INF, 0.0, 33.3, 0)] + [(0.05 * i, 20.0, 0.0, 25.0, 0) for i in range(1, 6)])
    assert [round(c, 3) for c, _ in down[1:]] == [-0.125, -0.25, -0.375, -0.5, -0.625]


def test_emergency_braking_on_short_time_to_collision():
    # Free road first (IDM: 0.73 * (1 - (20 / 33.3)^4) = 0.635), then a 10 m gap closing at
    # 10 m/s: TTC 1 s < 1.5. Full braking at 40 m/s^3: -2 per 50 ms frame down to -9.
    out = run([(0.0, INF, 0.0, 20.0, 0)] + [(0.05 * i, 10.0, 10.0, 20.0, 0) for i in range(1, 7)])
    assert out[0] == (pytest.approx(0.635, abs=1e-3), O.REFERENCE)
    assert [o for _, o in out[1:]] == [O.EMERGENCY] * 6
    assert [round(c, 3) for c, _ in out[1:]] == [-1.365, -3.365, -5.365, -7.365, -9.0, -9.0]


def test_emergency_braking_on_a_hard_braking_lead_before_ttc_is_short():
    # Lead and ego at 14 m/s, 12 m apart; the lead brakes at -6: its speed falls 0.3 per frame.
    # Stopping behind it needs v^2 / 2 (12 - 1 + 14^2 / 12) > 3.5 once the estimate settles.
    frames = [(0.05 * i, 12.0, 0.3 * i, 14.0, 0) for i in range(8)]
    origins = [o for _, o in run(frames)]
    assert O.EMERGENCY in origins
    first = origins.index(O.EMERGENCY)
    assert 12.0 / (0.3 * first) > 1.5  # it fired while the TTC alone would not have


@pytest.mark.parametrize("bit", [Health.STALE_INPUT, Health.DEADLINE_MISS, Health.FAULT])
def test_minimal_risk_engages_on_each_health_bit_and_releases_when_healthy(bit):
    healthy = (30.0, 0.0, 20.0)  # IDM near equilibrium: s* = 34 at 20 m/s, gap 30
    frames = [(0.05 * i, *healthy, 0) for i in range(5)]
    frames += [(0.05 * i, *healthy, int(bit)) for i in range(5, 45)]
    frames += [(0.05 * i, *healthy, 0) for i in range(45, 50)]
    out = run(frames)
    origins = [o for _, o in out]
    assert origins[:5] == [O.REFERENCE] * 5
    assert origins[5:45] == [O.MINIMAL_RISK] * 40
    assert origins[45:] == [O.REFERENCE] * 5
    assert out[44][0] == pytest.approx(-2.5)  # reached and held at the setting
    assert out[45][0] == pytest.approx(-2.5 + 0.125)  # released at the comfort jerk


def test_a_stale_radar_frame_from_the_sync_engages_minimal_risk():
    # What the sync hands on: range blanked to NaN and the stale flag set.
    out = run([(0.0, 30.0, 0.0, 20.0, 0), (0.05, np.nan, np.nan, 20.0, int(Health.STALE_INPUT))])
    assert out[1][1] == O.MINIMAL_RISK


def test_corrupt_fresh_input_is_a_safe_default_not_a_stale_one():
    out = run([(0.0, 30.0, 0.0, 20.0, 0), (0.05, 30.0, np.nan, 20.0, 0)])
    assert out[1][1] == O.SAFE_DEFAULT and out[1][0] < 0.0


def test_fresh_emergency_still_brakes_hard_during_a_fault():
    out = run([(0.0, 5.0, 10.0, 20.0, int(Health.FAULT))])
    assert out[0] == (-9.0, O.EMERGENCY)


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match="mrm_accel"):
        PlannerSettings(mrm_accel=0.0)
    with pytest.raises(ValueError, match="physical_brake"):
        PlannerSettings(mrm_accel=-9.5)


def test_a_model_term_replaces_the_idm_and_is_clipped_like_it():
    # Gap 60 m at 20 m/s, not closing: nothing for emergency braking; the model's term is used.
    state = acc_aeb.new_state(cruising_since_s=-0.05)
    cmd, origin = acc_aeb.step(state, P, 0.0, 60.0, 0.0, 20.0, 0, 0.1)
    assert origin == O.MODEL and cmd == pytest.approx(0.1)
    state = acc_aeb.new_state()  # no jerk limit on the first frame: the clip alone shows
    assert acc_aeb.step(state, P, 0.0, 60.0, 0.0, 20.0, 0, -7.0) == (-3.5, O.MODEL)
    state = acc_aeb.new_state()
    assert acc_aeb.step(state, P, 0.0, 60.0, 0.0, 20.0, 0, 5.0) == (2.0, O.MODEL)
    # A stale input still engages the maneuver whatever the model says; no model: the IDM.
    state = acc_aeb.new_state()
    assert (
        acc_aeb.step(state, P, 0.0, 60.0, 0.0, 20.0, Health.STALE_INPUT, 0.1)[1] == O.MINIMAL_RISK
    )
    state = acc_aeb.new_state()
    cmd, origin = acc_aeb.step(state, P, 0.0, 60.0, 0.0, 20.0, 0)
    assert origin == O.REFERENCE and cmd == pytest.approx(
        acc_aeb.reference_accel(P, 60.0, 0.0, 20.0)
    )


def test_the_shipped_driving_model_matches_the_idm_reference_where_acc_decides():
    # kernels/plans/driving_model.py's fixed weights against the clipped IDM term on states it
    # was not fitted on, where the planner uses the term: outside emergency braking (TTC over
    # 1.5 s, no more than the ACC brake limit needed). Bounds: what the 4-32-32-1 MLP reaches.
    from redline.kernels.plans import driving_model as dm

    s = dm.sample_states(8192, seed=7)
    gap, closing, speed = s.T
    room = np.maximum(gap - 1.0, 0.01)
    closing_in = closing > 0
    acc = ~(closing_in & (gap < 1.5 * closing)) & ~(closing_in & (closing**2 / (2 * room) > 3.5))
    err = np.abs(
        dm.predict(dm.fixed(), dm.inputs(gap, closing, speed))
        - acc_aeb.reference_accel(P, gap, closing, speed)
    )[acc]
    assert acc.mean() > 0.4 and np.isfinite(err).all()
    assert np.sqrt(np.mean(err**2)) < 0.15 and np.quantile(err, 0.99) < 0.6 and err.max() < 2.0
    # The plan the workers load computes the same as `predict`.
    import tempfile

    from redline.kernels.plans.numpy_loader import load_numpy_plan

    with tempfile.TemporaryDirectory() as d:
        plan = load_numpy_plan(dm.save(dm.fixed(), d))
        x = dm.inputs(gap[:64], closing[:64], speed[:64])
        y = np.zeros((64, 1), np.float32)
        for i in range(64):
            plan.run_into(x[i : i + 1], y[i : i + 1])
    np.testing.assert_allclose(y[:, 0], dm.predict(dm.fixed(), x), rtol=1e-5, atol=1e-5)


def test_the_driving_model_fit_is_deterministic_and_learns_the_reference():
    from redline.kernels.plans import driving_model as dm

    s = dm.sample_states(256, seed=0)
    y = acc_aeb.reference_accel(P, *s.T)
    a, b = dm.fit(s, y, seed=0, steps=60), dm.fit(s, y, seed=0, steps=60)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    untrained = dm.fit(s, y, seed=0, steps=1)
    x = dm.inputs(*s.T)
    assert np.abs(dm.predict(a, x) - y).mean() < np.abs(dm.predict(untrained, x) - y).mean()
    assert dm.decode(dm.encode(a))[0].tobytes() == a[0].tobytes()
