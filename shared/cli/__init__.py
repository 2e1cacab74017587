"""The `dashcache` command (`shared.cli:main`)."""

from shared.cli.main import main

__all__ = ["main"]
