"""Last-epoch checkpoints that let a killed ``train@k`` resume where it stopped.

They live outside the stage's outs (DVC deletes outs before a rerun) and carry a fingerprint of
everything the fold's result depends on: a changed param, fold file or prepared index makes the
checkpoint stale and training starts over instead of resuming from the wrong run.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ..core.atomic import atomic_file

LAST = "last.pt"


def fingerprint(params: Any, fold: int, files: list[Path]) -> str:
    """A hash of ``params`` (a dict, or a pydantic model dumped to one), the fold and the files' bytes."""
    h = hashlib.sha256()
    values = params.model_dump() if hasattr(params, "model_dump") else params
    h.update(json.dumps(values, sort_keys=True, default=str).encode())
    h.update(str(fold).encode())
    for path in files:
        h.update(path.read_bytes())
    return h.hexdigest()


def save(ckpt_dir: Path, state: dict) -> None:
    with atomic_file(ckpt_dir / LAST) as tmp:
        torch.save(state, tmp)


def load(ckpt_dir: Path, expected_fingerprint: str) -> tuple[dict | None, str]:
    """Return (state, message): state is None when there is nothing valid to resume."""
    path = ckpt_dir / LAST
    if not path.is_file():
        return None, ""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a checkpoint that cannot be read is only a lost shortcut
        return None, f"ignoring unreadable checkpoint {path} ({type(exc).__name__}); starting over"
    if state.get("fingerprint") != expected_fingerprint:
        return None, f"checkpoint {path} is from other params or data; starting over"
    return state, f"resuming from {path} after epoch {state['epoch'] + 1}"


def clear(ckpt_dir: Path) -> None:
    (ckpt_dir / LAST).unlink(missing_ok=True)
