"""The driving graph's learned planner term: a small MLP from a fused frame to an acceleration.

The model replaces the planner's IDM term (strategies/acc_aeb.py, `reference_accel`): it is
fitted to that term's outputs over the state space of the rear-end grid and the bundled drive
(`STATE_BOX`) and checked against it (tests/strategies/test_acc_aeb.py). Fitting takes minutes
on a loaded 2-core host, so the fitted weights ship here (`FIXED`, base64 float32) and the
graph's plan is written from them in milliseconds (`save_fixed`). They were made by

    states = sample_states(4096, seed=0)
    fit(states, reference_accel(PlannerSettings().vector(), *states.T), seed=0, steps=6000)

with one BLAS thread (OPENBLAS_NUM_THREADS=1; the fit is then the same every run), and
`encode()` of the result.

`forward` is the same network compiled for one frame, for the closed loop's model path
(venue/driving_loop.py, `run_grid(model=...)`).

Inputs are the first four values of a fused frame record (what a worker's event window of one
event reads, `window_feature_names(4)`): the gap as 10 / (gap + 10) (the IDM term changes
fastest at short gaps), closing speed / 10, ego speed / 20, gap / 50. Output: m/s^2.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numba as nb
import numpy as np

import redline.feeds  # noqa: F401  (its import runs the numba cache guard, feeds/jit_cache.py)
from redline.kernels.feature_names import window_feature_names

HIDDEN = 32
OUT_SCALE = 3.5  # targets are fitted in units of the ACC brake limit: O(1)
# The state space fitted on: the grid's 0-80 km/h and the drive's ~27 m/s with margin; gaps
# from contact to beyond where the IDM's interaction term matters; opening to fast closing.
STATE_BOX = {"gap": (0.5, 150.0), "closing": (-10.0, 25.0), "speed": (0.0, 35.0)}
SHAPES = ((4, HIDDEN), (HIDDEN,), (HIDDEN, HIDDEN), (HIDDEN,), (HIDDEN, 1), (1,))
VERSION = "driving-idm-mlp-1"


@nb.njit(cache=True)
def features(gap, closing, speed):  # pragma: no cover - compiled
    """The four inputs of a frame (scalars, or arrays alike): module docstring."""
    return 10.0 / (np.maximum(gap, 0.0) + 10.0), closing / 10.0, speed / 20.0, gap / 50.0


def inputs(gap, closing, speed) -> np.ndarray:
    """Frames -> the model's inputs, float32 [n, 4] (module docstring)."""
    cols = [np.ravel(np.asarray(v, np.float64)) for v in (gap, closing, speed)]
    return np.stack(features(*cols), axis=1).astype(np.float32)


@nb.njit(cache=True)
def forward(w1, b1, w2, b2, w3, b3, gap, closing, speed):  # pragma: no cover - compiled
    """The MLP on one frame, compiled, for a closed loop's own model path: `predict` of one
    row, m/s^2 (NaN in, NaN out)."""
    x = features(gap, closing, speed)
    h1 = np.maximum(b1 + x[0] * w1[0] + x[1] * w1[1] + x[2] * w1[2] + x[3] * w1[3], 0.0)
    out = b3[0]
    for j in range(w2.shape[1]):
        out += max(b2[j] + np.sum(h1 * w2[:, j]), 0.0) * w3[j, 0]
    return out


def sample_states(n: int, seed: int) -> np.ndarray:
    """n states [n, 3] (gap, closing, speed) uniform in STATE_BOX, the gap log-uniform."""
    rng = np.random.default_rng(seed)
    lo, hi = STATE_BOX["gap"]
    gap = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    closing = rng.uniform(*STATE_BOX["closing"], n)
    speed = rng.uniform(*STATE_BOX["speed"], n)
    return np.stack([gap, closing, speed], axis=1)


def predict(weights: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """The MLP on inputs x [n, 4] -> m/s^2 [n] (the plan computes the same)."""
    w1, b1, w2, b2, w3, b3 = weights
    h = np.maximum(x @ w1 + b1, 0.0)
    h = np.maximum(h @ w2 + b2, 0.0)
    return (h @ w3 + b3)[:, 0]


def fit(states: np.ndarray, targets: np.ndarray, seed: int = 0, steps: int = 6000,
        lr: float = 0.01) -> list[np.ndarray]:  # fmt: skip
    """4 -> 32 -> 32 -> 1 ReLU MLP weights fitted to targets [n] (m/s^2) at states [n, 3] by
    full-batch Adam with a cosine learning rate; the same inputs give the same weights."""
    x = inputs(*states.T)
    y = (np.asarray(targets, np.float32) / OUT_SCALE)[:, None]
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in ((4, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, 1)):
        bound = np.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform
        params += [rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32),
                   np.zeros(fan_out, np.float32)]  # fmt: skip
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    beta1, beta2, n = 0.9, 0.999, len(x)
    for t in range(1, steps + 1):
        w1, b1, w2, b2, w3, b3 = params
        z1 = x @ w1 + b1
        h1 = np.maximum(z1, 0.0)
        z2 = h1 @ w2 + b2
        h2 = np.maximum(z2, 0.0)
        d = 2.0 * (h2 @ w3 + b3 - y) / n  # d(mse)/d(out)
        d2 = (d @ w3.T) * (z2 > 0)
        d1 = (d2 @ w2.T) * (z1 > 0)
        grads = (x.T @ d1, d1.sum(0), h1.T @ d2, d2.sum(0), h2.T @ d, d.sum(0))
        rate = lr * 0.5 * (1.0 + np.cos(np.pi * t / steps))
        for i, g in enumerate(grads):
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            step = rate * (m[i] / (1 - beta1**t)) / (np.sqrt(v[i] / (1 - beta2**t)) + 1e-8)
            params[i] = (params[i] - step).astype(np.float32)
    params[4] = params[4] * OUT_SCALE  # back to m/s^2
    params[5] = params[5] * OUT_SCALE
    return params


def encode(weights: list[np.ndarray]) -> str:
    """Weights as the base64 text of `FIXED`."""
    return base64.b64encode(np.concatenate([w.ravel() for w in weights]).tobytes()).decode()


def decode(text: str) -> list[np.ndarray]:
    flat = np.frombuffer(base64.b64decode(text), np.float32)
    sizes = [int(np.prod(s)) for s in SHAPES]
    if flat.size != sum(sizes):
        raise ValueError(f"driving model weights: {flat.size} floats, expected {sum(sizes)}")
    parts = np.split(flat, np.cumsum(sizes)[:-1])
    return [p.reshape(s).copy() for p, s in zip(parts, SHAPES, strict=True)]


def fixed() -> list[np.ndarray]:
    """The shipped weights (module docstring)."""
    return decode(FIXED)


def bundled_dir() -> Path:
    """The shipped weights as a plan (replay_data/driving_model, written by `save(fixed(), ...)`):
    what a frame arbiter loads when its `model` is empty."""
    from redline.replay_data import DIR

    return DIR / "driving_model"


def save(weights: list[np.ndarray], directory: str | Path, version: str = VERSION) -> Path:
    """The weights as an fp32 plan in `directory` (safetensors, what the workers load), its
    inputs named as the one-event window the workers feed it."""
    import torch
    from torch import nn

    from redline.kernels.plans.from_torch import compile

    model = nn.Sequential(
        nn.Linear(4, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 1)
    )  # fmt: skip
    with torch.no_grad():
        for layer, (w, b) in zip(model[::2], zip(weights[::2], weights[1::2], strict=True),
                                 strict=True):  # fmt: skip
            layer.weight.copy_(torch.from_numpy(w.T.copy()))
            layer.bias.copy_(torch.from_numpy(b))
    plan = compile(model.eval(), precision="fp32", device="cpu", backend="cpu", version=version,
                   input_features=window_feature_names(4))  # fmt: skip
    return plan.save(directory)


FIXED = (
    "iXYGvdz8p75I5Iu+H3jovlfX/T79WHE+nA/1PZM0aj7gkMw9olauPmHyzD5BOFS/piqNPpJ1Ab9iPpU9h1amvigFizwybY"
    "Q+I4OSvMi00r6IHMM8r/8Ev6H7/r7bxhc+U/IbPqzkoj7VhlY8eTmuPr7Mdr4J7IU8tNyvvem5+z0bcBa+WgEdPsYSKb0R"
    "8ay+ARqlvdo5DD69xys/igwRvYZBiz3Ccau9papVvK5u2L5jo4G/d4FZPjabeb2bACY9q3JLvndMjz5HCOc+yfaEvdYdFj"
    "9KA96/XSkvv0qIKT282QS/ouvuPYrrj768jAa+GVAEvZH9aL+iiVO/C/SrPQv/l74fgxQ+HtS3v4IPMz6ZF5I85MtFv4aV"
    "rbvliMU+oMaCvNEJ2j4mMiW9B+ITvxICwLpwVKs+EmrIPrLMvb3CKMM+yBm3PmfuzLyNPWI+HS68O6ZMF70XBGe+uVTxPn"
    "qaaL48UNY+2D26PpiIwz4/N7O9sQmhvBcMFj0BJfQ+Tx7Qvrh0yT73/BA/H7S3PtGHGsCUS9y+0hTDPX4dpD5RiQG9ibVg"
    "PYAKh7/mPc4+og3jv30wsb2wiik+BunjvkJkxb2QSsS+PHJMPQTLyL2ubtU9UyGGPhOa6j4ZgP6+S0FTvzJWQL643P8+m2"
    "WIPsYn473XIey9DE/QPkJXr77UVRu+ZCgcPtFAkD43mw0+RzXfvmiWUL5MzBM+h1OTO9rWsj3ocZo8rwmPvgDHNj990Qy/"
    "dGgsvq+mzD2u+nW9VzICPoV1U74neyc+PBzovdPTyT2Qfmu9yBypPg9l/L0PaCq+Dv2MvmKEkz27t8G82gUNP23qnb6jUF"
    "2+ZnsDvjd4br4o4kS+odb1u2q+LLwOIWA+mco5PbGsBL4ILws8g7dTPuTR7z2qsG0+9cijvdr2Az2NXqQ9asMsPgO1jr7D"
    "Kty9u+dFPotzsr6D3Qw+D/xEvFvPTj5dU4O+FMsFvjYdhL5dZr89l3w+vmAn/j1flUw+oUmLvpinwD091qC+XUCQvS0Nw7"
    "01UY6+05SaPs8vsT6b0iO+feFNvt65DT5YOO092h+CvJnccr2lHHM+YLRNviCtJ7/o6nY+MCTePVmNgj5FE10+0vpHPhWq"
    "uz1V5mQ+l1B4vh/hgb5d1qm9wVEzPRORgr5kdvK71Gk4Ptm+SL3HTI49ik88vgeJsb4VqzA9GuuHwOXYyzyMGUU9OMITv8"
    "otXz7x85U+NJjTvc7RG74XWsC+e62VvsY6fL6iZoI8P8vzu/Vg0z2Wp6O+OlW5vlvKEj62A5++FxaLvqEr2D3VyDM+kDZy"
    "vYLrrMArwzI+AWaLvS9r0LzvMAk+n6dFPm7KxL5lFTO/paclwEOMiD75+mA+ewNyPk7Hi71FgLA9/2aCvn48BD7bCie+ku"
    "GGPVBtYj6T5cW+AbcSvP/Ogb7xrWE+HgDXu3XzdD6okHm++QtxPuwh6j0RcZO9uPOSPicl5z1xy7I9BXfkPazMrL5Iqh0+"
    "p+qVvm30KL5O4YY+5pU2PgAhlr1xxSo+uKeMPsq0174aWyK+4mwfP6JNPz9dTw/AUqT4PfPlQr3C19bAPmyZvd6Rjj6IjZ"
    "u+TKUPvmwuPcBTm5Q+FlYEPmOCRzxIuIY9XV+aPgqlcD5By4I+/4sDvnB2JT4Tl8++riurvbbtHj4XzKg+/qyevZXvCz6n"
    "P1E+CUefPhVHub63IEG9cZ5zv5vDJ0C6xiO+zQM8PTv9tzy77Nq9i1PrPe8vWUBuDyo+UHU1PoT0BT5AQRs+M96fPu6NgL"
    "5yECU9J9zKPc7h5T2leYw9MO4GPpxyQD4RFzO+v/uEvmbaJz+XVYA9Q24Yvb2DBD4J+pm+tH9LPauEo738DgG+Fe4WPvBx"
    "87uXZlM+LTUbPvZWqr5qs609Fl+4vjyThL6NcHo9CdrevRdUM76Vs5M+cIWAvlFQqr0enRnAd752vgq1Fj6py0E+1JvHOr"
    "KtWr76RMq8a43uvuEXNz3YwQU+/R6BPqKKtLxzEZ++wFKPvSsO5bx0Ix6+dTShPrb7TT7XYcq9hrvKPHeuDT0+JPK+IrDU"
    "vRAdGD5X8S4+jMcgvtnJe76qWO09Ez2Fuu4wHr0j1lq+ybqyvrw0h74fshA921+LvtQkmj4tJ0y+vgG5vZE1/70p5E++qn"
    "FrPXZzpT2XvLw91Duvvt3AEL7mQ4G78OrzveMuvr6x5Cq+LvN/PqF3k74LBfA99bWwPlr/5DyTUru9XtxCPF/Umr6EmRU+"
    "22oEPijNlbxec/88vTDAPbMBib74PUc9hhpvvmY4NL6rmCm+oWSXvrOy4j5UvoS+5AK6vksH1L6Q/lQ+LZQZvXqvgz5nW5"
    "m+MKlYPVshVz7bvj89RxJGPknkKDz3fh8+VbCmPm38vj0N3TY+5ij+vlcWer2l3J88h/uJvhzX4D2UXVu+CkQKvggkqL1V"
    "PcE9SmbAPT/1p74P1RQ+90F9vdp2i7xYYtE9ZLa1PdMqzz1J0kO93o2XvZPSYL6xaDO+s83OPRI2AT3QNHO+iXSGPgkP4T"
    "zbGpG9VH92Pt7sNrusJDG9trpsvqumU76mRMS/QlvMPlTTlz4igga/bEFivD4CBT6cuzzAzTlnvnvTd73UbSg+HmEePlb1"
    "579gNU29/kHsur9Upj7W+ae8CdbuvVShlr7G6UG+10jjPRdTmL4bLk6+RL5nvYVAQb5T9lG+c8HBPTra4j09XKg9s2ImPe"
    "Pvhz3jmQ++kpiWv4uBAb/7uyQ+JxRIvhY3Ez8GLhI9eDdivrGy5T7GppE++ZUpvzDQ9r3IS566Isa+vfQf9rxR9ga+Dr/X"
    "veyZsD4Jpxi+oeJgPk6lz76zHYk+8NDRPlOCnb9d7bW+wD58vfgIEL8264Q+n1tHPu3KPj6aiJe9VuYAvwnINj5qELw/H2"
    "yavqH12D7Zs4M/FP2JPh1DdL1ffYy9zuHBPSMe/j2e8sg+0tS4vqaq8b1POxW9hGw9Ppg9QL55dxw/auT9vSnoiz70MN89"
    "dcu/PvyBar6XFJW+r92QP6Ak+r1zyfM7P5MIPht70j2ytxE+ANZHu5qcSD8QunY/lwLLPROsab5Txg89tv5KPnIdPD3rBQ"
    "w+dXK8vXYc3r1tW9e9Bl+NviudyT0sMVa+Qi4LPsbiRj5azLU9TAEYvbDezz2BEoI+2lN7vtqKjL7Ar4i+1Aqqvkj4rDwo"
    "+Xy5InvSPZytlb75g5+9ZtC3vVpagb7jjeq9+eQyvjoshb6oYVo+8MEDvghw4b5j2LY9CikXPtA3Sz2I5qC+V7w0vG7FBD"
    "1mivE9Du3LPPuYkr5c86y+QK+QvffFfD6ohsS9XSCDPlkXzjxA28s9fMGNvQW14j3mGVu+owVzPpcOPb4nMsW+7aisPV2s"
    "rT3mW5A89h7aPFMUlj3l9Xa+cydlPdZjub4o4Ua+fHVGvauKmL2gdDG+P3LVveLLgDxev3W8X74CPgO7KL4l4CG+Rai9PW"
    "hJMT1sKDG9Lmkmvo+gJD2gM1o+8RqIviBp7T0WDbW9cieCPpu7HT5GXUu+IVaJPuiYs74go0W+Cr7IvcwyqD1gPDS9dbay"
    "vEMJ4b12Bl4+T/yFviDRGb4aAVC+ra1HvO6Hmz4TII89iJA1PhM/bL5RJIy9im+FvS4aLDzlHoq8WUUGPmccyb3jVW0+xM"
    "8jPr5lm74+FZq+hDBFvoeP9711/qg+lPiyvgodFD60Jsy9aV+avodhCL6JkhC+o1pgvhf4V76stli88WeTPhMAvbzM3m8+"
    "kYkAvuyjEb9EVs2+ZTyWvdfeGb/GMlu81IU5PmlqR785lBC/yKzUPIm+qL0FI56+HWOKv04HmbuP7AQ+G5huPRwSAr1Ne0"
    "6+64ZpvtRPV7/ZvgQ+GHo5PmYjNj0ck4I9GO8hvXTWfD4L5Pe98FrsPadPuL5oXqU9ADU0PvY9Lr1I51i9TQiOPltRUb6P"
    "pSa9pqiiPXQsIz46a7q9EXbFPPR33jye6IQ+tYOGPdZWJT6NlBxA5LMqPrkfo76Z9Hm+IJc1vGN4Tb58gwW+X1WCvnk+lT"
    "2740c+Qdqpvo6Ro73uIue9pSpvPjyAv73QOVQ9Rw9xPSIPKz7kNl++sWJYPkTNJT0ip46+j9OBPo1CzjyccQ2+iB+3PSPt"
    "gb4J6Aw/7gB+PkkURT6B9mu+xugbPisT9L5KdgC+q+naPaWKJD4wPZ09q1CVvnGEuz0/Qqe9yl3avVDKrj0wSIg+FIQ0vt"
    "ZIhr7mUYk+ae1IPgxSSr6k3ng++BVgvorcUj6hITI+KnbOvRWR9b1UmLC9ObxAvlaH7z1iBWq7O2KRvnoN870dhoC+kEqI"
    "voqijL6QZDm+BVGOP/BkOT6yMHy+QeocvvTgzb1BjEs+t2kavnxq070S2Vq+6CiqPsKv3r1w97C+q3k7PTx7MD4u9Re+hu"
    "KHvmJvhb0Er1K+OJUnPu3EUz6bA6C/rhgWvmNHPD+0tYu/a7WEvgAkl70qKNm9X5iLPUZnkj7u9S6/gjSYvMxPmj6etom9"
    "rg+OvFPsKb0cUVK/FqlCvupsEr4hrTE+ZMKmPmoUPb3guAq+y11jv/PYtD1IdDS+4bzYv2vhar7hC+U9nM++PGYIUb+Gun"
    "W/LjAmvr4em79dLL68WSC1Pu6pB79Ndii9kO98vrIAAj08xIc+RCQ+PZuZxL4FabG9si6xvv023zyLo08+3cu0PfNbV74A"
    "lZo+EXy9vjN1KT3wcCI+lERDvnR+lT4hTT6/MKEQPBEpMb6Akqq+QvNYvn4Dg76V4OE8Hk6SvhGmV78AoWM+xksHPoRTRs"
    "AuLCe9GZ7Tvd+rA77dWVE+NXHNPc1Tlr/jK5K+pq0YvCCXXr1lCCw+yVCIPniP0b1Iixq+76w/vVj1zD7c1xw9dToZPuOS"
    "ZTxM9yA8Dj7qPUzSyz2zrSO+rGdWPgU6CL1Ra6a+LyDmvdRGOr6Brjq9gy7NPR7bKj94iHY/tbOdv5F9Pz/Da6E/Oo8EP2"
    "ZwPj6Sltu9jdB8O3NW7j6qSJk/ECqRvieyMb66Htc+Nj1mPqzSHL2Dk2E/xSJNv+o3Nj395Zm8GAFUPub6CL5Q5uQ+vNrF"
    "Po2mUr6lspy+BpRXv6Ryhz2wur6+Hh1mvvNrlT9n3xw/hcDGvTnpJj4iXJ+/ShaBverforwXV2K+fhUSPRY+nL6RfNS+Y+"
    "KAviO/tj1R7nU9jvW0PLHznbyLVKS+fIamvpiaDD7dauC9Qh4qPdoxbb0TVS29MiWuvkx2Qz68XU++G1y8PGx0db2NAtC7"
    "GGr7PDNpJ77cGZi+AA2LPjb/nzyIO+89RrH3PTopCD8nMu49odFCvo/ntz2oWoW+YHoZPtlBTT7UdmM+nDKSPbAra75aei"
    "29EPgbPr1zID65oS++Gg/3PT17hT6R0Vw9McYQvsh9Tj4KbfA9YlY1Pj9Bqb1iu1S+j4ABPrIqKb63ZKm+sprsPJgUYj4S"
    "K9Q9zd1Zu2ouAb1UdLi+Z/emPgNwgz7YyoC+X6OyvVknUr66YgS9s1+5vnzm0D1UTFi9HTXLvYRzcrw6Yok+lpgcvjpZZb"
    "4Zh5++hS8PvbGxpL4+gK6+XQvAvJLAkr68OoC+gkGAPk/Yl774N5m+TL9uPjwo7jxD5U89PVBdPWOikb6UBAM+gWr2vGVO"
    "4D6ax549DDwJv5FNEj7GY58/T/l6vYVx7D2GchE/3RpvPqT47j73S2a+NOxvvoCd1r18Pr8+ChInvnKVKrz4cGS7lUkbvn"
    "RMJ75kHps+Gn9mvRw8hD2UqDg++ea3vveF/73rNSy+Hk3LvSArj75ZBAA/mpDIvQwf0j4vDGC+TESAP3kb0L4hypY+PNU1"
    "P1RiCT/VXGg+25DmvQXgDT9T3oc++ssPP1ZMgr3Uyh4+TTOnvjjZCr7iiRk+UzvsPgiKCb5NtB0+E39GvYNfRD7lQEO+6K"
    "Z/vqAaiT/eCfK7wulcvqZkuT1O4SA++w+7vdCESzzkjsU+E2r5PmxsPr34Rx++yU5cvp61fz6fXpu+IyDNvfE/l77zcbS+"
    "LXYQvs00gj6XsFq+QUolvG91nL6kGkg+S8NuvmfOkb6+FbU9jj9wvs3jqr6JsBA7UXFdvmzHX7533Tg+08zcvl9UHT6UMs"
    "k96i6gvsviob4cvY2+7MytPC/zb75yqKG8hqopvYvGjTy//wvAnSq2PKh0FD6Qcac9lo7ZPebTtr2aVqO+o9TPPTb5l71Z"
    "UVM9iTNVPjHYsz4JfV0+xkHEvp4C1DqCL5K+ZJNSPrQcYz72Xl2+ltegvg1lWz4ZlyM+5h5TPlzZID5pKZ89pqlfvfm1xr"
    "4pMzo+WbwwvQEeLb799Pu9haa2PVdwpz4w3eE8pbkqPaDYeb1kjna9WQ0TOr2mzD3sccs77oxhPS8tiL0IEra9/HrePW1u"
    "fz3ZP7K9cNmhPfkyxLswbSO9khl2vQoPFD1ug6698MybveSrMz1T/be95b5Rvd3rIj2lcZW9jAu3vTcU5D1i7S49Fs8lPc"
    "qPKz40qhrARrPnQAHPBMBmxQPA4vdjv+Na8T3fGIO/bpMnQOVFiD9gPo6/ZzklvkEPbD9kktZAMMwmv+cojj9530G/WXMy"
    "P5Qwnz1Imyc/5tjhP5iDbD/mw2w/iYQnwM1sbj/PMV+/f/mRv3zwSj5/vek+LKW0vxFLkb9jcwXAnxWnvg=="
)
