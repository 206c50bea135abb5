"""model_signal: predictions -> hysteresis thresholds -> target -> orders, predictions aligned
with the replay, and a trained model that makes money on held-out data where a random one
does not."""

import hashlib
import json
from itertools import pairwise
from types import SimpleNamespace

import numpy as np
import pytest

from redline.feeds import events as ev
from redline.strategies import model_signal as ms
from redline.venue.backtest import Backtest
from redline.venue.latency import Latency


def state_from(preds):
    """model_signal's state rows holding these per-instrument predictions (its docstring)."""
    width = ms.HEAD + max((len(p) for p in preds), default=0)
    state = np.zeros((len(preds), width), np.float64)
    for j, p in enumerate(preds):
        state[j, ms.COUNT] = len(p)
        state[j, ms.HEAD : ms.HEAD + len(p)] = p
    return state


def _bound(preds):
    return SimpleNamespace(Params=ms.Params, step=ms.step, new_state=lambda p, n: state_from(preds))


def test_thresholds_with_hysteresis_give_the_target_and_past_the_data_it_holds():
    state = state_from([np.array([0.2, 1.6, 0.7, 0.4, -1.5, -2.0, 0.0]), np.zeros(0)])
    p = ms.Params(enter=1.5, exit=0.5, qty=2).vector()
    targets = [ms.step(state[0], p, 100, 101, 0) for _ in range(7)]
    # flat; >= enter: long; between exit and enter: keep; < exit: flat; <= -enter: short
    assert targets == [0, 2, 2, 0, -2, -2, 0]
    assert ms.step(state[0], p, 100, 101, 5) == 5  # no prediction left: keep what it has
    assert ms.step(state[1], p, 100, 101, -3) == -3  # an instrument with none at all


def test_orders_reach_the_target_at_the_touch():
    q = ev.empty(ev.RecordType.QUOTE, 5)
    q["ts_recv"] = q["ts_event"] = [10, 20, 30, 40, 50]
    q["instrument_id"], q["seq"] = 7, [1, 2, 3, 4, 5]
    q["bid_px"], q["ask_px"] = [100, 100, 102, 102, 104], [101, 101, 103, 103, 105]
    q["bid_sz"] = q["ask_sz"] = 10
    bt = Backtest(_bound([np.array([0.2, 2.0, 0.7, -2.0, 0.3])]),
                  ms.Params(enter=1.5, exit=0.5, qty=1), Latency(), [7])  # fmt: skip
    bt.feed(q)
    r = bt.finish()
    ex = r.executions
    # +1 at quote 1 (buy at its ask 101), -1 at quote 3 (sell 2 at its bid 102), flat at
    # quote 4: that buy is still on its way when the data ends
    assert ex["ts_decision"].tolist() == [20, 40, 50]
    assert ex["qty_ordered"].tolist() == [1, -2, 1]
    assert ex["qty"].tolist() == [1, -2, 0] and ex["px"][:2].tolist() == [101.0, 102.0]
    assert r.figures["position"] == {7: -1}
    assert r.figures["pnl"] == -101 + 2 * 102 - 104.5  # cash, short 1 at the last mid


def test_params_are_checked():
    with pytest.raises(ValueError, match=r"exit 1\.0 is above enter 0\.5"):
        ms.Params(enter=0.5, exit=1.0)
    with pytest.raises(ValueError, match=r"model_signal\.stream"):
        ms.new_state(ms.Params(), 1)


def test_predictions_are_the_model_on_the_kernel_features_of_each_quote(monkeypatch):
    from redline.kernels import training
    from redline.replay_data import DIR

    monkeypatch.setattr(ms, "CHUNK_ROWS", 5000)  # many chunks: the state carries across them
    quotes, trades = training.read_recording([str(DIR)])
    ids = np.unique(quotes["instrument_id"])
    got = ms.predictions(ms.Params(), [str(DIR)], ids)
    x = training.quote_features(quotes, trades)
    plan = ms.load_model(ms.Params())  # the workers' small-batch path, 64 rows a call
    want = np.zeros((len(x), 1), np.float32)
    for s in range(0, len(x), plan.max_batch):
        plan.run_into(x[s : s + plan.max_batch], want[s : s + plan.max_batch])
    for j, i in enumerate(ids):
        np.testing.assert_allclose(got[j], want[quotes["instrument_id"] == i, 0], atol=2e-5)


def test_decisions_on_the_bundled_recording_are_unchanged(monkeypatch):
    # Pinned from the code before issue 17 (BLAS forward, argsort merge): the targets the step
    # takes on every quote. The faster kernels change predictions in the last float32 bits
    # only; no decision may move. An odd chunk size: the state and the forwards carry over.
    from redline.replay_data import DIR

    monkeypatch.setattr(ms, "CHUNK_ROWS", 7919)
    preds = ms.predictions(ms.Params(), [str(DIR)], [1, 2, 3, 4])
    state, p = state_from(preds), ms.Params().vector()
    digest, changes = hashlib.sha256(), []
    for j, pred in enumerate(preds):
        targets = np.array([ms.step(state[j], p, 0, 0, 0) for _ in pred], np.int8)
        digest.update(targets.tobytes())
        changes.append(int((np.diff(targets) != 0).sum()))
    assert [len(x) for x in preds] == [56846, 31243, 17404, 4642]
    assert changes == [38, 73, 69, 151]
    assert digest.hexdigest() == "21b48b62af9397470253dc169eac9db59ff442c80a2266d5ae6e84fab5a8364e"


def test_the_streamed_backtest_steps_like_one_on_all_predictions_at_once(monkeypatch):
    # Chunks of 3,001 quotes: each chunk's predictions replace the last's in the state rows;
    # the orders must be those of a run given every prediction up front.
    from redline.feeds.replay.reader import replay
    from redline.replay_data import DIR

    monkeypatch.setattr(ms, "CHUNK_ROWS", 3001)
    ids, p = [1, 2, 3, 4], ms.Params()
    whole = Backtest(_bound(ms.predictions(p, [str(DIR)], ids)), p, Latency(decision_us=20), ids)
    for _, q in replay([str(DIR / "market_quotes.parquet")], batch_rows=4096):
        whole.feed(q)
    stream = ms.stream(p, [str(DIR)], ids)
    streamed = Backtest(stream, p, Latency(decision_us=20), ids)
    chunks = []
    stream.run(lambda q, rows: (chunks.append(len(q)), streamed.feed(q, rows)))
    want, got = whole.finish(), streamed.finish()
    assert len(chunks) > 30 and max(chunks) == 3001 and sum(chunks) == want.events
    assert got.figures["orders"] == want.figures["orders"] > 100
    assert got.figures["journal_sha256"] == want.figures["journal_sha256"]


@pytest.mark.parametrize("acts", [["relu", "none", "relu"], ["relu", "silu", "none"]])
def test_the_forward_lays_each_quotes_output_into_its_instruments_row(acts):
    # Odd layer widths, 3 outputs (the prediction is the first), a last block of 37 rows, an
    # instrument with no rows: against the plan's own path.
    from redline.kernels.numpy_mlp import NumpyMLP

    rng = np.random.default_rng(11)
    dims = [14, 7, 5, 3]
    plan = NumpyMLP([rng.normal(size=(a, b)) for a, b in pairwise(dims)],
                    [rng.normal(size=b) for b in dims[1:]], acts)  # fmt: skip
    x = rng.normal(size=(2 * 1024 + 37, 14)).astype(np.float32)
    rows = np.where(np.arange(len(x)) % 5 == 0, 2, 0)  # instrument 1 has none
    want = np.zeros((len(x), 3), np.float32)
    for s in range(0, len(x), plan.max_batch):
        plan.run_into(x[s : s + plan.max_batch], want[s : s + plan.max_batch])
    # each instrument's outputs land from its own cursor on, in order, over two calls
    y = np.full(3 * len(x), np.nan)
    cursor = np.arange(3) * len(x)
    model = ms._Model(plan)
    model.predict_into(x[:1000], rows[:1000], y, cursor)
    model.predict_into(x[1000:], rows[1000:], y, cursor)
    counts = [int((rows == j).sum()) for j in range(3)]
    assert (cursor - np.arange(3) * len(x)).tolist() == counts
    for j in (0, 2):
        got = y[j * len(x) : (j + 1) * len(x)]
        np.testing.assert_allclose(got[: counts[j]], want[rows == j, 0], rtol=1e-5, atol=1e-5)
        assert np.isnan(got[counts[j] :]).all()  # nothing written past its own


def _held_out(tmp_path, seed=5, minutes=6.0):
    """An ESZ6-only recording from a seed the bundled model never saw."""
    from redline.feeds.synthetic import generator as syn
    from redline.feeds.synthetic.network import write_records

    table, recs = syn.generate_market(seed, minutes, syn.SPECS[:1])
    table.write(tmp_path / "market_instruments.parquet")
    for key in ("quotes", "trades"):
        write_records(tmp_path / f"market_{key}.parquet", recs[key], "held-out")
    return tmp_path


@pytest.mark.slow
def test_the_trained_model_makes_money_out_of_sample_and_a_random_one_does_not(tmp_path):
    from redline.kernels import compile, demo_model
    from redline.kernels.feature_names import FEATURE_NAMES
    from redline.pipeline.cli.main import main

    (tmp_path / "data").mkdir()
    data = _held_out(tmp_path / "data")
    random_dir = tmp_path / "random"
    compile(demo_model(3), precision="fp32", device="cpu", input_features=FEATURE_NAMES).save(
        random_dir
    )
    pnl = {}
    for name, model in (("trained", ""), ("random", str(random_dir))):
        out = tmp_path / f"{name}.json"
        args = ["backtest", str(data), "--venue", "l1", "--strategy", "model_signal",
                "--param", f"model={model}", "--no-progress", "--json", str(out)]  # fmt: skip
        assert main(args) == 0
        figures = json.loads(out.read_text())
        assert figures["orders"] >= 10, name  # both trade: the difference is the signal
        pnl[name] = figures["pnl"]
    assert pnl["trained"] > 0 > pnl["random"], pnl


# The compiled MLP forward (`_mlp_into`): any shape, float32-close to a float64 reference, and
# each row's output a fixed function of the row, whatever batch it comes in.


def _model(dims, relu, seed):
    rng = np.random.default_rng(seed)
    ws = tuple((rng.normal(size=(k, n)) / np.sqrt(k)).astype(np.float32) for k, n in pairwise(dims))
    bs = tuple(rng.normal(size=n).astype(np.float32) for n in dims[1:])
    return ws, bs, np.array(relu, bool)


def _forward(x, ws, bs, relu):
    """The first output of each row, in row order (one instrument)."""
    y = np.full(len(x), np.nan)
    ms._mlp_into(x, np.zeros(len(x), np.int64), ws, bs, relu, y, np.zeros(1, np.int64))
    return y


def _reference(x, ws, bs, relu):
    h = x.astype(np.float64)
    for w, b, r in zip(ws, bs, relu, strict=True):
        h = h @ w.astype(np.float64) + b
        h = np.maximum(h, 0.0) if r else h
    return h[:, 0]


@pytest.mark.parametrize(
    ("dims", "relu"),
    [
        ([14, 32, 32, 1], [True, True, False]),  # the bundled model's shape
        ([5, 9, 6, 3], [False, True, True]),  # widths off the 4-output tile, 3 outputs
        ([33, 1], [False]),
        ([3, 17, 2, 7, 5], [True, False, True, False]),
    ],
)
def test_the_forward_is_the_model_on_each_row_whatever_the_batch(dims, relu):
    ws, bs, relu = _model(dims, relu, seed=len(dims) + dims[0])
    x = np.random.default_rng(3).normal(size=(3 * 64 + 37, dims[0])).astype(np.float32)
    whole = _forward(x, ws, bs, relu)
    want = _reference(x, ws, bs, relu)
    np.testing.assert_allclose(whole, want, rtol=0, atol=1e-5 * max(1.0, np.abs(want).max()))
    # the same rows cut in odd pieces (partial tiles and blocks, rows at other offsets): the
    # same bits, and again the same bits
    cuts = np.cumsum([1, 2, 13, 37, 64, 5, 70])
    pieces = np.concatenate([_forward(p, ws, bs, relu) for p in np.split(x, cuts)])
    assert whole.tobytes() == pieces.tobytes()
    assert whole.tobytes() == _forward(x, ws, bs, relu).tobytes()
