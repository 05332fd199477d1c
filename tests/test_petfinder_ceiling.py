"""benchmarks/petfinder_ceiling.py's pieces: the conditional-mean floor and the replay of the
simulator's hidden draws that its model figures rest on."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import petfinder_ceiling  # noqa: E402
from foldwise.tasks.petfinder import synthetic  # noqa: E402


def test_conditional_mean_floor_is_the_noise_left_once_the_known_part_is_used():
    rng = np.random.default_rng(0)
    known = rng.standard_normal(200_000)
    score = 3.0 * np.tanh(known) + rng.normal(0, 2.0, known.size)
    assert abs(petfinder_ceiling.conditional_mean_rmse(known, score) - 2.0) < 0.03
    unrelated = rng.standard_normal(known.size)
    assert abs(petfinder_ceiling.conditional_mean_rmse(unrelated, score) - score.std()) < 0.03


def test_replayed_draws_give_the_scores_generate_wrote(tmp_path):
    synthetic.generate(tmp_path, 12, 1, 7, 1.0)
    written = pd.read_csv(tmp_path / "train.csv", dtype={"Id": str})
    flags, tone, score = petfinder_ceiling.replay_train_draws(12, 7)
    np.testing.assert_array_equal(score, written["Pawpularity"].to_numpy(float))
    pd.testing.assert_frame_equal(flags, written[flags.columns.tolist()], check_dtype=False)
    assert tone.shape == (12,) and np.unique(tone).size == 12


def test_knowing_less_of_the_tone_raises_the_floor():
    floors = petfinder_ceiling.simulator_floors(200_000, 0)
    assert 11.5 < floors["floor given z"] < floors["floor given the fur's red channel"] < 15.0
