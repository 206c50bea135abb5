from pathlib import Path

import pytest

from redline.feeds.importers import destination


def writer(text: str):
    return lambda path: Path(path).write_text(text)


def test_a_new_or_empty_folder_takes_an_import(tmp_path):
    destination.write(
        tmp_path / "new" / "out", {tmp_path / "new" / "out" / "quotes.parquet": writer("q")}
    )
    assert (tmp_path / "new" / "out" / "quotes.parquet").read_text() == "q"
    (tmp_path / "empty").mkdir()
    destination.check(tmp_path / "empty")


def test_a_folder_that_holds_anything_needs_overwrite(tmp_path):
    out = tmp_path / "out"
    destination.write(
        out, {out / "book.parquet": writer("old"), out / "instruments.parquet": writer("old")}
    )
    with pytest.raises(ValueError, match=rf"^{out}: folder is not empty \(book\.parquet, "
                       r"instruments\.parquet\); pass --overwrite"):  # fmt: skip
        destination.write(out, {out / "quotes.parquet": writer("new")})
    assert sorted(p.name for p in out.iterdir()) == ["book.parquet", "instruments.parquet"]


def test_overwrite_replaces_the_earlier_import_and_leaves_none_of_it_beside(tmp_path):
    out = tmp_path / "out"
    destination.write(
        out, {out / "book.parquet": writer("old"), out / "instruments.parquet": writer("old")}
    )
    (out / ".trades.parquet.partial").write_text("left by a killed import")
    destination.write(
        out,
        {out / "quotes.parquet": writer("new"), out / "instruments.parquet": writer("new")},
        overwrite=True,
    )
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "quotes.parquet": "new", "instruments.parquet": "new",
    }  # fmt: skip


def test_overwrite_never_deletes_what_no_import_writes(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds notes\.txt, which no import writes; --overwrite "
                       r"replaces an earlier import only: give a new folder"):  # fmt: skip
        destination.write(out, {out / "quotes.parquet": writer("q")}, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_a_failure_while_writing_leaves_the_earlier_import_as_it_was(tmp_path):
    out = tmp_path / "out"
    destination.write(
        out, {out / "quotes.parquet": writer("old"), out / "instruments.parquet": writer("old")}
    )

    def disk_full(path):
        raise OSError("No space left on device")

    with pytest.raises(OSError, match="No space left"):
        destination.write(
            out,
            {out / "quotes.parquet": writer("new"), out / "instruments.parquet": disk_full},
            overwrite=True,
        )
    assert {p.name: p.read_text() for p in out.iterdir()} == {
        "quotes.parquet": "old", "instruments.parquet": "old",
    }  # fmt: skip
    with pytest.raises(OSError):
        destination.write(tmp_path / "fresh", {tmp_path / "fresh" / "quotes.parquet": disk_full})
    assert not (tmp_path / "fresh").exists()  # the folder it made is gone again


def test_a_single_file_out_and_its_table_need_overwrite(tmp_path):
    out = tmp_path / "q.parquet"
    table = destination.instruments_beside(out)
    assert table.name == "q.instruments.parquet"
    destination.write(out, {out: writer("old"), table: writer("old")})
    with pytest.raises(ValueError, match=rf"^{out}: already exists; pass --overwrite"):
        destination.check(out)
    destination.write(out, {out: writer("new"), table: writer("new")}, overwrite=True)
    assert out.read_text() == table.read_text() == "new"
    other = tmp_path / "b.dbn"
    other.write_text("an input named last by mistake")
    with pytest.raises(ValueError, match=rf"^{other}: is a file, not a folder; give a new"):
        destination.check(other)
