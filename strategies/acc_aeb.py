"""`acc_aeb`: adaptive cruise with automatic emergency braking and a minimal-risk fallback.

One compiled `step` per fused sensor frame (gap, closing speed, ego speed, health) returns a
longitudinal acceleration command and its origin:

- REFERENCE: the Intelligent Driver Model (Treiber, Hennecke & Helbing, "Congested traffic
  states in empirical observations and microscopic simulations", Phys. Rev. E 62, 1805 (2000),
  Table 1 highway set: a = 0.73 m/s^2, b = 1.67 m/s^2, T = 1.6 s, s0 = 2 m, delta = 4; the desired
  speed is the driver's set speed), clipped to ISO 15622's ACC bounds (-3.5 m/s^2 braking,
  2.5 m/s^3 jerk) and a comfort acceleration.
- EMERGENCY: braking to the physical limit when the time to collision falls under `ttc_s` or
  the deceleration needed to stop behind the lead (its own braking estimated from the frames)
  exceeds what ACC may command. Held until the ego no longer closes in.
- MINIMAL_RISK: a controlled deceleration (`mrm_accel`, -2.5 m/s^2) while any input is stale,
  a decision missed its deadline or a fault is reported (`health` bits); released on the first
  healthy frame. Fresh range data that calls for emergency braking still gets it.
- SAFE_DEFAULT: fresh inputs that are not finite (corrupt): the same controlled deceleration,
  tagged apart so corruption is counted, not mistaken for staleness.
- MODEL: a learned replacement of the IDM term (`model`, e.g. a worker's answer), clipped to
  the same ACC bounds; everything else (emergency braking, minimal risk, limits) is unchanged.

Every command is clipped to the physical limits and jerk-limited (comfort jerk, or the brake
build-up rate for emergency braking). Speeds m/s, distances m, accelerations m/s^2.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated

import msgspec
import numba as nb
import numpy as np

from redline.feeds.settings import Settings

PositiveFloat = Annotated[float, msgspec.Meta(gt=0.0, le=1000.0)]


class CommandOrigin(IntEnum):
    """Who made a command: every command has exactly one."""

    MODEL = 0  # a learned policy in place of the IDM term
    REFERENCE = 1  # the Intelligent Driver Model
    EMERGENCY = 2  # automatic emergency braking
    MINIMAL_RISK = 3  # stale input, missed deadline or fault
    SAFE_DEFAULT = 4  # fresh but corrupt (non-finite) input


class Health(IntEnum):
    """Bits of `step`'s `health`: any one set engages the minimal-risk maneuver."""

    STALE_INPUT = 1  # a sync flag: an input past its max age, or missing
    DEADLINE_MISS = 2  # the previous decision missed its deadline
    FAULT = 4  # the arbiter (or a worker) reported a fault


class PlannerSettings(Settings):
    """acc_aeb's settings; defaults in the module docstring."""

    set_speed: PositiveFloat = 33.3  # m/s, IDM desired speed v0 (120 km/h in the 2000 set)
    time_gap_s: PositiveFloat = 1.6  # IDM T
    max_accel: PositiveFloat = 0.73  # IDM a
    comfort_brake: PositiveFloat = 1.67  # IDM b
    standstill_gap: PositiveFloat = 2.0  # IDM s0, m
    delta: PositiveFloat = 4.0  # IDM exponent
    acc_brake_limit: PositiveFloat = 3.5  # ISO 15622: most ACC may brake
    acc_accel_limit: PositiveFloat = 2.0
    comfort_jerk: PositiveFloat = 2.5  # ISO 15622, m/s^3
    physical_brake: PositiveFloat = 9.0  # dry road, ~0.9 g
    physical_accel: PositiveFloat = 3.0
    brake_jerk: PositiveFloat = 40.0  # emergency brake build-up: full braking in ~0.25 s
    ttc_s: PositiveFloat = 1.5  # emergency braking under this time to collision
    stop_margin: PositiveFloat = 1.0  # m kept behind the lead when stopping hard
    mrm_accel: Annotated[float, msgspec.Meta(lt=0.0, ge=-10.0)] = -2.5
    lead_accel_alpha: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.3  # lead accel EMA

    def check(self) -> None:
        if -self.mrm_accel > self.physical_brake:
            raise ValueError(
                f"mrm_accel {self.mrm_accel} brakes harder than physical_brake "
                f"{self.physical_brake}; expected mrm_accel >= -physical_brake"
            )

    def vector(self) -> np.ndarray:
        """The settings as the compiled step reads them (order of `P_*`)."""
        return np.array([getattr(self, f) for f in self.__struct_fields__], np.float64)


(P_V0, P_T, P_A, P_B, P_S0, P_DELTA, P_ACC_BRAKE, P_ACC_ACCEL, P_JERK, P_PHYS_BRAKE,
 P_PHYS_ACCEL, P_BRAKE_JERK, P_TTC, P_MARGIN, P_MRM, P_ALPHA) = range(16)  # fmt: skip

# State row: last command, last frame time, last lead speed, lead accel estimate, emergency
# latched, a lead speed seen, a frame seen.
S_CMD, S_T, S_LEAD_V, S_LEAD_A, S_AEB, S_HAVE, S_STARTED = range(7)


def new_state(cruising_since_s: float | None = None) -> np.ndarray:
    """A planner's state before its first frame. With `cruising_since_s`, it has commanded 0
    (the ego cruising) at that time, so the first command is jerk-limited from 0 too."""
    state = np.zeros(7, np.float64)
    if cruising_since_s is not None:
        state[S_T], state[S_STARTED] = cruising_since_s, 1.0
    return state


@nb.njit(cache=True)
def idm(p, gap, closing, speed) -> float:
    """The IDM acceleration (free road when `gap` is inf)."""
    free = 1.0 - (speed / p[P_V0]) ** p[P_DELTA]
    if not np.isfinite(gap):
        return p[P_A] * free
    wanted = p[P_S0] + max(0.0, speed * p[P_T] + speed * closing / (2.0 * np.sqrt(p[P_A] * p[P_B])))
    return p[P_A] * (free - (wanted / max(gap, 0.01)) ** 2)


@nb.njit(cache=True)
def needed_brake(p, gap, closing, speed, lead_accel) -> float:
    """Deceleration (>0) the ego needs to stop `stop_margin` behind the lead."""
    room = gap - p[P_MARGIN]
    lead_speed = max(speed - closing, 0.0)
    if lead_accel < -0.5 and lead_speed > 0.0:  # lead braking: it stops within v^2 / 2|a|
        room += lead_speed * lead_speed / (-2.0 * lead_accel)
        return speed * speed / (2.0 * max(room, 0.01))
    if closing <= 0.0:
        return 0.0
    return closing * closing / (2.0 * max(room, 0.01))


def reference_accel(p: np.ndarray, gap, closing, speed) -> np.ndarray:
    """The REFERENCE term for arrays of frames: the IDM clipped to the ACC bounds, what a
    learned `model` term replaces (and is trained on and checked against)."""
    gap, closing, speed = np.broadcast_arrays(
        *(np.asarray(x, np.float64) for x in (gap, closing, speed))
    )
    out = np.array(
        [
            idm(p, g, c, v)
            for g, c, v in zip(gap.ravel(), closing.ravel(), speed.ravel(), strict=True)
        ]
    )
    return np.clip(out, -p[P_ACC_BRAKE], p[P_ACC_ACCEL]).reshape(gap.shape)


@nb.njit(cache=True)
def step(state, p, t_s, gap, closing, speed, health, model=np.nan):
    """One frame: returns (acceleration command m/s^2, CommandOrigin as int). A finite `model`
    (m/s^2) takes the IDM term's place (origin MODEL), clipped to the same ACC bounds."""
    dt = t_s - state[S_T] if state[S_STARTED] > 0.0 else 0.0
    # gap = +inf is a free road (no lead); NaN anywhere is corrupt or blanked input.
    finite = not np.isnan(gap) and np.isfinite(closing) and np.isfinite(speed)
    if finite and np.isfinite(gap):  # lead acceleration from successive lead speeds, smoothed
        lead_v = speed - closing
        if state[S_HAVE] > 0.0 and t_s > state[S_T]:
            raw = (lead_v - state[S_LEAD_V]) / dt
            state[S_LEAD_A] += p[P_ALPHA] * (raw - state[S_LEAD_A])
        state[S_LEAD_V] = lead_v
        state[S_HAVE] = 1.0
    elif finite:
        state[S_HAVE] = 0.0  # the lead is gone: the next one starts a fresh estimate
        state[S_LEAD_A] = 0.0
    if finite:
        ttc = gap / closing if closing > 0.0 else np.inf
        need = needed_brake(p, gap, closing, speed, state[S_LEAD_A])
        if ttc < p[P_TTC] or need > p[P_ACC_BRAKE]:
            state[S_AEB] = 1.0
        elif closing <= 0.0:
            state[S_AEB] = 0.0
    else:
        state[S_AEB] = 0.0
    if finite and state[S_AEB] > 0.0:
        want, origin, jerk = -p[P_PHYS_BRAKE], 2, p[P_BRAKE_JERK]
    elif health != 0:
        want, origin, jerk = p[P_MRM], 3, p[P_JERK]
    elif not finite:
        want, origin, jerk = p[P_MRM], 4, p[P_JERK]
    else:
        learned = np.isfinite(model)
        term = model if learned else idm(p, gap, closing, speed)
        want = min(max(term, -p[P_ACC_BRAKE]), p[P_ACC_ACCEL])
        origin, jerk = (0 if learned else 1), p[P_JERK]
    want = min(max(want, -p[P_PHYS_BRAKE]), p[P_PHYS_ACCEL])
    if dt > 0.0:  # jerk limit from the last command
        want = min(max(want, state[S_CMD] - jerk * dt), state[S_CMD] + jerk * dt)
    state[S_CMD] = want
    state[S_T] = t_s
    state[S_STARTED] = 1.0
    return want, origin
