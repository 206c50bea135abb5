"""`redline scenarios`: the grid's figures under stable keys, and the same every run."""

import json

from redline.pipeline.cli import main as cli_main
from redline.pipeline.cli import scenarios


def run_cli(argv):
    parser = cli_main.OneLineParser(prog="redline")
    sub = parser.add_subparsers(dest="command", required=True)
    scenarios.register(sub)  # the command alone: main.py's COMMANDS line is the lead's to add
    args = parser.parse_args(argv)
    return args.run(args)


def test_the_grid_is_written_with_stable_keys_and_repeats(tmp_path, capsys):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert run_cli(["scenarios", "--json", str(first)]) == 0
    assert run_cli(["scenarios", "--json", str(second)]) == 0
    figures = json.loads(first.read_text())
    assert list(figures) == ["cases", "collisions", "min_ttc_s", "commands_by_origin"]
    assert len(figures["cases"]) == 24 and figures["collisions"] == 0
    assert figures["commands_by_origin"]["emergency"] > 0
    assert figures["min_ttc_s"] == min(c["min_ttc_s"] for c in figures["cases"])
    assert first.read_text() == second.read_text()  # replay is deterministic
    assert "24 cases, 0 collisions" in capsys.readouterr().out
