"""Real worker and beat processes for the dashcache strategy, with their CPU time measured."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from dashcache.config import Settings

STOP_TIMEOUT_SECONDS = 15.0


def celery_command(*args: str) -> list[str]:
    """`celery -A dashcache.worker ARGS` with this interpreter."""
    return [sys.executable, "-m", "celery", "-A", "dashcache.worker", *args]


def celery_env(settings: Settings) -> dict[str, str]:
    """This process's environment plus the settings, with JSON logs (parsed by tests and runs)."""
    return {**os.environ, **settings.to_env(), "DASHCACHE_LOG_FORMAT": "json"}


def worker_args(concurrency: int) -> list[str]:
    """How a worker is run: prefork pool, no gossip or mingle, INFO logs."""
    pool = ["--pool", "prefork", "--concurrency", str(concurrency)]
    return ["worker", *pool, "--without-gossip", "--without-mingle", "--loglevel", "INFO"]


class Celery:
    """`celery -A dashcache.worker ARGS` as a child process with the settings' environment.

    Its stderr goes to a file (kept for a failed run's diagnosis), never to the bench's output.
    """

    def __init__(self, settings: Settings, log_dir: Path, *args: str) -> None:
        self.log_path = log_dir / f"{args[0]}.log"
        with self.log_path.open("ab") as log:
            command, env = celery_command(*args), celery_env(settings)
            self.popen = subprocess.Popen(  # noqa: S603  (our own interpreter and module)
                command, env=env, stdout=subprocess.DEVNULL, stderr=log
            )

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and every child of it, so far."""
        try:
            root = psutil.Process(self.popen.pid)
            tree = [root, *root.children(recursive=True)]
            total = 0.0
            for process in tree:
                times = process.cpu_times()
                total += times.user + times.system
            reaped = root.cpu_times()
            return float(total + reaped.children_user + reaped.children_system)
        except psutil.NoSuchProcess:
            return 0.0

    def alive(self) -> bool:
        """Whether it is still running."""
        return self.popen.poll() is None

    def stop(self) -> None:
        """Terminate (warm shutdown), then kill if it lingers."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


class WorkerAndBeat:
    """One worker (both queues) and one beat, as the Procfile runs them."""

    def __init__(self, settings: Settings, concurrency: int, log_dir: Path) -> None:
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.worker = Celery(settings, self.log_dir, *worker_args(concurrency))
        schedule = str(self.log_dir / "beat-schedule")
        self.beat = Celery(settings, self.log_dir, "beat", "--schedule", schedule)
        self.started = time.monotonic()

    def cpu_seconds(self) -> float:
        """CPU both processes (and the worker's pool) have used so far."""
        return self.worker.cpu_seconds() + self.beat.cpu_seconds()

    def check(self) -> None:
        """Raise if either process died; the message names its log."""
        for process in (self.worker, self.beat):
            if not process.alive():
                raise RuntimeError(f"celery exited early; see {process.log_path}")

    def stop(self) -> None:
        """Stop beat first (no more schedule), then the worker."""
        self.beat.stop()
        self.worker.stop()
