import pandas as pd
import pytest

from foldwise.core.atomic import atomic_dir, atomic_file, write_csv


def test_atomic_file_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    write_csv(pd.DataFrame({"a": [1.0, 2.5]}), target)
    assert target.read_text() == "a\n1\n2.5\n"


def test_atomic_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "prepared"
    target.mkdir()
    (target / "old.npy").write_text("old")
    with pytest.raises(ValueError):
        with atomic_dir(target) as tmp:
            (tmp / "new.npy").write_text("new")
            raise ValueError("bad input")
    assert [p.name for p in target.iterdir()] == ["old.npy"]
    with atomic_dir(target) as tmp:
        (tmp / "new.npy").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.npy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]


def test_leftovers_of_a_killed_writer_are_cleared(tmp_path):
    (tmp_path / ".fold_0.abc123.tmp").mkdir()
    (tmp_path / ".oof.csv.xyz.tmp").write_text("partial")
    with atomic_dir(tmp_path / "fold_0") as tmp:
        (tmp / "model.pt").write_text("w")
    write_csv(pd.DataFrame({"a": [1]}), tmp_path / "oof.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fold_0", "oof.csv"]
