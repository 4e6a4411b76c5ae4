"""The store, on SQLite and on PostgreSQL (when reachable)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from ibb.core.errors import StoreError
from ibb.core.lifecycle import IllegalTransition
from ibb.core.store import MIGRATIONS, Conflict, Store, schema_version

EMPTY = {"certificates": 0, "events": 0, "messages": 0, "outbox": 0}


def _issue(store: Store, cert_id: str = "C-1", *, enqueue: bool = True) -> int:
    with store.transaction() as tx:
        pk = tx.insert_certificate(profile_id="p", cert_id=cert_id, direction="outbound", partner="CN", status="issued", document={"id": cert_id})
        tx.event(pk, "issued", "KR")
        if enqueue:
            tx.enqueue(message_id=f"m-{cert_id}", profile_id="p", certificate_pk=pk, kind="certificate", sender="KR",
                       receiver="CN", content_type="application/json", body=b"{}")
    return pk


def test_schema_is_created_and_migration_is_idempotent(store_factory) -> None:
    store = store_factory("node")
    assert store.migrate() == len(MIGRATIONS)
    assert store.migrate() == len(MIGRATIONS)
    with store.engine.connect() as conn:
        versions = conn.execute(sa.select(schema_version.c.version)).scalars().all()
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    assert store.counts() == EMPTY


def test_a_version_1_store_is_migrated_on_open(store_factory) -> None:
    from ibb.core.store import MIGRATIONS

    store = store_factory("node")
    with store.engine.begin() as conn:  # rebuild the schema as version 1 left it
        for table in ("outbox", "messages", "events", "certificates"):
            conn.execute(sa.text(f"DROP TABLE {table}"))
        conn.execute(schema_version.delete())
        MIGRATIONS[0](conn)
        conn.execute(schema_version.insert().values(version=1))
        conn.execute(sa.text("INSERT INTO certificates (profile_id, cert_id, direction, partner, status, document, created_at, updated_at)"
                             " VALUES ('p', 'OLD-1', 'inbound', 'KR', 'received', '{}', :t, :t)"), {"t": dt.datetime.now(dt.timezone.utc)})
    migrated = Store(store.url)
    assert migrated.counts() == {**EMPTY, "certificates": 1}
    old = migrated.get("p", "OLD-1", "inbound")
    assert old is not None and migrated.wire(old.pk) is None


def test_a_store_newer_than_the_code_is_refused(store_factory) -> None:
    store = store_factory("node")
    with store.engine.begin() as conn:
        conn.execute(schema_version.insert().values(version=len(MIGRATIONS) + 1))
    with pytest.raises(StoreError, match="newer than this ibb"):
        Store(store.url)


def test_state_change_event_and_outbox_commit_together(store_factory) -> None:
    store = store_factory("node")
    pk = _issue(store)
    record = store.get("p", "C-1", "outbound")
    assert record is not None and record.status == "issued" and record.document == {"id": "C-1"}
    assert store.outbox_list()[0].status == "pending"
    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            tx.transition(tx.certificate_by_pk(pk), "sent", "KR")
            tx.enqueue(message_id="m-x", profile_id="p", certificate_pk=pk, kind="feedback", sender="KR",
                       receiver="CN", content_type="x", body=b"")
            raise RuntimeError("crash before commit")
    assert store.get("p", "C-1", "outbound").status == "issued"
    assert store.counts() == {"certificates": 1, "events": 1, "messages": 0, "outbox": 1}


def test_lifecycle_is_enforced_and_logged(store_factory) -> None:
    store = store_factory("node")
    pk = _issue(store, enqueue=False)
    with store.transaction() as tx:
        record = tx.transition(tx.certificate_by_pk(pk), "sent", "KR", {"why": "test"})
        record = tx.transition(record, "delivered", "CN")
    with pytest.raises(IllegalTransition, match="'C-1' is delivered; it cannot become issued"):
        with store.transaction() as tx:
            tx.transition(tx.certificate_by_pk(pk), "issued", "KR")
    events = store.events(pk)
    assert [(e.event, e.actor) for e in events] == [("issued", "KR"), ("sent", "KR"), ("delivered", "CN")]
    assert events[1].detail == {"why": "test"} and events[0].at <= events[2].at and events[0].at.tzinfo is not None
    with pytest.raises(Conflict, match="already recorded"):
        _issue(store)


def test_claims_lease_messages_so_no_one_else_takes_them(store_factory) -> None:
    store = store_factory("node")
    for n in range(5):
        _issue(store, f"C-{n}")
    lease = dt.timedelta(seconds=60)
    assert store.due_partners(dt.datetime.now(dt.timezone.utc)) == [("p", "CN")]
    first = store.claim("p", "CN", 3, "owner-a", lease)
    second = store.claim("p", "CN", 10, "owner-b", lease)
    assert [m.message_id for m in first] == ["m-C-0", "m-C-1", "m-C-2"]
    assert [m.message_id for m in second] == ["m-C-3", "m-C-4"]
    assert store.claim("p", "CN", 10, "owner-c", lease) == []
    expired = store.claim  # an expired lease is free again
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE outbox SET lease_until = :t"), {"t": dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)})
    assert len(expired("p", "CN", 10, "owner-c", lease)) == 5


def test_messages_about_one_certificate_are_claimed_in_order(store_factory) -> None:
    store = store_factory("node")
    pk = _issue(store)
    with store.transaction() as tx:
        tx.enqueue(message_id="m-cancel", profile_id="p", certificate_pk=pk, kind="cancellation", sender="KR",
                   receiver="CN", content_type="x", body=b"")
    lease = dt.timedelta(seconds=60)
    assert [m.message_id for m in store.claim("p", "CN", 10, "a", lease)] == ["m-C-1"]
    assert store.claim("p", "CN", 10, "b", lease) == []  # the cancellation waits for the certificate


def test_unreachable_database_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot open store"):
        Store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")


def test_sent_to_names_every_receiver_of_the_certificate_not_of_its_feedback(store_factory) -> None:
    store = store_factory("node")
    pk = _issue(store)
    with store.transaction() as tx:
        tx.enqueue(message_id="m-2", profile_id="p", certificate_pk=pk, kind="certificate", sender="KR",
                   receiver="JP", content_type="application/json", body=b"{}")
        tx.enqueue(message_id="m-3", profile_id="p", certificate_pk=pk, kind="cancellation", sender="KR",
                   receiver="XX", content_type="application/json", body=b"{}")
        assert tx.sent_to(pk) == {"CN", "JP"}
