"""``foldwise kaggle-submit FILE -m MESSAGE``: upload a CSV to the task's Kaggle competition.

Also ``python -m foldwise.export.kaggle_submit``. Not to be confused with the ``submit`` stage, which
writes data/submission.csv; this only sends a finished file.

The same as `kaggle competitions submit -c <competition> -f FILE -m MESSAGE` (the kaggle package),
with the competition taken from params.yaml's task, and any failure (no credentials, no network,
rules not accepted) as one line instead of the client's page of help.
"""
from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

from ..core.errors import FoldwiseError, run_stage
from ..sources import first_line, has_kaggle_credentials


def kaggle_submit(path: Path, message: str, competition: str) -> None:
    if not path.is_file():
        raise FoldwiseError(f"{path}: missing; run `dvc repro` (data/submission.csv) or the blend stage")
    if not has_kaggle_credentials():
        raise FoldwiseError("submitting needs Kaggle API credentials (~/.kaggle/kaggle.json, ~/.kaggle/access_token, "
                            "KAGGLE_API_TOKEN, or KAGGLE_USERNAME and KAGGLE_KEY)")
    chatter = io.StringIO()  # the client prints pages of help on failure; the error line says it all
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            from kaggle.api.kaggle_api_extended import KaggleApi

            api = KaggleApi()
            api.authenticate()
            api.competition_submit(str(path), message, competition, quiet=True)
    except (Exception, SystemExit) as exc:  # HTTP, auth, network; authenticate() exits on bad credentials
        reason = "credentials rejected" if isinstance(exc, SystemExit) else first_line(exc)
        raise FoldwiseError(f"kaggle submit to {competition} failed ({reason}); check the network, "
                            "your credentials and that you accepted the competition rules") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="foldwise kaggle-submit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path,
                        help="the submission CSV, e.g. data/submission.csv or data/blend/submission.csv")
    parser.add_argument("-m", "--message", required=True, help="the submission's description on Kaggle")
    args = parser.parse_args(argv)
    from ..params import load  # the task registry may load torch: not needed for --help
    from ..tasks import get_task

    competition = get_task(load().task).competition
    kaggle_submit(args.file, args.message, competition)
    print(f"kaggle-submit: {args.file} sent to {competition}; see `kaggle competitions submissions -c {competition}`")


def cli(argv: list[str] | None = None) -> None:
    run_stage("kaggle-submit", lambda: main(argv))


if __name__ == "__main__":
    cli()
