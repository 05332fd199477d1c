"""HMS Harmful Brain Activity task: synthetic layout, reading, loss, Kaggle KL metric, bad input, e2e."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from conftest import run
from foldwise.core.errors import FoldwiseError
from foldwise.stages.params import parse_params
from foldwise.tasks import get_task
from foldwise.tasks import hms

REPO = Path(__file__).resolve().parents[1]
VOTES = ["seizure_vote", "lpd_vote", "gpd_vote", "lrda_vote", "grda_vote", "other_vote"]
TASK = get_task("hms")


def make_params(img_size: int = 32, **hms_group):
    return parse_params({"task": "hms", "img_size": img_size, "hms": dict(hms_group)})


def preprocess(root: Path, split: str, p) -> tuple[pd.DataFrame, list[np.ndarray]]:
    table = TASK.read_table(root, split, p).reset_index(drop=True)
    return table, list(TASK.iter_images(root, table, split, p))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hms") / "raw"
    TASK.generate(root, n_train=300, n_test=8, seed=7, strength=1.0)
    return root


@pytest.fixture()
def small(tmp_path) -> Path:
    """A fresh small dataset each test may break."""
    root = tmp_path / "raw"
    TASK.generate(root, n_train=25, n_test=3, seed=3, strength=1.0)
    return root


# ---- generator layout ------------------------------------------------------------------------------
def test_train_csv_has_exact_kaggle_columns_and_n_train_rows(dataset):
    train = pd.read_csv(dataset / "train.csv")
    assert list(train.columns) == [
        "eeg_id", "eeg_sub_id", "eeg_label_offset_seconds", "spectrogram_id", "spectrogram_sub_id",
        "spectrogram_label_offset_seconds", "label_id", "patient_id", "expert_consensus", *VOTES,
    ]
    assert len(train) == 300
    assert train["label_id"].is_unique
    assert set(train["expert_consensus"]) <= {"Seizure", "LPD", "GPD", "LRDA", "GRDA", "Other"}
    assert train["expert_consensus"].nunique() == 6
    assert (train["spectrogram_label_offset_seconds"] >= train["eeg_label_offset_seconds"]).all()
    test = pd.read_csv(dataset / "test.csv")
    assert list(test.columns) == ["spectrogram_id", "eeg_id", "patient_id"]
    sample = pd.read_csv(dataset / "sample_submission.csv")
    assert list(sample.columns) == ["eeg_id", *VOTES]
    assert sample["eeg_id"].tolist() == test["eeg_id"].tolist()
    for split, ids in (("train", train["spectrogram_id"]), ("test", test["spectrogram_id"])):
        assert sorted(p.name for p in (dataset / f"{split}_spectrograms").iterdir()) == sorted(
            f"{i}.parquet" for i in set(ids))


def test_spectrogram_parquet_columns_follow_kaggle_naming(dataset):
    path = next((dataset / "train_spectrograms").iterdir())
    names = pq.read_schema(path).names
    assert len(names) == 401
    assert names[0] == "time"
    assert names[1] == "LL_0.59"
    assert names[-1] == "RP_19.92"
    for name in ("LL_3.13", "LL_15.63", "LL_4.1", "RL_0.59", "LP_0.59", "RP_0.59"):
        assert name in names
    assert "LL_3.12" not in names and "LL_4.10" not in names  # round() and trailing zeros get these wrong
    assert [n.split("_")[0] for n in names[1::100]] == ["LL", "RL", "LP", "RP"]
    time = pq.read_table(path, columns=["time"]).column("time").to_numpy()
    assert np.all(np.diff(time) == 2)


def test_frequency_labels_are_rounded_half_up():
    assert hms._freq_label(0) == "0.59"
    assert hms._freq_label(13) == "3.13"  # 3.125
    assert hms._freq_label(77) == "15.63"  # 15.625
    assert hms._freq_label(18) == "4.1"  # 4.1015625
    assert len(set(hms.SPEC_COLUMNS)) == 400


def test_spectrograms_hold_nans_and_lognormal_power(dataset):
    nan_files, medians = 0, []
    for path in (dataset / "train_spectrograms").iterdir():
        values = pq.read_table(path).drop(["time"]).to_pandas().to_numpy()
        nan_files += int(np.isnan(values).any())
        medians.append(np.nanmedian(values))
    assert nan_files >= 1
    assert np.std(np.log(medians)) > 0.3  # the power scale varies across recordings


def test_labels_nest_patients_recordings_and_offsets(dataset):
    train = pd.read_csv(dataset / "train.csv")
    per_spec = train.groupby("spectrogram_id").size()
    assert per_spec.max() > 1 and per_spec.mean() > 3  # several label rows per recording
    assert (train.groupby("spectrogram_id")["spectrogram_label_offset_seconds"].nunique() == per_spec).all()
    assert (train.groupby("spectrogram_id")["patient_id"].nunique() == 1).all()
    assert (train.groupby("eeg_id")["spectrogram_id"].nunique() == 1).all()
    assert train.groupby("patient_id")["spectrogram_id"].nunique().max() > 1
    assert train["patient_id"].nunique() < train["spectrogram_id"].nunique()
    test = pd.read_csv(dataset / "test.csv")
    assert not set(test["patient_id"]) & set(train["patient_id"])


def test_vote_totals_are_realistic(tmp_path):
    root = tmp_path / "raw"
    hms.generate(root, 1000, 1, seed=1, strength=1.0)  # label rows only matter here; fast enough
    train = pd.read_csv(root / "train.csv")
    totals = train.groupby("eeg_id")[VOTES].first().sum(axis=1)
    assert totals.min() >= 1 and totals.max() <= 28
    assert 0.35 < (totals <= 3).mean() < 0.75
    assert 0.15 < (totals >= 10).mean() < 0.5
    votes = train[VOTES].to_numpy()
    top = np.array(["Seizure", "LPD", "GPD", "LRDA", "GRDA", "Other"])[votes.argmax(axis=1)]
    is_top = votes[np.arange(len(votes)), [hms.CLASSES.index(c) for c in train["expert_consensus"]]] == votes.max(axis=1)
    assert is_top.all()  # consensus is a most-voted class
    assert (top == train["expert_consensus"]).mean() > 0.9
    many = totals >= 10
    agreement = train.groupby("eeg_id")[VOTES].first()[many].max(axis=1) / totals[many]
    assert 0.4 < agreement.mean() < 0.95  # experts disagree, but not at random


def test_generator_is_deterministic_in_seed(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    hms.generate(a, 30, 2, seed=5, strength=1.0)
    hms.generate(b, 30, 2, seed=5, strength=1.0)
    hms.generate(c, 30, 2, seed=6, strength=1.0)
    assert (a / "train.csv").read_bytes() == (b / "train.csv").read_bytes()
    assert (a / "train.csv").read_bytes() != (c / "train.csv").read_bytes()
    for path in (a / "train_spectrograms").iterdir():
        assert pq.read_table(path).to_pandas().equals(pq.read_table(b / "train_spectrograms" / path.name).to_pandas())


def test_strength_scales_the_class_signature():
    rng = np.random.default_rng(0)
    for cls in range(5):  # every class but Other leaves a mark
        weak, _ = hms.class_signature(np.random.default_rng(1), cls, 300, 0.1)
        strong, _ = hms.class_signature(np.random.default_rng(1), cls, 300, 1.0)
        assert np.abs(strong).max() == pytest.approx(10 * np.abs(weak).max())
        assert np.abs(strong).max() > 0.5
    other, _ = hms.class_signature(rng, hms.CLASSES.index("Other"), 300, 1.0)
    assert not other.any()
    _, w = hms.class_signature(np.random.default_rng(2), hms.CLASSES.index("LRDA"), 300, 1.0)
    assert max(w[0], w[2]) > 3 * min(w[1], w[3]) or max(w[1], w[3]) > 3 * min(w[0], w[2])  # one side
    _, w = hms.class_signature(np.random.default_rng(2), hms.CLASSES.index("GRDA"), 300, 1.0)
    assert w.min() > 0.7  # both sides


# ---- reading -----------------------------------------------------------------------------------------
def test_train_table_ids_targets_stratify_group(dataset):
    raw = pd.read_csv(dataset / "train.csv")
    p = make_params()
    table = TASK.read_table(dataset, "train", p)
    assert len(table) == len(raw)
    assert table["id"].map(type).eq(str).all()
    assert set(table["id"]) == set(raw["label_id"].astype(str))
    merged = table.merge(raw.assign(id=raw["label_id"].astype(str)), on="id", suffixes=("", "_raw"))
    votes = merged[[c + "_raw" for c in VOTES]].to_numpy(float)
    np.testing.assert_allclose(merged[VOTES].to_numpy(), votes / votes.sum(1, keepdims=True))
    np.testing.assert_allclose(table[VOTES].sum(axis=1), 1.0)
    assert (merged["stratify"] == merged["expert_consensus"].map(hms.CLASSES.index)).all()
    assert (merged["group"] == merged["patient_id"].astype(str)).all()
    assert (merged["window_start"] == merged["spectrogram_label_offset_seconds"] // 2).all()
    assert table["spectrogram_id"].is_monotonic_increasing  # grouped so each file is read once


def test_rows_and_min_votes_params(dataset):
    raw = pd.read_csv(dataset / "train.csv")
    one = TASK.read_table(dataset, "train", make_params(rows="one_per_spectrogram"))
    assert len(one) == raw["spectrogram_id"].nunique() and one["spectrogram_id"].is_unique
    first = raw.sort_values(["spectrogram_id", "spectrogram_label_offset_seconds"]).groupby("spectrogram_id").first()
    assert set(one["id"]) == set(first["label_id"].astype(str))
    many = TASK.read_table(dataset, "train", make_params(min_votes=10))
    assert len(many) == int((raw[VOTES].sum(axis=1) >= 10).sum()) and 0 < len(many) < len(raw)
    with pytest.raises(FoldwiseError, match="min_votes"):
        make_params(min_votes=0)
    with pytest.raises(FoldwiseError, match="hms.layout"):
        make_params(layout="sideways")


def test_test_table_follows_sample_submission_order(dataset, tmp_path):
    root = tmp_path / "raw"
    shutil.copytree(dataset, root)
    sample = pd.read_csv(root / "sample_submission.csv", dtype={"eeg_id": str})
    sample = sample.iloc[::-1]
    sample.to_csv(root / "sample_submission.csv", index=False)
    table = TASK.read_table(root, "test", make_params())
    assert table["id"].tolist() == sample["eeg_id"].tolist()
    spec_of = pd.read_csv(root / "test.csv", dtype={"eeg_id": str}).set_index("eeg_id")["spectrogram_id"]
    assert table["spectrogram_id"].tolist() == spec_of.loc[table["id"]].tolist()
    assert (table["window_start"] == 0).all()


@pytest.mark.parametrize("layout,channels", [("channels", 4), ("stacked", 1)])
def test_images_are_float32_squares(dataset, layout, channels):
    p = make_params(img_size=40, layout=layout)
    for split in ("train", "test"):
        table, images = preprocess(dataset, split, p)
        assert len(images) == len(table)
        for image in images[:20]:
            assert image.shape == (40, 40, channels) and image.dtype == np.float32
            assert np.isfinite(image).all()
            assert abs(image.mean()) < 0.2 and 0.5 < image.std() < 1.2


def test_each_parquet_is_read_once(dataset, monkeypatch):
    calls = []
    real = hms.load_spectrogram
    monkeypatch.setattr(hms.layout, "load_spectrogram", lambda path: calls.append(path.name) or real(path))
    table, images = preprocess(dataset, "train", make_params())
    assert len(images) == len(table) > len(calls)
    assert len(calls) == len(set(calls)) == table["spectrogram_id"].nunique()


def test_window_recipe_matches_the_seed_recipe(dataset):
    raw = pd.read_csv(dataset / "train.csv")
    row = raw.iloc[len(raw) // 2]
    p = make_params(img_size=48)
    table = TASK.read_table(dataset, "train", p)
    one = table[table["id"] == str(row["label_id"])]
    (image,) = TASK.iter_images(dataset, one, "train", p)
    df = pd.read_parquet(dataset / "train_spectrograms" / f"{row['spectrogram_id']}.parquet")
    start = int(row["spectrogram_label_offset_seconds"] // 2)
    x = df.iloc[start:start + 300, 1:].to_numpy(np.float64)
    x = np.log(np.clip(np.nan_to_num(x, nan=0.0), np.exp(-4), np.exp(8)))
    x = (x - x.mean()) / (x.std() + 1e-6)
    planes = np.stack([x[:, k * 100:(k + 1) * 100].T for k in range(4)], axis=-1).astype(np.float32)  # (freq, time, chain)
    import cv2

    expected = cv2.resize(planes, (48, 48), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(image, expected, atol=1e-4)


def test_log_power_stays_float32_and_clips():
    x = np.array([np.nan, 0.0, 1e-9, 1.0, 1e12], dtype=np.float32)
    out = hms.log_power(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [-4, -4, -4, 0, 8], atol=1e-5)


def test_short_tail_is_padded_but_start_past_end_fails(tmp_path):
    logp = np.zeros((310, 400), np.float32)
    window = hms.spectrogram_window(logp, 100, tmp_path / "1.parquet", "9")
    assert window.shape == (300, 400) and (window[210:] == -4).all() and (window[:210] == 0).all()
    with pytest.raises(FoldwiseError, match=r"1\.parquet: row 9: window starts at row 310"):
        hms.spectrogram_window(logp, 310, tmp_path / "1.parquet", "9")


# ---- bad input -------------------------------------------------------------------------------------
def _first_spectrogram(root: Path) -> tuple[pd.DataFrame, Path]:
    train = pd.read_csv(root / "train.csv")
    return train, root / "train_spectrograms" / f"{train['spectrogram_id'].iloc[0]}.parquet"


def test_missing_spectrogram_fails_naming_the_file(small):
    _, path = _first_spectrogram(small)
    path.unlink()
    with pytest.raises(FoldwiseError, match=f"{path.name}: missing"):
        preprocess(small, "train", make_params())


def test_unreadable_spectrogram_fails_naming_the_file(small):
    _, path = _first_spectrogram(small)
    path.write_bytes(b"not parquet at all")
    with pytest.raises(FoldwiseError, match=f"{path.name}: not a readable parquet file"):
        preprocess(small, "train", make_params())


def test_spectrogram_without_expected_columns_fails(small):
    _, path = _first_spectrogram(small)
    table = pq.read_table(path)
    pq.write_table(table.rename_columns([("LL_3.12" if n == "LL_3.13" else n) for n in table.column_names]), path)
    with pytest.raises(FoldwiseError, match=f"{path.name}: missing 1 spectrogram column.*LL_3.13"):
        preprocess(small, "train", make_params())


def test_test_spectrogram_missing_fails_naming_the_file(small):
    sid = pd.read_csv(small / "test.csv")["spectrogram_id"].iloc[-1]
    (small / "test_spectrograms" / f"{sid}.parquet").unlink()
    with pytest.raises(FoldwiseError, match=f"test_spectrograms/{sid}.parquet: missing"):
        preprocess(small, "test", make_params())


def test_offset_past_the_end_fails_naming_file_and_row(small):
    train, path = _first_spectrogram(small)
    n_rows = pq.read_metadata(path).num_rows
    train.loc[0, "spectrogram_label_offset_seconds"] = 2.0 * n_rows + 10
    train.to_csv(small / "train.csv", index=False)
    label = train["label_id"].iloc[0]
    with pytest.raises(FoldwiseError, match=f"{path.name}: row {label}: window starts at row {n_rows + 5}"):
        preprocess(small, "train", make_params())


def test_all_zero_votes_fail_naming_the_row(small):
    train = pd.read_csv(small / "train.csv")
    train.loc[4, VOTES] = 0
    train.to_csv(small / "train.csv", index=False)
    with pytest.raises(FoldwiseError, match=f"train.csv: all six votes are zero in row 6 \\(label_id '{train['label_id'].iloc[4]}'\\)"):
        TASK.read_table(small, "train", make_params())


def test_missing_patient_id_fails_naming_the_row(small):
    train = pd.read_csv(small / "train.csv")
    train["patient_id"] = train["patient_id"].astype("Int64")
    train.loc[2, "patient_id"] = pd.NA
    train.to_csv(small / "train.csv", index=False)
    with pytest.raises(FoldwiseError, match=f"train.csv: patient_id is empty, got nan in row 4 \\(label_id '{train['label_id'].iloc[2]}'\\)"):
        TASK.read_table(small, "train", make_params())


def test_unknown_consensus_and_missing_test_row_fail(small):
    train = pd.read_csv(small / "train.csv")
    train.loc[1, "expert_consensus"] = "Spike"
    train.to_csv(small / "train.csv", index=False)
    with pytest.raises(FoldwiseError, match="expert_consensus must be one of Seizure, LPD, GPD, LRDA, GRDA, Other, got 'Spike' in row 3"):
        TASK.read_table(small, "train", make_params())
    test = pd.read_csv(small / "test.csv")
    test.iloc[1:].to_csv(small / "test.csv", index=False)
    with pytest.raises(FoldwiseError, match=f"test.csv: no row for eeg_id '{test['eeg_id'].iloc[0]}'"):
        TASK.read_table(small, "test", make_params())


def test_preprocess_stage_reports_one_line_and_leaves_nothing(small, tmp_path, monkeypatch):
    _, path = _first_spectrogram(small)
    path.unlink()
    work = tmp_path / "work"
    work.mkdir()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.update(task="hms", img_size=32)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("FOLDWISE_DEBUG", None)
    proc = subprocess.run(
        [str(Path(os.sys.executable)), "-m", "foldwise.stages.preprocess", "--raw", str(small), "--out", "prepared"],
        cwd=work, env=env, capture_output=True, text=True,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("foldwise preprocess: error: ") and path.name in lines[-1]
    assert "Traceback" not in proc.stderr
    assert not (work / "prepared").exists() and [p.name for p in work.iterdir()] == ["params.yaml"]


# ---- metric, loss, predict, submission ------------------------------------------------------------
def kaggle_score(solution: pd.DataFrame, submission: pd.DataFrame, epsilon: float = 10**-15) -> float:
    """Independent re-implementation of the competition's scorer (kl_divergence, micro average)."""
    solution = solution.copy()
    submission = submission.copy()
    solution = solution.div(solution.sum(axis=1), axis=0)  # the solution holds normalised votes
    for col in solution.columns:
        solution[col] = solution[col].astype(float)
        submission[col] = np.clip(submission[col], epsilon, 1 - epsilon)
        nonzero = solution[col] != 0
        solution.loc[nonzero, col] = solution.loc[nonzero, col] * np.log(
            solution.loc[nonzero, col] / submission.loc[nonzero, col])
        solution.loc[~nonzero, col] = 0
    return float(np.average(solution.sum(axis=1)))


def test_kl_matches_independent_kaggle_scorer():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(1, 60))
        votes = rng.integers(0, 5, size=(n, 6)).astype(float)
        votes[rng.random((n, 6)) < 0.4] = 0  # many zero cells
        votes[votes.sum(1) == 0, int(rng.integers(6))] = 1
        preds = rng.dirichlet(np.ones(6) * 0.5, size=n)
        preds[rng.random((n, 6)) < 0.05] = 0.0  # clipped to 1e-15
        if trial % 3 == 0:
            preds = preds * rng.uniform(0.5, 1.5, size=(n, 1))  # not renormalised by the scorer
        expected = kaggle_score(pd.DataFrame(votes, columns=VOTES), pd.DataFrame(preds, columns=VOTES))
        fractions = votes / votes.sum(1, keepdims=True)
        assert TASK.metric(fractions, preds) == pytest.approx(expected, rel=0, abs=1e-9)
        assert TASK.metric(votes, preds) == pytest.approx(expected, rel=0, abs=1e-9)


def test_kl_known_values():
    y = np.array([[1, 0, 0, 0, 0, 0], [0.5, 0.5, 0, 0, 0, 0]], float)
    uniform = np.full((2, 6), 1 / 6)
    assert TASK.metric(y, uniform) == pytest.approx((np.log(6) + np.log(3)) / 2)
    assert TASK.metric(y, y) == pytest.approx(0.0, abs=1e-12)
    zero = np.zeros((2, 6))
    assert TASK.metric(y, zero) == pytest.approx((-np.log(1e-15) + 0.5 * np.log(0.5 / 1e-15) * 2) / 2)
    assert TASK.metric_name == "kl" and TASK.greater_is_better is False
    assert TASK.is_better(0.5, 0.6) and not TASK.is_better(0.7, 0.6)


def test_loss_equals_torch_kldiv_batchmean():
    p = make_params()
    logits = torch.tensor([[0.0, 0, 0, 0, 0, 0], [2.0, -1, 0.5, 0, 1, -3], [0.1, 0.2, 0.3, -0.4, 5, 0]])
    targets = torch.tensor([[1.0, 0, 0, 0, 0, 0], [0.25, 0.25, 0, 0, 0.5, 0], [0, 0, 0, 0, 1 / 3, 2 / 3]])
    loss = TASK.loss(p)(logits, targets)
    reference = torch.nn.KLDivLoss(reduction="batchmean")(torch.log_softmax(logits, dim=1), targets)
    assert loss.item() == pytest.approx(reference.item(), abs=1e-6)
    assert TASK.loss(p)(logits[:1], targets[:1]).item() == pytest.approx(np.log(6), abs=1e-6)
    probs = TASK.logits_to_probs(logits, p)
    assert loss.item() == pytest.approx(TASK.metric(targets.numpy(), probs.numpy()), abs=1e-5)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(3))
    assert (probs >= 0).all() and probs.shape == (3, 6)
    logits.requires_grad_(True)
    TASK.loss(p)(logits, targets).backward()
    assert torch.isfinite(logits.grad).all()


def test_submission_fills_sample_and_checks_probabilities(dataset):
    sample = pd.read_csv(dataset / "sample_submission.csv", dtype={"eeg_id": str})
    rng = np.random.default_rng(1)
    preds = pd.DataFrame(rng.dirichlet(np.ones(6), size=len(sample)), columns=VOTES)
    preds.insert(0, "id", sample["eeg_id"].to_numpy())
    sub = TASK.submission(sample, preds.iloc[::-1])
    assert sub["eeg_id"].tolist() == sample["eeg_id"].tolist() and list(sub.columns) == list(sample.columns)
    np.testing.assert_allclose(sub[VOTES].sum(axis=1), 1.0)
    bad = preds.copy()
    bad.loc[0, "seizure_vote"] += 0.1
    with pytest.raises(FoldwiseError, match="sums to"):
        TASK.submission(sample, bad)
    bad = preds.copy()
    bad.loc[0, VOTES] = [1.5, -0.5, 0, 0, 0, 0]
    with pytest.raises(FoldwiseError, match=r"\[0, 1\]"):
        TASK.submission(sample, bad)


def test_oof_plot_points_are_consensus_and_predicted_classes():
    y = np.array([[3, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 2], [0, 1, 0, 0, 0, 0]], float)
    p = np.array([[0.1, 0.5, 0.1, 0.1, 0.1, 0.1], [0, 0, 0, 0, 0.2, 0.8], [0, 0.9, 0, 0, 0, 0.1]])
    assert TASK.oof_plot(y, p) == [{"x": "Seizure", "y": "LPD"}, {"x": "Other", "y": "Other"},
                                   {"x": "LPD", "y": "LPD"}]
    assert (REPO / ".dvc/plots/hms.json").is_file()


# ---- end to end ------------------------------------------------------------------------------------
@pytest.mark.e2e
def test_dvc_repro_end_to_end(tiny_repo):
    work = tiny_repo({"task": "hms", "img_size": 64, "synthetic": {"n_train": 120, "n_test": 12}})
    run(["dvc", "repro"], work)

    sample = pd.read_csv(work / "data/raw/sample_submission.csv", dtype={"eeg_id": str})
    sub = pd.read_csv(work / "data/submission.csv", dtype={"eeg_id": str})
    assert list(sub.columns) == list(sample.columns)
    assert sub["eeg_id"].tolist() == sample["eeg_id"].tolist()
    values = sub[VOTES].to_numpy()
    assert ((values >= 0) & (values <= 1)).all()
    np.testing.assert_allclose(values.sum(axis=1), 1.0, atol=1e-5)
    metrics = json.loads((work / "metrics/oof/metrics.json").read_text())
    assert np.isfinite(metrics["cv"]["kl"]) and metrics["cv"]["kl"] > 0
    train_metrics = json.loads((work / "metrics/train/fold_0/metrics.json").read_text())
    assert "kl" in train_metrics["val"]
    points = json.loads((work / "metrics/oof/plots/custom/oof.json").read_text())
    assert len(points) == len(pd.read_csv(work / "data/oof.csv"))
    assert {pt["x"] for pt in points} <= set(hms.CLASSES)
    folds = pd.read_csv(work / "data/folds.csv", dtype={"id": str})
    prepared = pd.read_csv(work / "data/prepared/train.csv", dtype={"id": str, "group": str})
    merged = prepared.merge(folds, on="id")
    assert (merged.groupby("group")["fold"].nunique() == 1).all()  # patients never straddle folds
