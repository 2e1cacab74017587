"""Chunks applied in a thread of their own while the stream reads and parses the next one.

Parsing a chunk (Python) and applying the previous one (a Lua script in Redis) overlap, so a
large transaction goes at the pace of the slower of the two, not of their sum. At most one chunk
waits while one is applied: memory stays two chunks. `drain` waits until every chunk handed over
is in Redis (the stream confirms a transaction only after it), and raises what an apply raised.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from dashcache.cdc.changes import Chunk
from dashcache.events.apply import Applied


class ChunkPipeline:
    """Applies chunks in order, one at a time, in a background thread."""

    def __init__(self, apply: Callable[[Chunk], Applied]) -> None:
        self.apply = apply
        self._queue: queue.Queue[Chunk | None] = queue.Queue(maxsize=1)
        self._done = threading.Condition()
        self._pending = 0
        self._error: BaseException | None = None
        self._results: list[Applied] = []
        self._thread = threading.Thread(target=self._run, name="dashcache-cdc-apply", daemon=True)
        self._thread.start()

    def put(self, chunk: Chunk) -> None:
        """Hand a chunk over (waits while one is already waiting); raises an earlier failure."""
        self._raise()
        with self._done:
            self._pending += 1
        self._queue.put(chunk)

    def drain(self) -> list[Applied]:
        """Wait until every chunk handed over is applied; what they did. Raises a failure."""
        with self._done:
            self._done.wait_for(lambda: self._pending == 0)
            results, self._results = self._results, []
        self._raise()
        return results

    def close(self) -> None:
        """Stop the thread once what it holds is applied (or failed)."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _raise(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            try:
                result = None if self._error is not None else self.apply(chunk)
            except BaseException as error:  # handed to the stream's thread by drain or put
                self._error = error
                result = None
            with self._done:
                if result is not None:
                    self._results.append(result)
                self._pending -= 1
                self._done.notify_all()
