"""Compiled or interpreted: where this process's Triton kernels can run.

Triton decides when a kernel is decorated (at import) whether it is
interpreted (TRITON_INTERPRET=1: numpy on the CPU, for tests) or compiled
(CUDA), so this is read once, at import, not per call.
"""

from __future__ import annotations

import os

import torch

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"


def check_device(**tensors: torch.Tensor) -> None:
    """Raise ValueError naming the first tensor a launch here could not read."""
    devices = {t.device for t in tensors.values()}
    if len(devices) > 1:
        where = ", ".join(f"{name} on {t.device}" for name, t in tensors.items())
        raise ValueError(f"kernel inputs must share one device: {where}")
    for name, t in tensors.items():
        if not INTERPRETED and t.device.type != "cuda":
            raise ValueError(
                f"{name} is on {t.device}: compiled Triton kernels take CUDA tensors "
                "(set TRITON_INTERPRET=1 to interpret them on the CPU)"
            )
