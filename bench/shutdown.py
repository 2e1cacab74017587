"""Benchmarks clean up on SIGTERM as they do on Ctrl-C, and exit with the signal's status.

Python's default SIGTERM ends the process without running `finally` blocks, so a `timeout` or a
cancelled CI job would leave the bench's database, keys and worker processes behind on shared
servers. As SystemExit, the signal unwinds through every context manager instead. A C library
may turn that SystemExit into an error of its own on the way up (psycopg2's COPY reports
`QueryCanceled` when its read callback raised): the bench still exits with 128 + SIGTERM.
"""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
TERMINATED = 128 + signal.SIGTERM

_terminated = False


def exits_on_sigterm(main: Callable[P, R]) -> Callable[P, R]:
    """Run `main` with SIGTERM raising SystemExit(143) in the main thread; whatever error that
    turns into on its way out of `main`, the process exits 143 after the cleanup ran."""

    @functools.wraps(main)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        signal.signal(signal.SIGTERM, _exit)
        try:
            return main(*args, **kwargs)
        except Exception as error:
            if _terminated:
                raise SystemExit(TERMINATED) from error
            raise

    return run


def _exit(signum: int, _frame: FrameType | None) -> None:
    global _terminated  # one flag per process: the signal arrived
    _terminated = True
    sys.exit(128 + signum)
