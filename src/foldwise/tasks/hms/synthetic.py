"""HMS's simulator: synthetic spectrograms and expert votes in the competition's layout.

See the package docstring for how ``n_train`` and ``n_test`` map to files and what each class looks like.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .layout import (CHAINS, CLASSES, FREQS, LEFT, N_FREQ, RIGHT, SECONDS_PER_ROW, SPEC_COLUMNS, TEST_COLUMNS,
                     TRAIN_COLUMNS, VOTE_COLUMNS, WINDOW_ROWS)

NOISE_SIGMA = 0.6  # per-cell log-power noise of the synthetic spectrograms
SEIZURE_GAIN, PD_GAIN, RDA_GAIN = 2.0, 1.5, 2.2  # peak added log power of each signature at strength 1

CLASS_PRIOR = np.array([0.20, 0.14, 0.16, 0.16, 0.17, 0.17])
# Where experts disagree, the other votes go (rows: latent class; columns: CLASSES order).
CONFUSION = np.array([
    [0.00, 0.25, 0.15, 0.15, 0.10, 0.35],  # Seizure
    [0.20, 0.00, 0.35, 0.15, 0.05, 0.25],  # LPD
    [0.15, 0.35, 0.00, 0.05, 0.15, 0.30],  # GPD
    [0.15, 0.15, 0.05, 0.00, 0.35, 0.30],  # LRDA
    [0.10, 0.05, 0.15, 0.35, 0.00, 0.35],  # GRDA
    [0.20, 0.20, 0.15, 0.25, 0.20, 0.00],  # Other
])
CONFUSION = CONFUSION / CONFUSION.sum(axis=1, keepdims=True)


def _unique_ids(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    ids = np.unique(rng.integers(lo, hi, size=n + 16))
    while len(ids) < n:
        ids = np.unique(np.concatenate([ids, rng.integers(lo, hi, size=n)]))
    return rng.permutation(ids)[:n]


def vote_total(rng: np.random.Generator) -> int:
    """Experts per label: mostly 1-3, some 4-9, about a third 10-28 (the real mix)."""
    u = rng.random()
    if u < 0.55:
        return int(rng.choice([1, 2, 3], p=[0.35, 0.25, 0.40]))
    if u < 0.65:
        return int(rng.integers(4, 10))
    return int(rng.integers(10, 29))


def draw_votes(rng: np.random.Generator, cls: int, quality: float, strength: float) -> np.ndarray:
    """Six vote counts: multinomial over agreement * one-hot(cls) + (1 - agreement) * confusion row.
    Agreement grows with how visible the signature is (quality * strength)."""
    agreement = 0.3 + 0.65 * (1.0 - np.exp(-2.5 * strength * quality))
    p = agreement * np.eye(len(CLASSES))[cls] + (1.0 - agreement) * CONFUSION[cls]
    return rng.multinomial(vote_total(rng), p / p.sum())


def _consensus(votes: np.ndarray, cls: int) -> str:
    top = np.flatnonzero(votes == votes.max())
    return CLASSES[cls if cls in top else int(top[0])]


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = hi - lo
    y = np.mod(x - lo, 2 * span)
    return lo + np.where(y > span, 2 * span - y, y)


def class_signature(rng: np.random.Generator, cls: int, n_rows: int, amp: float) -> tuple[np.ndarray, np.ndarray]:
    """Added log power (n_rows, 100) of a latent class and its weight per chain (4,).

    Seizure: an evolving 3-8 Hz rhythm (drifting ridge plus harmonic), both sides unevenly.
    LPD / GPD: periodic discharges (harmonic comb of a 0.5-2 Hz discharge rate over a broadband
    rise, pulsing in time) on one side / both sides. LRDA / GRDA: intermittent 1-3 Hz delta on one
    side / both sides. Other: nothing (the 1/f background only).
    """
    t = np.arange(n_rows)[:, None].astype(np.float64)
    f = FREQS[None, :]
    weights = np.ones(len(CHAINS))
    side = LEFT if rng.random() < 0.5 else RIGHT
    other = RIGHT if side == LEFT else LEFT
    name = CLASSES[cls]
    if name == "Seizure":
        centre = _reflect(rng.uniform(3, 8) + rng.uniform(-4, 4) * t / WINDOW_ROWS, 3.0, 8.0)
        envelope = 0.75 + 0.25 * np.sin(2 * np.pi * t / rng.uniform(60, 200) + rng.uniform(0, 2 * np.pi))
        effect = amp * SEIZURE_GAIN * envelope * (np.exp(-0.5 * ((f - centre) / 0.5) ** 2)
                                         + 0.4 * np.exp(-0.5 * ((f - 2 * centre) / 0.6) ** 2))
        weights[list(side)] = 1.0
        weights[list(other)] = rng.uniform(0.4, 1.0)
    elif name in ("LPD", "GPD"):
        rate = rng.uniform(0.5, 2.0)
        harmonics = np.arange(1, int(20 / rate) + 1)[:, None, None]
        comb = (0.8 ** (harmonics - 1) * np.exp(-0.5 * ((f - harmonics * rate) / 0.25) ** 2)).sum(axis=0)
        pulse = 0.6 + 0.4 * np.cos(2 * np.pi * t / rng.uniform(10, 30) + rng.uniform(0, 2 * np.pi))
        effect = amp * PD_GAIN * pulse * (comb + 0.5)
        if name == "LPD":
            weights[list(other)] = 0.15
    elif name in ("LRDA", "GRDA"):
        centre = rng.uniform(1.0, 3.0)
        bump = np.exp(-0.5 * ((f - centre) / 0.4) ** 2) + 0.3 * np.exp(-0.5 * ((f - 2 * centre) / 0.5) ** 2)
        gate = 0.55 + 0.45 * np.sin(2 * np.pi * t / rng.uniform(20, 60) + rng.uniform(0, 2 * np.pi))
        effect = amp * RDA_GAIN * gate * bump
        if name == "LRDA":
            weights[list(other)] = 0.15
    else:
        effect = np.zeros((n_rows, N_FREQ))
    return effect, weights * rng.uniform(0.8, 1.0, size=len(CHAINS))


def synthetic_recording(rng: np.random.Generator, segments: list[tuple[int, int, float, int]],
                        strength: float) -> np.ndarray:
    """Power (rows, 400) float32 of one recording made of ``segments`` (gap_rows, rows, quality, cls).

    Background per recording: lognormal power scale, 1/f^alpha spectrum, per-cell
    multiplicative noise (log-normal, sigma 0.6); sometimes a posterior alpha rhythm or broadband artifact rows; a few NaN
    cells, rows or chain stretches.
    """
    n_rows = sum(gap + rows for gap, rows, _, _ in segments)
    scale = rng.normal(3.0, 0.8)
    alpha = rng.uniform(0.8, 1.8)
    logp = np.empty((n_rows, len(CHAINS), N_FREQ))
    logp[:] = (scale + rng.normal(0, 0.15, size=len(CHAINS)))[None, :, None] - alpha * np.log(FREQS)[None, None, :]
    if rng.random() < 0.3:  # posterior alpha rhythm on LP and RP
        bump = rng.uniform(0.4, 1.0) * np.exp(-0.5 * ((FREQS - rng.uniform(8.5, 11)) / 0.7) ** 2)
        logp[:, [2, 3], :] += bump
    row = 0
    for gap, rows, quality, cls in segments:
        row += gap
        effect, weights = class_signature(rng, cls, rows, strength * quality)
        logp[row:row + rows] += weights[None, :, None] * effect[:, None, :]
        row += rows
    if rng.random() < 0.4:  # broadband artifacts (movement, muscle) in a few rows, both sides
        hit = rng.integers(0, n_rows, size=rng.integers(1, 6))
        logp[hit] += rng.uniform(0.5, 2.0)
    logp = logp.astype(np.float32)
    logp += rng.standard_normal(size=logp.shape, dtype=np.float32) * np.float32(NOISE_SIGMA)
    return np.exp(logp).reshape(n_rows, -1)


def add_nans(rng: np.random.Generator, power: np.ndarray, force: bool = False) -> None:
    """Real files have missing values: a few whole rows, a chain for a stretch, scattered cells."""
    n = len(power)
    if force or rng.random() < 0.4:
        power[rng.integers(0, n, size=rng.integers(1, 4))] = np.nan
    if rng.random() < 0.15:
        chain = rng.integers(0, len(CHAINS))
        start = rng.integers(0, n)
        power[start:start + rng.integers(5, 40), chain * N_FREQ:(chain + 1) * N_FREQ] = np.nan
    if force or rng.random() < 0.3:
        power[rng.integers(0, n, size=10), rng.integers(0, power.shape[1], size=10)] = np.nan


def write_spectrogram(path: Path, power: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    time = (np.arange(len(power)) * SECONDS_PER_ROW + 1).astype(np.float64)
    columns = np.ascontiguousarray(power.T)
    table = pa.Table.from_arrays([pa.array(time)] + [pa.array(c) for c in columns], names=["time", *SPEC_COLUMNS])
    pq.write_table(table, path, use_dictionary=False, write_statistics=False)


def plan_train(rng: np.random.Generator, n_train: int) -> list[dict]:
    """Patients -> spectrograms -> EEGs -> label-row counts, cut so there are exactly n_train rows."""
    spectrograms, total, patient = [], 0, 0
    while total < n_train:
        for _ in range(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15])):
            eegs = []
            for _ in range(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2])):
                n_sub = min(1 + int(rng.poisson(5.0)), n_train - total)
                if n_sub <= 0:
                    break
                eegs.append(n_sub)
                total += n_sub
            if eegs:
                spectrograms.append({"patient": patient, "eegs": eegs})
        patient += 1
    return spectrograms


def generate(root: Path, n_train: int, n_test: int, seed: int, strength: float) -> None:
    """Write the synthetic competition (see the module docstring for how n_train maps to files)."""
    root = Path(root)
    (root / "train_spectrograms").mkdir(parents=True, exist_ok=True)
    (root / "test_spectrograms").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng((seed, 0))
    plan = plan_train(rng, n_train)
    n_patients = plan[-1]["patient"] + 1 + n_test
    n_eegs = sum(len(s["eegs"]) for s in plan) + n_test
    patient_ids = _unique_ids(rng, n_patients, 10_000, 70_000)
    eeg_ids = _unique_ids(rng, n_eegs, 10**8, 2**31 - 1)
    spec_ids = _unique_ids(rng, len(plan) + n_test, 10**6, 2**31 - 1)
    label_ids = _unique_ids(rng, n_train, 10**6, 2**32 - 1)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:  # parquet writing releases the GIL
        writes = []
        rows, eeg_k = _generate_train(root, plan, seed, strength, patient_ids, eeg_ids, spec_ids, label_ids,
                                      pool, writes)
        test = _generate_test(root, n_test, seed, strength, plan, patient_ids, eeg_ids[eeg_k:], spec_ids,
                              pool, writes)
        for w in writes:
            w.result()
    pd.DataFrame(rows, columns=TRAIN_COLUMNS).to_csv(root / "train.csv", index=False)
    test.to_csv(root / "test.csv", index=False)
    sample = pd.DataFrame({"eeg_id": test["eeg_id"]})
    for col in VOTE_COLUMNS:
        sample[col] = 1.0 / len(VOTE_COLUMNS)
    sample.to_csv(root / "sample_submission.csv", index=False)


def _generate_train(root, plan, seed, strength, patient_ids, eeg_ids, spec_ids, label_ids, pool, writes):
    rows, eeg_k, label_k = [], 0, 0
    for s, spec in enumerate(plan):
        r = np.random.default_rng((seed, 1, s))
        segments, row = [], 0
        spec_sub = 0
        for n_sub in spec["eegs"]:
            cls = int(r.choice(len(CLASSES), p=CLASS_PRIOR))
            quality = r.uniform(0.15, 1.0)
            offsets = np.concatenate([[0], np.cumsum(r.integers(1, 21, size=n_sub - 1))])  # rows, 2-40 s apart
            gap = int(r.integers(0, 30))
            seg_rows = int(offsets[-1]) + WINDOW_ROWS
            start = row + gap
            votes = draw_votes(r, cls, quality, strength)
            consensus = _consensus(votes, cls)
            for j, off in enumerate(offsets):
                rows.append({
                    "eeg_id": eeg_ids[eeg_k], "eeg_sub_id": j,
                    "eeg_label_offset_seconds": float(off * SECONDS_PER_ROW),
                    "spectrogram_id": spec_ids[s], "spectrogram_sub_id": spec_sub,
                    "spectrogram_label_offset_seconds": float((start + off) * SECONDS_PER_ROW),
                    "label_id": label_ids[label_k], "patient_id": patient_ids[spec["patient"]],
                    "expert_consensus": consensus, **dict(zip(VOTE_COLUMNS, votes.tolist())),
                })
                spec_sub += 1
                label_k += 1
            segments.append((gap, seg_rows, quality, cls))
            row = start + seg_rows
            eeg_k += 1
        power = synthetic_recording(r, segments, strength)
        add_nans(r, power, force=s == 0)
        writes.append(pool.submit(write_spectrogram, root / "train_spectrograms" / f"{spec_ids[s]}.parquet", power))
        _throttle(writes)
    return rows, eeg_k


def _throttle(writes: list, most: int = 4) -> None:
    """Wait for older writes so at most ``most`` recordings are held in memory."""
    while sum(not w.done() for w in writes) > most:
        next(w for w in writes if not w.done()).result()


def _generate_test(root, n_test, seed, strength, plan, patient_ids, eeg_ids, spec_ids, pool, writes):
    test_rows = []
    for i in range(n_test):
        r = np.random.default_rng((seed, 2, i))
        cls = int(r.choice(len(CLASSES), p=CLASS_PRIOR))
        power = synthetic_recording(r, [(0, WINDOW_ROWS, r.uniform(0.15, 1.0), cls)], strength)
        add_nans(r, power)
        sid = spec_ids[len(plan) + i]
        writes.append(pool.submit(write_spectrogram, root / "test_spectrograms" / f"{sid}.parquet", power))
        _throttle(writes)
        test_rows.append({"spectrogram_id": sid, "eeg_id": eeg_ids[i],
                          "patient_id": patient_ids[plan[-1]["patient"] + 1 + i]})
    return pd.DataFrame(test_rows, columns=TEST_COLUMNS)

