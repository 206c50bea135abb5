"""demo@1 and demo@2: two real versions of the demo model in one registry, derived reproducibly."""

import numpy as np

from redline.kernels.plans.calibration import recorded_features
from redline.kernels.plans.demo_model import bundled_model_dir
from redline.kernels.plans.demo_versions import demo_registry, derive_version
from redline.kernels.plans.gate_core import measure_arrays
from redline.kernels.plans.numpy_loader import load_numpy_plan
from redline.kernels.plans.plan_file import read_plan
from redline.pipeline.arbiter.swap import CANARY_BOUND


def _scores(plan, x):
    y = np.zeros((len(x), 1), np.float32)
    for i in range(0, len(x), plan.max_batch):
        plan.run_into(x[i : i + plan.max_batch], y[i : i + plan.max_batch])
    return y


def test_the_registry_lists_both_versions_and_reuses_them(tmp_path):
    reg = demo_registry(tmp_path)
    assert reg.versions("demo") == ["1", "2"]
    v1, v2 = (read_plan(reg.resolve(f"demo@{v}", features="auto")) for v in (1, 2))
    assert v1.manifest["sha256"] == read_plan(bundled_model_dir()).manifest["sha256"]
    # Same architecture and inputs, other weights: another version on the decisions.
    for key in ("kind", "architecture", "input_features", "tensors", "precision"):
        assert v1.manifest[key] == v2.manifest[key]
    assert v1.manifest["sha256"] != v2.manifest["sha256"]
    assert v2.manifest["version"] == f"mlp-{v2.manifest['sha256'][:12]}"
    again = demo_registry(tmp_path)  # a second call publishes nothing new
    assert again.resolve("demo@2") == reg.resolve("demo@2")


def test_v2_is_reproducible_and_passes_the_canary_but_answers_differently(tmp_path):
    a = derive_version(bundled_model_dir(), tmp_path / "a")
    b = derive_version(bundled_model_dir(), tmp_path / "b")
    assert (a / "weights.safetensors").read_bytes() == (b / "weights.safetensors").read_bytes()
    x = recorded_features(2048, seed=3)
    old = _scores(load_numpy_plan(bundled_model_dir()), x)
    new = _scores(load_numpy_plan(a), x)
    report = measure_arrays(new, old, "canary", CANARY_BOUND)
    assert report.passed, report
    assert report.mean_abs_error > 1e-3  # a real second version, not a copy


def test_the_swap_path_never_imports_torch():
    # The swap resolves the bundled registry on the arbiter's event loop: importing torch there
    # (through demo_model) stalled every decision 1.3 s and turned 500 of them into defaults.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from redline.pipeline.graph.nodes import arbiter\n"
        "from redline.pipeline.arbiter.swap import SwapCoordinator\n"
        "from redline.kernels.plans.demo_versions import demo_registry\n"
        "demo_registry().resolve('demo@2', features='auto')\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
