"""Precision gate: a reduced-precision plan must stay close to fp32 on realistic inputs.

For a candidate plan the gate runs the same calibration batch (see
`calibration.py`) through it and through the fp32 plan of the same module,
and reports the max and mean absolute error and the decision agreement: the
fraction of rows where the decision taken from the output (the sign of a
single score beyond a dead zone, or the argmax of several) is the same as
fp32's. A plan over its bound is refused with `PrecisionRefusedError`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from redline.kernels.plans.gate_core import (  # re-exported: the gate's API
    DEFAULT_BOUNDS,
    GateReport,
    PrecisionBound,
    PrecisionRefusedError,
    measure_arrays,
)

PRECISION_ORDER = ("fp16", "bf16", "int8")


def measure(
    candidate: torch.Tensor, reference: torch.Tensor, precision: str, bound: PrecisionBound
) -> GateReport:
    """Compare two [B, N] outputs of the same inputs (gate_core.measure_arrays: non-finite
    outputs count as an infinite error, a NaN never passes as small)."""
    return measure_arrays(
        candidate.detach().cpu().float().numpy(), reference.detach().cpu().float().numpy(),
        precision, bound,
    )  # fmt: skip


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
