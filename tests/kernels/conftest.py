import dataclasses

import pytest
import torch

from redline.kernels.fused_mlp import MLPLayer
from redline.kernels.triton_mode import INTERPRETED

# Interpreted kernels run on CPU tensors; compiled ones (a GPU host running
# `TRITON_INTERPRET=0 pytest`) need CUDA tensors. Tests call kernels through
# `dev_call`, which moves the inputs there and the outputs back.
DEVICE = torch.device("cpu" if INTERPRETED or not torch.cuda.is_available() else "cuda")


def _to(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, MLPLayer):
        fields = {f.name: _to(getattr(obj, f.name), device) for f in dataclasses.fields(obj)}
        return MLPLayer(**fields)
    if isinstance(obj, list | tuple):
        return type(obj)(_to(o, device) for o in obj)
    return obj


@pytest.fixture
def dev_call():
    def call(fn, *args, **kwargs):
        out = fn(*_to(args, DEVICE), **{k: _to(v, DEVICE) for k, v in kwargs.items()})
        return _to(out, torch.device("cpu"))

    return call
