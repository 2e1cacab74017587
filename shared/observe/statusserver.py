"""`dashcache status serve`: the status page over HTTP (standard library server, one thread per
request). Every request reads Redis then and there; nothing runs while nobody looks."""

from __future__ import annotations

import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import redis

from dashcache import clock
from dashcache.config import Settings
from dashcache.logging import get_logger
from dashcache.observe.status import read_status, unreachable
from dashcache.observe.statusassets import CONTENT_SECURITY_POLICY
from dashcache.observe.statuspage import page, panels
from dashcache.redis_url import SENTINEL_SCHEMES
from dashcache.sentinel import primary_of
from dashcache.store import make_redis

log = get_logger(__name__)

TIMEOUT_SECONDS = 1.0
"""Longest wait for one Redis command: an unreachable Redis is reported, never waited out."""


class StatusSource:
    """The clients the page reads through (made once; they connect on the first request)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        timeout = min(settings.redis_timeout_seconds, TIMEOUT_SECONDS)
        self.client = make_redis(settings.redis_url, timeout, retry_timeouts=False)
        broker_is_redis = settings.broker_url.startswith(
            ("redis://", "rediss://", *SENTINEL_SCHEMES)
        )
        self.broker = (
            make_redis(settings.broker_url, timeout, retry_timeouts=False)
            if broker_is_redis
            else None
        )

    def read(self) -> dict[str, Any]:
        """The page's data now, or the "Redis unreachable" state."""
        now = clock.now()
        try:
            data = read_status(self.settings, self.client, self.broker, now)
            data["settings"]["redis_primary"] = primary_of(self.client)
            return data
        except redis.RedisError as error:
            return unreachable(self.settings, error, now)

    def close(self) -> None:
        """Close both clients."""
        self.client.close()
        if self.broker is not None:
            self.broker.close()


def make_server(source: StatusSource, addr: str, port: int) -> ThreadingHTTPServer:
    """A server answering `/`, `/panels` and `/status.json` from `source`."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "dashcache-status"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path not in ("/", "/panels", "/status.json"):
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")
                return
            try:
                data = source.read()
            except Exception:  # a bug or unreadable data: one failed request, the server goes on
                log.exception("status.failed", path=path)
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain", b"error; see logs\n")
                return
            status = HTTPStatus.OK if data["redis"] == "ok" else HTTPStatus.SERVICE_UNAVAILABLE
            if path == "/status.json":
                self._send(status, "application/json", json.dumps(data, indent=1).encode())
            else:
                html = page(data) if path == "/" else panels(data)
                self._send(status, "text/html; charset=utf-8", html.encode())

        def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("status.request", line=format % args)

    server = ThreadingHTTPServer((addr, port), Handler)
    server.daemon_threads = True
    return server


def serve(settings: Settings, addr: str, port: int) -> None:
    """Serve the status page on addr:port until the process is stopped."""
    source = StatusSource(settings)
    server = make_server(source, addr, port)
    log.info("status.serving", addr=addr, port=server.server_address[1])
    try:
        server.serve_forever()
    finally:
        server.server_close()
        source.close()
