"""Hostile input: category names that survive compute -> Redis -> reader intact, and queue
messages that are not JSON, which the worker refuses, logs and survives."""

from __future__ import annotations

import json
import pickle
import uuid

import redis
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from kombu import Connection, Exchange, Producer
from sqlalchemy import Engine

from dashcache import clock
from dashcache.config import Settings
from dashcache.dispatch import WARM_ALL, TaskSender
from dashcache.keys import Kind
from dashcache.reader import DashboardReader
from dashcache.recompute import recompute_every_scope
from dashcache.store import Envelope, Write
from tests.helpers import NOW, Row, add_categories, add_emails
from tests.processes import worker_process

HOSTILE_NAMES = [
    "Überweisungen 💸 账单",
    'quote\'s "double" `back` \\slash\\',
    "'; DROP TABLE emails; --",
    "control \x01\x07\x1b[31m\t\r\n\x7f end",
    "\u202eright-to-left\u200b zero-width",
    '{"generation": 99999999999, "data": []}',
    "é\"'\\\x02" * 2000,  # 10 kB
]

json_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))


@hyp_settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(json_text, st.integers(0, 2**53)), max_size=5))
def test_envelope_round_trips_any_text(breakdown: list[tuple[str, int]]) -> None:
    """Any category names and counts come back from the stored JSON exactly as written."""
    data = [list(pair) for pair in breakdown]
    envelope = Envelope(data, NOW, 7)
    assert Envelope.from_json(envelope.to_json()) == envelope


def test_hostile_category_names_round_trip_and_the_fence_still_reads_them(
    settings: Settings, pg: Engine
) -> None:
    """Unicode, quotes, control characters and 10 kB names reach the reader byte for byte."""
    categories = add_categories(pg, HOSTILE_NAMES)
    add_emails(pg, [Row(1, cid, True, False, NOW) for cid in categories for _ in range(cid)])
    reader = DashboardReader.from_settings(settings)
    try:
        result = recompute_every_scope(reader.engine, reader.store, settings.max_breakdown)
        value = reader.get_category_breakdown(limit=len(HOSTILE_NAMES), account_id=1)
        stale = Envelope([], clock.now(), result.generation - 1)
        fenced = reader.store.write([Write(Kind.BREAKDOWN, 1, stale)])
    finally:
        reader.close()
    assert value.source == "cache"
    assert value.data == {name: cid for cid, name in categories.items()}
    assert list(value.data) == HOSTILE_NAMES[::-1]
    assert fenced == [False]


def publish_raw(settings: Settings, body: bytes, content_type: str) -> None:
    """Put a message on the schedule queue the way a foreign producer would, headers and all."""
    headers = {"task": WARM_ALL, "id": str(uuid.uuid4()), "lang": "py", "argsrepr": "()"}
    with Connection(settings.broker_url) as conn:
        producer = Producer(conn, exchange=Exchange(""), routing_key=settings.schedule_queue)
        producer.publish(
            body, headers=headers, content_type=content_type, content_encoding="binary"
        )


def test_pickle_and_garbage_messages_are_refused_and_the_worker_goes_on(
    settings: Settings, pg: Engine, redis_client: redis.Redis
) -> None:
    """A pickled or undecodable message is refused and logged; the next JSON task still runs."""
    add_categories(pg, ["work"])
    with worker_process(settings) as worker:
        worker.wait_for("recompute.finished")
        publish_raw(settings, pickle.dumps(((), {}, {})), "application/x-python-serialize")
        publish_raw(settings, b"\x80not json{", "application/json")
        sender = TaskSender(settings)
        sender.send(WARM_ALL, [], settings.schedule_queue)
        sender.close()
        worker.lines_with("recompute.finished", 2)
        refused = [json.loads(line) for line in worker.lines if "pickle" in line]
        garbage = [line for line in worker.lines if "Can't decode message body" in line]
        assert worker.popen.poll() is None
    assert refused
    assert {line["level"] for line in refused} <= {"error", "critical"}
    assert garbage
