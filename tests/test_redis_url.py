"""The `redis+sentinel://` URL form and what each consumer is given for it (pure)."""

from __future__ import annotations

import pytest

from dashcache.config import Settings
from dashcache.errors import ConfigError
from dashcache.redis_url import (
    SentinelUrl,
    celery_broker,
    parse_sentinel_url,
    redbeat_redis,
)

URL = "redis+sentinel://:s%40cret@127.0.0.1:26380,127.0.0.1:26381,[::1]:26382/dash/3"


def test_every_part_of_the_form_is_read() -> None:
    """Hosts in order, master name, db, the password (URL-decoded), TLS from the scheme."""
    parsed = parse_sentinel_url(URL)
    assert parsed == SentinelUrl(
        (("127.0.0.1", 26380), ("127.0.0.1", 26381), ("::1", 26382)), "dash", 3, "s@cret"
    )
    assert parse_sentinel_url("rediss+sentinel://h:1/m/0").tls
    assert parsed.shown() == (
        "redis+sentinel://:***@127.0.0.1:26380,127.0.0.1:26381,[::1]:26382/dash/3"
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://127.0.0.1:26380/dash", "must name the hosts, the master and the db"),
        ("redis+sentinel://127.0.0.1:26380//0", "must name the hosts, the master and the db"),
        ("redis+sentinel://127.0.0.1:26380/dash/x", "the db must be a whole number, got 'x'"),
        ("redis+sentinel://127.0.0.1/dash/0", "each Sentinel must be host:port, got '127.0.0.1'"),
        ("redis+sentinel://h:99999/dash/0", "each Sentinel must be host:port, got 'h:99999'"),
        ("redis+sentinel://user:pw@h:1/dash/0", "only a password is taken before '@'"),
    ],
)
def test_a_bad_url_says_what_is_wrong_and_the_form(url: str, says: str) -> None:
    """Each refusal names the part and shows the whole form."""
    with pytest.raises(ValueError, match=r"redis\+sentinel://\[:password@\]") as raised:
        parse_sentinel_url(url)
    assert says in str(raised.value)


def test_settings_take_the_form_for_redis_and_the_broker() -> None:
    """REDIS_URL and CELERY_BROKER_URL take it; a malformed one is a ConfigError naming it."""
    settings = Settings.from_env({"REDIS_URL": URL})
    assert (settings.redis_url, settings.broker_url) == (URL, URL)
    with pytest.raises(ConfigError, match=r"CELERY_BROKER_URL.*the db must be a whole number"):
        Settings.from_env({"CELERY_BROKER_URL": "redis+sentinel://h:1/dash/x"})
    with pytest.raises(ConfigError, match=r"REDIS_URL.*redis\+sentinel://"):
        Settings.from_env({"REDIS_URL": "http://h:1/0"})


def test_kombu_gets_its_sentinel_transport_with_the_master_name() -> None:
    """One `sentinel://` URL per Sentinel, the password and db on each; `master_name` apart."""
    url, options = celery_broker(URL)
    assert url == (
        "sentinel://:s%40cret@127.0.0.1:26380/3;sentinel://:s%40cret@127.0.0.1:26381/3;"
        "sentinel://:s%40cret@[::1]:26382/3"
    )
    assert options == {"master_name": "dash"}
    assert celery_broker("redis://h:1/0") == ("redis://h:1/0", {})
    assert celery_broker("rediss+sentinel://h:1/m/0")[1] == {
        "master_name": "m",
        "sentinel_kwargs": {"ssl": True},
    }


def test_redbeat_gets_its_own_sentinel_options() -> None:
    """RedBeat's `redis-sentinel://` branch reads `sentinels`, `service_name`, `db`, `password`."""
    url, options = redbeat_redis(URL, {"socket_timeout": 5.0})
    assert url.startswith("redis-sentinel://")
    assert options == {
        "sentinels": [("127.0.0.1", 26380), ("127.0.0.1", 26381), ("::1", 26382)],
        "service_name": "dash",
        "db": 3,
        "password": "s@cret",
        "socket_timeout": 5.0,
    }
    assert redbeat_redis("redis://h:1/0", {"a": 1}) == ("redis://h:1/0", {"a": 1})
