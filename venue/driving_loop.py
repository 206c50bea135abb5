"""Closed-loop driving replay: an ego kinematic model driven by the acc_aeb planner's commands
behind a scripted lead, so the gap depends on what was decided; and the rear-end test grid.

One compiled loop per case on a 5 ms grid. The planner decides every 50 ms (the radar's 20 Hz)
on what its sensors saw 20 ms before (the radar's ~18 ms latency, rounded up); the ego's
acceleration follows the command through a first-order brake/drive lag (`ACTUATOR_TAU_S`) and
its speed never goes below zero. A health window (`Case.health`) stands for a radar outage
(STALE_INPUT: gap and closing speed blanked, as the sync blanks them), a reported fault, or
decisions answered by the fallback at their deadline (DEADLINE_MISS); the planner sees the bits
on every frame inside it.

The grid follows Euro NCAP's car-to-car rear tests (AEB C2C protocol): CCRs, a stationary lead,
ego 10-50 km/h; CCRm, a lead at 20 km/h, ego 30-80 km/h; both in 5 km/h steps and starting at a
time to collision of 4 s; CCRb, lead and ego at 50 km/h, the lead braking at -2 or -6 m/s^2 from
the first instant, 12 or 40 m apart. The ego's set speed is its test speed.

`model=` (kernels/plans/driving_model.py's weights) runs the learned term in place of the IDM
term inside the compiled loop: the grid's model path. `LiveLoop` is the same ego for a live
graph (`redline demo --driving`), stepped as its frames come.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numba as nb
import numpy as np

from redline.kernels.plans import driving_model
from redline.strategies import acc_aeb
from redline.strategies.acc_aeb import CommandOrigin, PlannerSettings

DT_S = 0.005  # simulation step
DECIDE_EVERY = 10  # steps per planner frame: 50 ms, the radar's rate
SENSE_DELAY = 4  # steps between what happened and what the planner sees: 20 ms
ACTUATOR_TAU_S = 0.1  # the ego's acceleration reaches ~63% of a new command in 100 ms
DURATION_S = 20.0  # long enough for every grid case to settle or stop
START_TTC_S = 4.0  # CCRs and CCRm start this far (in time to collision) from the lead
KMH = 1 / 3.6


class Case(NamedTuple):
    """One closed-loop run: speeds km/h, lead acceleration m/s^2, gap m."""

    name: str
    ego_kmh: float
    lead_kmh: float
    gap_m: float
    lead_accel: float = 0.0  # applied from t = 0 until the lead stops
    health: tuple[float, float, int] = (0.0, 0.0, 0)  # (from s, to s, Health bits)


class Outcome(NamedTuple):
    """What a case did; `commands` counts planner frames by CommandOrigin name."""

    name: str
    collision: bool
    impact_speed_ms: float  # closing speed at contact, 0 without one
    min_ttc_s: float  # inf when the ego never closed in
    min_gap_m: float
    peak_decel_ms2: float  # of the ego's actual acceleration
    peak_jerk_ms3: float
    commands: dict[str, int]


def euro_ncap_grid() -> list[Case]:
    """The 24 cases of the rear-end grid (module docstring)."""
    cases = []
    for ego in range(10, 55, 5):
        cases.append(Case(f"CCRs {ego} km/h", ego, 0.0, ego * KMH * START_TTC_S))
    for ego in range(30, 85, 5):
        cases.append(Case(f"CCRm {ego} km/h", ego, 20.0, (ego - 20) * KMH * START_TTC_S))
    for decel in (-2.0, -6.0):
        for gap in (12.0, 40.0):
            cases.append(Case(f"CCRb {decel:g} m/s2 {gap:g} m", 50.0, 50.0, gap, decel))
    return cases


@nb.njit(cache=True)
def _run(state, p, ego_v, lead_x, lead_v, h_from, h_to, h_bits, n_steps, out_gap, out_closing,
         out_speed, out_accel, origins, w):  # fmt: skip  # pragma: no cover - compiled
    """Steps the case against the lead's path (position and speed per step, ego starting at
    0); fills the per-step arrays and one origin per frame (-1 if none); returns the steps run
    (fewer than n_steps on contact)."""
    x_e, a_e, cmd = 0.0, 0.0, 0.0
    for i in range(n_steps):
        t = i * DT_S
        out_gap[i] = lead_x[i] - x_e
        out_closing[i] = ego_v - lead_v[i]
        out_speed[i] = ego_v
        out_accel[i] = a_e
        if out_gap[i] <= 0.0:
            return i + 1
        if i % DECIDE_EVERY == 0:
            j = max(i - SENSE_DELAY, 0)  # what the sensors report now happened then
            bits = h_bits if h_from <= t < h_to else 0
            seen_gap, seen_closing = out_gap[j], out_closing[j]
            if bits & 1:  # Health.STALE_INPUT: the sync blanked the radar
                seen_gap, seen_closing = np.nan, np.nan
            model = np.nan  # no weights (w[0] empty): the IDM term
            if w[0].size:
                model = driving_model.forward(*w, seen_gap, seen_closing, out_speed[j])
            cmd, origin = acc_aeb.step(state, p, t, seen_gap, seen_closing, out_speed[j], bits,
                                       model)  # fmt: skip
            origins[i // DECIDE_EVERY] = origin
        x_e, ego_v, a_e = _ego_step(x_e, ego_v, a_e, cmd)
    return n_steps


@nb.njit(cache=True)
def _ego_step(x, v, a, cmd):  # pragma: no cover - compiled
    """One DT_S step of the ego under `cmd`: returns (position, speed, acceleration)."""
    a += (cmd - a) * DT_S / ACTUATOR_TAU_S
    if v <= 0.0 and a < 0.0:
        a = 0.0  # standing: the brakes hold, no backwards roll
    v = max(v + a * DT_S, 0.0)
    return x + v * DT_S, v, a


@nb.njit(cache=True)
def _scripted_lead(gap, v0, accel, n_steps):  # pragma: no cover - compiled
    """The scripted lead's position and speed per step: `accel` until it stops."""
    x, v = np.empty(n_steps), np.empty(n_steps)
    x[0], v[0] = gap, v0
    for i in range(1, n_steps):
        v[i] = max(v[i - 1] + accel * DT_S, 0.0)
        x[i] = x[i - 1] + v[i] * DT_S
    return x, v


def run_case(case: Case, settings: PlannerSettings | None = None, model=None) -> Outcome:
    """One case in closed loop; the planner's set speed is the ego's test speed. `model`: the
    learned term's weights (kernels/plans/driving_model.py) in place of the IDM term."""
    n = int(DURATION_S / DT_S)
    lead_x, lead_v = _scripted_lead(case.gap_m, case.lead_kmh * KMH, case.lead_accel, n)
    return _closed_loop(case.name, case.ego_kmh * KMH, case.ego_kmh * KMH, lead_x, lead_v,
                        case.health, settings, model)  # fmt: skip


def run_recording(path: str | Path, settings: PlannerSettings | None = None) -> Outcome:
    """The planner behind the lead of a driving recording (`lead_from_recording`): the lead
    does what it did on the road, the ego what the planner decides, from the recorded ego's
    first speed, set speed that speed."""
    lead = lead_from_recording(path)
    return _closed_loop(f"recorded lead ({Path(path).name})", lead.ego_v0, lead.ego_v0, lead.x,
                        lead.v, (0.0, 0.0, 0), settings, None)  # fmt: skip


class LeadPath(NamedTuple):
    """A recorded lead on the DT_S grid, the ego starting at 0 (`lead_from_recording`)."""

    x: np.ndarray  # the lead's position per step, m
    v: np.ndarray  # its speed per step, m/s
    t0_ns: int  # source time (ts_event) of step 0
    ego_x: np.ndarray  # the recorded ego's position per step, m
    ego_v: np.ndarray  # and its speed, m/s

    @property
    def ego_v0(self) -> float:
        """The recorded ego's first speed, m/s."""
        return float(self.ego_v[0])


def lead_from_recording(path: str | Path) -> LeadPath:
    """The lead of a recording from its radar and wheel-speed SENSOR records: the ego's position
    is its wheel speed integrated, the lead's that plus the radar's range (median of 5, which
    drops the multipath ghosts), its speed the ego's less the radar's closing speed."""
    from redline.feeds.events import RecordType
    from redline.feeds.replay.reader import replay
    from redline.feeds.synthetic import driving as dr

    parts = [r for t, r in replay([path]) if t == RecordType.SENSOR]
    if not parts:
        raise ValueError(f"{path}: no SENSOR records; give a driving recording")
    rec = np.concatenate(parts)
    radar = rec[rec["sensor_id"] == dr.RADAR_ID]
    wheel = rec[rec["sensor_id"] == dr.WHEEL_ID]
    if len(radar) < 5 or len(wheel) < 2:
        raise ValueError(f"{path}: needs radar and wheel-speed records (sensor ids "
                         f"{dr.RADAR_ID} and {dr.WHEEL_ID}) to rebuild the lead's path")  # fmt: skip
    t0 = max(radar["ts_event"][0], wheel["ts_event"][0])
    t_end = min(radar["ts_event"][-1], wheel["ts_event"][-1])
    t = t0 + (np.arange(int((t_end - t0) / 1e9 / DT_S)) * DT_S * 1e9).astype(np.int64)
    ego_v = np.interp(t, wheel["ts_event"], wheel["values"][:, dr.WHEEL_SPEED])
    ego_x = np.concatenate([[0.0], np.cumsum(ego_v[1:] * DT_S)])
    rng = np.lib.stride_tricks.sliding_window_view(radar["values"][:, dr.RADAR_RANGE], 5)
    rng = np.concatenate([radar["values"][:2, dr.RADAR_RANGE], np.median(rng, axis=1),
                          radar["values"][-2:, dr.RADAR_RANGE]])  # fmt: skip
    closing = np.interp(t, radar["ts_event"], radar["values"][:, dr.RADAR_CLOSING_SPEED])
    lead_x = ego_x + np.interp(t, radar["ts_event"], rng)
    return LeadPath(lead_x, np.maximum(ego_v - closing, 0.0), int(t0), ego_x, ego_v)


class LiveLoop:
    """The closed loop around a live graph: the ego under the graph's commands behind a
    recorded lead, stepped on the DT_S grid as frames come (by their source time).

    The ego starts where and as fast as the recorded one was at `start_ns` (the path's start by
    default). `sense(t_ns)` moves the world to t_ns under the last command and returns what the
    ego's sensors see then (gap, closing speed, ego speed); `actuate(cmd)` is the graph's
    answer. Contact is counted (`collisions`) and the run goes on; `log` keeps one row per
    sensed frame for the plot: (t s from the path's start, gap m, ego speed m/s, lead speed
    m/s)."""

    def __init__(self, lead: LeadPath, start_ns: int | None = None) -> None:
        self.lead = lead
        self.i = 0 if start_ns is None else self._step_at(start_ns)  # where the world is
        self.x, self.v = float(lead.ego_x[self.i]), float(lead.ego_v[self.i])
        self.a, self.cmd = 0.0, 0.0
        _ego_step(0.0, 0.0, 0.0, 0.0)  # compiled now, not while the first frame waits
        self.commands = 0
        self.collisions = 0
        self._contact = False
        self.min_gap_m = math.inf
        self.min_ttc_s = math.inf
        self.log: list[tuple[float, float, float, float]] = []

    def _step_at(self, t_ns: int) -> int:
        return min(max(int((t_ns - self.lead.t0_ns) / 1e9 / DT_S), 0), len(self.lead.x) - 1)

    def sense(self, t_ns: int) -> tuple[float, float, float]:
        lead = self.lead
        target = max(self._step_at(t_ns), self.i)
        while self.i < target:
            self.x, self.v, self.a = _ego_step(self.x, self.v, self.a, self.cmd)
            self.i += 1
            gap = lead.x[self.i] - self.x
            if gap <= 0.0 and not self._contact:
                self.collisions += 1  # a contact, counted once until the gap opens again
            self._contact = gap <= 0.0
            self.min_gap_m = min(self.min_gap_m, max(gap, 0.0))
        gap, lead_v = float(lead.x[self.i] - self.x), float(lead.v[self.i])
        closing = self.v - lead_v
        if closing > 0.0 and gap > 0.0:
            self.min_ttc_s = min(self.min_ttc_s, gap / closing)
        self.log.append((self.i * DT_S, gap, self.v, lead_v))
        return gap, closing, self.v

    def actuate(self, cmd: float) -> None:
        self.cmd = float(cmd)
        self.commands += 1


_NO_MODEL = tuple(np.zeros((0,) * (2 - i % 2), np.float32) for i in range(6))  # w[0] empty


def _closed_loop(name, ego_v0, set_speed, lead_x, lead_v, health, settings, model) -> Outcome:
    base = settings or PlannerSettings()
    p = PlannerSettings(**{**_fields(base), "set_speed": max(set_speed, 0.1)}).vector()
    n = len(lead_x)
    gap, closing, speed, accel = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    origins = np.full(n // DECIDE_EVERY + 1, -1, np.int64)
    h_from, h_to, h_bits = health
    state = acc_aeb.new_state(cruising_since_s=-DECIDE_EVERY * DT_S)  # cruising, command 0
    steps = _run(state, p, ego_v0, lead_x, lead_v, h_from, h_to, h_bits, n, gap, closing, speed,
                 accel, origins, _NO_MODEL if model is None else tuple(model))  # fmt: skip
    gap, closing, speed, accel = gap[:steps], closing[:steps], speed[:steps], accel[:steps]
    # Jerk while rolling: the step to zero as the ego comes to rest is the brakes holding it.
    rolling = (speed[1:] > 0.0) & (speed[:-1] > 0.0)
    jerk = np.abs(np.diff(accel))[rolling] / DT_S
    collision = bool(gap[-1] <= 0.0)
    closing_in = (closing > 0.0) & (gap > 0.0)
    ttc = gap[closing_in] / closing[closing_in]
    counts = np.bincount(origins[origins >= 0], minlength=len(CommandOrigin))
    return Outcome(
        name=name,
        collision=collision,
        impact_speed_ms=float(closing[-1]) if collision else 0.0,
        min_ttc_s=float(ttc.min()) if ttc.size else float("inf"),
        min_gap_m=float(max(gap.min(), 0.0)),
        peak_decel_ms2=float(max(-accel.min(), 0.0)),
        peak_jerk_ms3=float(jerk.max()) if jerk.size else 0.0,
        commands={o.name.lower(): int(counts[o]) for o in CommandOrigin},
    )


def _fields(s: PlannerSettings) -> dict:
    return {f: getattr(s, f) for f in s.__struct_fields__}


def run_grid(cases: list[Case] | None = None, settings: PlannerSettings | None = None,
             model=None):  # fmt: skip
    """Every case of `cases` (the Euro NCAP grid by default), in order; `model` as `run_case`."""
    return [
        run_case(c, settings, model) for c in (cases if cases is not None else euro_ncap_grid())
    ]
