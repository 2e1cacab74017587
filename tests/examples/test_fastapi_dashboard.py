"""The FastAPI example under a real uvicorn: the route reads through the asyncio reader, `fresh`
bypasses the cache, and the lifespan closes the reader at shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from dashcache.config import Settings
from dashcache.redis_server import free_port
from tests.helpers import NOW, Row, add_categories, add_emails, wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(settings: Settings) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """uvicorn serving examples.fastapi_dashboard:app on a free port; its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.fastapi_dashboard:app", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, **settings.to_env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            assert process.stdout is not None
            output = process.stdout.read()
            raise AssertionError(f"uvicorn exited with {process.returncode}:\n{output}")
        try:
            httpx.get(f"{base}/docs", timeout=5)
        except httpx.TransportError:
            return False
        return True

    try:
        wait_until(answers, f"uvicorn to answer on {base}")
        yield base, process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def test_stats_route_reads_through_the_async_reader(
    server: tuple[str, subprocess.Popen[str]], pg: Engine
) -> None:
    """The first request computes (and caches) the dashboard, a new email shows only with
    fresh=true, and SIGTERM shuts the app down cleanly through its lifespan."""
    add_categories(pg, ["work", "news"])
    add_emails(pg, [Row(1, 1, True, False, NOW), Row(2, 2, False, True, NOW)])
    base, process = server
    with httpx.Client(base_url=base, timeout=60) as client:
        first = client.get("/api/dashboard/stats")
        add_emails(pg, [Row(1, 1, True, False, NOW)])
        cached = client.get("/api/dashboard/stats")
        fresh = client.get("/api/dashboard/stats", params={"fresh": "true"})
        bad = client.get("/api/dashboard/stats", params={"fresh": "maybe"})
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert first.status_code == 200
    body = first.json()
    assert body["aggregates"]["total_emails"] == 2
    assert body["aggregates"]["unread_count"] == 1
    assert body["category_breakdown"] == {"news": 1, "work": 1}
    assert cached.json() == body
    assert fresh.json()["aggregates"]["total_emails"] == 3
    assert fresh.json()["category_breakdown"] == {"work": 2, "news": 1}
    assert bad.status_code == 422
    assert process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises it once shut down
    assert "Application shutdown complete" in output
    assert "Traceback" not in output
