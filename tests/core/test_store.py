"""The store, on SQLite and on PostgreSQL (when reachable)."""

from __future__ import annotations

import sqlalchemy as sa
import pytest

from ibb.core.errors import StoreError
from ibb.core.store import MIGRATIONS, Store, schema_version


def test_schema_is_created_and_migration_is_idempotent(store_factory) -> None:
    store = store_factory("node")
    assert store.migrate() == len(MIGRATIONS)
    assert store.migrate() == len(MIGRATIONS)
    with store.engine.connect() as conn:
        versions = conn.execute(sa.select(schema_version.c.version)).scalars().all()
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    assert store.counts() == {"certificates": 0, "events": 0, "messages": 0}


def test_a_store_newer_than_the_code_is_refused(store_factory) -> None:
    store = store_factory("node")
    with store.engine.begin() as conn:
        conn.execute(schema_version.insert().values(version=len(MIGRATIONS) + 1))
    with pytest.raises(StoreError, match="newer than this ibb"):
        Store(store.url)


def test_certificate_and_events_round_trip(store_factory) -> None:
    store = store_factory("node")
    pk = store.record_certificate(
        profile_id="p", cert_id="C-1", direction="outbound", partner="CN-GACC", status="issued",
        document={"id": "C-1"}, actor="KR-KCS",
    )
    store.record_event(pk, "sent", "KR-KCS", {"message_id": "m1"}, status="sent")
    record = store.get("p", "C-1", "outbound")
    assert record is not None and record.status == "sent" and record.document == {"id": "C-1"}
    events = store.events(pk)
    assert [(e.event, e.actor) for e in events] == [("issued", "KR-KCS"), ("sent", "KR-KCS")]
    assert events[0].at <= events[1].at and events[0].at.tzinfo is not None
    with pytest.raises(StoreError, match="already recorded"):
        store.record_certificate(
            profile_id="p", cert_id="C-1", direction="outbound", partner="x", status="issued", document={}, actor="a"
        )
    assert store.counts() == {"certificates": 1, "events": 2, "messages": 0}


def test_inbound_message_is_applied_once(store_factory) -> None:
    store = store_factory("node")
    args = dict(message_id="m-1", profile_id="p", sender="KR-KCS", receiver="CN-GACC", cert_id="C-1", document={"id": "C-1"})
    stored, first = store.record_inbound(**args, receipt=lambda pk: {"status": "received", "pk": pk})
    again, second = store.record_inbound(**args, receipt=lambda pk: {"status": "other"})
    assert (stored, again) == (True, False)
    assert second == first
    assert store.counts() == {"certificates": 1, "events": 1, "messages": 1}
    with pytest.raises(StoreError, match="already received .* under another message id"):
        store.record_inbound(**{**args, "message_id": "m-2"}, receipt=lambda pk: {})
    assert store.counts() == {"certificates": 1, "events": 1, "messages": 1}


def test_unreachable_database_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot open store"):
        Store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
