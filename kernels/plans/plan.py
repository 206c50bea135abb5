"""Kernel plans: a compiled model ready to run on the fused Triton path or the CPU path.

A plan is what `redline.kernels.compile(module)` returns and what
`redline.kernels.load(DIR)` rebuilds. It holds the weights in their stored
precision and one executor, picked when the plan is built:

- backend "triton": the fused kernels on a CUDA device (or on the CPU under
  TRITON_INTERPRET=1, for tests; force it with `backend="triton"`).
- backend "cpu": fp32 on the CPU, numpy up to 64 rows and `torch.addmm` above
  (see `cpu_mlp.py` for the measurements); selected automatically when there is no CUDA.

Hot path: `plan.run_into(x, out)` writes into a preallocated `out` and
allocates no buffers (up to `max_batch` rows on the CPU path; device tensors on
the Triton path).
Plans are not thread-safe: one plan per worker thread.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from redline.kernels import triton_mode
from redline.kernels.cpu_mlp import CpuMLP
from redline.kernels.fused_mlp import MLPLayer, check_layers, fused_mlp
from redline.kernels.gru_step import gru_step

BACKENDS: tuple[str, ...] = ("auto", "triton", "cpu")


def resolve_backend(backend: str, device: str | torch.device | None) -> tuple[str, torch.device]:
    """("auto" | "triton" | "cpu", device or None) -> (backend, device), checked."""
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r} is not one of {BACKENDS}")
    if device is None:  # the CPU backend on a GPU host means the CPU, not an error
        cuda = backend != "cpu" and torch.cuda.is_available()
        dev = torch.device("cuda" if cuda else "cpu")
    else:
        dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        # "cuda" != "cuda:0" for torch.device equality; run_into compares devices.
        dev = torch.device("cuda", torch.cuda.current_device())
    if backend == "auto":
        backend = "triton" if dev.type == "cuda" else "cpu"
    if backend == "triton" and dev.type != "cuda" and not triton_mode.INTERPRETED:
        raise ValueError(
            f"backend 'triton' needs a CUDA device (got {dev}); set TRITON_INTERPRET=1 to "
            "interpret the kernels on the CPU, or use backend='cpu'"
        )
    if backend == "cpu" and dev.type != "cpu":
        raise ValueError(f"backend 'cpu' runs on the CPU, not on {dev}")
    return backend, dev


def _as_rows_np(a: Any, width: int, what: str) -> np.ndarray:
    """A float32 C-contiguous [K] or [B, K] array/tensor as a [B, K] numpy view (no copy)."""
    hot = type(a) is np.ndarray and a.ndim == 2 and a.shape[1] == width
    if hot and a.dtype == np.float32 and a.flags.c_contiguous:  # the hot path's own buffers
        return a
    if isinstance(a, torch.Tensor):
        if a.device.type != "cpu":
            raise ValueError(f"{what} is on {a.device}; the CPU path takes host memory")
        a = a.detach().numpy()
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{what} must be a numpy array or torch tensor, got {type(a).__name__}")
    if a.dtype != np.float32 or not a.flags.c_contiguous or a.shape[-1:] != (width,) or a.ndim > 2:
        raise ValueError(
            f"{what} must be C-contiguous float32 [{width}] or [B, {width}], "
            f"got {a.dtype} {a.shape}"
        )
    return a.reshape(-1, width)


class Plan:
    """What every plan has: identity, widths, precision, checksum and save()."""

    kind: str = ""
    input_features: tuple[str, ...] | None = None  # names of the inputs, saved in the manifest

    def __init__(
        self,
        tensors: dict[str, torch.Tensor],
        precision: str,
        backend: str,
        device: torch.device,
        version: str | None,
    ) -> None:
        self.precision = precision
        self.backend = backend
        self.device = device
        self._tensors = {k: v.detach().cpu().contiguous() for k, v in sorted(tensors.items())}
        self._blob = safetensors.torch.save(self._tensors)
        self.checksum = hashlib.sha256(self._blob).hexdigest()
        self.gate_report = None  # set by compile(calibration=...)
        self.version = version if version is not None else f"{self.kind}-{self.checksum[:12]}"
        if not self.version or len(self.version) > 128:
            raise ValueError(f"version must be 1..128 characters, got {self.version!r}")

    @property
    def version_id(self) -> int:
        """A u32 for DECISION records' `model_version`: crc32 of `version`."""
        return zlib.crc32(self.version.encode())

    in_features: int
    out_features: int

    def architecture(self) -> dict[str, Any]:
        raise NotImplementedError

    def tensors(self) -> dict[str, torch.Tensor]:
        """Stored tensors by name (CPU), as saved."""
        return dict(self._tensors)

    def weights_blob(self) -> bytes:
        """The safetensors bytes whose sha256 is `checksum`."""
        return self._blob

    def save(self, directory: str | Path) -> Path:
        """Write `weights.safetensors` and `manifest.json` into `directory`."""
        from redline.kernels.plans.storage import save_plan

        return save_plan(self, directory)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.in_features}->{self.out_features}, "
            f"{self.precision}, backend={self.backend}, device={self.device}, "
            f"version={self.version!r})"
        )


class MLPPlan(Plan):
    """A Sequential of Linear layers with optional ReLU/GELU/SiLU after each."""

    kind = "mlp"

    def __init__(
        self,
        layers: list[MLPLayer],
        precision: str,
        backend: str = "auto",
        device: str | torch.device | None = None,
        version: str | None = None,
    ) -> None:
        check_layers(layers, precision)
        backend, dev = resolve_backend(backend, device)
        tensors: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(layers):
            tensors[f"layer{i}.weight"] = layer.weight
            tensors[f"layer{i}.bias"] = layer.bias
            if layer.scale is not None:
                tensors[f"layer{i}.scale"] = layer.scale
        super().__init__(tensors, precision, backend, dev, version)
        self.layers = tuple(layers)
        self.in_features = layers[0].in_features
        self.out_features = layers[-1].out_features
        if backend == "triton":
            self._dev_layers = tuple(
                MLPLayer(
                    layer.weight.to(dev),
                    layer.bias.to(dev),
                    layer.activation,
                    None if layer.scale is None else layer.scale.to(dev),
                )
                for layer in layers
            )
            # Staging buffers for host tensors given to run_into at batch 1.
            self._stage_in = torch.empty((1, self.in_features), device=dev)
            self._stage_out = torch.empty((1, self.out_features), device=dev)
        else:
            self._cpu = CpuMLP(layers)
            self.max_batch = self._cpu.max_batch  # rows per run_into on numpy (CpuEngine reads it)

    def architecture(self) -> dict[str, Any]:
        return {
            "layers": [
                {"in": ly.in_features, "out": ly.out_features, "activation": ly.activation}
                for ly in self.layers
            ]
        }

    def _check_x(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"plan input must be a torch tensor, got {type(x).__name__}")
        if x.ndim != 2 or x.shape[1] != self.in_features or not x.is_floating_point():
            raise ValueError(
                f"plan input must be a float [B, {self.in_features}] tensor, "
                f"got {x.dtype} {tuple(x.shape)}"
            )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, K] float (CPU or CUDA) -> fp32 [B, N] on x's device."""
        self._check_x(x)
        if self.backend == "triton":
            y = fused_mlp(x.to(self.device), self._dev_layers, self.precision)
            return y.to(x.device)
        if 0 < x.shape[0] <= self._cpu.max_batch and x.device.type == "cpu":
            # numpy at small batches (cpu_mlp.py); np.empty + from_numpy beats torch.empty.
            xn = (x if x.dtype == torch.float32 else x.float()).detach().numpy()
            if not xn.flags.c_contiguous:
                xn = np.ascontiguousarray(xn)
            out = np.empty((x.shape[0], self.out_features), np.float32)
            return torch.from_numpy(self._cpu.forward_numpy_into(xn, out))
        return self._cpu.forward_torch(x.detach().to("cpu")).to(x.device)

    def run_into(self, x: np.ndarray | torch.Tensor, out: np.ndarray | torch.Tensor) -> None:
        """Hot-path entry: write the output for `x` into `out`.

        CPU backend: `x` is float32 C-contiguous [K] or [B, K] (numpy or CPU
        tensor), `out` float32 [N] or [B, N]; up to `max_batch` rows nothing is
        allocated (more rows go through torch.addmm, which allocates). Triton
        backend: torch tensors [B, K] / [B, N] fp32; on the plan's device they
        are used in place (one launch, no allocation), host tensors of batch 1
        go through staging buffers allocated when the plan was built.
        """
        if self.backend == "cpu":
            xr = _as_rows_np(x, self.in_features, "x")
            outr = _as_rows_np(out, self.out_features, "out")
            if len(xr) != len(outr):
                raise ValueError(f"x has {len(xr)} rows, out {len(outr)}")
            self._cpu.run_into(xr, outr)
            return
        if not (isinstance(x, torch.Tensor) and isinstance(out, torch.Tensor)):
            raise TypeError("a Triton plan's run_into takes torch tensors (pinned host or device)")
        if x.device == self.device and out.device == self.device:
            fused_mlp(x, self._dev_layers, self.precision, out=out)
            return
        if x.shape != (1, self.in_features) or out.shape != (1, self.out_features):
            raise ValueError("host tensors given to a Triton plan's run_into must be batch 1")
        self._stage_in.copy_(x, non_blocking=True)
        fused_mlp(self._stage_in, self._dev_layers, self.precision, out=self._stage_out)
        out.copy_(self._stage_out)


class GRUPlan(Plan):
    """One GRU layer stepped one input at a time: (x_t, h_{t-1}) -> h_t."""

    kind = "gru"
    _NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

    def __init__(
        self,
        tensors: dict[str, torch.Tensor],
        precision: str,
        backend: str = "auto",
        device: str | torch.device | None = None,
        version: str | None = None,
    ) -> None:
        if precision not in ("fp32", "fp16", "bf16"):
            raise ValueError(f"GRU plans take fp32, fp16 or bf16, not {precision!r}")
        backend, dev = resolve_backend(backend, device)
        super().__init__(tensors, precision, backend, dev, version)
        self.in_features = tensors["weight_ih"].shape[1]
        self.out_features = tensors["weight_hh"].shape[1]  # hidden size
        self.hidden_size = self.out_features
        if backend == "triton":
            self._w = tuple(tensors[n].to(dev) for n in self._NAMES)
        else:
            # fp32, weights pre-transposed for addmm.
            w_ih, w_hh, b_ih, b_hh = (tensors[n].float() for n in self._NAMES)
            self._w = (w_ih.T.contiguous(), w_hh.T.contiguous(), b_ih, b_hh)
        self._zeros1 = torch.zeros((1, self.hidden_size), device=dev)

    def architecture(self) -> dict[str, Any]:
        return {"input_size": self.in_features, "hidden_size": self.hidden_size}

    def _step_cpu(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        w_ih_t, w_hh_t, b_ih, b_hh = self._w
        with torch.inference_mode():
            gi = torch.addmm(b_ih, x.float(), w_ih_t)
            gh = torch.addmm(b_hh, h.float(), w_hh_t)
            ri, zi, ni = gi.chunk(3, dim=1)
            rh, zh, nh = gh.chunk(3, dim=1)
            r = torch.sigmoid(ri + rh)
            z = torch.sigmoid(zi + zh)
            n = torch.tanh(ni + r * nh)
            return torch.lerp(n, h.float(), z)  # (1 - z) n + z h

    def __call__(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, K], h [B, H] (zeros when None) -> next hidden state fp32 [B, H]."""
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"GRU plan input must be a [B, {self.in_features}] tensor")
        if h is None:
            h = torch.zeros((x.shape[0], self.hidden_size), device=x.device)
        if self.backend == "triton":
            y = gru_step(x.to(self.device), h.to(self.device), *self._w)
            return y.to(x.device)
        return self._step_cpu(x.detach().cpu(), h.detach().cpu()).to(x.device)

    def run_into(self, x: torch.Tensor, out: torch.Tensor, h: torch.Tensor | None = None) -> None:
        """Write the next hidden state into `out` [B, H] (which may be `h`)."""
        if h is None:
            h = self._zeros1 if x.shape[0] == 1 else torch.zeros_like(out)
        if self.backend == "triton":
            if not x.device == h.device == out.device == self.device:
                raise ValueError(f"a Triton GRU plan's run_into takes tensors on {self.device}")
            gru_step(x, h, *self._w, out=out)
        else:
            out.copy_(self._step_cpu(x, h))
