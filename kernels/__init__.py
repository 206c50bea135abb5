"""redline.kernels: Triton kernels with their PyTorch references, model plans.

The model API the workers use:

    plan = redline.kernels.compile(module, precision="fp32", device=None)
    y = plan(x)                      # x [B, K] float tensor -> [B, N] fp32
    plan.run_into(x_row, out_row)    # hot path, batch 1, writes into `out`
    plan.save(DIR); plan = redline.kernels.load(DIR)

`plan.in_features`, `plan.out_features`, `plan.version` (string), `plan.version_id`
(u32 for DECISION records), `plan.backend` ("triton" or "cpu").

Model inputs: `FeatureState` keeps per-instrument rolling features resident and
updates them per QUOTE/TRADE event; `FEATURE_NAMES` / `N_FEATURES` name the
demo model's input (`demo_model()`).

Names are imported on first use: importing a submodule (the CLI does) must not
pull in torch, triton and numba, which take seconds.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, tuple[str, str]] = {
    "compile": ("plans.from_torch", "compile"),
    "UnsupportedModelError": ("plans.from_torch", "UnsupportedModelError"),
    "load": ("plans.storage", "load_plan"),
    "PlanFileError": ("plans.storage", "PlanFileError"),
    "Plan": ("plans.plan", "Plan"),
    "MLPPlan": ("plans.plan", "MLPPlan"),
    "GRUPlan": ("plans.plan", "GRUPlan"),
    "PrecisionBound": ("plans.precision_gate", "PrecisionBound"),
    "PrecisionRefusedError": ("plans.precision_gate", "PrecisionRefusedError"),
    "FEATURE_NAMES": ("feature_names", "FEATURE_NAMES"),
    "N_FEATURES": ("feature_names", "N_FEATURES"),
    "FeatureState": ("features", "FeatureState"),
    "demo_model": ("plans.demo_model", "demo_model"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'redline.kernels' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"redline.kernels.{module}"), attr)
    globals()[name] = value  # next access skips __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))
