"""Every error a dashcache caller can see. Catch `DashcacheError` to catch them all."""


class DashcacheError(Exception):
    """Base class of every dashcache error."""


class ConfigError(DashcacheError):
    """An environment variable holds a value dashcache cannot use; the message names it."""


class InvalidArgument(DashcacheError, ValueError):
    """A reader argument is out of range; the message says what is allowed."""


class InvalidEvent(DashcacheError, ValueError):
    """An event payload is malformed; `field` names the offending field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DashboardUnavailable(DashcacheError):
    """No value could be served: nothing cached and the database cannot compute one in time."""


class CacheUnavailable(DashcacheError):
    """Redis cannot be reached and the reader is configured not to fall back to the database."""


class SchemaError(ConfigError):
    """The schema mapping does not fit the database (or is malformed); the message names the
    mapping key, e.g. `emails.unread: column "read_at" not found in table "messages"`."""


class PublisherClosed(DashcacheError):
    """`publish` or `publish_many` was called on an `EventPublisher` after its `close()`; nothing
    was queued nor sent. Publish through a publisher that is open (make a new one, or use the
    process's default publisher)."""
