"""The blend stage: weights on the simplex, never below the best member, rank averaging, row checks."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from dvc.repo import Repo
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from foldwise.core.errors import FoldwiseError
from foldwise.ensemble import runs as run_files
from foldwise.ensemble.weights import blend, fit_weights, held_out_blend, rank_transform
from foldwise.stages import blend as blend_stage
from foldwise.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
SETI = get_task("seti")


def auc(y, p):
    """ROC-AUC as Mann-Whitney U on average ranks (as sklearn's with ties; ~20x faster for the many fits)."""
    y, r = y.reshape(-1) > 0.5, rankdata(p.reshape(-1))
    n_pos = y.sum()
    return (r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * (len(y) - n_pos))


def test_fast_auc_is_sklearns():
    y, members = noisy_members()
    assert auc(y, members[0]) == pytest.approx(roc_auc_score(y.reshape(-1), members[0].reshape(-1)))


def noisy_members(n=400, m=3, seed=0):
    """Binary targets (n, 1) and m members (m, n, 1): the signal plus independent noise of rising scale."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 1)) < 0.3).astype(float)
    members = np.stack([y + rng.normal(0, 0.8 + 0.3 * i, (n, 1)) for i in range(m)])
    return y, 1 / (1 + np.exp(-members))


def test_weights_lie_on_the_simplex_and_beat_every_member():
    y, members = noisy_members()
    w = fit_weights(members, y, auc, greater_is_better=True)
    assert w.shape == (3,) and (w >= 0).all() and w.sum() == pytest.approx(1.0)
    best = max(auc(y, m) for m in members)
    assert auc(y, blend(members, w)) > best + 0.005  # independent noise: averaging helps
    assert np.count_nonzero(w) >= 2


def test_a_useless_member_gets_no_weight_and_cv_equals_the_best_member():
    y, members = noisy_members(m=1)
    junk = np.random.default_rng(1).random(members.shape)  # pure noise
    stacked = np.concatenate([members, junk])
    w = fit_weights(stacked, y, auc, greater_is_better=True)
    assert auc(y, blend(stacked, w)) >= auc(y, members[0])
    np.testing.assert_allclose(w, [1.0, 0.0])


def test_lower_is_better_metrics_are_minimised():
    rng = np.random.default_rng(2)
    y = rng.normal(50, 10, (300, 1))
    members = np.stack([y + rng.normal(0, 5, y.shape), y + rng.normal(0, 5, y.shape)])
    rmse = get_task("petfinder").metric
    w = fit_weights(members, y, rmse, greater_is_better=False)
    assert rmse(y, blend(members, w)) < min(rmse(y, m) for m in members) - 0.5
    assert w == pytest.approx([0.5, 0.5], abs=0.1)  # equal noise: about equal weights


def test_rank_transform_keeps_order_in_unit_interval():
    x = np.array([[0.9, 5.0], [0.1, 7.0], [0.5, 6.0], [0.5, 1.0]])
    r = rank_transform(x)
    np.testing.assert_allclose(r[:, 0], [1.0, 0.25, 0.625, 0.625])
    np.testing.assert_allclose(r[:, 1], [0.5, 1.0, 0.75, 0.25])


def test_held_out_weights_do_not_see_their_fold():
    y, members = noisy_members(n=300, m=2)
    folds = np.arange(300) % 3
    _, before = held_out_blend(members, y, folds, auc, True)
    cheat = members.copy()
    cheat[1, folds == 0] = y[folds == 0]  # member 1 becomes perfect on fold 0 only
    _, after = held_out_blend(cheat, y, folds, auc, True)
    np.testing.assert_array_equal(before[0], after[0])  # fold 0's weights come from folds 1, 2 alone
    assert not np.array_equal(before[1], after[1])  # the others now see the perfect rows


def test_method_auto_ranks_only_rank_metrics():
    assert blend_stage.blend_method("auto", SETI) == "rank"
    assert blend_stage.blend_method("auto", get_task("petfinder")) == "mean"
    assert blend_stage.blend_method("mean", SETI) == "mean"
    with pytest.raises(FoldwiseError, match="blend.method: rank needs a rank-based metric"):
        blend_stage.blend_method("rank", get_task("hms"))


# ---- the stage on synthetic runs (dvc.api replaced by a dict of frames) ----------------------------
def seti_run(seed: int, n=200, n_test=30, folds=4):
    """oof.csv and test_preds.csv frames of one SETI run; targets and folds are shared by all seeds."""
    rng = np.random.default_rng(0)
    ids = [f"{i:05x}" for i in range(n)]
    y = (rng.random(n) < 0.3).astype(float)
    noise = np.random.default_rng(seed).normal(0, 1.0, n)
    oof = pd.DataFrame({"id": ids, "fold": np.arange(n) % folds, "true_target": y,
                        "target": 1 / (1 + np.exp(-(2 * y - 1 + noise)))})
    test = pd.DataFrame({"id": [f"t{i:04x}" for i in range(n_test)],
                         "target": np.random.default_rng(seed + 100).random(n_test)})
    return {blend_stage.OOF: oof, blend_stage.TEST_PREDS: test, blend_stage.LABELS: "{}",
            f"{blend_stage.RAW}/sample_submission.csv": pd.DataFrame({"id": test["id"][::-1].to_numpy(), "target": 0.5})}


@pytest.fixture
def fake_runs(monkeypatch):
    store: dict[str, dict] = {}

    def read(run, path, repo="."):
        if run not in store:
            raise FoldwiseError(f"blend.runs: '{run}' is neither an experiment name nor a git revision")
        return store[run][path].copy()

    def read_text(run, path, repo="."):
        if run not in store:
            raise FoldwiseError(f"blend.runs: '{run}' is neither an experiment name nor a git revision")
        return store[run][path]

    monkeypatch.setattr(blend_stage, "read_run_csv", read)
    monkeypatch.setattr(blend_stage, "read_run_text", read_text)
    return store


def test_mismatched_ids_or_folds_name_the_run(fake_runs):
    fake_runs["a"] = seti_run(1)
    fake_runs["b"] = seti_run(2)
    fake_runs["b"][blend_stage.OOF] = fake_runs["b"][blend_stage.OOF].iloc[1:]
    with pytest.raises(FoldwiseError, match=r"blend.runs: 'b': data/oof.csv ids differ from 'a''s \(lacks '00000'\)"):
        blend_stage.load_members(["a", "b"], SETI)
    fake_runs["c"] = seti_run(3)
    fake_runs["c"][blend_stage.OOF]["fold"] = (fake_runs["c"][blend_stage.OOF]["fold"] + 1) % 4
    with pytest.raises(FoldwiseError, match=r"blend.runs: 'c': data/oof.csv folds differ from 'a''s \(id '00000'"):
        blend_stage.load_members(["a", "c"], SETI)
    with pytest.raises(FoldwiseError, match="'a' is listed twice"):
        blend_stage.load_members(["a", "a"], SETI)


def test_rows_in_another_order_are_aligned(fake_runs):
    fake_runs["a"] = seti_run(1)
    fake_runs["b"] = seti_run(2)
    shuffled = fake_runs["b"][blend_stage.OOF].sample(frac=1.0, random_state=0)
    fake_runs["b"][blend_stage.OOF] = shuffled
    m = blend_stage.load_members(["a", "b"], SETI)
    np.testing.assert_allclose(m.oof[1, :, 0], seti_run(2)[blend_stage.OOF]["target"])


def write_params(path, runs, method="auto"):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["blend"] = {"runs": runs, "method": method}
    (path / "params.yaml").write_text(yaml.safe_dump(params))


def test_stage_writes_submission_and_metrics(fake_runs, tmp_path, monkeypatch):
    fake_runs["a"], fake_runs["b"] = seti_run(1), seti_run(2)
    monkeypatch.setattr(type(SETI), "metric", lambda self, y, p: auc(y, p))  # sklearn's: 30 ms a call
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, ["a", "b"])
    blend_stage.main(["--out", "data/blend", "--live", "metrics/blend"])
    metrics = json.loads((tmp_path / "metrics/blend/metrics.json").read_text())
    assert metrics["cv"]["auc"] >= max(metrics["member"]["a"]["auc"], metrics["member"]["b"]["auc"])
    assert 0.5 < metrics["cv_honest"]["auc"] <= metrics["cv"]["auc"] + 1e-9
    assert metrics["weight"]["a"] + metrics["weight"]["b"] == pytest.approx(1.0)
    sub = pd.read_csv(tmp_path / "data/blend/submission.csv", dtype={"id": str})
    sample = seti_run(1)[f"{blend_stage.RAW}/sample_submission.csv"]
    assert sub["id"].tolist() == sample["id"].tolist()
    assert ((sub["target"] > 0) & (sub["target"] <= 1)).all()  # ranks within the test set
    oof = pd.read_csv(tmp_path / "data/blend/oof.csv", dtype={"id": str})
    # the CSV keeps 8 digits, which can turn float near-ties of blended ranks into ties
    assert auc(oof["true_target"].to_numpy(), oof["target"].to_numpy()) == pytest.approx(metrics["cv"]["auc"], abs=1e-3)


def test_empty_runs_skip_quickly(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, [])
    blend_stage.main(["--out", "data/blend", "--live", "metrics/blend"])
    assert json.loads((tmp_path / "metrics/blend/metrics.json").read_text()) == {}
    assert list((tmp_path / "data/blend").iterdir()) == []
    assert "nothing to blend" in capsys.readouterr().out


def test_unknown_revision_and_missing_file_are_one_line(tmp_path):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    Repo.init(str(tmp_path)).close()
    (tmp_path / "notes.csv").write_text("id,x\n007,1\n")
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=tmp_path, check=True)
    frame = run_files.read_run_csv("HEAD", "notes.csv", repo=str(tmp_path))
    assert frame["id"].tolist() == ["007"]  # ids verbatim
    with pytest.raises(FoldwiseError, match=r"^blend.runs: 'nope' is neither an experiment name nor a git revision"):
        run_files.read_run_csv("nope", "notes.csv", repo=str(tmp_path))
    with pytest.raises(FoldwiseError, match=r"^blend.runs: 'HEAD' has no data/oof.csv; run its pipeline"):
        run_files.read_run_csv("HEAD", "data/oof.csv", repo=str(tmp_path))


# ---- class-label targets: oof.csv's true_ columns hold class names ---------------------------------
SHAPES = ["circle", "square", "triangle"]


def images_run(seed: int, n=90, n_test=9, classes=SHAPES):
    """oof.csv, test_preds.csv, labels.json and test.csv of one images multiclass run (shape classes)."""
    y = np.random.default_rng(0).integers(0, 3, n)
    logits = 2 * np.eye(3)[y] + np.random.default_rng(seed).normal(0, 1.5, (n, 3))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    names = np.array(classes, dtype=object)
    oof = pd.DataFrame({"id": [f"src/{i}.png" for i in range(n)], "fold": np.arange(n) % 3, "true_shape": names[y]})
    for j, c in enumerate(classes):
        oof[f"p_{c}"] = probs[:, j]
    oof["shape"] = names[probs.argmax(axis=1)]
    test_ids = [f"src/t{i}.png" for i in range(n_test)]
    test = pd.DataFrame(np.random.default_rng(seed + 1).dirichlet(np.ones(3), n_test), columns=[f"p_{c}" for c in classes])
    test.insert(0, "id", test_ids)
    return {blend_stage.OOF: oof, blend_stage.TEST_PREDS: test, blend_stage.LABELS: json.dumps({"classes": classes}),
            f"{blend_stage.RAW}/test.csv": pd.DataFrame({"image": test_ids[::-1], "source": "src"})}


def test_images_class_names_blend(fake_runs, tmp_path, monkeypatch):
    from sklearn.metrics import accuracy_score

    fake_runs["a"], fake_runs["b"] = images_run(1), images_run(2)
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, ["a", "b"])
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["task"] = "images"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    blend_stage.main(["--out", "data/blend", "--live", "metrics/blend"])
    metrics = json.loads((tmp_path / "metrics/blend/metrics.json").read_text())
    oof = pd.read_csv(tmp_path / "data/blend/oof.csv")
    assert metrics["cv"]["accuracy"] == pytest.approx(accuracy_score(oof["true_shape"], oof["shape"]))
    for run in ("a", "b"):
        member = fake_runs[run][blend_stage.OOF]
        assert metrics["member"][run]["accuracy"] == pytest.approx(accuracy_score(member["true_shape"], member["shape"]))
    assert metrics["cv"]["accuracy"] >= max(metrics["member"][r]["accuracy"] for r in ("a", "b"))
    sub = pd.read_csv(tmp_path / "data/blend/submission.csv")
    assert list(sub.columns) == ["image", "shape"] and set(sub["shape"]) <= set(SHAPES)
    assert sub["image"].tolist() == fake_runs["a"][f"{blend_stage.RAW}/test.csv"]["image"].tolist()


def test_runs_with_other_classes_or_targets_are_refused(fake_runs, monkeypatch):
    from foldwise.tasks.images import ImagesParams

    images = get_task("images")
    images.configure_group(ImagesParams())  # the default group: shape, multiclass, these three classes
    fake_runs["a"], fake_runs["b"] = images_run(1), images_run(2, classes=["circle", "square", "star"])
    with pytest.raises(FoldwiseError, match=r"^blend.runs: 'b': data/prepared/labels.json differs from 'a''s"):
        blend_stage.load_members(["a", "b"], images)
    fake_runs["c"] = images_run(3)
    fake_runs["c"][blend_stage.OOF]["true_shape"] = np.roll(fake_runs["c"][blend_stage.OOF]["true_shape"], 1)
    with pytest.raises(FoldwiseError, match=r"^blend.runs: 'c': data/oof.csv targets differ from 'a''s"):
        blend_stage.load_members(["a", "c"], images)
