"""Single flight: of all the readers missing one scope, one computes and the others wait for it.

The lock is `SET lock token NX PX expiry`; only the holder (same token) can delete it, so a
holder that outlived its expiry cannot release a successor's lock, and a holder that died never
wedges the scope: its lock expires. When done, the holder publishes its outcome (`ok`, or
`error: why`) on the scope's channel, in the same script that releases the lock; a holder that
gives up (its caller was cancelled: async_singleflight.py) publishes `abandoned`, which wakes
the waiters to take the lock over.

Waiters subscribe to that channel, then re-check the value and the lock every `poll_seconds`
(no busy loop): a publish wakes them at once, the re-check covers a holder that died silently.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

from dashcache.errors import DashboardUnavailable
from dashcache.keys import KeySchema, Scope
from dashcache.reader.redis_health import RedisHealth

T = TypeVar("T")

OK = "ok"
ERROR = "error: "
ABANDONED = "abandoned"
DELIVERY_SECONDS = 0.05
"""How long a waiter that found the lock gone listens for the outcome already on its way."""

# KEYS: lock.  ARGV: token, channel, outcome.  Delete the lock only if it is still ours; tell
# waiters a value is there (always), or that the computation failed or was given up (only if we
# still held it).
RELEASE_SCRIPT = """
local held = redis.call('GET', KEYS[1]) == ARGV[1]
if held then redis.call('DEL', KEYS[1]) end
if held or ARGV[3] == 'ok' then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return held and 1 or 0
"""


@dataclass(frozen=True, slots=True)
class Lease:
    """A held lock on one scope."""

    account_id: Scope
    key: str
    token: str


class SingleFlight:
    """Locks and waits for one deployment's scopes."""

    def __init__(
        self,
        client: redis.Redis,
        keys: KeySchema,
        lock_seconds: float,
        health: RedisHealth | None = None,
        poll_seconds: float = 0.25,
    ) -> None:
        self.client = client
        self.keys = keys
        self.lock_ms = int(lock_seconds * 1000)
        self.health = health
        self.poll_seconds = poll_seconds
        self._release = client.register_script(RELEASE_SCRIPT)

    def run(
        self,
        account_id: Scope,
        fetch: Callable[[], T | None],
        compute: Callable[[], T],
        deadline: float,
    ) -> T:
        """The value of a scope, computed by at most one caller at a time across processes.

        `fetch` reads the value (None when missing or unusable); whoever takes the lock checks
        it once more, then calls `compute`, which must write the value before returning. A
        `DashboardUnavailable` from `compute` is passed on to the waiters.
        """
        while (lease := self.try_acquire(account_id)) is None:
            waited = self.wait(account_id, fetch, deadline)
            if waited is not None:
                return waited
        outcome: str | None = OK
        try:
            found = fetch()  # written by another reader between our miss and our lock
            return compute() if found is None else found
        except DashboardUnavailable as error:
            outcome = f"{ERROR}{error}"
            raise
        except redis.RedisError:
            outcome = None  # Redis is failing: do not wait on it again, the lock expires
            raise
        finally:
            if outcome is not None and (self.health is None or self.health.up):
                self._release_quietly(lease, outcome)

    def _release_quietly(self, lease: Lease, outcome: str) -> None:
        """Release; a Redis failure here is only recorded (the lock expires by itself)."""
        try:
            self.release(lease, outcome)
        except redis.RedisError as error:
            if self.health is None:
                raise
            self.health.failed(error)

    def try_acquire(self, account_id: Scope) -> Lease | None:
        """The lock of a scope if nobody holds it, else None."""
        key, token = self.keys.lock(account_id), secrets.token_hex(16)
        if self.client.set(key, token, nx=True, px=self.lock_ms):
            return Lease(account_id, key, token)
        return None

    def release(self, lease: Lease, outcome: str = OK) -> bool:
        """Release if still ours and publish `outcome`; False when the lock had expired."""
        channel = self.keys.filled(lease.account_id)
        return bool(self._release(keys=[lease.key], args=[lease.token, channel, outcome]))

    def wait(self, account_id: Scope, fetch: Callable[[], T | None], deadline: float) -> T | None:
        """Wait for another reader's value of this scope.

        Returns what `fetch` returns once it is not None, or None when the lock is free and there
        is still no value (the caller should try to take the lock). Raises `DashboardUnavailable`
        when the holder reports a failure, or at `deadline` (a `time.monotonic()` value).
        """
        pubsub = self.client.pubsub()
        try:
            pubsub.subscribe(self.keys.filled(account_id))
            lock = self.keys.lock(account_id)
            while True:
                found = fetch()
                if found is not None:
                    return found
                if not self.client.exists(lock):
                    # Released between the fetch and this look? Its value, or the failure it
                    # published to this connection, comes before taking the lock ourselves.
                    found = fetch()
                    if found is None:
                        listen(pubsub, DELIVERY_SECONDS)
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise wait_expired()
                listen(pubsub, min(self.poll_seconds, remaining))
        finally:
            pubsub.close()


def wait_expired() -> DashboardUnavailable:
    """What a waiter raises at its deadline."""
    return DashboardUnavailable(
        "another reader is still computing this value and it did not arrive within "
        "DASHCACHE_WAIT_SECONDS; retry shortly"
    )


def listen(pubsub: Any, timeout: float) -> None:
    """Wait up to `timeout` for the holder's outcome; raise its failure if it reports one.

    Returns at the first outcome (or at the timeout); the subscription's confirmation is read
    past, not taken for an outcome.
    """
    end = time.monotonic() + timeout
    while (left := end - time.monotonic()) > 0:
        message = pubsub.get_message(timeout=left)
        if message is None or raised_outcome(message):
            return


def raised_outcome(message: dict[str, Any]) -> bool:
    """True if `message` is a holder's outcome; raise it when it is a failure."""
    if message["type"] != "message":
        return False
    if failure := holder_failed(message["data"]):
        raise failure
    return True


def holder_failed(data: bytes) -> DashboardUnavailable | None:
    """The error a waiter raises for a holder's published outcome, None if it is no failure."""
    text = data.decode(errors="replace")
    if text.startswith(ERROR):
        return DashboardUnavailable(f"the reader computing this value failed: {text[len(ERROR) :]}")
    return None
