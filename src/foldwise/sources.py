"""Where the raw competition data comes from: synthetic (default), the Kaggle API, or a local zip/folder.

Every source ends in the same place: the exact Kaggle layout in a fresh folder. A local source is
only ever read, never modified.
"""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from .core.errors import FoldwiseError


def find_root(folder: Path, marker: str, source: Path) -> Path:
    """The folder holding ``marker`` (a file or a relative path such as ``train/train.csv``):
    ``folder`` itself or a sub-folder up to two levels down.

    ``source`` (the user's zip or folder) is what an error names."""
    for depth in range(3):
        hits = sorted(folder.glob("/".join(["*"] * depth + [marker])))
        if hits:
            return hits[0].parents[len(Path(marker).parts) - 1]
    raise FoldwiseError(f"{source}: no {marker} found; not the competition's data")


def extract_zip(archive: Path, dest: Path) -> None:
    if not zipfile.is_zipfile(archive):
        raise FoldwiseError(f"{archive}: not a zip file")
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise FoldwiseError(f"{archive}: corrupt member {bad}")
            zf.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise FoldwiseError(f"{archive}: corrupt zip ({exc})") from None


def copy_local(source: Path, dest: Path, marker: str) -> None:
    """Copy a Kaggle zip's content or an extracted folder into ``dest`` (the source is untouched)."""
    if not source.exists():
        raise FoldwiseError(f"data.path: {source} does not exist")
    staging = dest / ".extract"
    if source.is_file():
        extract_zip(source, staging)
        root = find_root(staging, marker, source)
        for item in root.iterdir():
            shutil.move(str(item), dest / item.name)
        shutil.rmtree(staging)
    else:
        root = find_root(source, marker, source)
        for item in root.iterdir():
            target = dest / item.name
            if item.is_dir():
                shutil.copytree(item, target)
            else:
                shutil.copy2(item, target)


def has_kaggle_credentials() -> bool:
    """Whether the kaggle client will find credentials (checked first: without, it prints a page and exits)."""
    config = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    has_file = (config / "kaggle.json").is_file() or (config / "access_token").is_file()
    return has_file or bool(os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")) or bool(
        os.environ.get("KAGGLE_API_TOKEN"))


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def kaggle_download(competition: str, dest: Path, marker: str) -> None:
    """Download and extract ``competition`` with the kaggle package (needs credentials and network)."""
    if not has_kaggle_credentials():
        raise FoldwiseError(
            "data.source: kaggle needs Kaggle API credentials (~/.kaggle/kaggle.json or KAGGLE_USERNAME and "
            "KAGGLE_KEY); or download the zip yourself and use data.source: local"
        )
    staging = dest / ".download"
    staging.mkdir()
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi

        api = KaggleApi()
        api.authenticate()
        api.competition_download_files(competition, path=str(staging), quiet=False)
    except Exception as exc:  # the kaggle client raises many types (HTTP, auth, network)
        raise FoldwiseError(
            f"kaggle download of {competition} failed ({first_line(exc)}); check the network, your credentials "
            "and that you accepted the competition rules"
        ) from None
    archives = sorted(staging.glob("*.zip"))
    if not archives:
        raise FoldwiseError(f"kaggle download of {competition} produced no zip file")
    copy_local(archives[0], dest, marker)
    shutil.rmtree(staging)
