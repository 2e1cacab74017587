"""Logging: JSON lines off a terminal, stdlib records through the same renderer, no secrets."""

from __future__ import annotations

import json
import logging

import pytest

from dashcache.config import Settings
from dashcache.logging import configure_logging, get_logger, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        (
            "postgresql://app:pa55@db/x and amqp://u:p@mq//",
            "postgresql://app:***@db/x and amqp://u:***@mq//",
        ),
        ("redis://host:6379/0", "redis://host:6379/0"),
    ],
)
def test_redact_masks_url_passwords(text: str, expected: str) -> None:
    """Passwords in URLs are replaced; URLs without one are untouched."""
    assert redact(text) == expected


def test_json_lines_without_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    """structlog and stdlib records come out as JSON, with URL passwords masked."""
    configure_logging(Settings(log_format="json"))
    get_logger("test").info("connect.failed", url="redis://:s3cret@cache:6379/0", attempt=2)
    logging.getLogger("celery.test").warning("lost broker amqp://guest:s3cret@mq//")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["event"] == "connect.failed"
    assert lines[0]["url"] == "redis://:***@cache:6379/0"
    assert lines[0]["level"] == "info"
    assert lines[1]["logger"] == "celery.test"
    assert "s3cret" not in lines[1]["event"]
