"""Plan files: `weights.safetensors` plus `manifest.json` in one directory.

The manifest records the format, the plan's kind and architecture, precision,
widths, the names of its inputs (`input_features`, when the plan knows them), every
tensor's dtype and shape, the `version` string and the sha256 of the weights file.
Loading checks all of it first (plan_file.py, the check every loader shares); pickled
weights (torch.save, pickle) are refused, because unpickling runs arbitrary code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import safetensors.torch
import torch

from redline.kernels.fused_mlp import MLPLayer
from redline.kernels.plans.plan_file import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    WEIGHTS,
    PlanFile,
    PlanFileError,
    read_plan,
)
from redline.kernels.plans.signing import Trust

if TYPE_CHECKING:
    from redline.kernels.plans.plan import Plan

__all__ = ["PlanFileError", "build_plan", "load_plan", "save_plan"]


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def save_plan(plan: Plan, directory: str | Path) -> Path:
    """Write `plan` into `directory` (created if needed); returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    blob = plan.weights_blob()
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": plan.kind,
        "version": plan.version,
        "precision": plan.precision,
        "in_features": plan.in_features,
        "out_features": plan.out_features,
    }
    if plan.input_features is not None:
        manifest["input_features"] = list(plan.input_features)
    manifest |= {
        "architecture": plan.architecture(),
        "tensors": {
            name: {"dtype": _dtype_name(t.dtype), "shape": list(t.shape)}
            for name, t in plan.tensors().items()
        },
        "weights": WEIGHTS,
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    (directory / WEIGHTS).write_bytes(blob)
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return directory


def load_plan(
    directory: str | Path,
    device: str | torch.device | None = None,
    backend: str = "auto",
    *,
    features: str | None = None,
    trust: Trust | None = None,
) -> Plan:
    """Rebuild a saved plan; device and backend are chosen as in `compile()`. `features`
    ("auto" | "kernels" | "window") also checks the plan's inputs against what a worker feeds
    it; `trust` checks its signature (see plan_file.read_plan)."""
    return build_plan(read_plan(directory, features=features, trust=trust), device, backend)


def build_plan(
    checked: PlanFile, device: str | torch.device | None = None, backend: str = "auto"
) -> Plan:
    """The plan of a checked plan directory (`plan_file.read_plan`) on torch."""
    from redline.kernels.plans.plan import GRUPlan, MLPPlan

    manifest = checked.manifest
    where = checked.directory / MANIFEST
    try:
        tensors = safetensors.torch.load(checked.blob)
    except Exception as exc:  # safetensors raises its own error types
        raise PlanFileError(f"{where}: weights not readable as safetensors ({exc})") from None
    kind, precision, version = manifest["kind"], manifest["precision"], manifest["version"]
    try:
        if kind == "gru":
            plan: Plan = GRUPlan(tensors, precision, backend, device, version)
        else:
            layers = [
                MLPLayer(
                    tensors[f"layer{i}.weight"],
                    tensors[f"layer{i}.bias"],
                    spec["activation"],
                    tensors.get(f"layer{i}.scale"),
                )
                for i, spec in enumerate(manifest["architecture"]["layers"])
            ]
            plan = MLPPlan(layers, precision, backend, device, version)
    except (KeyError, TypeError) as exc:
        raise PlanFileError(f"{where}: inconsistent architecture ({exc})") from None
    names = manifest.get("input_features")
    plan.input_features = tuple(names) if names is not None else None
    return plan
