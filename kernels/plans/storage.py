"""Plan files: `weights.safetensors` plus `manifest.json` in one directory.

The manifest records the format, the plan's kind and architecture, precision,
widths, every tensor's dtype and shape, the `version` string and the sha256 of
the weights file. Loading checks all of it; pickled weights (torch.save, pickle)
are refused, because unpickling runs arbitrary code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import safetensors.torch
import torch

from redline.kernels.fused_mlp import MLPLayer

if TYPE_CHECKING:
    from redline.kernels.plans.plan import Plan

FORMAT = "redline.plan"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
_PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")


class PlanFileError(ValueError):
    """A plan directory is missing, corrupt, pickled or inconsistent; the message says which."""


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


def _refuse_pickle(path: Path) -> None:
    raise PlanFileError(
        f"{path}: pickled weights are refused (unpickling runs code); save the model with "
        "redline.kernels.compile(module).save(DIR), which writes safetensors"
    )


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise PlanFileError(f"{directory}: no {MANIFEST}; not a plan directory") from None
    except json.JSONDecodeError as exc:
        raise PlanFileError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PlanFileError(f"{path}: 'format' is not {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise PlanFileError(
            f"{path}: format_version {manifest.get('format_version')!r}, this redline reads "
            f"{FORMAT_VERSION}"
        )
    required = ("kind", "version", "precision", "in_features", "out_features", "architecture")
    for key in (*required, "tensors", "weights", "sha256"):
        if key not in manifest:
            raise PlanFileError(f"{path}: missing field {key!r}")
    if manifest["weights"] != WEIGHTS:
        raise PlanFileError(f"{path}: 'weights' must be {WEIGHTS!r}, got {manifest['weights']!r}")
    return manifest


def _read_tensors(directory: Path, manifest: dict[str, Any]) -> dict[str, torch.Tensor]:
    path = directory / WEIGHTS
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise PlanFileError(f"{directory}: manifest names {WEIGHTS}, which is missing") from None
    # torch.save writes a zip (PK..) or a raw pickle (0x80 protocol byte).
    if blob[:2] == b"PK" or blob[:1] == b"\x80":
        _refuse_pickle(path)
    digest = hashlib.sha256(blob).hexdigest()
    if digest != manifest["sha256"]:
        raise PlanFileError(
            f"{path}: sha256 {digest} does not match the manifest's {manifest['sha256']}"
        )
    try:
        tensors = safetensors.torch.load(blob)
    except Exception as exc:  # safetensors raises its own error types
        raise PlanFileError(f"{path}: not a readable safetensors file ({exc})") from None
    expected = manifest["tensors"]
    if set(tensors) != set(expected):
        raise PlanFileError(
            f"{path}: tensors {sorted(tensors)} differ from the manifest's {sorted(expected)}"
        )
    for name, t in tensors.items():
        spec = expected[name]
        if _dtype_name(t.dtype) != spec["dtype"] or list(t.shape) != spec["shape"]:
            raise PlanFileError(
                f"{path}: tensor {name} is {_dtype_name(t.dtype)} {list(t.shape)}, manifest says "
                f"{spec['dtype']} {spec['shape']}"
            )
    return tensors


def load_plan(
    directory: str | Path, device: str | torch.device | None = None, backend: str = "auto"
) -> Plan:
    """Rebuild a saved plan; device and backend are chosen as in `compile()`."""
    from redline.kernels.plans.plan import GRUPlan, MLPPlan

    directory = Path(directory)
    if directory.is_file():
        if directory.suffix in _PICKLE_SUFFIXES:
            _refuse_pickle(directory)
        raise PlanFileError(f"{directory}: expected a plan directory, got a file")
    if not directory.is_dir():
        raise PlanFileError(f"{directory}: no such plan directory")
    manifest = _read_manifest(directory)
    tensors = _read_tensors(directory, manifest)
    kind, precision, version = manifest["kind"], manifest["precision"], manifest["version"]
    try:
        if kind == "gru":
            plan: Plan = GRUPlan(tensors, precision, backend, device, version)
        elif kind == "mlp":
            layers = []
            for i, spec in enumerate(manifest["architecture"]["layers"]):
                layers.append(
                    MLPLayer(
                        tensors[f"layer{i}.weight"],
                        tensors[f"layer{i}.bias"],
                        spec["activation"],
                        tensors.get(f"layer{i}.scale"),
                    )
                )
            plan = MLPPlan(layers, precision, backend, device, version)
        else:
            raise PlanFileError(f"{directory / MANIFEST}: unknown kind {kind!r}")
    except (KeyError, TypeError) as exc:
        raise PlanFileError(f"{directory / MANIFEST}: inconsistent architecture ({exc})") from None
    if (plan.in_features, plan.out_features) != (
        manifest["in_features"],
        manifest["out_features"],
    ):
        raise PlanFileError(f"{directory / MANIFEST}: in/out_features disagree with the weights")
    return plan
