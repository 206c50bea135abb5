import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from redline.feeds import events as ev
from redline.pipeline import cli


def test_demo_replays_a_folder_and_writes_the_contract_keys(tmp_path, capsys):
    q = ev.empty(ev.RecordType.QUOTE, 300)
    q["ts_recv"] = np.arange(300) * 10
    q["ts_event"] = q["ts_recv"] - 7
    q["seq"] = np.arange(300)
    q["instrument_id"] = np.arange(300) % 2 + 1
    pq.write_table(pa.Table.from_batches([ev.to_arrow(q)]), tmp_path / "q.parquet")
    out = tmp_path / "demo.json"
    assert cli.main(["demo", "--data", str(tmp_path), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["events"] == {
        "total": 300,
        "by_record_type": {"QUOTE": 300},
        "by_instrument": {"1": 150, "2": 150},
    }
    assert data["events_per_s"] > 0 and data["peak_rss_mb"] > 0
    assert data["latency_ns"]["p50"] == 7 and data["latency_ns"]["max"] == 7
    assert "events          300" in capsys.readouterr().out


def test_demo_on_an_empty_folder_says_so(tmp_path, capsys):
    assert cli.main(["demo", "--data", str(tmp_path)]) == 1
    assert f"no recordings in {tmp_path}" in capsys.readouterr().err
