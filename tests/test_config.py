"""Settings: defaults, parsing, and errors that name the variable."""

import pytest

from dashcache.config import Settings
from dashcache.errors import ConfigError


def test_defaults_need_no_environment() -> None:
    """An empty environment gives the embedded defaults."""
    settings = Settings.from_env({})
    assert settings.database_url.startswith("sqlite")
    assert settings.broker_url == settings.redis_url
    assert settings.refresh_seconds == 60


def test_broker_defaults_to_redis_url() -> None:
    """CELERY_BROKER_URL falls back to REDIS_URL."""
    settings = Settings.from_env({"REDIS_URL": "redis://cache:6380/2"})
    assert settings.broker_url == "redis://cache:6380/2"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DASHCACHE_REFRESH_SECONDS": "soon"}, "DASHCACHE_REFRESH_SECONDS"),
        ({"DASHCACHE_REFRESH_SECONDS": "0"}, "DASHCACHE_REFRESH_SECONDS"),
        ({"DASHCACHE_MAX_BREAKDOWN": "100000"}, "DASHCACHE_MAX_BREAKDOWN"),
        ({"DASHCACHE_KEY_PREFIX": "a b"}, "DASHCACHE_KEY_PREFIX"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"DASHCACHE_LOG_FORMAT": "xml"}, "DASHCACHE_LOG_FORMAT"),
        ({"DASHCACHE_TTL_SECONDS": "100", "DASHCACHE_REFRESH_SECONDS": "60"}, "TTL"),
        ({"DASHCACHE_EVENT_DEBOUNCE_MS": "0"}, "DASHCACHE_EVENT_DEBOUNCE_MS"),
        ({"DASHCACHE_EVENT_MAX_WAIT_MS": "200"}, "DASHCACHE_EVENT_MAX_WAIT_MS"),
        ({"DASHCACHE_EVENT_MAX_BATCH": "0"}, "DASHCACHE_EVENT_MAX_BATCH"),
        ({"DASHCACHE_ON_REDIS_DOWN": "ignore"}, "DASHCACHE_ON_REDIS_DOWN"),
        ({"DASHCACHE_SOFT_AGE_SECONDS": "0"}, "DASHCACHE_SOFT_AGE_SECONDS"),
        ({"DASHCACHE_SOFT_AGE_SECONDS": "700", "DASHCACHE_TTL_SECONDS": "600"}, "SOFT_AGE"),
        ({"DASHCACHE_LOCK_SECONDS": "5", "DASHCACHE_DB_TIMEOUT_SECONDS": "5"}, "LOCK_SECONDS"),
        ({"DASHCACHE_COMPUTE_LIMIT": "0"}, "DASHCACHE_COMPUTE_LIMIT"),
        ({"DASHCACHE_MAX_VALUE_BYTES": "10"}, "DASHCACHE_MAX_VALUE_BYTES"),
        ({"DASHCACHE_REDIS_MIN_REPLICAS": "-1"}, "DASHCACHE_REDIS_MIN_REPLICAS"),
        ({"DASHCACHE_REDIS_MIN_REPLICAS": "one"}, "DASHCACHE_REDIS_MIN_REPLICAS"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], named: str) -> None:
    """Each bad value raises ConfigError whose message names the variable."""
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


def test_soft_age_defaults_to_twice_the_refresh_period() -> None:
    """Without DASHCACHE_SOFT_AGE_SECONDS a value turns stale after two refresh periods."""
    assert Settings.from_env({"DASHCACHE_REFRESH_SECONDS": "30"}).soft_age == 60
    assert Settings.from_env({"DASHCACHE_SOFT_AGE_SECONDS": "45"}).soft_age == 45


def test_to_env_round_trips() -> None:
    """Settings written out as an environment read back equal."""
    settings = Settings(key_prefix="x1", refresh_seconds=5, ttl_seconds=600, max_breakdown=7)
    assert Settings.from_env(settings.to_env()) == settings


def test_min_replicas_defaults_to_no_wait() -> None:
    """DASHCACHE_REDIS_MIN_REPLICAS: 0 (confirm without WAIT) unless set."""
    assert Settings.from_env({}).redis_min_replicas == 0
    assert Settings.from_env({"DASHCACHE_REDIS_MIN_REPLICAS": "2"}).redis_min_replicas == 2
