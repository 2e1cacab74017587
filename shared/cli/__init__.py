"""The `dashcache` command (`dashcache.cli:main`)."""

from dashcache.cli.main import main

__all__ = ["main"]
