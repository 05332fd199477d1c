import re

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from foldwise.core.errors import FoldwiseError
from foldwise.stages.params import parse_params
from foldwise.tasks.seti import (CADENCE_SHAPE, ON_FRAMES, TASK, cadence_to_image, load_cadence,
                                 synthetic_cadence)
from test_params import base


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("seti_raw")
    TASK.generate(root, n_train=60, n_test=10, seed=7, strength=1.0)
    return root


def test_generator_writes_the_kaggle_layout(raw):
    labels = pd.read_csv(raw / "train_labels.csv", dtype={"id": str})
    sample = pd.read_csv(raw / "sample_submission.csv", dtype={"id": str})
    assert list(labels.columns) == ["id", "target"] and len(labels) == 60
    assert list(sample.columns) == ["id", "target"] and len(sample) == 10
    assert (sample["target"] == 0.5).all()
    assert set(labels["target"]) <= {0, 1}
    for cid in list(labels["id"]) + list(sample["id"]):
        assert re.fullmatch(r"[0-9a-f]{15}", cid)
    for split, ids in (("train", labels["id"]), ("test", sample["id"])):
        for cid in ids:
            arr = np.load(raw / split / cid[0] / f"{cid}.npy")
            assert arr.dtype == np.float16 and arr.shape == CADENCE_SHAPE
    assert len(set(labels["id"]) | set(sample["id"])) == 70
    TASK.check_layout(raw)


def test_generator_is_deterministic_in_seed(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for root, seed in ((a, 3), (b, 3), (c, 4)):
        TASK.generate(root, n_train=20, n_test=2, seed=seed, strength=1.0)
    assert (a / "train_labels.csv").read_bytes() == (b / "train_labels.csv").read_bytes()
    ids = pd.read_csv(a / "train_labels.csv", dtype={"id": str})["id"]
    assert (a / "train" / ids[0][0] / f"{ids[0]}.npy").read_bytes() == (b / "train" / ids[0][0] / f"{ids[0]}.npy").read_bytes()
    assert (a / "train_labels.csv").read_bytes() != (c / "train_labels.csv").read_bytes()


def test_frames_are_normalised():
    cadence = synthetic_cadence(np.random.default_rng(0), positive=True).astype(np.float32)
    assert np.allclose(cadence.mean(axis=(1, 2)), 0, atol=1e-2)
    assert np.allclose(cadence.std(axis=(1, 2)), 1, atol=1e-2)


def test_needle_is_only_in_on_frames():
    # Same noise and interference draws with and without the needle: the difference is the needle.
    diffs = []
    for seed in range(8):
        pos = synthetic_cadence(np.random.default_rng(seed), positive=True).astype(np.float32)
        neg = synthetic_cadence(np.random.default_rng(seed), positive=False).astype(np.float32)
        diffs.append(np.abs(pos - neg).max(axis=(1, 2)))
    diffs = np.array(diffs)  # (seeds, 6): largest change per frame
    off = [k for k in range(6) if k not in ON_FRAMES]
    assert (diffs[:, list(ON_FRAMES)] > 0.5).all()
    # OFF frames only change through the per-frame normalisation, never by a line
    assert (diffs[:, off] < 0.05).all()


def test_needle_path_continues_through_off_frames():
    pos = synthetic_cadence(np.random.default_rng(11), positive=True).astype(np.float32)
    neg = synthetic_cadence(np.random.default_rng(11), positive=False).astype(np.float32)
    centre = np.abs(pos - neg).argmax(axis=2)  # frequency of the needle per time row
    end_of_0, start_of_2 = centre[0, -1], centre[2, 0]
    drift_per_row = (centre[0, -1] - centre[0, 0]) / 272
    # the jump across the OFF frame 1 (273 rows) matches the drift, it does not restart
    assert abs((start_of_2 - end_of_0) - drift_per_row * 274) <= 6


def test_interference_appears_in_negatives_in_every_frame():
    with_lines = 0
    for seed in range(40):
        neg = synthetic_cadence(np.random.default_rng(seed), positive=False).astype(np.float32)
        band_power = neg.mean(axis=1)  # (6, 256): a narrow line stands out in the time-average
        if (band_power.max(axis=1) > 1.0).all():
            with_lines += 1
    assert 8 <= with_lines <= 32


def test_vertical_and_channel_stacks():
    cadence = synthetic_cadence(np.random.default_rng(1), positive=True)
    vertical = cadence_to_image(cadence, "vertical", 64)
    channels = cadence_to_image(cadence[list(ON_FRAMES)], "channels", 64)
    assert vertical.shape == (64, 64, 1) and vertical.dtype == np.float32
    assert channels.shape == (64, 64, 3) and channels.dtype == np.float32
    every_frame = cadence_to_image(cadence, "channels", 64)  # 6 channels: more than cv2.resize takes at once
    assert every_frame.shape == (64, 64, 6)
    assert np.array_equal(every_frame[..., list(ON_FRAMES)], channels)


@pytest.mark.parametrize("arr, message", [
    (np.zeros((6, 273, 255), np.float16), "expected float16 array of shape"),
    (np.zeros((6, 273, 256), np.int16), "expected float16 array of shape"),
    (np.full((6, 273, 256), np.nan, np.float16), "NaN or infinite"),
])
def test_bad_cadence_files(tmp_path, arr, message):
    path = tmp_path / "x.npy"
    np.save(path, arr)
    with pytest.raises(FoldwiseError, match=message):
        load_cadence(path)


def test_corrupt_npy(tmp_path):
    path = tmp_path / "x.npy"
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(FoldwiseError, match="not a readable .npy"):
        load_cadence(path)


def test_labels_out_of_range(tmp_path):
    TASK.generate(tmp_path, n_train=20, n_test=2, seed=1, strength=1.0)
    labels = pd.read_csv(tmp_path / "train_labels.csv", dtype={"id": str})
    labels.loc[3, "target"] = 2
    labels.to_csv(tmp_path / "train_labels.csv", index=False)
    with pytest.raises(FoldwiseError, match=r"train_labels.csv: target must be 0 or 1, got 2"):
        TASK.read_table(tmp_path, "train", parse_params(base()))


def test_metric_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = rng.random(200)
    assert TASK.metric(y[:, None], p[:, None]) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    with pytest.raises(FoldwiseError, match="one class"):
        TASK.metric(np.zeros((5, 1)), p[:5, None])


def test_oof_plot_is_the_roc_curve():
    y = np.array([0, 0, 1, 1])[:, None]
    points = TASK.oof_plot(y, np.array([0.1, 0.6, 0.4, 0.9])[:, None])
    assert points[0] == {"x": 0.0, "y": 0.0} and points[-1] == {"x": 1.0, "y": 1.0}
    assert {"x": 0.5, "y": 0.5} in points  # threshold 0.6: one of two negatives, one of two positives


def test_label_smoothing_and_pos_weight_in_loss():
    p = parse_params(base())
    logits, targets = torch.tensor([[0.3], [-1.2]]), torch.tensor([[1.0], [0.0]])
    plain = TASK.loss(p)(logits, targets)
    assert plain == pytest.approx(torch.nn.functional.binary_cross_entropy_with_logits(logits, targets).item())
    raw = base()
    raw["train"].update(label_smoothing=0.1, pos_weight=3.0)
    smoothed = TASK.loss(parse_params(raw))(logits, targets)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, targets * 0.9 + 0.05, pos_weight=torch.tensor([3.0]))
    assert smoothed.item() == pytest.approx(expected.item())


def test_submission_keeps_sample_ids_order_and_validates():
    sample = pd.DataFrame({"id": ["b", "a", "c"], "target": 0.5})
    preds = pd.DataFrame({"id": ["a", "b", "c"], "target": [0.1, 0.2, 0.3]})
    sub = TASK.submission(sample, preds)
    assert list(sub["id"]) == ["b", "a", "c"] and list(sub["target"]) == [0.2, 0.1, 0.3]
    with pytest.raises(FoldwiseError, match="lack 1 id"):
        TASK.submission(sample, preds.iloc[:2])
    with pytest.raises(FoldwiseError, match=r"\[0, 1\]"):
        TASK.submission(sample, preds.assign(target=[0.1, 1.5, 0.3]))
    with pytest.raises(FoldwiseError, match="NaN"):
        TASK.submission(sample, preds.assign(target=[0.1, np.nan, 0.3]))
