"""`redline backtest --mode faithful`: the same recording through the live graph (two worker
processes, arbiter, strategy node, journal) decides, orders and fills exactly as fast mode."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from redline.pipeline.cli.main import main
from redline.pipeline.observe.journal import read_journal
from redline.replay_data import DIR

SECONDS = 5  # of the bundled recording: ~1,700 quotes of two instruments, ~370 trades
INSTRUMENTS = (1, 2)
LATENCY = "decision=50,entry=200,ack=100"
SAME = ("journal_sha256", "events", "decisions", "orders", "fills", "rejections", "pnl", "fees",
        "cancels", "position")  # fmt: skip


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """The first SECONDS of the bundled quotes and trades of INSTRUMENTS, with the table."""
    out = tmp_path_factory.mktemp("slice")
    ids = pa.array(INSTRUMENTS, pa.uint32())
    for name in ("market_quotes.parquet", "market_trades.parquet"):
        t = pq.read_table(DIR / name)
        end = pc.min(t["ts_recv"]).as_py() + SECONDS * 1_000_000_000
        keep = pc.and_(pc.less(t["ts_recv"], end), pc.is_in(t["instrument_id"], ids))
        pq.write_table(t.filter(keep), out / name)
    pq.write_table(pq.read_table(DIR / "market_instruments.parquet"),
                   out / "market_instruments.parquet")  # fmt: skip
    return out


def backtest(recording, tmp_path, mode, strategy, *extra):
    out = tmp_path / f"{strategy}-{mode}.json"
    argv = ["backtest", str(recording), "--strategy", strategy, "--venue", "l1", "--mode", mode,
            "--latency", LATENCY, "--json", str(out), "--no-progress", *extra]  # fmt: skip
    assert main(argv) == 0
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("strategy", "extra"),
    [
        ("ema_cross", ("--param", "every=20", "--orders", "kind=limit")),
        ("market_maker", ("--param", "half_spread=0", "--maker-bps", "-0.5")),
    ],
)
def test_fast_and_faithful_give_the_same_journal(recording, tmp_path, strategy, extra):
    fast = backtest(recording, tmp_path, "fast", strategy, *extra)
    faithful = backtest(recording, tmp_path, "faithful", strategy, *extra)
    assert fast["orders"] >= 10 and fast["fills"] >= 5  # there is something to compare
    assert {k: faithful[k] for k in SAME} == {k: fast[k] for k in SAME}
    assert faithful["mode"] == "faithful" and faithful["lost_decisions"] == 0
    by_origin = faithful["decisions_by_origin"]
    assert by_origin["default"] == by_origin["fallback"] == 0  # every decision a worker's
    assert by_origin["worker_a"] + by_origin["worker_b"] == fast["decisions"] == fast["events"]


@pytest.mark.slow
def test_model_signal_decides_alike_on_the_workers_predictions(recording, tmp_path):
    """The faithful run steps on each worker's score (its decision journal shows them); the
    journals agree. The scores equal the fast path's up to float32 rounding only: the workers'
    forward (NumpyMLP.run_into, OpenBLAS sgemm) gives a row different last bits depending on
    how many rows share its call (measured on this slice: 1,058 of 1,707 rows differ between
    1-row and 64-row calls, by at most 4.8e-7), and the batches the workers see depend on
    timing. A prediction that close to `enter` or `exit` would make the modes differ."""
    from redline.pipeline.cli import backtest as cli
    from redline.pipeline.cli.backtest_faithful import run_faithful
    from redline.strategies import model_signal

    fast = backtest(recording, tmp_path, "fast", "model_signal")
    params = model_signal.Params()
    ids = list(INSTRUMENTS)
    value, _ = cli._value_per_tick([str(recording)], ids)
    journal = tmp_path / "journal.arrow"
    _, result, graph = run_faithful([str(recording)], "model_signal", model_signal, params,
                                    cli._legs(LATENCY), ids, {"value_per_tick": value},
                                    journal=str(journal))  # fmt: skip
    assert fast["orders"] > 3
    assert result.figures["journal_sha256"] == fast["journal_sha256"]
    assert result.figures["orders"] == fast["orders"] and graph["lost_decisions"] == 0
    decisions = read_journal(journal)
    want = model_signal.predictions(params, [str(recording)], ids)
    for j, inst in enumerate(ids):
        got = decisions["score"][decisions["instrument_id"] == inst].astype(np.float64)
        assert len(got) == len(want[j]) > 100
        np.testing.assert_allclose(got, want[j], rtol=0, atol=1e-6)  # float32 rounding only
        assert np.abs(want[j]).max() > 0.5  # scores big enough to trade on, not all ~0


@pytest.mark.slow
def test_a_strategy_that_raises_ends_the_faithful_run_at_once(recording, monkeypatch):
    """The strategy node raising mid-run ends the graph: the error reaches the caller in
    seconds and no thread of the run is left. (It once spun ~15 s in the other nodes, stepping
    on closed sockets, and left the replay's read-ahead thread behind.)"""
    import threading
    import time

    from redline.pipeline.cli import backtest as cli
    from redline.pipeline.cli.backtest_faithful import run_faithful
    from redline.pipeline.graph.nodes.paper_trader import PaperTrader
    from redline.strategies import ema_cross

    calls, decide = [0], PaperTrader.decide

    def breaks(self, answers):
        calls[0] += 1
        if calls[0] > 20:
            raise RuntimeError("strategy broke")
        return decide(self, answers)

    monkeypatch.setattr(PaperTrader, "decide", breaks)
    before = set(threading.enumerate())
    ids = list(INSTRUMENTS)
    value, _ = cli._value_per_tick([str(recording)], ids)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="strategy broke"):
        run_faithful([str(recording)], "ema_cross", ema_cross, ema_cross.Params(),
                     cli._legs(LATENCY), ids, {"value_per_tick": value})  # fmt: skip
    assert calls[0] == 21 and time.monotonic() - t0 < 10
    time.sleep(0.2)
    assert [t.name for t in set(threading.enumerate()) - before if t.is_alive()] == []


def test_bad_mode_and_a_faithful_l2_run_are_one_line(recording, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["backtest", str(recording), "--strategy", "ema_cross", "--mode", "slow"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--mode: invalid choice: 'slow'" in err[0], err
    argv = ["backtest", str(DIR), "--strategy", "ema_cross", "--mode", "faithful"]  # auto: l2
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "give --venue l1" in err[0], err


def test_an_unknown_strategy_in_a_graph_file_is_one_line(tmp_path, capsys):
    graph = tmp_path / "g.toml"
    graph.write_text(
        '[graph]\nname = "g"\n[edges.answers]\naddress = "inproc://g/answers"\n'
        '[edges.ticks]\naddress = "inproc://g/ticks"\n'
        '[nodes.feed]\nkind = "feed"\nsource = "tcp://127.0.0.1:5999"\nsocket = "pull"\n'
        'out = "ticks"\n[nodes.arbiter]\nkind = "arbiter"\nin = "ticks"\nout = "answers"\n'
        '[nodes.strategy]\nkind = "strategy"\nin = "answers"\nstrategy = "ema_crossing"\n'
    )
    assert main(["run", str(graph)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "node 'strategy'" in err[0] and "field 'strategy' is 'ema_crossing'" in err[0]
    assert "valid: signal_trader, ema_cross, market_maker, model_signal" in err[0]


def test_the_recording_source_holds_back_while_its_quotes_wait_for_answers(recording):
    """With deadlines an hour away nothing expires, so the source itself bounds what waits:
    past the limit it hands out nothing and its descriptor is not readable."""
    import select

    from redline.feeds.clock import ReplayClock
    from redline.feeds.events import RecordType
    from redline.feeds.sequence import SequenceTracker
    from redline.pipeline.cli.backtest_faithful import BATCH_ROWS, RecordingSource

    files = [str(recording / "market_quotes.parquet"), str(recording / "market_trades.parquet")]
    answered = [0]
    src = RecordingSource(files, ReplayClock(0), SequenceTracker(first_seq=None, mark_gaps=False))
    src.hold_at(lambda: answered[0], 300)
    kinds, last = [], 0
    while (batch := src.recv_batch()) is not None:
        kinds.append(batch.rtype)
        assert batch.records["ts_recv"][-1] == src.clock.now_ns() >= last  # the replay clock
        last = src.clock.now_ns()
    assert 300 <= src.quotes < 300 + BATCH_ROWS and not src.ended  # held, not at the end
    assert RecordType.TRADE in kinds and not src.ready()
    assert select.select([src.fileno()], [], [], 0)[0] == []  # nothing to wake the feed for
    answered[0] = src.quotes  # the graph caught up: it hands out again, to the end
    while src.recv_batch() is not None:
        answered[0] = src.quotes
    assert src.ended and src.quotes == pq.read_metadata(files[0]).num_rows
    src.close()
