"""`compile(module)`: supported torch modules -> kernel plans; anything else refused.

Supported: `nn.Sequential` (nested ones are flattened) of 1-4 `nn.Linear`, each
optionally followed by one `nn.ReLU`, `nn.GELU()` (exact) or `nn.SiLU`; a bare
`nn.Linear`; a single-layer unidirectional `nn.GRU` or an `nn.GRUCell`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from redline.kernels.fused_mlp import MAX_LAYERS, MAX_WIDTH, MLPLayer, quantize_layer
from redline.kernels.plans.plan import GRUPlan, MLPPlan, Plan
from redline.kernels.plans.precision_gate import PrecisionBound, gate_plan


class UnsupportedModelError(ValueError):
    """The module (or one of its layers) has no kernel plan; the message names it."""


_ACTIVATION_TYPES: dict[type, str] = {nn.ReLU: "relu", nn.GELU: "gelu", nn.SiLU: "silu"}
_SUPPORTED = "Linear, ReLU, GELU (approximate='none'), SiLU; or a GRU / GRUCell on its own"


def _flatten(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    out: list[tuple[str, nn.Module]] = []
    for name, child in module.named_children():
        path = f"{prefix}{name}"
        if isinstance(child, nn.Sequential):
            out += _flatten(child, path + ".")
        else:
            out.append((path, child))
    return out


def _mlp_layers(seq: nn.Sequential, precision: str) -> list[MLPLayer]:
    pending: list[list] = []  # [weight, bias, activation]
    for path, child in _flatten(seq):
        kind = type(child).__name__
        if isinstance(child, nn.Linear):
            if max(child.in_features, child.out_features) > MAX_WIDTH:
                raise UnsupportedModelError(
                    f"layer {path} (Linear {child.in_features}->{child.out_features}): widths "
                    f"above {MAX_WIDTH} are not supported"
                )
            pending.append([child.weight, child.bias, "none"])
        elif type(child) in _ACTIVATION_TYPES:
            if isinstance(child, nn.GELU) and child.approximate != "none":
                raise UnsupportedModelError(
                    f"layer {path} (GELU approximate={child.approximate!r}) is not supported; "
                    "use nn.GELU() (exact)"
                )
            if not pending or pending[-1][2] != "none":
                raise UnsupportedModelError(
                    f"layer {path} ({kind}) must directly follow a Linear layer"
                )
            pending[-1][2] = _ACTIVATION_TYPES[type(child)]
        else:
            raise UnsupportedModelError(
                f"layer {path} ({kind}) is not supported; supported layers: {_SUPPORTED}"
            )
    if not 1 <= len(pending) <= MAX_LAYERS:
        raise UnsupportedModelError(
            f"an MLP plan takes 1..{MAX_LAYERS} Linear layers, the module has {len(pending)}"
        )
    for i in range(1, len(pending)):
        if pending[i][0].shape[1] != pending[i - 1][0].shape[0]:
            raise UnsupportedModelError(
                f"Linear {i} takes {pending[i][0].shape[1]} inputs but Linear {i - 1} gives "
                f"{pending[i - 1][0].shape[0]}"
            )
    return [quantize_layer(w, b, act, precision) for w, b, act in pending]


def _gru_tensors(module: nn.GRU | nn.GRUCell, precision: str) -> dict[str, torch.Tensor]:
    if isinstance(module, nn.GRU):
        if module.num_layers != 1 or module.bidirectional:
            raise UnsupportedModelError(
                f"GRU with num_layers={module.num_layers}, bidirectional={module.bidirectional} "
                "is not supported; only one unidirectional layer"
            )
        if getattr(module, "proj_size", 0):
            raise UnsupportedModelError("GRU with proj_size is not supported")
        sfx = "_l0"
    else:
        sfx = ""
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    if dtype is None:
        raise UnsupportedModelError(f"GRU plans take fp32, fp16 or bf16, not {precision!r}")
    w_ih = getattr(module, "weight_ih" + sfx).detach()
    w_hh = getattr(module, "weight_hh" + sfx).detach()
    hidden = w_hh.shape[1]
    if max(hidden, w_ih.shape[1]) > MAX_WIDTH:
        raise UnsupportedModelError(f"GRU widths above {MAX_WIDTH} are not supported")
    zeros = torch.zeros(3 * hidden)
    b_ih = getattr(module, "bias_ih" + sfx, None) if module.bias else None
    b_hh = getattr(module, "bias_hh" + sfx, None) if module.bias else None
    return {
        "weight_ih": w_ih.to(dtype).contiguous(),
        "weight_hh": w_hh.to(dtype).contiguous(),
        # Biases stay fp32, as in the MLP.
        "bias_ih": zeros if b_ih is None else b_ih.detach().float().contiguous(),
        "bias_hh": zeros if b_hh is None else b_hh.detach().float().contiguous(),
    }


def compile(
    module: nn.Module,
    *,
    precision: str = "fp32",
    device: str | torch.device | None = None,
    backend: str = "auto",
    version: str | None = None,
    calibration: np.ndarray | torch.Tensor | None = None,
    bound: PrecisionBound | None = None,
    input_features: tuple[str, ...] | list[str] | None = None,
) -> Plan:
    """Turn `module` into a plan. `precision`: fp32, fp16, bf16 or int8 (weight-only,
    MLP only). `device` None: CUDA if present, else CPU. `backend` "auto" picks the
    fused Triton kernels on CUDA and the CPU path otherwise; "triton" forces the
    kernels (CUDA, or the CPU under TRITON_INTERPRET=1). `version`: a string
    recorded in the manifest and on decisions (default: `<kind>-<sha256[:12]>`).
    `calibration` [B, K] (e.g. `calibration.calibration_features()`): run the
    precision gate against fp32 with `bound` (default: the precision's preset);
    the report is kept as `plan.gate_report`. `input_features`: the names of the inputs the
    model was trained on (e.g. `FEATURE_NAMES`), saved in the manifest so that a worker fed
    other features refuses the plan.

    Raises UnsupportedModelError naming the first layer without a kernel, and
    PrecisionRefusedError when the plan is over its bound.
    """
    if not isinstance(module, nn.Module):
        raise UnsupportedModelError(f"compile() takes a torch nn.Module, got {type(module)}")
    plan: Plan
    if isinstance(module, nn.GRU | nn.GRUCell):
        plan = GRUPlan(_gru_tensors(module, precision), precision, backend, device, version)
    else:
        if isinstance(module, nn.Linear):
            module = nn.Sequential(module)
        if not isinstance(module, nn.Sequential):
            raise UnsupportedModelError(
                f"module {type(module).__name__} is not supported; supported: nn.Sequential of "
                f"{_SUPPORTED}"
            )
        plan = MLPPlan(_mlp_layers(module, precision), precision, backend, device, version)
    if input_features is not None:
        if len(input_features) != plan.in_features:
            raise ValueError(
                f"input_features names {len(input_features)} inputs, the model takes "
                f"{plan.in_features}"
            )
        plan.input_features = tuple(input_features)
    plan.gate_report = None
    if calibration is not None:
        plan.gate_report = gate_plan(plan, module, calibration, bound)
    return plan
