"""HMS's Kaggle layout: its columns, reading the tables and cutting spectrogram windows into images.

See the package docstring for the layout and the image recipe.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ...core.errors import FoldwiseError
from ..common.imaging import resize_area
from ..common.tables import check_choices, check_filled, check_numbers, check_unique, csv_row, read_csv_checked
from ...params.task_groups import HmsParams

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


def _freq_label(k: int) -> str:
    """(k+3)*200/1024 Hz with two decimals rounded half-up and trailing zeros dropped (3.125 -> 3.13)."""
    value = (Decimal(k + 3) * 200 / 1024).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


SPEC_COLUMNS = [f"{chain}_{_freq_label(k)}" for chain in CHAINS for k in range(N_FREQ)]


# ---- reading --------------------------------------------------------------------------------------
def read_train_table(root: Path, hp: HmsParams) -> pd.DataFrame:
    """Label rows -> id (label_id), six vote fractions, stratify (class index), group (patient_id),
    plus spectrogram_id and window_start used by iter_images; sorted by spectrogram and offset."""
    path = root / "train.csv"
    df = read_csv_checked(path, TRAIN_COLUMNS, dtype={"label_id": str})
    check_filled(df, path, ["label_id", "spectrogram_id", "patient_id"], key="label_id")
    check_unique(df, path, "label_id")
    votes = np.column_stack([check_numbers(df, path, col, lo=0, key="label_id") for col in VOTE_COLUMNS])
    totals = votes.sum(axis=1)
    zero = np.flatnonzero(totals <= 0)
    if len(zero):
        raise FoldwiseError(f"{path}: all six votes are zero in row {csv_row(zero[0])} "
                            f"(label_id {df['label_id'].iloc[zero[0]]!r})")
    offsets = check_numbers(df, path, "spectrogram_label_offset_seconds", lo=0, key="label_id").to_numpy()
    consensus = check_choices(df, path, "expert_consensus", {c: k for k, c in enumerate(CLASSES)}, key="label_id")

    table = pd.DataFrame({"id": df["label_id"].astype(str)})
    fractions = votes / totals[:, None]
    for j, col in enumerate(VOTE_COLUMNS):
        table[col] = fractions[:, j]
    table["stratify"] = consensus.astype(int)
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
    check_filled(test, path, ["eeg_id", "spectrogram_id"], key="eeg_id")
    check_unique(test, path, "eeg_id")
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

