"""Stats queries equal a brute-force computation, on both dialects, at the week boundaries too."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from dashcache.stats import (
    compute_every_scope,
    compute_scope,
    growth_percentage,
    stream_every_scope,
)
from tests.helpers import NOW, Row, add_categories, add_emails

DAY = timedelta(days=1)
BOUNDARY_OFFSETS = [timedelta(0), 7 * DAY, 14 * DAY]
TINY = timedelta(microseconds=1)

offsets = st.one_of(
    st.timedeltas(min_value=-DAY, max_value=20 * DAY),
    st.sampled_from(BOUNDARY_OFFSETS).flatmap(lambda b: st.sampled_from([b - TINY, b, b + TINY])),
)
rows = st.lists(
    st.builds(
        Row,
        account_id=st.integers(1, 3),
        category_id=st.one_of(st.none(), st.integers(1, 4)),
        is_unread=st.booleans(),
        is_auto_labeled=st.booleans(),
        created_at=offsets.map(lambda off: NOW - off),
    ),
    max_size=40,
)
name_text = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=8
)
category_names = st.lists(name_text, min_size=4, max_size=4, unique=True)


def brute_force(emails: list[Row], names: dict[int, str], account: int | None, limit: int) -> Any:
    """The dashboard numbers, computed the slow obvious way."""
    mine = [e for e in emails if account is None or e.account_id == account]
    this_week = sum(e.created_at >= NOW - 7 * DAY for e in mine)
    previous = sum(NOW - 14 * DAY <= e.created_at < NOW - 7 * DAY for e in mine)
    aggregates = {
        "total_emails": len(mine),
        "auto_labeled": sum(e.is_auto_labeled for e in mine),
        "categories_count": len(names),
        "unread_count": sum(e.is_unread for e in mine),
        "weekly_growth": {
            "emails": this_week,
            "previous": previous,
            "percentage": growth_percentage(this_week, previous),
        },
    }
    counts = {name: sum(e.category_id == cid for e in mine) for cid, name in names.items()}
    breakdown = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return aggregates, breakdown


def reset(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM emails"))
        conn.execute(text("DELETE FROM categories"))


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(emails=rows, names=category_names, limit=st.integers(1, 5))
def test_stats_match_brute_force(
    any_db: Engine, emails: list[Row], names: list[str], limit: int
) -> None:
    """Per scope and for every scope at once, the queries give the brute-force numbers."""
    reset(any_db)
    categories = add_categories(any_db, names)
    add_emails(any_db, emails)
    with Session(any_db) as session:
        every = compute_every_scope(session, NOW, limit)
        for account in (None, 1, 2, 3):
            one = compute_scope(session, account, NOW, limit)
            expected = brute_force(emails, categories, account, limit)
            assert (one.aggregates, one.breakdown) == expected
            if account is None or any(e.account_id == account for e in emails):
                assert (every[account].aggregates, every[account].breakdown) == expected
            else:
                assert account not in every


def test_every_scope_includes_emptied_accounts(any_db: Engine) -> None:
    """An account warmed before but with no emails now comes back as zeros, not missing."""
    add_categories(any_db, ["work"])
    add_emails(any_db, [Row(1, 1, True, True, NOW - DAY)])
    with Session(any_db) as session:
        every = compute_every_scope(session, NOW, 10, include=[7])
    assert every[7].aggregates["total_emails"] == 0
    assert every[7].breakdown == [("work", 0)]
    assert every[None].aggregates["total_emails"] == 1


def test_every_scope_streams_in_bounded_batches(any_db: Engine) -> None:
    """Accounts come folded a few at a time, in account order; the last batch adds the emptied
    accounts and all accounts; together they are exactly the numbers of every scope."""
    add_categories(any_db, ["work", "news"])
    add_emails(any_db, [Row(a, 1 + a % 2, a % 3 == 0, True, NOW - DAY) for a in (5, 1, 4, 2, 3)])
    with Session(any_db) as session:
        batches = list(stream_every_scope(session, NOW, 10, include=[9], batch_scopes=2))
        whole = {
            scope: compute_scope(session, scope, NOW, 10) for scope in (1, 2, 3, 4, 5, 9, None)
        }
    assert [list(batch) for batch in batches] == [[1, 2], [3, 4], [5, 9, None]]
    assert {scope: stats for batch in batches for scope, stats in batch.items()} == whole


def test_growth_percentage_rules() -> None:
    """0 when both weeks are empty, 100 from zero, else rounded to one decimal."""
    assert growth_percentage(0, 0) == 0.0
    assert growth_percentage(5, 0) == 100.0
    assert growth_percentage(1, 3) == -66.7
    assert growth_percentage(3, 2) == 50.0
