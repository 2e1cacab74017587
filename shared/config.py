"""Settings: read from the environment in one place, validated, then passed around as an object."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from dashcache.errors import ConfigError
from dashcache.redis_url import PLAIN_SCHEMES, SENTINEL_SCHEMES, is_sentinel, parse_sentinel_url
from dashcache.schema.mapping import load_mapping

T = TypeVar("T")

DEFAULT_DATABASE_URL = "sqlite:///dashcache.db"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
BROKER_SCHEMES = ("redis://", "rediss://", *SENTINEL_SCHEMES, "amqp")
_PREFIX_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_PG_NAME_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_LOG_FORMATS = ("auto", "json", "console")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_ON_REDIS_DOWN = ("database", "error")


ENV_NAMES = {
    "DATABASE_URL": "database_url",
    "REDIS_URL": "redis_url",
    "CELERY_BROKER_URL": "broker_url",
    "DASHCACHE_KEY_PREFIX": "key_prefix",
    "DASHCACHE_REFRESH_SECONDS": "refresh_seconds",
    "DASHCACHE_TTL_SECONDS": "ttl_seconds",
    "DASHCACHE_MAX_BREAKDOWN": "max_breakdown",
    "DASHCACHE_REDIS_TIMEOUT_SECONDS": "redis_timeout_seconds",
    "DASHCACHE_TASK_TIME_LIMIT_SECONDS": "task_time_limit_seconds",
    "DASHCACHE_LOG_FORMAT": "log_format",
    "DASHCACHE_LOG_LEVEL": "log_level",
    "DASHCACHE_EVENT_DEBOUNCE_MS": "event_debounce_ms",
    "DASHCACHE_EVENT_MAX_WAIT_MS": "event_max_wait_ms",
    "DASHCACHE_EVENT_MAX_BATCH": "event_max_batch",
    "DASHCACHE_PUBLISH_LINGER_MS": "publish_linger_ms",
    "DASHCACHE_SOFT_AGE_SECONDS": "soft_age_seconds",
    "DASHCACHE_METRICS_FLUSH_SECONDS": "metrics_flush_seconds",
    "DASHCACHE_WAIT_SECONDS": "wait_seconds",
    "DASHCACHE_LOCK_SECONDS": "lock_seconds",
    "DASHCACHE_DB_TIMEOUT_SECONDS": "db_timeout_seconds",
    "DASHCACHE_COMPUTE_LIMIT": "compute_limit",
    "DASHCACHE_ON_REDIS_DOWN": "on_redis_down",
    "DASHCACHE_BREAKER_FAILURES": "breaker_failures",
    "DASHCACHE_BREAKER_RESET_SECONDS": "breaker_reset_seconds",
    "DASHCACHE_MAX_VALUE_BYTES": "max_value_bytes",
    "DASHCACHE_SCHEMA_FILE": "schema_file",
    "DASHCACHE_CDC_PUBLICATION": "cdc_publication",
    "DASHCACHE_CDC_SLOT": "cdc_slot",
    "DASHCACHE_CDC_MAX_LAG_SECONDS": "cdc_max_lag_seconds",
    "DASHCACHE_CDC_LOCK_SECONDS": "cdc_lock_seconds",
    "DASHCACHE_CDC_CHUNK_ROWS": "cdc_chunk_rows",
    "DASHCACHE_SHARD_ACCOUNTS": "shard_accounts",
    "DASHCACHE_IDLE_DAYS": "idle_days",
    "DASHCACHE_REDIS_MIN_REPLICAS": "redis_min_replicas",
}
"""Environment variable -> settings attribute."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything dashcache can be configured with. Build with `from_env` or directly in tests."""

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL
    broker_url: str = DEFAULT_REDIS_URL
    key_prefix: str = "dashcache"
    refresh_seconds: int = 60
    ttl_seconds: int = 7 * 24 * 3600
    max_breakdown: int = 100
    redis_timeout_seconds: float = 0.5
    task_time_limit_seconds: int = 120
    log_format: str = "auto"
    log_level: str = "INFO"
    event_debounce_ms: int = 250
    event_max_wait_ms: int = 2000
    event_max_batch: int = 1000
    publish_linger_ms: float = 2.0
    """How long a single `publish` waits for others to join its batch."""
    soft_age_seconds: int | None = None
    """Age past which a value counts as stale; None means twice `refresh_seconds`."""
    metrics_flush_seconds: float = 1.0
    """How often a process flushes its metric counts to Redis; 0 turns metrics off."""
    wait_seconds: float = 10.0
    lock_seconds: float = 15.0
    db_timeout_seconds: float = 5.0
    compute_limit: int = 4
    on_redis_down: str = "database"
    breaker_failures: int = 3
    breaker_reset_seconds: float = 5.0
    max_value_bytes: int = 1024 * 1024
    schema_file: str | None = None
    """The TOML schema mapping of the app's own tables; None reads the demo schema."""
    cdc_publication: str = "dashcache"
    """The PostgreSQL publication `dashcache cdc run` streams (created when missing)."""
    cdc_slot: str = "dashcache"
    """The logical replication slot `dashcache cdc run` consumes (created when missing)."""
    cdc_max_lag_seconds: float = 30.0
    """`dashcache health` fails when the WAL consumer's lag passes this."""
    cdc_lock_seconds: float = 10.0
    """TTL of the one-consumer lock; a standby takes over at most this long after a death."""
    cdc_chunk_rows: int = 5000
    """Rows of one transaction applied per Redis round trip (bounds the consumer's memory)."""
    shard_accounts: int = 10_000
    """Account ids per shard of the scheduled pass (one `warm_shard` task each)."""
    idle_days: int = 30
    """Accounts whose dashboards nobody read for this many days drop out of the pass."""
    redis_min_replicas: int = 0
    """Replicas that must acknowledge (Redis `WAIT`) a WAL transaction's writes before the WAL
    consumer confirms it to PostgreSQL; 0 confirms without waiting."""

    @property
    def soft_age(self) -> int:
        """The soft age in seconds, its default resolved."""
        return 2 * self.refresh_seconds if self.soft_age_seconds is None else self.soft_age_seconds

    @property
    def schedule_queue(self) -> str:
        """Celery queue for scheduled recomputes."""
        return f"{self.key_prefix}.schedule"

    @property
    def events_queue(self) -> str:
        """Celery queue for event-driven recomputes, apart so a flood cannot starve the schedule."""
        return f"{self.key_prefix}.events"

    def to_env(self) -> dict[str, str]:
        """The environment that `from_env` turns back into these settings (for child processes)."""
        values = {name: getattr(self, attr) for name, attr in ENV_NAMES.items()}
        return {name: str(value) for name, value in values.items() if value is not None}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting; raise `ConfigError` naming the first bad variable."""
        env = os.environ if env is None else env
        redis_url = _url(env, "REDIS_URL", DEFAULT_REDIS_URL, (*PLAIN_SCHEMES, *SENTINEL_SCHEMES))
        settings = cls(
            database_url=_url(env, "DATABASE_URL", DEFAULT_DATABASE_URL, ("sqlite", "postgresql")),
            redis_url=redis_url,
            broker_url=_url(env, "CELERY_BROKER_URL", redis_url, BROKER_SCHEMES),
            key_prefix=_get(env, "DASHCACHE_KEY_PREFIX", "dashcache", str, _match_prefix),
            refresh_seconds=_get(env, "DASHCACHE_REFRESH_SECONDS", 60, int, _between(1, 86400)),
            ttl_seconds=_get(
                env, "DASHCACHE_TTL_SECONDS", 7 * 86400, int, _between(60, 90 * 86400)
            ),
            max_breakdown=_get(env, "DASHCACHE_MAX_BREAKDOWN", 100, int, _between(1, 10000)),
            redis_timeout_seconds=_get(
                env, "DASHCACHE_REDIS_TIMEOUT_SECONDS", 0.5, float, _between(0.01, 60)
            ),
            task_time_limit_seconds=_get(
                env, "DASHCACHE_TASK_TIME_LIMIT_SECONDS", 120, int, _between(5, 3000)
            ),
            log_format=_get(env, "DASHCACHE_LOG_FORMAT", "auto", str.lower, _one_of(_LOG_FORMATS)),
            log_level=_get(env, "DASHCACHE_LOG_LEVEL", "INFO", str.upper, _one_of(_LOG_LEVELS)),
            event_debounce_ms=_get(
                env, "DASHCACHE_EVENT_DEBOUNCE_MS", 250, int, _between(1, 60_000)
            ),
            event_max_wait_ms=_get(
                env, "DASHCACHE_EVENT_MAX_WAIT_MS", 2000, int, _between(10, 600_000)
            ),
            event_max_batch=_get(env, "DASHCACHE_EVENT_MAX_BATCH", 1000, int, _between(1, 100_000)),
            publish_linger_ms=_get(
                env, "DASHCACHE_PUBLISH_LINGER_MS", 2.0, float, _between(0, 1000)
            ),
            # Unset stays None (twice the refresh period); an explicit value must be >= 1.
            soft_age_seconds=_get(
                env, "DASHCACHE_SOFT_AGE_SECONDS", 0, int, _between(1, 90 * 86400)
            )
            or None,
            metrics_flush_seconds=_get(
                env, "DASHCACHE_METRICS_FLUSH_SECONDS", 1.0, float, _flush_period
            ),
            wait_seconds=_get(env, "DASHCACHE_WAIT_SECONDS", 10.0, float, _between(0.1, 300)),
            lock_seconds=_get(env, "DASHCACHE_LOCK_SECONDS", 15.0, float, _between(1, 3600)),
            db_timeout_seconds=_get(
                env, "DASHCACHE_DB_TIMEOUT_SECONDS", 5.0, float, _between(1, 600)
            ),
            compute_limit=_get(env, "DASHCACHE_COMPUTE_LIMIT", 4, int, _between(1, 1000)),
            on_redis_down=_get(
                env, "DASHCACHE_ON_REDIS_DOWN", "database", str.lower, _one_of(_ON_REDIS_DOWN)
            ),
            breaker_failures=_get(env, "DASHCACHE_BREAKER_FAILURES", 3, int, _between(1, 1000)),
            breaker_reset_seconds=_get(
                env, "DASHCACHE_BREAKER_RESET_SECONDS", 5.0, float, _between(0.05, 3600)
            ),
            max_value_bytes=_get(
                env, "DASHCACHE_MAX_VALUE_BYTES", 1024 * 1024, int, _between(1024, 512 * 1024**2)
            ),
            schema_file=env.get("DASHCACHE_SCHEMA_FILE", "").strip() or None,
            cdc_publication=_get(env, "DASHCACHE_CDC_PUBLICATION", "dashcache", str, _pg_name),
            cdc_slot=_get(env, "DASHCACHE_CDC_SLOT", "dashcache", str, _pg_name),
            cdc_max_lag_seconds=_get(
                env, "DASHCACHE_CDC_MAX_LAG_SECONDS", 30.0, float, _between(0.1, 86400)
            ),
            cdc_lock_seconds=_get(env, "DASHCACHE_CDC_LOCK_SECONDS", 10.0, float, _between(1, 30)),
            cdc_chunk_rows=_get(env, "DASHCACHE_CDC_CHUNK_ROWS", 5000, int, _between(1, 1_000_000)),
            shard_accounts=_get(
                env, "DASHCACHE_SHARD_ACCOUNTS", 10_000, int, _between(1, 100_000_000)
            ),
            idle_days=_get(env, "DASHCACHE_IDLE_DAYS", 30, int, _between(1, 3650)),
            redis_min_replicas=_get(env, "DASHCACHE_REDIS_MIN_REPLICAS", 0, int, _between(0, 100)),
        )
        _check_together(settings)
        load_mapping(settings.schema_file)  # a malformed file stops here, naming its key
        return settings


def _check_together(settings: Settings) -> None:
    """Relations between settings: each value may be fine alone and wrong with another."""
    if settings.ttl_seconds < 2 * settings.refresh_seconds:
        raise ConfigError(
            "DASHCACHE_TTL_SECONDS must be at least twice DASHCACHE_REFRESH_SECONDS "
            f"(got {settings.ttl_seconds} and {settings.refresh_seconds})"
        )
    if settings.event_max_wait_ms <= settings.event_debounce_ms:
        raise ConfigError(
            "DASHCACHE_EVENT_MAX_WAIT_MS must be greater than DASHCACHE_EVENT_DEBOUNCE_MS "
            f"(got {settings.event_max_wait_ms} and {settings.event_debounce_ms})"
        )
    if settings.soft_age >= settings.ttl_seconds:
        raise ConfigError(
            "DASHCACHE_SOFT_AGE_SECONDS (default: twice DASHCACHE_REFRESH_SECONDS) must be below "
            f"DASHCACHE_TTL_SECONDS (got {settings.soft_age} and {settings.ttl_seconds})"
        )
    if settings.lock_seconds < 2 * settings.db_timeout_seconds:
        raise ConfigError(
            "DASHCACHE_LOCK_SECONDS must be at least twice DASHCACHE_DB_TIMEOUT_SECONDS, so a "
            "computation still running keeps its lock "
            f"(got {settings.lock_seconds} and {settings.db_timeout_seconds})"
        )


def _get(
    env: Mapping[str, str],
    name: str,
    default: T,
    parse: Callable[[str], T],
    check: Callable[[T], str | None],
) -> T:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {parse.__name__}") from None
    problem = check(value)
    if problem:
        raise ConfigError(f"{name}={raw!r}: {problem}")
    return value


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    def check(url: str) -> str | None:
        if not url.startswith(schemes):
            return "must start with one of " + ", ".join(schemes)
        if is_sentinel(url):
            try:
                parse_sentinel_url(url)
            except ValueError as error:
                return str(error)
        return None

    return _get(env, name, default, str, check)


def _between(low: float, high: float) -> Callable[[float], str | None]:
    def check(value: float) -> str | None:
        return None if low <= value <= high else f"must be between {low} and {high}"

    return check


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else "must be one of " + ", ".join(choices)

    return check


def _flush_period(value: float) -> str | None:
    if value == 0 or 0.05 <= value <= 60:
        return None
    return "must be 0 (metrics off) or between 0.05 and 60"


def _match_prefix(value: str) -> str | None:
    if _PREFIX_RE.fullmatch(value):
        return None
    return "must be 1-64 characters of letters, digits, '_', '.' or '-'"


def _pg_name(value: str) -> str | None:
    if _PG_NAME_RE.fullmatch(value):
        return None
    return "must be 1-63 lowercase letters, digits or '_', not starting with a digit"
