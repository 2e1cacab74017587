"""Real processes for tests: Celery worker and beat with the settings' environment."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dashcache.bench.launcher import celery_command, celery_env, worker_args
from dashcache.config import Settings
from tests.helpers import WAIT_SECONDS


class Process:
    """A child process whose stderr lines are collected as they arrive."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self.popen = subprocess.Popen(
            args, env=env, cwd=cwd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        self.lines: list[str] = []
        self._fresh: queue.Queue[str] = queue.Queue()
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.popen.stderr is not None
        for line in self.popen.stderr:
            self.lines.append(line)
            self._fresh.put(line)

    def wait_for(self, text: str, timeout: float = WAIT_SECONDS) -> str:
        """Block until a stderr line containing `text` appears; fail with the output so far."""
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if text in line:
                return line
        while time.monotonic() < deadline:
            try:
                line = self._fresh.get(timeout=0.1)
            except queue.Empty:
                if self.popen.poll() is not None:
                    break
                continue
            if text in line:
                return line
        if self.popen.poll() is not None:
            # The child exited: its last lines may still be in the pipe, so read it to the end.
            self._pump_thread.join(timeout=5)
            for line in self.lines:
                if text in line:
                    return line
        raise AssertionError(
            f"{text!r} not seen within {timeout} s; output:\n" + "".join(self.lines[-40:])
        )

    def lines_with(self, text: str, count: int, timeout: float = WAIT_SECONDS) -> list[str]:
        """Wait until at least `count` stderr lines contain `text`; return them."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.lines if text in line]
            if len(found) >= count:
                return found
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{len(found)} lines with {text!r} within {timeout} s, not {count}; output:\n"
                    + "".join(self.lines[-40:])
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Terminate, then kill if it lingers."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._pump_thread.join(timeout=5)
        assert self.popen.stderr is not None
        self.popen.stderr.close()


@contextmanager
def celery_process(settings: Settings, *args: str, ready: str) -> Iterator[Process]:
    """Run `celery -A dashcache.worker ARGS` until the block ends; wait for a line with `ready`."""
    process = Process(celery_command(*args), celery_env(settings))
    try:
        process.wait_for(ready)
        yield process
    finally:
        process.stop()


@contextmanager
def worker_process(settings: Settings, concurrency: int = 1) -> Iterator[Process]:
    """A real Celery worker consuming both dashcache queues."""
    with celery_process(settings, *worker_args(concurrency), ready="ready") as process:
        yield process


@contextmanager
def beat_process(settings: Settings, schedule_file: Path) -> Iterator[Process]:
    """A real Celery beat sending the schedule of `settings`, its state kept in `schedule_file`."""
    args = ("beat", "--loglevel", "INFO", "--schedule", str(schedule_file))
    with celery_process(settings, *args, ready="beat: Starting") as process:
        yield process
