"""A real Sentinel topology on loopback ports: one primary, one replica, three Sentinels."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import redis

from dashcache.redis_server import RedisServer, free_port

MASTER = "dash"


class SentinelTopology:
    """Primary and replica `redis-server`s and three `redis-server --sentinel` monitoring them
    (quorum 2, a node down after `down_after_ms`); `url(db)` is the `redis+sentinel://` URL."""

    def __init__(self, workdir: Path, down_after_ms: int = 1000) -> None:
        self.workdir = workdir
        self.down_after_ms = down_after_ms
        # A replica's full sync goes through an RDB file: keep it in the test's directory.
        # DEBUG SLEEP pauses a node the way a stalled server is (tests only, loopback only).
        debug = ("--enable-debug-command", "local")
        self.primary = RedisServer(None, "--dir", str(workdir), *debug)
        self.replica = RedisServer(
            None, "--dir", str(workdir), *debug, "--replicaof", "127.0.0.1", str(self.primary.port)
        )
        self.sentinel_ports = [free_port() for _ in range(3)]
        self._sentinels: list[subprocess.Popen[bytes]] = []

    def url(self, db: int = 0) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{MASTER}/{db}"

    def __enter__(self) -> SentinelTopology:
        self.primary.start()
        self.replica.start()
        self._wait(lambda: self._link_up(self.replica.port), "the replica in sync", 30)
        for port in self.sentinel_ports:
            self._sentinels.append(self._start_sentinel(port))
        self._wait(self._sentinels_know_everything, "three Sentinels that see both nodes", 60)
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        for process in self._sentinels:
            process.terminate()
        for process in self._sentinels:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.replica.stop()
        self.primary.stop()

    def master_address(self) -> tuple[str, int]:
        """What the first Sentinel that answers names as the primary."""
        for port in self.sentinel_ports:
            client = redis.Redis(port=port, socket_timeout=2, decode_responses=True)
            try:
                host, master_port = client.sentinel_get_master_addr_by_name(MASTER)
                return host, int(master_port)
            except (redis.RedisError, TypeError):
                continue
            finally:
                client.close()
        raise AssertionError("no Sentinel names a primary")

    def kill_primary(self, timeout: float = 60) -> tuple[str, int]:
        """SIGKILL the primary; wait until Sentinel names the replica; its address."""
        self._kill_primary()
        return self._promoted(timeout)

    def fail_over_losing(self, write: Callable[[], None], timeout: float = 60) -> tuple[str, int]:
        """A failover that loses `write()`: the replica paused and cut off from the primary
        (nothing the primary sends after that reaches it), `write()` run on the primary, the
        primary killed -9, then the replica resumed; returns it once Sentinel promoted it."""
        self.replica.pause()
        try:
            primary = redis.Redis(port=self.primary.port, socket_timeout=5)
            try:
                primary.client_kill_filter(_type="replica")
            finally:
                primary.close()
            write()
            self._kill_primary()
        finally:
            self.replica.resume()
        return self._promoted(timeout)

    def _kill_primary(self) -> None:
        assert self.primary.process is not None
        os.kill(self.primary.process.pid, signal.SIGKILL)
        self.primary.process.wait()

    def _promoted(self, timeout: float) -> tuple[str, int]:
        promoted = ("127.0.0.1", self.replica.port)
        self._wait(lambda: self._names(promoted), "Sentinel to promote the replica", timeout)
        return promoted

    def _names(self, address: tuple[str, int]) -> bool:
        try:
            return self.master_address() == address
        except AssertionError:
            return False

    def _start_sentinel(self, port: int) -> subprocess.Popen[bytes]:
        config = self.workdir / f"sentinel-{port}.conf"
        config.write_text(
            f"port {port}\nbind 127.0.0.1\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} {self.down_after_ms}\n"
            f"sentinel failover-timeout {MASTER} 10000\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        return subprocess.Popen(
            ["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL
        )

    def _link_up(self, port: int) -> bool:
        client = redis.Redis(port=port, socket_timeout=2)
        try:
            info = client.info("replication")
        except redis.RedisError:
            return False
        finally:
            client.close()
        return info.get("role") == "slave" and info.get("master_link_status") == "up"

    def _sentinels_know_everything(self) -> bool:
        for port in self.sentinel_ports:
            client = redis.Redis(port=port, socket_timeout=2, decode_responses=True)
            try:
                master = client.sentinel_master(MASTER)
                replicas = client.sentinel_slaves(MASTER)
            except redis.RedisError:
                return False
            finally:
                client.close()
            if int(master.get("num-other-sentinels", 0)) < 2 or not replicas:
                return False
        return True

    @staticmethod
    def _wait(check: object, what: str, timeout: float) -> None:
        assert callable(check)
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.1)
