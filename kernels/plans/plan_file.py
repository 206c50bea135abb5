"""The one check of a plan directory, shared by every loader (torch-free).

`read_plan` is what `redline.kernels.load` (storage.py, torch) and the workers' loader
(numpy_loader.py, no torch) both call before they build anything, so a plan is refused with the
same message whichever loads it. In order:

1. the path is a directory (a file is refused, as pickled weights when its name or its first
   bytes say pickle);
2. the signature, when the caller gives a `Trust` (signing.py), over the manifest's bytes;
3. the manifest: format and version, required fields, `weights` is weights.safetensors;
4. the weights: pickles refused by content under any name (torch.save's zip, a pickle's
   protocol byte), the sha256 against the manifest, every tensor's dtype and shape (read from
   the safetensors header) against the manifest, the widths against the tensors;
5. `input_features` (optional: names of the inputs, one per in_feature) and, when the caller
   says what the graph feeds (`features`), those names or the width against it (inputs.py).

Unpickling runs arbitrary code, so no loader ever unpickles.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redline.kernels.plans.inputs import resolve_features
from redline.kernels.plans.signing import Trust, check_signature

FORMAT = "redline.plan"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")
REQUIRED = ("kind", "version", "precision", "in_features", "out_features", "architecture",
            "tensors", "weights", "sha256")  # fmt: skip
# safetensors header dtype codes -> the manifest's names (torch's, without "torch.")
_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
           "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
           "BOOL": "bool"}  # fmt: skip


class PlanFileError(ValueError):
    """A plan directory is missing, corrupt, pickled or inconsistent; the message says which."""


@dataclass(frozen=True)
class PlanFile:
    """A plan directory that passed every check: its manifest and the weights' bytes."""

    directory: Path
    manifest: dict[str, Any]
    blob: bytes  # weights.safetensors, sha256 checked
    features: str | None  # the feature state that feeds it ("kernels" | "window"), if asked


def refuse_pickle(path: Path) -> PlanFileError:
    return PlanFileError(
        f"{path}: pickled weights are refused (unpickling runs code); save the model with "
        "redline.kernels.compile(module).save(DIR), which writes safetensors"
    )


def looks_pickled(head: bytes) -> bool:
    """torch.save's zip (PK\\x03\\x04) or a pickle of protocol 2-5 (0x80, protocol)."""
    return head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05")


def _is_safetensors(blob: bytes) -> bool:
    """An 8-byte little-endian header length, then a JSON object that fits in the file."""
    if len(blob) < 10:
        return False
    (n,) = struct.unpack_from("<Q", blob)
    return 8 + n <= len(blob) and blob[8:9] == b"{"


def read_plan(
    directory: str | Path, *, features: str | None = None, trust: Trust | None = None
) -> PlanFile:
    """Check the plan in `directory` (see the module docstring); PlanFileError (a ValueError)
    or PlanSignatureError naming the file, the value and the fix otherwise. `features`: what the
    graph feeds the plan ("auto" | "kernels" | "window"), None to skip that check."""
    directory = Path(directory)
    if directory.is_file():
        with directory.open("rb") as f:
            head = f.read(16)
        if directory.suffix in PICKLE_SUFFIXES or looks_pickled(head):
            raise refuse_pickle(directory)
        raise PlanFileError(
            f"{directory}: is a file; a plan is a directory holding {MANIFEST} and {WEIGHTS} "
            "(write one with `redline plan DIR`)"
        )
    if not directory.is_dir():
        raise PlanFileError(f"{directory}: no such plan directory")
    raw = _read_manifest_bytes(directory)
    check_signature(directory, raw, trust or Trust())
    manifest = _parse_manifest(directory / MANIFEST, raw)
    blob = _read_weights(directory, manifest)
    names = _input_names(directory / MANIFEST, manifest)
    kind = None
    if features is not None:
        kind = resolve_features(str(directory), manifest["in_features"], names, features)
    return PlanFile(directory, manifest, blob, kind)


def _read_manifest_bytes(directory: Path) -> bytes:
    try:
        return (directory / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise PlanFileError(f"{directory}: no {MANIFEST}; not a plan directory") from None


def _parse_manifest(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PlanFileError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PlanFileError(f"{path}: 'format' is not {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise PlanFileError(
            f"{path}: format_version {manifest.get('format_version')!r}, this redline reads "
            f"{FORMAT_VERSION}"
        )
    for key in REQUIRED:
        if key not in manifest:
            raise PlanFileError(f"{path}: missing field {key!r}")
    if manifest["weights"] != WEIGHTS:
        raise PlanFileError(f"{path}: 'weights' must be {WEIGHTS!r}, got {manifest['weights']!r}")
    if manifest["kind"] not in ("mlp", "gru"):
        raise PlanFileError(f"{path}: unknown kind {manifest['kind']!r} (known: mlp, gru)")
    return manifest


def _read_weights(directory: Path, manifest: dict[str, Any]) -> bytes:
    path = directory / WEIGHTS
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise PlanFileError(f"{directory}: manifest names {WEIGHTS}, which is missing") from None
    if not _is_safetensors(blob):
        if looks_pickled(blob[:16]):
            raise refuse_pickle(path)
        raise PlanFileError(f"{path}: not a safetensors file; write plans with plan.save(DIR)")
    digest = hashlib.sha256(blob).hexdigest()
    if digest != manifest["sha256"]:
        raise PlanFileError(
            f"{path}: sha256 {digest} does not match the manifest's {manifest['sha256']}"
        )
    header = _header(path, blob)
    expected = manifest["tensors"]
    if set(header) != set(expected):
        raise PlanFileError(
            f"{path}: tensors {sorted(header)} differ from the manifest's {sorted(expected)}"
        )
    for name, (dtype, shape) in sorted(header.items()):
        spec = expected[name]
        if dtype != spec.get("dtype") or shape != spec.get("shape"):
            raise PlanFileError(
                f"{path}: tensor {name} is {dtype} {shape}, manifest says "
                f"{spec.get('dtype')} {spec.get('shape')}"
            )
    _check_widths(directory / MANIFEST, manifest, header)
    return blob


def _header(path: Path, blob: bytes) -> dict[str, tuple[str, list[int]]]:
    """name -> (dtype name, shape) from the safetensors header (no tensor is read)."""
    (n,) = struct.unpack_from("<Q", blob)
    try:
        head = json.loads(blob[8 : 8 + n])
        return {
            name: (_DTYPES.get(t["dtype"], t["dtype"]), list(t["shape"]))
            for name, t in head.items()
            if name != "__metadata__"
        }
    except (ValueError, TypeError, KeyError) as exc:
        raise PlanFileError(f"{path}: unreadable safetensors header ({exc})") from None


def _check_widths(path: Path, manifest: dict[str, Any], header: dict) -> None:
    """in/out_features and the architecture against the tensors' shapes."""
    try:
        if manifest["kind"] == "mlp":
            layers = manifest["architecture"]["layers"]
            shapes = [header[f"layer{i}.weight"][1] for i in range(len(layers))]  # [N, K] each
            if any(len(shape) != 2 for shape in shapes):
                raise PlanFileError(f"{path}: layer weights must be 2-D, got shapes {shapes}")
            for i, (spec, (n, k)) in enumerate(zip(layers, shapes, strict=True)):
                if (spec["in"], spec["out"]) != (k, n):
                    raise PlanFileError(
                        f"{path}: layer {i} is {spec['in']}->{spec['out']} in the architecture, "
                        f"{k}->{n} in the weights"
                    )
            widths = (shapes[0][1], shapes[-1][0])
        else:  # gru: weight_ih [3H, K], weight_hh [3H, H]
            widths = (header["weight_ih"][1][1], header["weight_hh"][1][1])
    except (KeyError, TypeError, IndexError) as exc:
        raise PlanFileError(f"{path}: inconsistent architecture ({exc!r})") from None
    stated = (manifest["in_features"], manifest["out_features"])
    if stated != widths:
        raise PlanFileError(
            f"{path}: in/out_features {stated[0]}->{stated[1]} disagree with the weights, "
            f"{widths[0]}->{widths[1]}"
        )


def _input_names(path: Path, manifest: dict[str, Any]) -> list[str] | None:
    names = manifest.get("input_features")
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise PlanFileError(f"{path}: 'input_features' must be a list of names")
    if len(names) != manifest["in_features"]:
        raise PlanFileError(
            f"{path}: 'input_features' names {len(names)} inputs, in_features is "
            f"{manifest['in_features']}"
        )
    return names
