"""`redline train`: the bundled model is its output on the bundled data, it beats the naive
baselines out of sample, the same seed gives the same weights, bad input is one line."""

import json

import numpy as np
import pytest

from redline.kernels import training
from redline.pipeline.cli.main import main
from redline.replay_data import DIR


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    assert main(["train", str(DIR), "--out", str(out / "plan"), "--json", str(out / "r.json")]) == 0
    return out / "plan", json.loads((out / "r.json").read_text())


def test_the_model_beats_the_naive_baselines_out_of_sample(trained):
    _, report = trained
    model, last = report["model"], report["baseline_last_move"]
    assert report["horizon_ns"] == 5_000_000_000 and report["test_rows"] > 10_000
    assert model["corr"] > 0.25 and model["corr"] > last["corr"] + 0.05
    assert model["hit_rate"] > 0.58 and model["hit_rate"] > last["hit_rate"]
    assert report["baseline_zero"] == {"corr": 0.0, "hit_rate": 0.5, "signals": 0}
    # no leakage: every test row starts a horizon after the cut, after every training label
    assert report["cut_ns"] + report["horizon_ns"] <= report["data_span_ns"][1]


def test_the_bundled_model_is_this_training_of_the_bundled_data(trained):
    from redline.kernels.plans.calibration import recorded_features
    from redline.kernels.plans.numpy_loader import load_numpy_plan

    plan_dir, report = trained
    bundled = json.loads((DIR / "model" / "manifest.json").read_text())
    assert bundled["training"]["model"] == report["model"]
    # the same weights, up to the last bits a BLAS on another CPU may round differently
    x = recorded_features(2048)
    outs = []
    for d in (plan_dir, DIR / "model"):
        plan = load_numpy_plan(d, features="kernels")
        y = np.zeros((len(x), 1), np.float32)
        for s in range(0, len(x), plan.max_batch):
            plan.run_into(x[s : s + plan.max_batch], y[s : s + plan.max_batch])
        outs.append(y[:, 0])
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-3)
    assert training.edge(str(DIR / "model"))["model_oos_corr"] == report["model"]["corr"]


def test_the_same_seed_gives_the_same_weights_and_another_seed_others(tmp_path):
    blobs = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        args = ["train", str(DIR), "--out", str(tmp_path / name), "--epochs", "10"]
        assert main([*args, "--seed", str(seed)]) == 0
        blobs.append((tmp_path / name / "weights.safetensors").read_bytes())
    assert blobs[0] == blobs[1] and blobs[0] != blobs[2]


def _tiny(tmp_path, seconds):
    """One instrument quoting every 10 ms for `seconds`, no trades."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from redline.feeds import event_schema as es
    from redline.feeds import events as ev

    n = int(seconds * 100)
    q = ev.empty(ev.RecordType.QUOTE, n)
    q["ts_recv"] = q["ts_event"] = np.arange(n) * 10_000_000
    q["seq"] = np.arange(1, n + 1)
    q["instrument_id"], q["bid_px"], q["ask_px"], q["bid_sz"], q["ask_sz"] = 1, 100, 101, 1, 2
    pq.write_table(pa.Table.from_batches([es.to_arrow(q)]), tmp_path / "market_quotes.parquet")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["missing"], "missing: no such file or directory"),
        (["empty"], "no QUOTE records to train on"),
        (["short"], "no quote has a label"),
        (["short", "--horizon", "0.5"], "give a longer recording or a shorter --horizon"),
        (["short", "--horizon", "0"], "--horizon 0.0: give seconds > 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, says):
    (tmp_path / "empty").mkdir()
    (tmp_path / "short").mkdir()
    _tiny(tmp_path / "short", 3)
    data, *rest = args
    code = main(["train", str(tmp_path / data), "--out", str(tmp_path / "out"), *rest])
    err = capsys.readouterr().err
    assert code == 2 and says in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()  # nothing half-written
