"""redline.kernels: Triton kernels with their PyTorch references, model plans.

The model API the workers use:

    plan = redline.kernels.compile(module, precision="fp32", device=None)
    y = plan(x)                      # x [B, K] float tensor -> [B, N] fp32
    plan.run_into(x_row, out_row)    # hot path, batch 1, writes into `out`
    plan.save(DIR); plan = redline.kernels.load(DIR)

`plan.in_features`, `plan.out_features`, `plan.version` (string), `plan.version_id`
(u32 for DECISION records), `plan.backend` ("triton" or "cpu").
"""

from redline.kernels.model_import import UnsupportedModelError, compile
from redline.kernels.plan import GRUPlan, MLPPlan, Plan
from redline.kernels.plan_file import PlanFileError, load_plan

load = load_plan

__all__ = [
    "GRUPlan",
    "MLPPlan",
    "Plan",
    "PlanFileError",
    "UnsupportedModelError",
    "compile",
    "load",
]
