"""HMS - Harmful Brain Activity Classification (six vote fractions, Kaggle KL divergence).

Kaggle layout::

    train.csv                   eeg_id, eeg_sub_id, eeg_label_offset_seconds, spectrogram_id,
                                spectrogram_sub_id, spectrogram_label_offset_seconds, label_id,
                                patient_id, expert_consensus, seizure_vote, ..., other_vote
    train_spectrograms/<spectrogram_id>.parquet
                                ``time`` (2 s steps) then 400 power columns: 100 frequencies for
                                each chain LL, RL, LP, RP, named ``LL_0.59`` ... ``RP_19.92``
    test.csv                    spectrogram_id, eeg_id, patient_id
    test_spectrograms/<spectrogram_id>.parquet
    sample_submission.csv       eeg_id, seizure_vote, lpd_vote, gpd_vote, lrda_vote, grda_vote, other_vote

LL and LP are left-side chains, RL and RP right-side. A label row's image is the 300-row (600 s)
window of its spectrogram starting at row ``spectrogram_label_offset_seconds // 2``; a test row's
is the first 300 rows of its spectrogram. A window that runs past the last row is padded with
missing values (which become the floor e^-4); a window that *starts* past the last row is an error.

Image recipe: NaN -> 0, clip to [e^-4, e^8], log, standardise over the whole window (all four
chains together, so left/right power differences survive), resize with INTER_AREA. ``hms.layout``:

- ``channels``: the 4 chains as 4 channels of (100 frequency rows x 300 time columns), C=4;
- ``stacked``: the chains stacked vertically, LL RL LP RP, into one (400 x 300) plane, C=1.

Synthetic data (``generate``): ``n_train`` is the exact number of label rows in train.csv.
Patients own 1-3 spectrograms; a spectrogram holds 1-3 EEGs, each in its own stretch of the
recording; an EEG has 1 + Poisson(5) label rows (about 6) at increasing offsets 2-40 s apart, all
sharing its votes (as in the real data, where an EEG's sub-labels mostly repeat its votes). So
n_train=2000 gives about 330 EEGs in about 190 spectrogram files of about 600 rows.
``n_test`` is the number of test rows, one 300-row spectrogram each. Each EEG has a latent class
whose signature (see ``class_signature``) fills its stretch of the recording, scaled by
``strength`` times a per-EEG quality in [0.15, 1]; the experts agree less where it is weaker.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch

from ..core.errors import FoldwiseError
from ..params.task_groups import HmsParams
from .common.base import Task
from .common.imaging import resize_area
from .common.tables import read_csv_checked

CHAINS = ("LL", "RL", "LP", "RP")
LEFT, RIGHT = (0, 2), (1, 3)  # chain indices of LL, LP and RL, RP
N_FREQ = 100
FREQS = np.array([(k + 3) * 200 / 1024 for k in range(N_FREQ)])  # Hz
WINDOW_ROWS = 300  # 600 s of 2 s steps
SECONDS_PER_ROW = 2
CLASSES = ("Seizure", "LPD", "GPD", "LRDA", "GRDA", "Other")
VOTE_COLUMNS = ["seizure_vote", "lpd_vote", "gpd_vote", "lrda_vote", "grda_vote", "other_vote"]
TRAIN_COLUMNS = [
    "eeg_id", "eeg_sub_id", "eeg_label_offset_seconds", "spectrogram_id", "spectrogram_sub_id",
    "spectrogram_label_offset_seconds", "label_id", "patient_id", "expert_consensus", *VOTE_COLUMNS,
]
TEST_COLUMNS = ["spectrogram_id", "eeg_id", "patient_id"]
LOG_LO, LOG_HI = -4.0, 8.0
CLIP_LO, CLIP_HI = np.float32(np.exp(LOG_LO)), np.float32(np.exp(LOG_HI))
EPS = 1e-15  # Kaggle's clipping of the submission
NOISE_SIGMA = 0.6  # per-cell log-power noise of the synthetic spectrograms
SEIZURE_GAIN, PD_GAIN, RDA_GAIN = 2.0, 1.5, 2.2  # peak added log power of each signature at strength 1


def _freq_label(k: int) -> str:
    """(k+3)*200/1024 Hz with two decimals rounded half-up and trailing zeros dropped (3.125 -> 3.13)."""
    value = (Decimal(k + 3) * 200 / 1024).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


SPEC_COLUMNS = [f"{chain}_{_freq_label(k)}" for chain in CHAINS for k in range(N_FREQ)]


class HmsTask(Task):
    name = "hms"
    competition = "hms-harmful-brain-activity-classification"
    marker_file = "train.csv"
    metric_name = "kl"
    greater_is_better = False
    target_columns = list(VOTE_COLUMNS)
    pred_columns = list(VOTE_COLUMNS)
    # Images are (frequency, time): reversing time keeps the class, mirroring frequency would turn
    # 1-3 Hz delta into 17-19 Hz activity (it cost 0.1-0.2 KL per fold on the synthetic data).
    train_augment = [{"HorizontalFlip": {"p": 0.5}}]

    def required_files(self) -> list[str]:
        return [self.marker_file, self.sample_submission, "test.csv", "train_spectrograms", "test_spectrograms"]

    # ---- synthetic data -------------------------------------------------------------------------
    def generate(self, root: Path, n_train: int, n_test: int, seed: int, strength: float) -> None:
        generate(root, n_train, n_test, seed, strength)

    # ---- reading --------------------------------------------------------------------------------
    def read_table(self, root: Path, split: str, params: Any) -> pd.DataFrame:
        if split == "test":
            return read_test_table(root)
        return read_train_table(root, params.task_params)

    def in_chans(self, params: Any) -> int:
        return len(CHAINS) if params.task_params.layout == "channels" else 1

    def iter_images(self, root: Path, table: pd.DataFrame, split: str, params: Any) -> Iterator[np.ndarray]:
        folder = root / f"{split}_spectrograms"
        # Tables come sorted by spectrogram, so each file is read once; files are read ahead in a
        # thread (parquet decoding releases the GIL) while the current one is being cut into images.
        sids = table["spectrogram_id"].astype(np.int64).to_numpy()
        paths = [folder / f"{int(sid)}.parquet" for sid in sids]
        current, logp = None, None
        files = iter_loaded(p for i, p in enumerate(paths) if i == 0 or sids[i] != sids[i - 1])
        for path, start, row_id in zip(paths, table["window_start"], table["id"]):
            if path != current:
                current, logp = next(files)
            yield window_to_image(spectrogram_window(logp, int(start), path, row_id),
                                  params.task_params.layout, params.img_size)

    def raw_sizes(self, root: Path, table: pd.DataFrame, split: str, params: Any) -> Iterator[tuple[int, int, int]]:
        """Each row's spectrogram file: 400 power columns (4 chains x 100 frequencies) by its time
        rows, from the parquet footer."""
        import pyarrow.parquet as pq

        for sid in table["spectrogram_id"].astype(np.int64):
            meta = pq.read_metadata(root / f"{split}_spectrograms" / f"{int(sid)}.parquet")
            yield meta.num_columns - 1, meta.num_rows, 1

    def class_names(self, params: Any) -> list[str]:
        return list(CLASSES)

    # ---- learning -------------------------------------------------------------------------------
    def target_kind(self, params: Any) -> str:
        return "multiclass"  # the expert consensus: argmax of the vote fractions

    def loss(self, params: Any) -> torch.nn.Module:
        return VoteKLLoss(params.train.label_smoothing)

    def predict(self, logits: torch.Tensor, params: Any) -> torch.Tensor:
        return torch.softmax(logits.float(), dim=1)

    def metric(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return kaggle_kl(y_true, y_pred)

    row_error_name = "KL"

    def row_error(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        return kaggle_kl_rows(y_true, y_pred)

    def oof_plot(self, y_true: np.ndarray, y_pred: np.ndarray) -> list[dict]:
        """One point per row for the confusion matrix (.dvc/plots/hms.json counts them):
        x the expert consensus (argmax of the votes), y the predicted class (argmax)."""
        names = np.array(CLASSES)
        true = names[np.argmax(np.asarray(y_true), axis=1)]
        pred = names[np.argmax(np.asarray(y_pred), axis=1)]
        return [{"x": str(t), "y": str(p)} for t, p in zip(true, pred)]

    def check_submission(self, sub: pd.DataFrame) -> None:
        super().check_submission(sub)
        values = sub[self.pred_columns].to_numpy(dtype=np.float64)
        if (values < 0).any() or (values > 1).any():
            raise FoldwiseError("submission votes must be probabilities in [0, 1]")
        sums = values.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1.0) > 1e-5)
        if len(bad):
            raise FoldwiseError(
                f"submission row for {sub.columns[0]} {sub.iloc[bad[0], 0]!r} sums to {sums[bad[0]]:.6f}, not 1"
            )


# ---- metric and loss ------------------------------------------------------------------------------
def kaggle_kl(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The competition's score: the mean of ``kaggle_kl_rows``."""
    return float(kaggle_kl_rows(y_true, y_pred).mean())


def kaggle_kl_rows(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """The competition's KL divergence of each row (N,): sum_j y log(y / p).

    Targets are divided by their row sum (votes or fractions both work); only the predictions are
    clipped to [1e-15, 1 - 1e-15] and they are not renormalised; cells with y == 0 add 0.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.clip(np.asarray(y_pred, dtype=np.float64), EPS, 1 - EPS)
    if y.shape != p.shape or y.ndim != 2:
        raise FoldwiseError(f"KL needs targets and predictions of the same (N, 6) shape, got {y.shape} and {p.shape}")
    sums = y.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        raise FoldwiseError("KL targets hold a row with no votes")
    y = y / sums
    with np.errstate(divide="ignore", invalid="ignore"):
        cells = np.where(y > 0, y * np.log(y / p), 0.0)
    return cells.sum(axis=1)


class VoteKLLoss(torch.nn.Module):
    """KL(votes || softmax(logits)), batch mean, on the normalised vote fractions.

    ``smoothing`` (train.label_smoothing) blends the targets toward the uniform distribution.
    """

    def __init__(self, smoothing: float = 0.0):
        super().__init__()
        self.smoothing = smoothing
        self.kl = torch.nn.KLDivLoss(reduction="batchmean")

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.float()
        targets = targets / targets.sum(dim=1, keepdim=True).clamp_min(1e-12)
        if self.smoothing:
            targets = targets * (1.0 - self.smoothing) + self.smoothing / targets.shape[1]
        return self.kl(torch.log_softmax(logits.float(), dim=1), targets)


# ---- reading --------------------------------------------------------------------------------------
def _row_name(df: pd.DataFrame, i: int) -> str:
    return f"label_id {df['label_id'].iloc[i]} (line {i + 2})"


def read_train_table(root: Path, hp: HmsParams) -> pd.DataFrame:
    """Label rows -> id (label_id), six vote fractions, stratify (class index), group (patient_id),
    plus spectrogram_id and window_start used by iter_images; sorted by spectrogram and offset."""
    path = root / "train.csv"
    df = read_csv_checked(path, TRAIN_COLUMNS)
    for col in ("label_id", "spectrogram_id"):
        missing = df[col].isna().to_numpy()
        if missing.any():
            raise FoldwiseError(f"{path}: line {np.flatnonzero(missing)[0] + 2}: {col} is missing")
    if df["label_id"].duplicated().any():
        raise FoldwiseError(f"{path}: duplicate label_id {df['label_id'][df['label_id'].duplicated()].iloc[0]}")
    missing = df["patient_id"].isna().to_numpy()
    if missing.any():
        raise FoldwiseError(f"{path}: {_row_name(df, int(np.flatnonzero(missing)[0]))}: patient_id is missing")
    votes = df[VOTE_COLUMNS].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(votes).all(axis=1) | (votes < 0).any(axis=1)
    if bad.any():
        raise FoldwiseError(f"{path}: {_row_name(df, int(np.flatnonzero(bad)[0]))}: votes must be numbers >= 0")
    totals = votes.sum(axis=1)
    zero = totals <= 0
    if zero.any():
        raise FoldwiseError(f"{path}: {_row_name(df, int(np.flatnonzero(zero)[0]))}: all six votes are zero")
    offsets = pd.to_numeric(df["spectrogram_label_offset_seconds"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(offsets) | (offsets < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FoldwiseError(f"{path}: {_row_name(df, i)}: spectrogram_label_offset_seconds must be a number >= 0, "
                            f"got {df['spectrogram_label_offset_seconds'].iloc[i]!r}")
    consensus = df["expert_consensus"].map({c: k for k, c in enumerate(CLASSES)})
    bad = consensus.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FoldwiseError(f"{path}: {_row_name(df, i)}: expert_consensus {df['expert_consensus'].iloc[i]!r} "
                            f"is not one of {', '.join(CLASSES)}")

    table = pd.DataFrame({"id": df["label_id"].astype(str)})
    fractions = votes / totals[:, None]
    for j, col in enumerate(VOTE_COLUMNS):
        table[col] = fractions[:, j]
    table["stratify"] = consensus.astype(int).to_numpy()
    table["group"] = df["patient_id"].astype(str).to_numpy()
    table["spectrogram_id"] = df["spectrogram_id"].astype(np.int64).to_numpy()
    table["window_start"] = (offsets // SECONDS_PER_ROW).astype(np.int64)
    table = table[totals >= hp.min_votes]
    if table.empty:
        raise FoldwiseError(f"{path}: no label row has at least hms.min_votes={hp.min_votes} votes")
    table = table.sort_values(["spectrogram_id", "window_start", "id"], kind="stable")
    if hp.rows == "one_per_spectrogram":
        table = table.drop_duplicates("spectrogram_id", keep="first")
    return table.reset_index(drop=True)


def read_test_table(root: Path) -> pd.DataFrame:
    """One row per sample_submission row, in its order: id (eeg_id), spectrogram_id, window_start 0."""
    sample_path = root / "sample_submission.csv"
    sample = read_csv_checked(sample_path, ["eeg_id", *VOTE_COLUMNS], dtype={"eeg_id": str})
    path = root / "test.csv"
    test = read_csv_checked(path, TEST_COLUMNS, dtype={"eeg_id": str})
    if test["spectrogram_id"].isna().any():
        raise FoldwiseError(f"{path}: line {int(np.flatnonzero(test['spectrogram_id'].isna())[0]) + 2}: "
                            "spectrogram_id is missing")
    if test["eeg_id"].duplicated().any():
        raise FoldwiseError(f"{path}: duplicate eeg_id {test['eeg_id'][test['eeg_id'].duplicated()].iloc[0]!r}")
    spec_of = test.set_index("eeg_id")["spectrogram_id"]
    missing = ~sample["eeg_id"].isin(spec_of.index)
    if missing.any():
        raise FoldwiseError(f"{path}: no row for eeg_id {sample['eeg_id'][missing].iloc[0]!r} of {sample_path.name}")
    return pd.DataFrame({
        "id": sample["eeg_id"].astype(str),
        "spectrogram_id": spec_of.loc[sample["eeg_id"]].astype(np.int64).to_numpy(),
        "window_start": 0,
    })


def iter_loaded(paths: Iterator[Path], ahead: int = 3) -> Iterator[tuple[Path, np.ndarray]]:
    """(path, load_spectrogram(path)) in order, up to ``ahead`` files read in a background thread."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: deque = deque()
        for path in paths:
            pending.append((path, pool.submit(load_spectrogram, path)))
            if len(pending) > ahead:
                done_path, future = pending.popleft()
                yield done_path, future.result()
        while pending:
            done_path, future = pending.popleft()
            yield done_path, future.result()


def load_spectrogram(path: Path) -> np.ndarray:
    """A spectrogram file -> float32 (rows, 400) log power: NaN -> 0, clip to [e^-4, e^8], log."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        raise FoldwiseError(f"{path}: missing")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise FoldwiseError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0]})") from None
    names = set(table.column_names)
    missing = [c for c in ["time", *SPEC_COLUMNS] if c not in names]
    if missing:
        raise FoldwiseError(f"{path}: missing {len(missing)} spectrogram column(s), e.g. "
                            f"{', '.join(missing[:3])} (expected time, {SPEC_COLUMNS[0]} ... {SPEC_COLUMNS[-1]})")
    if table.num_rows == 0:
        raise FoldwiseError(f"{path}: has no rows")
    try:
        values = np.column_stack([table.column(c).to_numpy().astype(np.float32, copy=False) for c in SPEC_COLUMNS])
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise FoldwiseError(f"{path}: spectrogram columns are not numeric ({str(exc).splitlines()[0]})") from None
    return log_power(values)


def log_power(values: np.ndarray) -> np.ndarray:
    """NaN -> 0, clip to [e^-4, e^8] (float32 bounds, so no upcast to float64), natural log."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0, posinf=CLIP_HI, neginf=0.0)
    return np.log(np.clip(values, CLIP_LO, CLIP_HI))


def spectrogram_window(logp: np.ndarray, start: int, path: Path, row_id: str) -> np.ndarray:
    """Rows start..start+299 of a (rows, 400) log spectrogram; a short tail is padded with the floor."""
    n = len(logp)
    if start >= n:
        raise FoldwiseError(
            f"{path}: row {row_id}: window starts at row {start} ({start * SECONDS_PER_ROW} s) "
            f"but the recording has only {n} rows ({n * SECONDS_PER_ROW} s)"
        )
    window = logp[start:start + WINDOW_ROWS]
    if len(window) < WINDOW_ROWS:
        pad = np.full((WINDOW_ROWS - len(window), logp.shape[1]), LOG_LO, dtype=np.float32)
        window = np.concatenate([window, pad])
    return window


def window_to_image(window: np.ndarray, layout: str, img_size: int) -> np.ndarray:
    """(300 time, 400) log power -> standardised float32 (img_size, img_size, C), frequency down, time across."""
    window = window.astype(np.float32)
    window = (window - window.mean()) / (window.std() + 1e-6)
    chains = window.reshape(len(window), len(CHAINS), N_FREQ)  # (time, chain, freq)
    if layout == "channels":
        plane = np.ascontiguousarray(chains.transpose(2, 0, 1))  # (freq, time, chain)
    else:
        plane = np.ascontiguousarray(chains.transpose(1, 2, 0).reshape(len(CHAINS) * N_FREQ, len(window)))
    image = resize_area(plane, (img_size, img_size))
    return image.reshape(img_size, img_size, -1).astype(np.float32, copy=False)


# ---- synthetic data ------------------------------------------------------------------------------
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


TASK = HmsTask()
