"""The demo model's two bundled versions, for the hot swap (issue 19): demo@1 and demo@2.

    reg = demo_registry()          # publishes demo@1 and demo@2 once, then reuses them
    reg.versions("demo")           # ["1", "2"]
    reg.resolve("demo@2", features="auto")

demo@1 is the bundled trained plan (`demo_model.bundled_model_dir()`, or the `base` given) as it is. demo@2 is
derived from it, deterministically: every floating-point tensor multiplied elementwise by
(1 + PERTURBATION * z), z ~ N(0, 1) from numpy's PCG64 seeded SEED. Same architecture, input
features and precision; other weights, so another version string (`<kind>-<sha256[:12]>` of its
weights, as `redline plan` names them) and another `model_version` on its decisions. It is
derived rather than stored so that it follows whatever demo@1 is (a retrained bundled model gives
a new demo@2 of it), and the perturbation is small enough that demo@2 passes the swap's canary
against demo@1 on real inputs (tests/kernels/plans/test_demo_versions.py) while still changing
scores: a real second version, not a copy.

The registry lives in a folder named after demo@1's weights (a new demo@1 never meets an old
registry, whose versions could not change); the default is under the system's temp folder.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
import safetensors.numpy

from redline.kernels.plans.demo_model import bundled_model_dir
from redline.kernels.plans.plan_file import MANIFEST, WEIGHTS, read_plan
from redline.kernels.plans.registry import Registry, RegistryError

NAME = "demo"
SEED = 2
PERTURBATION = 0.005  # relative, per weight: scores move by ~0.04 (max ~0.15) on recorded features


def derive_version(src: str | Path, dest: str | Path, seed: int = SEED,
                   scale: float = PERTURBATION) -> Path:  # fmt: skip
    """Write the plan at `src`, its float tensors perturbed as above, into `dest` (a new plan
    directory: weights, manifest with the new sha256 and version); returns `dest`."""
    checked = read_plan(src)
    tensors = safetensors.numpy.load(checked.blob)
    rng = np.random.Generator(np.random.PCG64(seed))
    out = {}
    for name in sorted(tensors):  # sorted: the same draws whatever order the file keeps
        t = tensors[name]
        if np.issubdtype(t.dtype, np.floating):
            z = rng.standard_normal(t.shape)
            t = (t.astype(np.float64) * (1.0 + scale * z)).astype(t.dtype)
        out[name] = np.ascontiguousarray(t)
    blob = safetensors.numpy.save(out)
    digest = hashlib.sha256(blob).hexdigest()
    manifest = dict(checked.manifest)
    manifest["sha256"] = digest
    manifest["version"] = f"{manifest['kind']}-{digest[:12]}"
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / WEIGHTS).write_bytes(blob)
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return dest


def demo_registry(root: str | Path | None = None, base: str | Path | None = None) -> Registry:
    """The registry holding demo@1 and demo@2 (published on first use, reused after); `base`:
    the plan demo@1 is (default: the bundled trained model)."""
    v1 = Path(base) if base is not None else bundled_model_dir()
    sha = read_plan(v1).manifest["sha256"]
    base = Path(root) if root is not None else Path(tempfile.gettempdir())
    reg = Registry(base / f"redline-models-{sha[:12]}")
    have = reg.versions(NAME)
    if "1" not in have:
        _publish(reg, v1, "1")
    if "2" not in have:
        with tempfile.TemporaryDirectory() as tmp:
            _publish(reg, derive_version(v1, Path(tmp) / "v2"), "2")
    return reg


def _publish(reg: Registry, plan_dir: Path, version: str) -> None:
    try:
        reg.publish(plan_dir, NAME, version)
    except RegistryError:
        if version not in reg.versions(NAME):  # not another process publishing it first
            raise
