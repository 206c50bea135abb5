import numpy as np
import torch

from redline import kernels
from redline.feeds.events import QUOTE_DTYPE
from redline.kernels.features import N_FEATURES
from redline.replay_data import DIR
from redline.strategies import train_demo_model as tdm


def test_targets_are_the_mid_move_one_horizon_ahead_in_spreads():
    q = np.zeros(6, QUOTE_DTYPE)
    q["instrument_id"] = [1, 2, 1, 1, 2, 1]
    s = tdm.HORIZON_NS
    q["ts_event"] = [0, 0, s // 2, s, s, 3 * s]
    q["bid_px"] = [100, 50, 101, 101, 40, 90]
    q["ask_px"] = [102, 51, 103, 103, 41, 92]
    y = tdm.targets(q)
    # inst 1 at t=0: mid 101 -> 102 at t=s (first quote at/after t+s), spread 2 -> 0.5
    assert y[0] == 0.5
    assert y[1] == -1.0  # inst 2: 50.5 -> 40.5 over a 1-tick spread, clipped
    assert y[2] == -1.0  # 102 -> 91 at t=3s
    assert y[3] == -1.0
    assert np.isnan(y[4]) and np.isnan(y[5])  # nothing a horizon later


def test_training_is_deterministic_and_takes_raw_features(monkeypatch):
    monkeypatch.setattr(tdm, "EPOCHS", 5)
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(200, N_FEATURES)) * 50 + 10).astype(np.float32)
    y = np.tanh(x[:, 0] / 50).astype(np.float32)
    a, b = tdm.train(x, y), tdm.train(x, y)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    plan = kernels.compile(a, precision="fp32", device="cpu")
    out = np.zeros((1, 1), np.float32)
    plan.run_into(x[:1], out)
    with torch.no_grad():
        want = a(torch.from_numpy(x[:1])).numpy()
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


def test_bundled_model_runs_on_the_workers_engine():
    from redline.pipeline.workers.engines import CpuEngine

    plan = kernels.load(DIR / "model", backend="cpu")
    assert (plan.in_features, plan.out_features) == (N_FEATURES, 1)
    engine = CpuEngine(plan)  # raises when the engine cannot feed this model
    q = np.zeros(1, QUOTE_DTYPE)
    q["instrument_id"], q["bid_px"], q["ask_px"], q["bid_sz"], q["ask_sz"] = 1, 2000, 2001, 5, 7
    engine.apply(1, 1, q[0])
    out = np.zeros(1, np.float32)
    engine.answer_into(1, out)
    assert np.isfinite(out).all()


def _tiny_recording(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from redline.feeds import event_schema as es
    from redline.feeds import events as ev

    q = ev.empty(ev.RecordType.QUOTE, 3)
    q["ts_recv"] = q["ts_event"] = [10, 20, 40]
    q["seq"] = [0, 1, 3]
    q["instrument_id"] = [1, 2, 1]
    q["bid_px"], q["ask_px"], q["bid_sz"], q["ask_sz"] = [100, 50, 101], [102, 51, 103], 1, 2
    t = ev.empty(ev.RecordType.TRADE, 1)
    t["ts_recv"] = t["ts_event"] = 30
    t["seq"] = 2
    t["instrument_id"], t["px"], t["sz"], t["aggressor"] = 1, 102, 3, 1
    pq.write_table(pa.Table.from_batches([es.to_arrow(q)]), tmp_path / "market_quotes.parquet")
    pq.write_table(pa.Table.from_batches([es.to_arrow(t)]), tmp_path / "market_trades.parquet")
    return q, t


def test_engine_rows_are_the_engine_window_of_each_quote(tmp_path):
    _tiny_recording(tmp_path)
    rows, quotes = tdm.engine_rows(tmp_path, k=4 * tdm.WINDOW)
    assert list(quotes["seq"]) == [0, 1, 3]
    np.testing.assert_array_equal(rows[0][:4], [100, 102, 1, 2])
    np.testing.assert_array_equal(rows[0][4:], 0)
    np.testing.assert_array_equal(rows[1][:4], [50, 51, 1, 2])
    # instrument 1's window, newest first: quote 3, trade 2, quote 0
    np.testing.assert_array_equal(rows[2][:12], [101, 103, 1, 2, 102, 3, 1, 0, 100, 102, 1, 2])


def test_engine_rows_are_the_kernels_features_of_each_quote(tmp_path):
    from redline.kernels.features import FeatureState

    q, t = _tiny_recording(tmp_path)
    rows, _ = tdm.engine_rows(tmp_path)
    assert rows.shape == (3, N_FEATURES)
    want_q, _ = FeatureState([1.0, 1.0]).scan(q, q["instrument_id"] - 1, t, t["instrument_id"] - 1)
    np.testing.assert_allclose(rows, want_q, rtol=1e-6)


def test_bundled_model_names_its_inputs_and_says_how_it_was_trained():
    import hashlib
    import json

    from redline.kernels.feature_names import FEATURE_NAMES

    manifest = json.loads((DIR / "model" / "manifest.json").read_text())
    assert manifest["input_features"] == list(FEATURE_NAMES)
    blob = (DIR / "model" / "weights.safetensors").read_bytes()
    assert hashlib.sha256(blob).hexdigest() == manifest["sha256"]
    assert manifest["version"] == f"mlp-{manifest['sha256'][:12]}"
    # written by `redline train replay_data --out replay_data/model` (kernels/training.py;
    # tests/pipeline/cli/test_train.py checks it is that training's output)
    training = manifest["training"]
    assert training["horizon_ns"] == 5_000_000_000 and training["seed"] == 7
    assert training["model"]["corr"] > training["baseline_last_move"]["corr"]
