"""The reader: hits from Redis, a synchronous fallback on a miss, typed errors on bad input."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from shared.config import Settings
from shared.errors import InvalidArgument
from shared.reader import DashboardReader
from tests.helpers import NOW, Row, add_categories, add_emails


@pytest.fixture
def reader(settings: Settings) -> Iterator[DashboardReader]:
    r = DashboardReader.from_settings(settings)
    yield r
    r.close()


@pytest.fixture
def data(pg: Engine) -> None:
    add_categories(pg, ["work", "news", "social"])
    day = timedelta(days=1)
    add_emails(
        pg,
        [
            Row(1, 1, True, True, NOW - day),
            Row(1, 1, False, True, NOW - 8 * day),
            Row(1, 2, True, False, NOW - 2 * day),
            Row(2, 3, False, False, NOW - day),
        ],
    )


@pytest.mark.usefixtures("data")
def test_miss_falls_back_then_hits(reader: DashboardReader) -> None:
    """A missing key is computed and stored by the reader; the next read is a cache hit."""
    first = reader.get_aggregates(account_id=1)
    assert first.source == "fallback"
    assert first.data["total_emails"] == 3
    assert first.data["unread_count"] == 2
    second = reader.get_aggregates(account_id=1)
    assert second.source == "cache"
    assert second.data == first.data
    assert second.generation == first.generation


@pytest.mark.usefixtures("data")
def test_fallback_stores_both_kinds(reader: DashboardReader) -> None:
    """One fallback pass fills aggregates and breakdown of the scope."""
    reader.get_aggregates(account_id=None)
    breakdown = reader.get_category_breakdown(limit=3)
    assert breakdown.source == "cache"
    assert list(breakdown.data.items()) == [("work", 2), ("news", 1), ("social", 1)]


@pytest.mark.usefixtures("data")
def test_breakdown_is_sliced_to_limit(reader: DashboardReader) -> None:
    """One stored breakdown serves every smaller limit, in order."""
    assert reader.get_category_breakdown(limit=1, account_id=1).data == {"work": 2}
    assert reader.get_category_breakdown(limit=2, account_id=2).data == {"social": 1, "news": 0}


def test_empty_scope_is_zeros(reader: DashboardReader) -> None:
    """An account with no emails reads as zeros, not an error."""
    value = reader.get_aggregates(account_id=99)
    assert value.data["total_emails"] == 0
    assert value.data["weekly_growth"] == {"emails": 0, "previous": 0, "percentage": 0.0}


@pytest.mark.parametrize("limit", [0, -1, 51, 2.5, "10", True, None])
def test_bad_limit_is_typed_error(reader: DashboardReader, limit: object) -> None:
    """A limit outside 1..max_breakdown raises InvalidArgument saying what is allowed."""
    with pytest.raises(InvalidArgument, match="from 1 to 50"):
        reader.get_category_breakdown(limit=limit)  # type: ignore[arg-type]


@pytest.mark.parametrize("account_id", [-1, "1", 1.0, True, 2**63])
def test_bad_account_id_is_typed_error(reader: DashboardReader, account_id: object) -> None:
    """A negative or non-integer account id raises InvalidArgument."""
    with pytest.raises(InvalidArgument, match="account_id"):
        reader.get_aggregates(account_id=account_id)  # type: ignore[arg-type]
