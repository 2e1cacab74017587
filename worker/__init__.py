"""The dashcache worker: `celery -A dashcache.worker worker` and `... beat`."""

from dashcache.worker.app import app

__all__ = ["app"]
