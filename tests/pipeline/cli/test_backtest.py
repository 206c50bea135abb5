"""`redline backtest` on the bundled recording: figures with stable keys, deterministic logs,
latency that changes what is filled, and one-line errors."""

import json

import pyarrow.parquet as pq

from redline.pipeline.cli.main import main
from redline.replay_data import DIR

QUOTES = str(DIR / "market_quotes.parquet")
KEYS = ("events", "decisions", "orders", "fills", "rejections", "pnl", "fees", "sharpe",
        "max_drawdown", "events_per_s", "peak_rss_mb", "journal_sha256")  # fmt: skip


def backtest(tmp_path, name, *extra):
    out = tmp_path / f"{name}.json"
    assert main(["backtest", QUOTES, "--strategy", "ema_cross", "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_a_backtest_reports_every_figure_and_runs_the_same_twice(tmp_path, capsys):
    a = backtest(tmp_path, "a", "--param", "every=50", "--fee-bps", "1")
    b = backtest(tmp_path, "b", "--param", "every=50", "--fee-bps", "1")
    for key in KEYS:
        assert key in a, key
    assert a["events"] == pq.read_metadata(QUOTES).num_rows
    assert a["money"] == "quote currency"  # the instrument table beside the data was found
    assert a["orders"] > 0 and a["fees"] > 0
    assert a["journal_sha256"] == b["journal_sha256"] and a["pnl"] == b["pnl"]
    assert "redline backtest: ema_cross on" in capsys.readouterr().out


def test_latency_changes_the_fills_and_the_report_is_written(tmp_path):
    fast = backtest(tmp_path, "fast", "--param", "every=50")
    slow = backtest(tmp_path, "slow", "--param", "every=50", "--latency", "entry=50000",
                    "--report", str(tmp_path / "rep"))  # fmt: skip
    assert fast["orders"] > 0 and fast["journal_sha256"] != slow["journal_sha256"]
    ex = pq.read_table(tmp_path / "rep" / "executions.parquet")
    assert ex.num_rows == slow["orders"]
    assert min(v - d for v, d in zip(ex["ts_venue"].to_pylist(), ex["ts_decision"].to_pylist(),
                                       strict=True) if v) == 50_000_000  # fmt: skip
    assert (tmp_path / "rep" / "equity.png").stat().st_size > 0


def test_bad_input_is_one_line(tmp_path, capsys):
    for argv, expect in (
        (["--param", "alfa=1"], "--param 'alfa=1': give key=value with a key of ema_cross's"),
        (["--latency", "entry=-5"], "--latency 'entry=-5'"),
        (["--strategy", "nope"], "no strategy 'nope'"),
    ):
        argv = ["backtest", QUOTES, "--strategy", "ema_cross", *argv]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expect in err[0], err
    assert main(["backtest", str(DIR / "market_trades.parquet"), "--strategy", "ema_cross"]) == 2
    assert "no QUOTE records to backtest on" in capsys.readouterr().err
