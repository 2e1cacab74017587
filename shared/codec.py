"""JSON of stored values, through orjson: a cached read's parse is most of its Python time.

orjson reads 3-4x faster than the standard library on a dashboard envelope, and writes one about
20x faster (0.3 against 6.4 us for a breakdown), the same compact UTF-8 text
`json.dumps(..., separators=(",", ":"), ensure_ascii=False)` writes.
"""

from __future__ import annotations

from typing import Any

import orjson


def loads(raw: bytes | str) -> Any:
    """The value JSON text `raw` holds; `ValueError` (orjson.JSONDecodeError) if it is not JSON."""
    return orjson.loads(raw)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of `value` (str keys, 64-bit integers); `TypeError` for anything else."""
    return orjson.dumps(value)
