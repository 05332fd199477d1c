import torch

from foldwise.stages.params import parse_params
from foldwise.engine import checkpoint
from test_params import base


def test_fingerprint_changes_with_params_fold_and_files(tmp_path):
    folds = tmp_path / "folds.csv"
    folds.write_text("id,fold\na,0\nb,1\n")
    p = parse_params(base())
    ref = checkpoint.fingerprint(p, 0, [folds])
    assert checkpoint.fingerprint(p, 0, [folds]) == ref
    assert checkpoint.fingerprint(p.model_copy(update={"lr": 1e-4}), 0, [folds]) != ref
    assert checkpoint.fingerprint(p, 1, [folds]) != ref
    folds.write_text("id,fold\na,1\nb,0\n")
    assert checkpoint.fingerprint(p, 0, [folds]) != ref


def test_load_resumes_only_a_matching_checkpoint(tmp_path):
    assert checkpoint.load(tmp_path, "abc") == (None, "")
    checkpoint.save(tmp_path, {"fingerprint": "abc", "epoch": 1, "weights": torch.ones(2)})
    state, message = checkpoint.load(tmp_path, "abc")
    assert state["epoch"] == 1 and torch.equal(state["weights"], torch.ones(2))
    assert "after epoch 2" in message
    state, message = checkpoint.load(tmp_path, "other")
    assert state is None and "starting over" in message
    (tmp_path / checkpoint.LAST).write_bytes(b"garbage")
    state, message = checkpoint.load(tmp_path, "abc")
    assert state is None and "unreadable" in message
    checkpoint.clear(tmp_path)
    assert not (tmp_path / checkpoint.LAST).exists()
