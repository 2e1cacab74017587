"""Logging that behaves inside a host process, and the worker's and CLI's rendering of it.

Every dashcache module logs events (a name and fields) through the standard `logging` module,
under its own module logger (`dashcache.reader`, `dashcache.store`, ...). Used as a library,
dashcache therefore prints nothing itself and never touches the root logger: the host's
handlers, levels and filters decide what happens to its records. A record's message is the event
with its fields (`reader.fallback kind=aggregates scope=a1 ...`, URL passwords masked) and the
fields ride along as the record attribute `dashcache` (a dict), for a host's structured formatter.

The worker, beat and the CLI call `configure_logging`: one stderr handler on the root logger
renders every record (dashcache's with their fields, Celery's and SQLAlchemy's too) as JSON lines
when not on a terminal, readable console output on one.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from dashcache.config import Settings

FIELDS_ATTRIBUTE = "dashcache"
"""The LogRecord attribute holding an event's name and fields."""

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^\s:/@]*:)[^\s@/]+(?P<at>@)")

# A library's top logger gets a NullHandler (Python's logging HOWTO), so a host that configured
# no handler at all does not get WARNING records on stderr from logging's last-resort handler.
logging.getLogger("dashcache").addHandler(logging.NullHandler())


def redact(text: str) -> str:
    """`text` with the password of every URL in it replaced by `***`."""
    return _URL_PASSWORD.sub(r"\g<head>***\g<at>", text)


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Processor: mask URL passwords in every string value, the event text included."""
    for key, value in event_dict.items():
        if isinstance(value, str) and "://" in value:
            event_dict[key] = redact(value)
    return event_dict


class EventLogger:
    """Logs events as standard `logging` records of one module's logger."""

    __slots__ = ("logger",)

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)

    def debug(self, event: str, **fields: Any) -> None:
        """Log `event` at DEBUG."""
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        """Log `event` at INFO."""
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Log `event` at WARNING."""
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        """Log `event` at ERROR."""
        self._log(logging.ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """Log `event` at ERROR with the exception being handled."""
        self._log(logging.ERROR, event, fields, exc_info=True)

    def _log(self, level: int, event: str, fields: dict[str, Any], exc_info: bool = False) -> None:
        if not self.logger.isEnabledFor(level):
            return
        safe = {
            key: redact(value) if isinstance(value, str) else value
            for key, value in {"event": event, **fields}.items()
        }
        message = " ".join(
            [safe["event"], *(f"{key}={value}" for key, value in safe.items() if key != "event")]
        )
        self.logger.log(
            level, message, exc_info=exc_info, extra={FIELDS_ATTRIBUTE: safe}, stacklevel=3
        )


def event_fields(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Processor: a dashcache record's event name and fields instead of its flat message."""
    fields = getattr(event_dict.get("_record"), FIELDS_ATTRIBUTE, None)
    if isinstance(fields, dict):
        event_dict.update(fields)
    return event_dict


def configure_logging(settings: Settings) -> None:
    """Route every stdlib record through one renderer chosen by `settings.log_format`.

    For the worker, beat and the CLI only: it replaces the root logger's handlers.
    """
    as_json = settings.log_format == "json" or (
        settings.log_format == "auto" and not sys.stderr.isatty()
    )
    chain: list[Processor] = [
        event_fields,
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    tail: list[Processor] = [structlog.processors.format_exc_info] if as_json else []
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=chain,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)


def get_logger(name: str) -> EventLogger:
    """The event logger of a module (pass `__name__`)."""
    return EventLogger(name)
