import numpy as np

from redline.strategies import ema_cross


def reference_targets(bid, ask, alpha, every, qty):
    """The anchors' rule (../shared/anchors/backtest_engines_bench.py), in plain Python."""
    ema, side, out = None, 0, []
    for count, (b, a) in enumerate(zip(bid, ask, strict=True), 1):
        mid = (b + a) * 0.5
        ema = mid if ema is None else alpha * mid + (1.0 - alpha) * ema
        if count % every == 0:
            side = 1 if mid > ema else -1
        out.append(side * qty)
    return out


def test_the_compiled_step_decides_exactly_as_the_cross_engine_rule():
    rng = np.random.default_rng(3)
    bid = 110_000 + np.cumsum(rng.integers(-1, 2, 5000))
    ask = bid + 2
    p = ema_cross.Params(alpha=0.02, every=7, qty=3)
    state = ema_cross.new_state(p, 1)
    got = [
        ema_cross.step(state[0], p.vector(), int(b), int(a), 0)
        for b, a in zip(bid, ask, strict=True)
    ]
    assert got == reference_targets(bid.tolist(), ask.tolist(), 0.02, 7, 3)
    assert {-3, 3} <= set(got)  # it flipped both ways: the comparison means something
