"""A PostgreSQL cluster of one's own with `wal_level=logical`: for the WAL source's tests and bench.

initdb and pg_ctl come from `pg_config --bindir` and run as the `postgres` user (`runuser`) when
this process is root; the cluster listens on a free port of 127.0.0.1, lives in a temporary
directory, and is stopped and removed at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from dashcache.redis_server import free_port

SERVER_SETTINGS = {
    "wal_level": "logical",
    "max_replication_slots": "20",
    "max_wal_senders": "20",
    "fsync": "off",
    "full_page_writes": "off",
    "shared_buffers": "128MB",
}


class PgCluster:
    """`with PgCluster() as cluster:` a running cluster; `cluster.url(db)` is its SQLAlchemy URL."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.settings = {**SERVER_SETTINGS, **(settings or {})}
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="dashcache-walpg-"))
        self.data = self.directory / "data"
        self.bindir = Path(
            subprocess.run(
                ["pg_config", "--bindir"],  # noqa: S607 (found on PATH, as PostgreSQL installs it)
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of one database of the cluster (user postgres, trust)."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """initdb, then start the server and wait until it accepts connections."""
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        options = [f"-c {name}={value}" for name, value in self.settings.items()]
        options += [
            f"-c port={self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.directory}",
        ]
        log = self.directory / "server.log"
        self._run("pg_ctl", "-D", str(self.data), "-o", " ".join(options), "-l", str(log), "-w",
                  "start")  # fmt: skip

    def stop(self) -> None:
        """Stop the server at once and remove its directory."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log (for a failed start's message)."""
        path = self.directory / "server.log"
        return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else ""

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)  # noqa: S603

    def __enter__(self) -> PgCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
