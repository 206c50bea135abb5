"""Precision gate: a reduced-precision plan must stay close to fp32 on realistic inputs.

For a candidate plan the gate runs the same calibration batch (see
`calibration.py`) through it and through the fp32 plan of the same module,
and reports the max and mean absolute error and the decision agreement: the
fraction of rows where the decision taken from the output (the sign of a
single score beyond a dead zone, or the argmax of several) is the same as
fp32's. A plan over its bound is refused with `PrecisionRefusedError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

PRECISION_ORDER = ("fp16", "bf16", "int8")


@dataclass(frozen=True)
class PrecisionBound:
    """How far a plan may drift from fp32: both limits must hold."""

    max_abs_error: float
    min_agreement: float = 0.99  # fraction of equal decisions
    decision_threshold: float = 0.0  # single-score dead zone: |y| <= t is "no action"

    def __post_init__(self) -> None:
        if not (self.max_abs_error >= 0 and math.isfinite(self.max_abs_error)):
            raise ValueError(
                f"max_abs_error must be a finite number >= 0, got {self.max_abs_error}"
            )
        if not 0.0 <= self.min_agreement <= 1.0:
            raise ValueError(f"min_agreement must be in [0, 1], got {self.min_agreement}")
        if not self.decision_threshold >= 0:
            raise ValueError(f"decision_threshold must be >= 0, got {self.decision_threshold}")


# Presets for outputs of order 1 (the demo model's score: int8 measured 0.06 max error).
DEFAULT_BOUNDS: dict[str, PrecisionBound] = {
    "fp32": PrecisionBound(1e-5, 1.0),
    "fp16": PrecisionBound(1e-2, 0.99),
    "bf16": PrecisionBound(5e-2, 0.98),
    "int8": PrecisionBound(1e-1, 0.98),
}


@dataclass(frozen=True)
class GateReport:
    precision: str
    rows: int
    max_abs_error: float
    mean_abs_error: float
    agreement: float
    bound: PrecisionBound

    @property
    def passed(self) -> bool:
        return (
            self.max_abs_error <= self.bound.max_abs_error
            and self.agreement >= self.bound.min_agreement
        )

    def as_dict(self) -> dict[str, float | int | str | bool]:
        return {
            "precision": self.precision,
            "rows": self.rows,
            "max_abs_error": self.max_abs_error,
            "mean_abs_error": self.mean_abs_error,
            "agreement": self.agreement,
            "bound_max_abs_error": self.bound.max_abs_error,
            "bound_min_agreement": self.bound.min_agreement,
            "passed": self.passed,
        }


class PrecisionRefusedError(ValueError):
    """A plan drifted past its bound; `.report` holds the figures."""

    def __init__(self, report: GateReport) -> None:
        self.report = report
        b = report.bound
        super().__init__(
            f"{report.precision} plan refused: max abs error {report.max_abs_error:.3g} "
            f"(bound {b.max_abs_error:.3g}), decision agreement {report.agreement:.4f} "
            f"(bound {b.min_agreement:.4f}) over {report.rows} calibration rows; use a wider "
            "precision or loosen the bound"
        )


def decisions(y: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """[B, N] outputs -> [B] decisions: sign beyond `threshold` for N == 1, else argmax."""
    if y.shape[1] == 1:
        s = y[:, 0]
        return (s > threshold).to(torch.int8) - (s < -threshold).to(torch.int8)
    return y.argmax(dim=1)


def measure(
    candidate: torch.Tensor, reference: torch.Tensor, precision: str, bound: PrecisionBound
) -> GateReport:
    """Compare two [B, N] outputs of the same inputs. Non-finite outputs count as
    an infinite error (a NaN must never pass as small)."""
    if candidate.shape != reference.shape or candidate.ndim != 2 or not len(candidate):
        raise ValueError(
            f"outputs must be equal non-empty [B, N], got {tuple(candidate.shape)} and "
            f"{tuple(reference.shape)}"
        )
    err = (candidate.double() - reference.double()).abs()
    err = torch.where(torch.isfinite(err), err, torch.full_like(err, math.inf))
    agree = decisions(candidate, bound.decision_threshold) == decisions(
        reference, bound.decision_threshold
    )
    return GateReport(
        precision=precision,
        rows=len(candidate),
        max_abs_error=float(err.max()),
        mean_abs_error=float(err.mean()),
        agreement=float(agree.double().mean()),
        bound=bound,
    )


def gate_plan(plan, module: nn.Module, calibration: np.ndarray | torch.Tensor, bound=None):
    """Measure `plan` against the fp32 plan of `module` on `calibration` [B, K];
    return the GateReport, or raise PrecisionRefusedError if it is over `bound`
    (default: DEFAULT_BOUNDS[plan.precision])."""
    from redline.kernels.plans.from_torch import compile as compile_plan

    x = torch.as_tensor(calibration, dtype=torch.float32)
    if x.ndim != 2 or x.shape[1] != plan.in_features:
        raise ValueError(f"calibration must be [B, {plan.in_features}], got {tuple(x.shape)}")
    reference = compile_plan(module, precision="fp32", backend="cpu")(x)
    report = measure(
        plan(x).cpu(), reference, plan.precision, bound or DEFAULT_BOUNDS[plan.precision]
    )
    if not report.passed:
        raise PrecisionRefusedError(report)
    return report


def precision_report(
    module: nn.Module, calibration: np.ndarray | torch.Tensor, backend: str = "cpu"
) -> list[GateReport]:
    """One GateReport per reduced precision the module compiles to (not raising)."""
    from redline.kernels.plans.from_torch import compile as compile_plan

    x = torch.as_tensor(calibration, dtype=torch.float32)
    reference = compile_plan(module, precision="fp32", backend="cpu")(x)
    reports = []
    for precision in PRECISION_ORDER:
        try:
            plan = compile_plan(module, precision=precision, backend=backend)
        except ValueError:
            continue  # e.g. int8 for a GRU
        reports.append(measure(plan(x).cpu(), reference, precision, DEFAULT_BOUNDS[precision]))
    return reports
