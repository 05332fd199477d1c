"""One-line errors for users, and the wrapper every stage entry point runs under."""
from __future__ import annotations

import errno
import os
import sys
from typing import Callable


class FoldwiseError(Exception):
    """A problem with the user's input (params, data, files): shown as one line, no traceback."""


def run_stage(stage: str, main: Callable[[], None]) -> None:
    """Run a stage's ``main`` and turn expected failures into ``foldwise <stage>: error: ...``.

    Set ``FOLDWISE_DEBUG=1`` to see the full traceback instead.
    """
    try:
        main()
    except FoldwiseError as exc:
        _fail(stage, str(exc), exc)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            _fail(stage, f"no space left on device while writing {exc.filename or 'output'}", exc)
        raise
    except KeyboardInterrupt:
        _fail(stage, "interrupted", None, code=130)


def _fail(stage: str, message: str, exc: BaseException | None, code: int = 1) -> None:
    if exc is not None and os.environ.get("FOLDWISE_DEBUG"):
        raise exc
    if os.environ.get("LOCAL_RANK", "0") != "0":  # a DDP worker: local rank 0 says it once per machine
        sys.exit(code)
    print(f"foldwise {stage}: error: {message}", file=sys.stderr)
    sys.exit(code)
