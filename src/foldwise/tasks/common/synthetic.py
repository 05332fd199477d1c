"""Helpers shared by the tasks' synthetic generators."""
from __future__ import annotations

import numpy as np

HEX_DIGITS = list("0123456789abcdef")


def unique_hex_ids(rng: np.random.Generator, n: int, digits: int) -> list[str]:
    """``n`` distinct lowercase hex ids of ``digits`` characters, in draw order (deterministic in rng)."""
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < n:
        new_id = "".join(rng.choice(HEX_DIGITS, size=digits))
        if new_id not in seen:
            seen.add(new_id)
            ids.append(new_id)
    return ids
