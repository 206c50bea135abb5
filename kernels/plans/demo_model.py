"""The graph's demo model: features (FEATURE_NAMES) -> one trading score.

A small seeded MLP, N_FEATURES -> 64 -> 64 -> 1 with GELU/ReLU, the shape
FLOORS.md measures. Its weights are not trained: it exists so the graph,
the workers and the benchmarks have the same deterministic model to run.
The output layer is rescaled so that on features of the bundled recordings
(`calibration.recorded_features`) the score has median 0 and standard
deviation 1: on the demo data both signs (buy / sell) occur about equally.
"""

from __future__ import annotations

import torch
from torch import nn

from redline.kernels.features import N_FEATURES
from redline.kernels.plans.calibration import recorded_features

HIDDEN = 64


def demo_model(seed: int = 0) -> nn.Sequential:
    """The demo MLP in eval mode; the same seed gives the same weights."""
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
