"""Albumentations pipelines declared in params: ``augment.train: [{Name: {arg: value}}, ...]`` (the
params loader has already replaced ``auto`` by the task's own ``train_augment``).

Validation and test images get no random transform at all (deterministic), only TTA flips.
"""
from __future__ import annotations

from typing import Any

import albumentations as A

from ..core.errors import FoldwiseError


def _parse_item(item: Any, where: str) -> tuple[str, dict]:
    if isinstance(item, str):
        return item, {}
    if isinstance(item, dict) and len(item) == 1:
        name, args = next(iter(item.items()))
        if args is None:
            args = {}
        if isinstance(args, dict):
            return str(name), args
    raise FoldwiseError(f"{where}: each transform must be 'Name' or {{Name: {{arg: value}}}}, got {item!r}")


def check_augment_spec(spec: list, where: str) -> None:
    """Build every transform once so a misspelt name or argument fails before any work starts."""
    for item in spec:
        name, args = _parse_item(item, where)
        _make(name, args, where)


def _make(name: str, args: dict, where: str) -> A.BasicTransform:
    cls = getattr(A, name, None)
    if not (isinstance(cls, type) and issubclass(cls, A.BasicTransform)):
        import difflib

        known = [n for n in dir(A) if isinstance(getattr(A, n), type) and issubclass(getattr(A, n), A.BasicTransform)]
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see albumentations' transform list"
        raise FoldwiseError(f"{where}: unknown albumentations transform {name!r} ({hint})")
    p = args.get("p", 0.5)
    if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise FoldwiseError(f"{where}: {name}.p must be a probability in [0, 1], got {p!r}")
    try:
        return cls(**args)
    except (TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FoldwiseError(f"{where}: bad arguments for {name} {args}: {first}") from None


def build_train_transform(spec: list, seed: int) -> A.Compose:
    """The train-time pipeline; reseed it per epoch with ``set_random_seed`` for exact resumes."""
    transforms = [_make(*_parse_item(item, "augment.train"), "augment.train") for item in spec]
    return A.Compose(transforms, seed=seed)
