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


class EventConflict(InvalidEvent):
    """A published change of an email in a transaction whose change of that email was already
    applied by an earlier batch with other rows: the events of one (txid, email) must be
    published in one batch, where they are netted. The rest of the batch was applied; the values
    of the scopes it conflicted in are recomputed, so nothing is lost (a retry is a duplicate)."""


class DashboardUnavailable(DashcacheError):
    """No value could be served: nothing cached and the database cannot compute one in time."""


class CacheUnavailable(DashcacheError):
    """Redis cannot be reached and the reader is configured not to fall back to the database."""


class SchemaError(ConfigError):
    """The schema mapping does not fit the database (or is malformed); the message names the
    mapping key, e.g. `emails.unread: column "read_at" not found in table "messages"`."""


class PgoutputError(DashcacheError, ValueError):
    """A logical replication message (or an LSN's text) cannot be decoded: truncated, of an
    unknown kind, or of a form the `pgoutput` protocol version 1 decoder does not read."""


class XidOutOfRange(DashcacheError, ValueError):
    """A transaction id cannot be widened to 64 bits: out of range, or its reference is not
    within 2**31 after it."""


class BadRow(DashcacheError, ValueError):
    """A replicated row cannot become an event; `column` and `value` name what was refused, so
    the change can be dead-lettered while the stream goes on."""

    def __init__(self, message: str, column: str, value: object) -> None:
        super().__init__(message)
        self.column = column
        self.value = value


class CdcNotReady(DashcacheError):
    """The database is not ready for the WAL source; the message names each missing piece with
    its fix (`dashcache cdc check` prints it)."""


class PublisherClosed(DashcacheError):
    """`publish` or `publish_many` was called on an `EventPublisher` after its `close()`; nothing
    was queued nor sent. Publish through a publisher that is open (make a new one, or use the
    process's default publisher)."""
