"""`redline scenarios`: the grid's figures under stable keys, and the same every run."""

import json

from redline.pipeline.cli.main import main as run_cli


def test_the_grid_is_written_with_stable_keys_and_repeats(tmp_path, capsys):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert run_cli(["scenarios", "--json", str(first)]) == 0
    assert run_cli(["scenarios", "--json", str(second)]) == 0
    figures = json.loads(first.read_text())
    assert list(figures) == [
        "cases", "collisions", "min_ttc_s", "commands_by_origin", "frames", "latency_ns",
    ]  # fmt: skip
    assert len(figures["cases"]) == 24 and figures["collisions"] == 0
    assert figures["commands_by_origin"]["emergency"] > 0
    assert figures["min_ttc_s"] == min(c["min_ttc_s"] for c in figures["cases"])
    assert first.read_text() == second.read_text()  # replay is deterministic
    assert "24 cases, 0 collisions" in capsys.readouterr().out


def test_the_recording_adds_a_case_behind_its_lead(tmp_path):
    out = tmp_path / "r.json"
    assert run_cli(["scenarios", "--recording", "--json", str(out)]) == 0
    cases = json.loads(out.read_text())["cases"]
    assert len(cases) == 25 and cases[-1]["name"] == "recorded lead (driving_sensors.parquet)"
    assert not cases[-1]["collision"] and cases[-1]["min_ttc_s"] > 3
