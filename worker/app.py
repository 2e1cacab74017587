"""The Celery app: JSON only, acks late, prefetch 1, no result backend, UTC, bounded time."""

from __future__ import annotations

from typing import Any

import structlog
from celery import Celery, signals
from kombu.entity import Queue
from sqlalchemy.exc import SQLAlchemyError

from dashcache.config import Settings
from dashcache.dispatch import INGEST_EVENTS, RECOMPUTE_TARGETS, WARM_ALL
from dashcache.errors import SchemaError
from dashcache.logging import configure_logging, get_logger, redact
from dashcache.metrics import close_all
from dashcache.redis_url import celery_broker
from dashcache.schema.check import engine_for
from dashcache.worker.runtime import reset_runtime
from dashcache.worker.schedule import beat_config

settings = Settings.from_env()
log = get_logger(__name__)
EXIT_SCHEMA = 2

broker_url, broker_options = celery_broker(settings.broker_url)
app = Celery("dashcache", include=["dashcache.worker.tasks"])
app.conf.update(
    # Celery lets CELERY_BROKER_URL (dashcache's own setting) override broker_url; the read and
    # write URLs come first, so a redis+sentinel:// value reaches kombu in its sentinel:// form.
    broker_url=broker_url,
    broker_read_url=broker_url,
    broker_write_url=broker_url,
    broker_connection_retry=True,
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,
    # Above the hard time limit, so a running task is never delivered twice for being slow.
    broker_transport_options={
        "visibility_timeout": 10 * settings.task_time_limit_seconds,
        **broker_options,
    },
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    task_ignore_result=True,
    result_expires=None,  # no result backend, so no daily backend_cleanup entry in beat
    result_backend=None,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_soft_time_limit=settings.task_time_limit_seconds,
    task_time_limit=settings.task_time_limit_seconds + 30,
    timezone="UTC",
    enable_utc=True,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    task_queues=[Queue(settings.schedule_queue), Queue(settings.events_queue)],
    task_default_queue=settings.schedule_queue,
    task_routes={
        "dashcache.warm_*": {"queue": settings.schedule_queue},
        RECOMPUTE_TARGETS: {"queue": settings.events_queue},
        INGEST_EVENTS: {"queue": settings.events_queue},
    },
    **beat_config(settings),
)


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    configure_logging(settings)


@signals.worker_init.connect
@signals.beat_init.connect
def _check_schema(**_: Any) -> None:
    """Stop a worker or beat whose schema mapping does not fit the database.

    A database that cannot be reached now only defers the check: each process checks again
    when it opens its engine (a recompute then fails, logged, until the mapping fits).
    """
    try:
        engine_for(settings).dispose()
    except SchemaError as error:
        configure_logging(settings)  # a worker sends worker_init before it sets up logging
        log.error("schema.invalid", error=str(error))
        raise SystemExit(EXIT_SCHEMA) from None
    except SQLAlchemyError as error:
        log.warning("schema.check_deferred", error=redact(f"{type(error).__name__}: {error}"))


@signals.worker_process_init.connect
def _fresh_connections_after_fork(**_: Any) -> None:
    reset_runtime()


@signals.worker_process_shutdown.connect
def _flush_metrics_at_exit(**_: Any) -> None:
    """Pool children leave through os._exit, which skips atexit: flush the last counts here."""
    close_all()


@signals.worker_ready.connect
def _warm_on_start(sender: Any = None, **_: Any) -> None:
    """Warm every scope once at start-up instead of waiting a whole period for beat."""
    app.send_task(WARM_ALL, queue=settings.schedule_queue)


@signals.task_prerun.connect
def _bind_task_context(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    structlog.contextvars.clear_contextvars()
    queue = (task.request.delivery_info or {}).get("routing_key") if task else None
    structlog.contextvars.bind_contextvars(
        task_id=task_id, task_name=getattr(task, "name", None), queue=queue
    )


@signals.task_postrun.connect
def _clear_task_context(**_: Any) -> None:
    structlog.contextvars.clear_contextvars()
