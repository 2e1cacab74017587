"""A throwaway redis-server on a port of its own, to inject Redis faults for real.

The reader benchmark and the tests pause it (SIGSTOP: connections hang, like an overloaded or
partitioned Redis), stop it (connections refused) and start it again on the same port.
`SilentPort` is a hung Redis without a server: a port that accepts and never answers.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from types import TracebackType

import redis


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A memory-only `redis-server` (`binary`, default the one on PATH) on 127.0.0.1:`port`.

    `extra` arguments go to the server as they are (TLS, `--requirepass`...); when they hold a
    `--port` of their own, give the `url` clients reach it by. As a context manager it starts
    the server and stops it at the end of the block.
    """

    def __init__(
        self,
        port: int | None = None,
        *extra: str,
        url: str | None = None,
        binary: str | None = None,
    ) -> None:
        self.port = port or free_port()
        self.extra = extra
        self.url = url or f"redis://127.0.0.1:{self.port}/0"
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start (or restart) the server and wait until it answers PING."""
        binary = self.binary or shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH")
        args = [binary, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        if "--port" not in self.extra:
            args += ["--port", str(self.port)]
        self.process = subprocess.Popen([*args, *self.extra], stdout=subprocess.DEVNULL)  # noqa: S603
        client = redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    client.ping()
                    return self
                except redis.RedisError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(f"redis-server did not start on {self.port}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def pause(self) -> None:
        """Freeze the server: it accepts connections but never answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server answer again."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server (resuming it first if paused); its data is gone."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class SilentPort:
    """A port on 127.0.0.1 that accepts connections and never answers: a hung Redis. Use as a
    context manager; the connections are closed at exit."""

    def __init__(self) -> None:
        self.port = free_port()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(256)
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        """A Redis URL pointing at the port."""
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> SilentPort:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept
        self._listener.close()
        self._thread.join(timeout=5)
        for sock in self._accepted:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._accepted.append(client)
