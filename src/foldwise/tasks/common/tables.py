"""Reading the competitions' CSV tables with one-line errors that name the file at fault."""
from __future__ import annotations

from pathlib import Path

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
