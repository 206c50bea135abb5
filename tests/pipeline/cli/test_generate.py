"""`redline generate`: the same seed writes the same bytes, another seed other data."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from redline.feeds.synthetic.generator import FILES
from redline.pipeline.cli.main import main


def _generate(out, seed, tmp_path):
    report = tmp_path / f"{out.name}.json"
    rc = main(
        [
            "generate",
            "--out",
            str(out),
            "--seed",
            str(seed),
            "--minutes",
            "0.2",
            "--json",
            str(report),
        ]
    )
    assert rc == 0
    return json.loads(report.read_text())


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    a = _generate(tmp_path / "a", 3, tmp_path)
    b = _generate(tmp_path / "b", 3, tmp_path)
    c = _generate(tmp_path / "c", 4, tmp_path)
    assert sorted(a["files"]) == sorted(FILES.values())
    assert (
        a["events"]
        == sum(f["records"] for name, f in a["files"].items() if name != FILES["instruments"])
        > 5_000
    )
    for name in FILES.values():
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
        assert pq.read_table(tmp_path / "a" / name).num_rows == a["files"][name]["records"]
        if name != FILES["instruments"]:
            ta, tc = pq.read_table(tmp_path / "a" / name), pq.read_table(tmp_path / "c" / name)
            assert not ta.equals(tc), name
    assert b == a and c["events"] != a["events"]


def test_bad_length_is_refused_with_the_reason(tmp_path, capsys):
    assert main(["generate", "--out", str(tmp_path), "--minutes", "0"]) == 2
    assert "minutes must be >= 1/6 (10 s of recording), got 0.0" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
