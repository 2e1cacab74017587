"""Benchmarks clean up on SIGTERM as they do on Ctrl-C.

Python's default SIGTERM ends the process without running `finally` blocks, so a `timeout` or a
cancelled CI job would leave the bench's database, keys and worker processes behind on shared
servers. As SystemExit, the signal unwinds through every context manager instead.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


def exit_on_sigterm() -> None:
    """From now on, SIGTERM raises SystemExit(143) in the main thread."""
    signal.signal(signal.SIGTERM, _exit)


def _exit(signum: int, _frame: FrameType | None) -> None:
    sys.exit(128 + signum)
