"""`redline train --features book`: the book inputs reach the plan's manifest, and data without
book deltas is refused with the fix."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from redline.feeds import event_schema as es
from redline.feeds.events import RecordType
from redline.kernels import training
from redline.kernels.feature_names import BOOK_INPUT_NAMES
from redline.replay_data import DIR

FILES = {
    "market_quotes.parquet": RecordType.QUOTE,
    "market_trades.parquet": RecordType.TRADE,
    "market_book.parquet": RecordType.BOOK_DELTA,
}


def head(out, seconds: float, names=tuple(FILES)):
    """The first `seconds` of the bundled market recording's `names` files, into `out`."""
    t0 = None
    for name in names:
        recs = es.from_arrow(pq.read_table(DIR / name), FILES[name])
        t0 = int(recs["ts_recv"][0]) if t0 is None else t0
        recs = recs[recs["ts_recv"] < t0 + int(seconds * 1e9)]
        pq.write_table(pa.Table.from_batches([es.to_arrow(recs)]), out / name)
    return out


def test_a_book_model_names_its_inputs_and_loads_as_one(tmp_path):
    from redline.kernels.plans.plan_file import read_plan

    data = tmp_path / "data"
    data.mkdir()
    head(data, 10.0)
    model, report = training.train([str(data)], 200_000_000, epochs=5, features="book")
    assert report["input_features"] == list(BOOK_INPUT_NAMES)
    assert report["test_rows"] >= training.MIN_ROWS
    training.save(model, report, tmp_path / "plan")
    manifest = json.loads((tmp_path / "plan" / "manifest.json").read_text())
    assert manifest["input_features"] == list(BOOK_INPUT_NAMES) and manifest["in_features"] == 18
    assert read_plan(tmp_path / "plan", features="auto").features == "book"


def test_book_features_need_book_deltas(tmp_path):
    head(tmp_path, 2.0, ("market_quotes.parquet", "market_trades.parquet"))
    with pytest.raises(training.TrainingError, match=r"no BOOK_DELTA records.*--features kernels"):
        training.train([str(tmp_path)], features="book")


def test_the_book_rows_hold_the_kernel_features_of_the_same_replay(tmp_path):
    """The kernel part of a book row is the kernel model's input for that quote (the replay
    orders differ only for a quote and a trade on one ts_recv, which this stretch lacks)."""
    head(tmp_path, 3.0)
    quotes, x = training.book_quote_features([str(tmp_path)])
    q, t = training.read_recording([str(tmp_path)])
    np.testing.assert_array_equal(quotes, q)
    kernel = training.quote_features(q, t)
    np.testing.assert_array_equal(x[:, : kernel.shape[1]], kernel)
    assert x[:, kernel.shape[1] :].any(1).mean() > 0.9  # and the books said something
