"""What every `dashcache` subcommand shares: readable errors and exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click
from redis import RedisError
from sqlalchemy.exc import SQLAlchemyError

from dashcache.errors import CacheUnavailable, DashboardUnavailable, DashcacheError
from dashcache.logging import redact

F = TypeVar("F", bound=Callable[..., Any])

EXIT_DIFFERENT = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


def friendly_errors(command: F) -> F:
    """Turn dashcache, Redis and database errors into one readable line and an exit code."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (CacheUnavailable, DashboardUnavailable) as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(EXIT_UNAVAILABLE)
        except DashcacheError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(EXIT_USAGE)
        except (RedisError, SQLAlchemyError) as error:
            what = "Redis" if isinstance(error, RedisError) else "the database"
            detail = str(error).splitlines()[0] if str(error) else type(error).__name__
            click.echo(f"error: cannot reach {what}: {redact(detail)}", err=True)
            sys.exit(EXIT_UNAVAILABLE)

    return run  # type: ignore[return-value]
