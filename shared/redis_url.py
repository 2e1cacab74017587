"""Redis URLs: plain (`redis://`, `rediss://`, `unix://`) or through Sentinel (pure).

    redis+sentinel://[:password@]host:port[,host:port...]/<master name>/<db>
    rediss+sentinel://...            the same, TLS to the primary and the Sentinels

The password is the primary's (and its replicas'); the Sentinels are asked without one. Each
consumer gets the form it speaks from one parsed `SentinelUrl`: redis-py's `Sentinel`
(`sentinels`, `master`, `db`), kombu's `sentinel://` broker URL with `master_name`, RedBeat's
`redis-sentinel://` with its `sentinels` and `service_name` options.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote

SENTINEL_SCHEMES = ("redis+sentinel://", "rediss+sentinel://")
PLAIN_SCHEMES = ("redis://", "rediss://", "unix://")
FORM = "redis+sentinel://[:password@]host:port[,host:port...]/<master name>/<db>"


@dataclass(frozen=True)
class SentinelUrl:
    """A parsed `redis+sentinel://` URL."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int
    password: str | None = None
    tls: bool = False

    def kombu_url(self) -> str:
        """The broker URL kombu's Sentinel transport reads (`master_name` goes apart)."""
        auth = "" if self.password is None else f":{quote(self.password, safe='')}@"
        return ";".join(f"sentinel://{auth}{_netloc(*node)}/{self.db}" for node in self.sentinels)

    def shown(self) -> str:
        """The URL with its password masked, for logs and pages."""
        scheme = SENTINEL_SCHEMES[1] if self.tls else SENTINEL_SCHEMES[0]
        auth = "" if self.password is None else ":***@"
        hosts = ",".join(_netloc(*node) for node in self.sentinels)
        return f"{scheme}{auth}{hosts}/{self.master}/{self.db}"


def is_sentinel(url: str) -> bool:
    """Whether `url` names its Redis through Sentinel."""
    return url.startswith(SENTINEL_SCHEMES)


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Parse a `redis+sentinel://` URL; `ValueError` says what is wrong and the form."""
    scheme = next((s for s in SENTINEL_SCHEMES if url.startswith(s)), None)
    if scheme is None:
        raise ValueError(f"must start with one of {', '.join(SENTINEL_SCHEMES)} ({FORM})")
    rest = url[len(scheme) :]
    password: str | None = None
    if "@" in rest:
        auth, rest = rest.rsplit("@", 1)
        if not auth.startswith(":"):
            raise ValueError(f"only a password is taken before '@', as ':password@' ({FORM})")
        password = unquote(auth[1:])
    parts = rest.split("/")
    if len(parts) != 3 or not parts[1]:
        raise ValueError(f"must name the hosts, the master and the db ({FORM}), got {url!r}")
    hosts, master, db_text = parts
    if not db_text.isdigit():
        raise ValueError(f"the db must be a whole number, got {db_text!r} ({FORM})")
    return SentinelUrl(
        sentinels=tuple(_host_port(item) for item in hosts.split(",")),
        master=unquote(master),
        db=int(db_text),
        password=password,
        tls=scheme == SENTINEL_SCHEMES[1],
    )


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _host_port(item: str) -> tuple[str, int]:
    host, _, port = item.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"each Sentinel must be host:port, got {item!r} ({FORM})")
    return host.strip("[]"), int(port)


def celery_broker(url: str) -> tuple[str, dict[str, object]]:
    """The broker URL and transport options Celery takes for `url` (kombu's Sentinel transport
    for a `redis+sentinel://` one; any other URL as it is, with no options)."""
    if not is_sentinel(url):
        return url, {}
    parsed = parse_sentinel_url(url)
    options: dict[str, object] = {"master_name": parsed.master}
    if parsed.tls:
        options["sentinel_kwargs"] = {"ssl": True}
    return parsed.kombu_url(), options


def redbeat_redis(url: str, options: dict[str, object]) -> tuple[str, dict[str, object]]:
    """`redbeat_redis_url` and `redbeat_redis_options` for `url`: RedBeat's own Sentinel form
    (`redis-sentinel://`, `sentinels`, `service_name`, `db`, `password`) for a Sentinel URL."""
    if not is_sentinel(url):
        return url, options
    parsed = parse_sentinel_url(url)
    sentinel = {
        "sentinels": list(parsed.sentinels),
        "service_name": parsed.master,
        "db": parsed.db,
        "password": parsed.password,
        "socket_timeout": options.get("socket_timeout"),
    }
    if parsed.tls:
        sentinel["sentinel_kwargs"] = {"ssl": True}
    # RedBeat reads the scheme and prints the URL; the Sentinels it asks are `sentinels`.
    return f"redis-sentinel://{_netloc(*parsed.sentinels[0])}/{parsed.db}", sentinel
