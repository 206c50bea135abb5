"""model_signal: predictions -> hysteresis thresholds -> target -> orders, predictions aligned
with the replay, and a trained model that makes money on held-out data where a random one
does not."""

import json

import numpy as np
import pytest

from redline.feeds import events as ev
from redline.strategies import model_signal as ms
from redline.venue.backtest import Backtest
from redline.venue.latency import Latency


def _bound(preds):
    return ms.SimpleNamespace(
        Params=ms.Params, step=ms.step, new_state=lambda p, n: ms.state_from(preds)
    )


def test_thresholds_with_hysteresis_give_the_target_and_past_the_data_it_holds():
    state = ms.state_from([np.array([0.2, 1.6, 0.7, 0.4, -1.5, -2.0, 0.0]), np.zeros(0)])
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
    with pytest.raises(ValueError, match="bind"):
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
