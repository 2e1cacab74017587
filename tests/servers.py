"""Servers a fault test controls: its own redis-server, and a TCP proxy it can cut and restore."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(check: Callable[[], object], timeout: float, what: str) -> None:
    """Poll the callable `check` until it returns true; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def pool_children(pid: int) -> list[int]:
    """Process ids of the direct children of `pid` (a prefork worker's pool processes)."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(line) for line in found.stdout.split()]


class RedisServer:
    """A memory-only redis-server on a fixed port, which a test can stop and start again."""

    def __init__(self, port: int, *extra: str, url: str | None = None) -> None:
        self.port = port
        self.extra = extra
        self.url = url or f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, client: redis.Redis | None = None) -> None:
        """Start the server and wait until `client` (default: a plain one on `url`) pings."""
        args = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        if "--port" not in self.extra:
            args += ["--port", str(self.port)]
        self.process = subprocess.Popen([*args, *self.extra], stdout=subprocess.DEVNULL)
        probe = client or redis.Redis.from_url(self.url, socket_connect_timeout=1)

        def pings() -> bool:
            try:
                return bool(probe.ping())
            except redis.RedisError:
                return False

        try:
            wait_until(pings, 10, f"redis-server on port {self.port}")
        finally:
            if client is None:
                probe.close()

    def stop(self) -> None:
        """Stop the server; with no persistence, every key is lost."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@contextmanager
def redis_server(*extra: str) -> Iterator[RedisServer]:
    """A RedisServer on a free port, stopped when the block ends."""
    server = RedisServer(free_port(), *extra)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class TcpProxy:
    """Forwards 127.0.0.1:`port` to an upstream address until `cut`, then refuses connections.

    `cut` closes the listening socket and every forwarded connection, like a database that went
    away; `restore` listens on the same port again.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        """Accept and forward connections again."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)
