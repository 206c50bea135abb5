import pytest

from redline.pipeline.cli.folders import output_folder
from redline.pipeline.cli.main import main


def test_an_output_folder_is_made_with_its_parents(tmp_path):
    assert output_folder(tmp_path / "a" / "b").is_dir()


@pytest.mark.parametrize("under", ["", "sub"])
def test_a_file_where_a_folder_belongs_is_named_with_its_flag(tmp_path, under):
    f = tmp_path / "f.txt"
    f.write_text("x")
    with pytest.raises(ValueError, match=f"--dest {f / under if under else f}: "):
        output_folder(f / under if under else f, "--dest")


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "--minutes", "0.2", "--out"],
        ["record", "--endpoint", "ipc:///nonexistent-dir/x", "--out"],
    ],
)
def test_commands_refuse_an_out_that_is_a_file_in_one_line(tmp_path, capsys, argv):
    # Both raised FileExistsError from mkdir, a traceback.
    f = tmp_path / "f.txt"
    f.write_text("x")
    assert main([*argv, str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"redline {argv[0]}: error: --out {f}: is a file; give a folder (new or existing)"
    ]
    assert f.read_text() == "x"  # untouched
