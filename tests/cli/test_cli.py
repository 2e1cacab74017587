"""The command line: set up, seed, warm and read, with exit codes a user can act on."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dashcache.cli import main
from dashcache.cli.support import EXIT_UNAVAILABLE, EXIT_USAGE
from dashcache.config import Settings
from dashcache.redis_server import free_port


def run(settings: Settings, *args: str, **env: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env={**settings.to_env(), **env})
    return result.exit_code, result.stdout, result.stderr


def test_seed_warm_get(settings: Settings) -> None:
    """db init, seed, warm and get work end to end and print what the reader returns."""
    assert run(settings, "db", "init")[0] == 0
    code, out, _ = run(settings, "seed", "--emails", "500", "--categories", "4", "--accounts", "3")
    assert code == 0
    assert "inserted 500 emails" in out
    code, out, _ = run(settings, "warm")
    assert code == 0
    assert json.loads(out)["scopes"] == 4
    code, out, _ = run(settings, "get", "aggregates")
    value = json.loads(out)
    assert (code, value["source"], value["data"]["total_emails"]) == (0, "cache", 500)
    code, out, _ = run(settings, "get", "breakdown", "--limit", "2", "--account-id", "1")
    assert code == 0
    assert len(json.loads(out)["data"]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("get", "breakdown", "--limit", "0"), "limit must be"),
        (("get", "aggregates", "--account-id", "-4"), "account_id"),
        (("seed", "--emails", "-1"), "--emails"),
    ],
)
def test_bad_input_exits_2_with_message(
    settings: Settings, args: tuple[str, ...], message: str
) -> None:
    """Out-of-range input exits 2 and says what is allowed."""
    code, _, err = run(settings, *args)
    assert code == EXIT_USAGE
    assert message in err


def test_bad_setting_exits_2_naming_it(settings: Settings) -> None:
    """A bad environment variable exits 2 naming the variable."""
    code, _, err = run(settings, "get", "aggregates", DASHCACHE_REFRESH_SECONDS="often")
    assert code == EXIT_USAGE
    assert "DASHCACHE_REFRESH_SECONDS" in err


def test_unreachable_redis_exits_3_without_password(settings: Settings) -> None:
    """A Redis that does not answer exits 3, and the URL's password is never printed."""
    url = f"redis://user:hunter2@127.0.0.1:{free_port()}/0"
    code, _, err = run(settings, "warm", REDIS_URL=url)
    assert code == EXIT_UNAVAILABLE
    assert "cannot reach Redis" in err
    assert "hunter2" not in err


def test_get_without_redis_answers_from_database_or_exits_3(settings: Settings) -> None:
    """With Redis unreachable, get computes from the database, or exits 3 when told not to."""
    url = f"redis://user:hunter2@127.0.0.1:{free_port()}/0"
    code, out, _ = run(settings, "get", "aggregates", REDIS_URL=url)
    assert (code, json.loads(out)["source"]) == (0, "fallback")
    code, _, err = run(
        settings, "get", "aggregates", REDIS_URL=url, DASHCACHE_ON_REDIS_DOWN="error"
    )
    assert code == EXIT_UNAVAILABLE
    assert "DASHCACHE_ON_REDIS_DOWN=error" in err
    assert "hunter2" not in err
