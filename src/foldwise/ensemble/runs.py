"""A finished run's files, read from its git revision or experiment through ``dvc.api`` (no checkout).

A run is anything ``dvc.api`` takes as ``rev``: an experiment name (``dvc exp list``), a branch, a
tag or a commit. Its DVC-tracked outputs must be in the local cache, as they are after a local
``dvc repro`` / ``dvc exp run``; otherwise ``dvc exp pull`` / ``dvc fetch`` brings them.
"""
from __future__ import annotations

import io
from pathlib import PurePosixPath

import pandas as pd

from ..core.errors import FoldwiseError


def read_run_text(run: str, path: str, repo: str = ".") -> str:
    """The text of ``path`` as it is at revision ``run``; one line naming the run if it cannot be read."""
    import dvc.api
    from dvc.exceptions import DvcException, PathMissingError
    from dvc.scm import RevError

    try:
        return dvc.api.read(path, repo=repo, rev=run)
    except RevError:
        raise FoldwiseError(f"blend.runs: '{run}' is neither an experiment name nor a git revision "
                            "(see `dvc exp list` and `git log`)") from None
    except PathMissingError:
        raise FoldwiseError(_missing(run, path, repo)) from None
    except DvcException as exc:
        raise FoldwiseError(f"blend.runs: '{run}': cannot read {path} ({str(exc).splitlines()[0]})") from None


def read_run_csv(run: str, path: str, repo: str = ".") -> pd.DataFrame:
    """``path``, a CSV, at revision ``run``; its first column (the ids) is read verbatim as str."""
    text = read_run_text(run, path, repo)
    try:
        first = pd.read_csv(io.StringIO(text), nrows=0).columns[0]
        return pd.read_csv(io.StringIO(text), dtype={first: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, IndexError) as exc:
        raise FoldwiseError(f"blend.runs: '{run}': {path} is not a readable CSV ({exc})") from None


def _missing(run: str, path: str, repo: str) -> str:
    """Why ``path`` is not readable at ``run``: never produced there, or produced but not cached here."""
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        lock = dvc.api.read("dvc.lock", repo=repo, rev=run)
    except DvcException:
        lock = ""
    produced = any(f"path: {out}\n" in lock for out in [path, *map(str, PurePosixPath(path).parents)])
    if produced:
        return (f"blend.runs: '{run}': {path} is not in the local DVC cache; "
                f"fetch it with `dvc exp pull <git remote> {run}` (an experiment) or `dvc fetch -a` (a branch)")
    return f"blend.runs: '{run}' has no {path}; run its pipeline through the stage that writes it"
