"""Reading the competitions' CSV tables with one-line errors that name the file, column and row at fault."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ...core.errors import FoldwiseError


def read_csv_checked(path: Path, columns: list[str], dtype: dict | None = None) -> pd.DataFrame:
    """Read ``path`` and check it has ``columns`` (extra columns are kept) and at least one row."""
    if not path.is_file():
        raise FoldwiseError(f"{path}: missing")
    try:
        df = pd.read_csv(path, dtype=dtype)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise FoldwiseError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FoldwiseError(f"{path}: missing column(s) {', '.join(missing)} (has {', '.join(map(str, df.columns))})")
    if df.empty:
        raise FoldwiseError(f"{path}: has no rows")
    return df


# ---- per-row checks: each stops at the first bad row with one line naming file, column and row ----
def csv_row(i: int) -> int:
    """The CSV line number of data row ``i`` (0-based), counting the header as line 1."""
    return i + 2


def fail_at(path: Path, df: pd.DataFrame, i: int, column: str, problem: str, key: str | None = None):
    """Raise ``<path>: <column> <problem>, got <value> in row <n> (<key> <key value>)``."""
    where = f"row {csv_row(i)}" + (f" ({key} {_plain(df[key].iloc[i])!r})" if key and key != column else "")
    raise FoldwiseError(f"{path}: {column} {problem}, got {_plain(df[column].iloc[i])!r} in {where}")


def _plain(value):
    """A numpy scalar as the Python value it holds, so a line reads ``got nan``, not ``got np.float64(nan)``."""
    return value.item() if isinstance(value, np.generic) else value


def check_filled(df: pd.DataFrame, path: Path, columns: list[str], key: str | None = None) -> None:
    """No empty (NaN) cell in ``columns``."""
    for col in columns:
        empty = df[col].isna().to_numpy()
        if empty.any():
            fail_at(path, df, int(np.flatnonzero(empty)[0]), col, "is empty", key)


def check_unique(df: pd.DataFrame, path: Path, column: str) -> None:
    dup = df[column].duplicated().to_numpy()
    if dup.any():
        fail_at(path, df, int(np.flatnonzero(dup)[0]), column, "must be unique (repeats an earlier row)")


def check_numbers(df: pd.DataFrame, path: Path, column: str, lo: float | None = None, hi: float | None = None,
                  integer: bool = False, key: str | None = None) -> pd.Series:
    """``column`` as float64, every value a number (an integer if asked) within [lo, hi]."""
    values = pd.to_numeric(df[column], errors="coerce").astype(np.float64)
    bad = values.isna() | ~np.isfinite(values)
    if integer:
        bad |= values != np.round(values)
    if lo is not None:
        bad |= values < lo
    if hi is not None:
        bad |= values > hi
    if bad.any():
        span = f" in {lo:g}-{hi:g}" if lo is not None and hi is not None else (
            f" >= {lo:g}" if lo is not None else f" <= {hi:g}" if hi is not None else "")
        fail_at(path, df, int(np.flatnonzero(bad.to_numpy())[0]), column,
                f"must be {'an integer' if integer else 'a number'}{span}", key)
    return values


def label_key(value) -> str:
    """How a class label matches another: surrounding spaces and case ignored, numbers by value (so a
    CSV's ``1``, ``1.0`` and ``01`` are one label, however pandas typed the column)."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text.lower()
    return repr(number) if math.isfinite(number) else text.lower()


def check_choices(df: pd.DataFrame, path: Path, column: str, codes: dict[str, int],
                  key: str | None = None) -> np.ndarray:
    """Class code (int64) of each value of ``column`` via ``codes``; matching by ``label_key``."""
    lookup = {label_key(name): code for name, code in codes.items()}
    names = df[column].map(label_key)
    known = names.isin(list(lookup)).to_numpy() & df[column].notna().to_numpy()
    if not known.all():
        fail_at(path, df, int(np.flatnonzero(~known)[0]), column,
                f"must be one of {', '.join(map(str, codes))}", key)
    return names.map(lookup).to_numpy(dtype=np.int64)


def sorted_labels(df: pd.DataFrame, path: Path, column: str) -> list[str]:
    """The distinct labels of ``column`` as the CSV writes them (spaces stripped), sorted: by value when
    every label is a number, else as text. One line if two spellings name one label (``Cat``, ``cat``)."""
    seen: dict[str, str] = {}
    for value in df[column].dropna().astype(str).str.strip():
        other = seen.setdefault(label_key(value), value)
        if other != value:
            raise FoldwiseError(f"{path}: {column} spells one label two ways ({other!r}, {value!r}); use one")
    labels = list(seen.values())
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)
