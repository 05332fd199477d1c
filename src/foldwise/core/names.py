"""File names made from data values (class labels, sample ids)."""
from __future__ import annotations

import re

UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def safe_file_name(text: str, max_len: int = 64) -> str:
    """``text`` as a file name: each run of characters outside A-Z, a-z, 0-9 and ``._=-`` becomes one ``_``,
    leading and trailing ``_`` go, at most ``max_len`` characters; "" when nothing is left."""
    return UNSAFE.sub("_", text).strip("_")[:max_len]
