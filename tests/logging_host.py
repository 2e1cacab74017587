"""A host process for the logging tests: it uses both readers as a library and prints JSON lines
of its own to stdout. `python -m tests.logging_host handler|bare`; settings from the environment.

`handler`: the host has its own root handler (collecting records) and prints, last, what that
handler received and whether its root logger is as it left it. `bare`: no logging set-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from dataclasses import replace

from dashcache.async_reader import AsyncDashboardReader
from dashcache.config import Settings
from dashcache.errors import DashboardUnavailable
from dashcache.reader import DashboardReader


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "dashcache", {})
        self.records.append(
            {
                "logger": record.name,
                "level": record.levelname,
                "message": record.getMessage(),
                "event": fields.get("event"),
            }
        )


def read_both(settings: Settings, down: Settings) -> None:
    """A miss on each reader (reader.fallback) and a read with the database down (warning)."""
    sync = DashboardReader.from_settings(settings)
    sync.get_aggregates(account_id=1)
    sync.close()
    sync_down = DashboardReader.from_settings(down)
    with contextlib.suppress(DashboardUnavailable):
        sync_down.get_aggregates(account_id=11)
    sync_down.close()

    async def use_async() -> None:
        async with AsyncDashboardReader.from_settings(settings) as reader:
            await reader.get_aggregates(account_id=2)
        async with AsyncDashboardReader.from_settings(down) as reader:
            with contextlib.suppress(DashboardUnavailable):
                await reader.get_aggregates(account_id=12)

    asyncio.run(use_async())


def main(mode: str) -> None:
    settings = Settings.from_env()
    down = replace(settings, database_url="postgresql+psycopg2://postgres@127.0.0.1:1/x")
    root = logging.getLogger()
    handler = Collect()
    if mode == "handler":
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    print(json.dumps({"host": "started"}), flush=True)
    read_both(settings, down)
    print(json.dumps({"host": "read"}), flush=True)
    if mode == "handler":
        untouched = root.handlers == [handler] and root.level == logging.INFO
        print(json.dumps({"records": handler.records, "root_untouched": untouched}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
