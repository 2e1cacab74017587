"""Property-based fuzzing of settings, event decoding, key building and reader arguments.

Every input either works or raises the documented typed error, and no key of one scope or one
deployment can be produced for another.
"""

from __future__ import annotations

import json
import string
from datetime import UTC
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from dashcache.config import ENV_NAMES, Settings
from dashcache.errors import ConfigError, InvalidArgument, InvalidEvent
from dashcache.events.types import (
    MAX_ID,
    CategoriesChanged,
    CategoryChange,
    EmailCreated,
    EmailDeleted,
    EmailRow,
    EmailUpdated,
    decode_batch,
    decode_event,
    encode_event,
)
from dashcache.keys import SCHEMA, KeySchema, Kind, check_account_id, parse_scope_token, scope_token
from dashcache.reader import DashboardReader

PREFIX_CHARS = string.ascii_letters + string.digits + "_.-"
prefixes = st.text(PREFIX_CHARS, min_size=1, max_size=64)
scopes = st.none() | st.integers(min_value=0, max_value=2**63 - 1)
anything = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=8)
    | st.lists(st.integers(), max_size=2)
)
# The first draw of unicode text builds Hypothesis's character map (once per checkout): not slow
# generation, so that health check is off here.
fuzz = hyp_settings(suppress_health_check=[HealthCheck.too_slow])
env_values = st.one_of(
    st.text(max_size=30),
    st.integers().map(str),
    st.floats().map(str),
    st.sampled_from(["redis://h:1/0", "rediss://h", "postgresql://u:p@h/db", "json", "debug"]),
)


@fuzz
@given(st.dictionaries(st.sampled_from(sorted(ENV_NAMES)), env_values))
def test_settings_parse_or_raise_config_error(env: dict[str, str]) -> None:
    """Any environment gives valid settings that round-trip, or a ConfigError naming a variable."""
    try:
        parsed = Settings.from_env(env)
    except ConfigError as error:
        problem = str(error)
    else:
        assert Settings.from_env(parsed.to_env()) == parsed
        return
    assert any(name in problem for name in ENV_NAMES)


@fuzz
@given(st.text(max_size=12) | st.from_regex(r"a[0-9]{1,25}", fullmatch=True))
def test_scope_tokens_parse_only_what_scope_token_produces(token: str) -> None:
    """A token parses to a scope that prints back as the same token, or raises InvalidArgument."""
    try:
        scope = parse_scope_token(token)
    except InvalidArgument:
        return
    assert scope_token(scope) == token


@given(scopes)
def test_scope_tokens_round_trip(account_id: int | None) -> None:
    """Every valid scope prints as a token that parses back to it."""
    assert parse_scope_token(scope_token(account_id)) == account_id


@fuzz
@given(anything)
def test_account_id_is_valid_or_invalid_argument(value: object) -> None:
    """check_account_id returns None or an int in range, or raises InvalidArgument."""
    try:
        scope = check_account_id(value)
    except InvalidArgument:
        return
    assert scope is None or (type(scope) is int and 0 <= scope < 2**63)


@given(prefixes, st.sampled_from(Kind), scopes, prefixes, st.sampled_from(Kind), scopes)
def test_keys_stay_under_their_prefix_and_never_collide(
    prefix: str,
    kind: Kind,
    scope: int | None,
    other_prefix: str,
    other_kind: Kind,
    other: int | None,
) -> None:
    """A key starts with its prefix; two keys are equal only for one prefix, kind and scope."""
    key = KeySchema(prefix).value(kind, scope)
    assert key.startswith(f"{prefix}:{SCHEMA}:")
    same = (prefix, kind, scope) == (other_prefix, other_kind, other)
    assert (key == KeySchema(other_prefix).value(other_kind, other)) == same
    assert not KeySchema(prefix).beat.startswith(f"{prefix}:{SCHEMA}:")


@hyp_settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(limit=anything | st.integers(-3, 60), account_id=anything | scopes)
def test_reader_arguments_work_or_raise_invalid_argument(
    reader: DashboardReader, limit: object, account_id: object
) -> None:
    """Reader calls with any arguments return the scope's own value or raise InvalidArgument."""
    try:
        value = reader.get_category_breakdown(limit=limit, account_id=account_id)  # type: ignore[arg-type]
    except InvalidArgument:
        return
    assert value.data == {}
    aggregates = reader.get_aggregates(account_id=account_id)  # type: ignore[arg-type]
    assert aggregates.data["total_emails"] == 0


def documented_read_options(fresh: object, max_age: object) -> bool:
    """What the README allows: `fresh` a bool, `max_age` None or a finite number of seconds >= 0
    (a bool is not a number of seconds)."""
    if type(fresh) is not bool:
        return False
    if max_age is None:
        return True
    if type(max_age) not in (int, float):
        return False
    return max_age >= 0 and max_age != float("inf")  # NaN fails `>= 0`


@hyp_settings(
    max_examples=80,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    fresh=anything | st.booleans(),
    max_age=anything | st.integers(min_value=0) | st.floats(min_value=0) | st.just(10**400),
)
def test_fresh_and_max_age_work_or_raise_invalid_argument(
    reader: DashboardReader, fresh: object, max_age: object
) -> None:
    """Any `fresh` and `max_age` read the scope's own value (computed now when fresh) or raise
    InvalidArgument, exactly when the README says they are invalid."""
    options: dict[str, Any] = {"fresh": fresh, "max_age": max_age}
    if not documented_read_options(fresh, max_age):
        with pytest.raises(InvalidArgument, match=r"fresh|max_age"):
            reader.get_aggregates(1, **options)
        with pytest.raises(InvalidArgument, match=r"fresh|max_age"):
            reader.get_category_breakdown(1, 1, **options)
        return
    aggregates = reader.get_aggregates(1, **options)
    breakdown = reader.get_category_breakdown(1, 1, **options)
    assert (aggregates.data["total_emails"], breakdown.data) == (0, {})
    expected = {"fresh"} if fresh else {"cache", "fallback"}
    assert {aggregates.source, breakdown.source} <= expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
ids = st.integers(0, MAX_ID)
rows = st.builds(
    EmailRow,
    st.none() | ids,
    st.booleans(),
    st.booleans(),
    # A time inside a DST gap exists in no zone: it equals no instant, not even itself in UTC.
    st.datetimes(timezones=st.timezones()).filter(
        lambda moment: moment.utcoffset() is not None and moment == moment.astimezone(UTC)
    ),
)
events = st.one_of(
    st.builds(EmailCreated, ids, ids, rows),
    st.builds(EmailUpdated, ids, ids, rows, rows),
    st.builds(EmailDeleted, ids, ids, rows),
    st.builds(
        CategoriesChanged, st.lists(ids, max_size=3).map(tuple), st.sampled_from(CategoryChange)
    ),
)


@fuzz
@given(json_values)
def test_any_json_batch_decodes_or_names_the_bad_field(payload: object) -> None:
    """Any JSON value decodes to events or raises InvalidEvent whose field is under `events`."""
    try:
        decoded = decode_batch(payload, max_batch=5)
    except InvalidEvent as error:
        field = error.field
    else:
        assert isinstance(decoded, list)
        return
    assert field is not None
    assert field.startswith("events")


@fuzz
@given(events)
def test_events_round_trip_through_json(event: object) -> None:
    """Every event's wire form, through JSON text, decodes back to the same event."""
    wire = json.loads(json.dumps([encode_event(event)]))  # type: ignore[arg-type]
    assert decode_batch(wire, max_batch=1) == [event]


@fuzz
@given(events, st.data())
def test_a_corrupted_field_decodes_or_is_named(event: object, data: st.DataObject) -> None:
    """Replacing any field of a valid event gives an event or an InvalidEvent naming a field."""
    wire = encode_event(event)  # type: ignore[arg-type]
    name = data.draw(st.sampled_from(sorted(wire)))
    wire[name] = data.draw(json_values)
    try:
        decode_event(wire)
    except InvalidEvent as error:
        field = error.field
    else:
        return
    assert field is not None
    assert field.startswith("event.")
