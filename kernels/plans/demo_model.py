"""The graph's models: the bundled trained demo model, and a seeded untrained one.

`bundled_model()` is "the demo model" the README and the demo graph run: the trained
FEATURE_NAMES -> 32 -> 32 -> 1 ReLU MLP of `replay_data/model` (written by
strategies/train_demo_model.py), rebuilt as an nn.Sequential so that `redline plan` can
compile and gate it at another precision.

`demo_model(seed)` is a small seeded MLP, N_FEATURES -> 64 -> 64 -> 1 with GELU/ReLU, the
shape FLOORS.md measures. Its weights are not trained: it exists so the precision gate's
tests and the benchmarks have a deterministic model with a GELU to run. The output layer is
rescaled so that on features of the bundled recordings (`calibration.recorded_features`) the
score has median 0 and standard deviation 1: both signs (buy / sell) occur about equally.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from redline.kernels.features import N_FEATURES
from redline.kernels.plans.calibration import recorded_features

if TYPE_CHECKING:
    from torch import nn

# torch is imported where a model is built, never for bundled_model_dir: the hot swap resolves
# the bundled registry on the arbiter's loop, and importing torch there stalled it 1.3 s.
HIDDEN = 64


def bundled_model_dir() -> Path:
    """replay_data/model: the bundled trained plan over the kernels' features (fp32)."""
    from redline.replay_data import DIR

    return DIR / "model"


def book_model_dir() -> Path:
    """replay_data/model_book: the kernels' features plus the book features of each
    instrument's resident L2 book, trained on the bundled recording's quotes, trades and book
    deltas (fp32); what `redline demo --book` runs."""
    from redline.replay_data import DIR

    return DIR / "model_book"


def bundled_model() -> nn.Sequential:
    """The bundled trained demo model as an fp32 nn.Sequential in eval mode."""
    import torch
    from torch import nn

    from redline.kernels.plans.storage import load_plan

    activations = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
    plan = load_plan(bundled_model_dir(), device="cpu", backend="cpu")
    if plan.kind != "mlp" or plan.precision != "fp32":
        raise ValueError(f"{bundled_model_dir()}: expected an fp32 MLP plan, got {plan!r}")
    modules: list[nn.Module] = []
    for layer in plan.layers:
        linear = nn.Linear(layer.in_features, layer.out_features)
        with torch.no_grad():
            linear.weight.copy_(layer.weight)
            linear.bias.copy_(layer.bias)
        modules.append(linear)
        if layer.activation != "none":
            modules.append(activations[layer.activation]())
    return nn.Sequential(*modules).eval()


def demo_model(seed: int = 0) -> nn.Sequential:
    """The seeded untrained MLP in eval mode; the same seed gives the same weights."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(N_FEATURES, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
        nn.Linear(HIDDEN, 1),
    )  # fmt: skip
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):
                # Features are O(1)-O(50): keep pre-activations O(1).
                bound = 0.5 / layer.in_features**0.5
                layer.weight.uniform_(-bound, bound, generator=g)
                layer.bias.uniform_(-0.1, 0.1, generator=g)
        y = model(torch.from_numpy(recorded_features(4096, seed=seed)))[:, 0]
        last = model[-1]
        last.bias.sub_(y.median()).div_(y.std())
        last.weight.div_(y.std())
    return model.eval()
