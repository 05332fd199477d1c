"""How low can RMSE go on synthetic PetFinder? Floors of the simulator and of models that see its hidden tone.

    python benchmarks/petfinder_ceiling.py [--draws 1000000] [--n-train 1500] [--seed 42]

The simulator (foldwise/tasks/petfinder/synthetic.py) draws a hidden tone z per photo, scores it
from 0.8 z, weak flag effects and noise, and paints the fur with the colour of Phi(z), plus
per-photo colour noise and an exposure gain. This prints:

- floor given z: RMSE of the best possible predictor E[score | z] (``--draws`` simulator draws,
  z binned into 400 quantiles), the error no model can beat;
- floor given the fur's red channel: the same, when only the drawn fur colour's red value is known
  (colour noise sd 6, exposure gain 0.9-1.1), what a perfect reader of that channel is left with;
- on the default data (``--n-train`` photos, ``--seed``), 5-fold CV (scikit-learn's KFold, not the
  split stage's folds) of gradient boosting fitted to the scores from (a) the hidden z and the flags,
  (b) the flags and a tone read from each photo's 6x6x6 RGB histogram (48 px) by gradient boosting
  fitted to the hidden z, which no real task provides, and (c) the histogram and the flags directly.

(a) and (b) use the hidden tone, so they bound what an image model trained on the scores alone can
reach with this many photos; docs/benchmarks.md compares them with the default run.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import KFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from foldwise.tasks.common.imagefolder import read_rgb, resize_square  # noqa: E402
from foldwise.tasks.petfinder import synthetic  # noqa: E402
from foldwise.tasks.petfinder.task import TASK  # noqa: E402

HIST_BINS = 6  # per channel of the colour histogram
HIST_SIZE = 48  # px, the default run's image size


def conditional_mean_rmse(known: np.ndarray, score: np.ndarray, n_bins: int = 400) -> float:
    """RMSE of E[score | known], the conditional mean taken per quantile bin of ``known``."""
    edges = np.quantile(known, np.linspace(0, 1, n_bins + 1))
    bins = np.clip(np.searchsorted(edges, known) - 1, 0, n_bins - 1)
    means = np.bincount(bins, score) / np.bincount(bins)
    return float(np.sqrt(np.mean((score - means[bins]) ** 2)))


def simulator_floors(draws: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    _, tone, score = synthetic.draw_labels(rng, draws, 1.0)
    score = score.astype(float)
    red = synthetic.fur_colour(norm.cdf(tone)[:, None])[:, 0]
    seen_red = (red + rng.normal(0, synthetic.FUR_NOISE_SD, draws)) * rng.uniform(*synthetic.EXPOSURE_GAIN, draws)
    return {"floor given z": conditional_mean_rmse(tone, score),
            "floor given the fur's red channel": conditional_mean_rmse(seen_red, score)}


def colour_histograms(root: Path, ids: pd.Series) -> np.ndarray:
    """(N, 216) share of each photo's 48 px pixels in each 6x6x6 RGB bin."""
    rows = []
    for pid in ids:
        rgb = np.asarray(resize_square(read_rgb(root / "train" / f"{pid}.jpg", pid, HIST_SIZE), HIST_SIZE, "squash"))
        cell = (rgb.astype(np.int64) * HIST_BINS) // 256
        index = (cell[..., 0] * HIST_BINS + cell[..., 1]) * HIST_BINS + cell[..., 2]
        rows.append(np.bincount(index.ravel(), minlength=HIST_BINS ** 3) / index.size)
    return np.stack(rows)


def cv_predict(x: np.ndarray, y: np.ndarray, folds: KFold, **kwargs) -> np.ndarray:
    pred = np.zeros(len(y))
    for train, val in folds.split(x):
        pred[val] = HistGradientBoostingRegressor(random_state=0, **kwargs).fit(x[train], y[train]).predict(x[val])
    return pred


def replay_train_draws(n_train: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """generate()'s draws for the train split: (flags, hidden tone z, score), in its order."""
    flags, tone, score = synthetic.draw_labels(
        np.random.default_rng((seed, synthetic.SPLIT_STREAMS["train"])), n_train, 1.0)
    return flags, tone, score.astype(float)


def default_data_models(n_train: int, seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="foldwise-petfinder-") as tmp:
        root = Path(tmp)
        synthetic.generate(root, n_train, 1, seed, 1.0)
        table = pd.read_csv(root / "train.csv", dtype={"Id": str})
        hist = colour_histograms(root, table["Id"])
    flags, tone, replayed = replay_train_draws(n_train, seed)
    score = table["Pawpularity"].to_numpy(float)
    if not np.array_equal(replayed, score):
        raise RuntimeError("synthetic.generate no longer draws flags, tone and score in the order replayed here")
    flags = flags.to_numpy(float)
    folds = KFold(5, shuffle=True, random_state=0)
    small = {"max_iter": 200, "learning_rate": 0.05, "max_depth": 3}
    rmse = lambda pred: TASK.metric(score, pred)  # noqa: E731
    tone_read = cv_predict(hist, tone, folds, max_iter=300, learning_rate=0.05)
    return {
        "(a) hidden z + flags": rmse(cv_predict(np.c_[tone, flags], score, folds, **small)),
        "(b) tone read from the histogram (fitted to the hidden z) + flags": rmse(
            cv_predict(np.c_[tone_read, flags], score, folds, **small)),
        "    R^2 of that tone reading": float(1 - np.mean((tone_read - tone) ** 2) / tone.var()),
        "(c) histogram + flags, fitted to the scores": rmse(
            cv_predict(np.c_[hist, flags], score, folds, max_iter=300, learning_rate=0.05, max_depth=3)),
        "constant (the score's sd)": float(score.std()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=1_000_000)
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    print(f"simulator, {args.draws} draws:")
    for name, value in simulator_floors(args.draws, 0).items():
        print(f"  {name:66} {value:7.2f}")
    print(f"default data ({args.n_train} photos, seed {args.seed}), 5-fold CV RMSE:")
    for name, value in default_data_models(args.n_train, args.seed).items():
        print(f"  {name:66} {value:7.2f}")


if __name__ == "__main__":
    main()
