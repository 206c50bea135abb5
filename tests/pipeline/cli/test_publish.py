import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zmq

from redline.feeds import event_schema as es
from redline.feeds import events as ev
from redline.feeds.wire import frames as wire
from redline.pipeline.cli.main import main


def test_bad_speed_and_missing_file_are_errors_that_say_what(tmp_path, capsys):
    assert main(["publish", str(tmp_path / "none.parquet"), "--endpoint", "tcp://127.0.0.1:1"]) == 2
    assert "no recording at" in capsys.readouterr().err
    assert main(["publish", "x.parquet", "--endpoint", "tcp://127.0.0.1:1", "--speed", "fast"]) == 2
    assert "--speed must be a positive number or 'max', got 'fast'" in capsys.readouterr().err


def test_publish_push_at_max_speed_reports_and_delivers(tmp_path, capsys):
    recs = ev.empty(ev.RecordType.TRADE, 100)
    recs["seq"] = np.arange(100)
    recs["ts_recv"] = recs["ts_event"] = np.arange(100)
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_batches([es.to_arrow(recs)]), path)
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.setsockopt(zmq.RCVTIMEO, 5000)
    ep = f"ipc://{tmp_path}/p.sock"
    pull.bind(ep)
    args = ["publish", str(path), "--endpoint", ep, "--socket", "push", "--connect"]
    assert main([*args, "--speed", "max", "--batch", "30"]) == 0
    out = capsys.readouterr().out
    assert "100 events in 4 frames" in out and "pacing: none (max speed)" in out
    dec = wire.Decoder()
    sizes = []
    while (b := dec.decode(pull.recv())) is not wire.END_OF_STREAM:
        sizes.append(len(b.records))
    ctx.destroy(0)
    assert sizes == [30, 30, 30, 10]


def _trades(tmp_path, n=10):
    recs = ev.empty(ev.RecordType.TRADE, n)
    recs["seq"] = np.arange(n)
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_batches([es.to_arrow(recs)]), path)
    return str(path)


def test_publishing_to_nobody_fails_and_says_so(tmp_path, capsys):
    # It reported "22917 events ... 1,229,919 events/s" and exited 0, having delivered nothing.
    path = _trades(tmp_path)
    ep = f"ipc://{tmp_path}/nobody"
    args = ["publish", path, "--endpoint", ep, "--speed", "max", "--wait", "0.2"]
    assert main([*args, "--socket", "push", "--connect"]) == 1
    assert "no PULL peer took a frame" in capsys.readouterr().err
    assert main([*args, "--subscribers", "0"]) == 1
    assert "no reader connected" in capsys.readouterr().err
