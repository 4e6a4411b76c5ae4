"""The store: certificates, their append-only event log, received messages and the outbox.

SQLAlchemy Core over any SQLAlchemy URL; an SQLite file by default. The schema is
created or migrated when the store opens (``schema_version`` table, one step per
version in ``MIGRATIONS``).

Writes go through :meth:`Store.transaction`: a state change, its event and the messages
it sends are committed together or not at all (the transactional outbox). The outbox
is then drained by :class:`ibb.core.outbox.Dispatcher`, which claims rows with a lease
so that several gateway processes sharing one database never send a message twice at
the same time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from . import lifecycle
from .errors import IbbError, StoreError, UnknownName

metadata = sa.MetaData()


def _certificate_columns() -> list[Any]:
    """The columns of ``certificates`` as schema version 1 created them (fresh objects each call)."""
    return [
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("profile_id", sa.String(100), nullable=False),
        sa.Column("cert_id", sa.String(200), nullable=False),
        sa.Column("direction", sa.String(10), nullable=False),  # outbound | inbound
        sa.Column("partner", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("document", sa.Text, nullable=False),  # canonical JSON
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("profile_id", "direction", "cert_id", name="uq_certificate"),
    ]


certificates = sa.Table(
    "certificates",
    metadata,
    *_certificate_columns(),
    sa.Column("wire", sa.LargeBinary, nullable=True),  # inbound: the document exactly as received (signed evidence), v3
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("certificate_pk", sa.Integer, sa.ForeignKey("certificates.pk"), nullable=False, index=True),
    sa.Column("event", sa.String(40), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # JSON object: why, message ids, receipts
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)


def _message_columns() -> list[Any]:
    """The columns of ``messages`` as schema version 1 created them (fresh objects each call)."""
    return [
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("direction", sa.String(10), nullable=False),
        sa.Column("profile_id", sa.String(100), nullable=False),
        sa.Column("certificate_pk", sa.Integer, sa.ForeignKey("certificates.pk"), nullable=True),
        sa.Column("sender", sa.String(100), nullable=False),
        sa.Column("receiver", sa.String(100), nullable=False),
        sa.Column("receipt", sa.Text, nullable=True),  # JSON receipt, once known
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("direction", "message_id", name="uq_message"),
    ]


messages = sa.Table(
    "messages",
    metadata,
    *_message_columns(),
    sa.Column("body_sha256", sa.String(64), nullable=True),  # inbound: tells a resend from another message under the same id, v4
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(200), nullable=False, unique=True),
    sa.Column("profile_id", sa.String(100), nullable=False),
    sa.Column("certificate_pk", sa.Integer, sa.ForeignKey("certificates.pk"), nullable=False, index=True),
    sa.Column("kind", sa.String(20), nullable=False),  # certificate | feedback | cancellation
    sa.Column("sender", sa.String(100), nullable=False),
    sa.Column("receiver", sa.String(100), nullable=False),
    sa.Column("content_type", sa.String(100), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("headers", sa.Text, nullable=False),  # JSON object of extra envelope fields
    sa.Column("status", sa.String(30), nullable=False),  # see DELIVERY_STATES
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("receipt", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_outbox_due", "status", "profile_id", "receiver", "next_attempt_at"),
)

DELIVERY_STATES = ("pending", "awaiting-receipt", "delivered", "delivered-with-warnings", "failed")
"""Delivery status of an outbound message, as the ePhyto hub reports it to senders."""
DUE_STATES = ("pending", "awaiting-receipt")
"""Claimed by the dispatcher once ``next_attempt_at`` passes (for ``awaiting-receipt``: the receipt's deadline)."""

schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))


def _v1(conn: Connection) -> None:
    version_1 = sa.MetaData()
    sa.Table("certificates", version_1, *_certificate_columns())
    sa.Table("messages", version_1, *_message_columns())
    version_1.create_all(conn)
    metadata.create_all(conn, tables=[events])


def _v2(conn: Connection) -> None:
    metadata.create_all(conn, tables=[outbox])


def _v3(conn: Connection) -> None:
    column_type = sa.LargeBinary().compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE certificates ADD COLUMN wire {column_type}"))


def _v4(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE messages ADD COLUMN body_sha256 VARCHAR(64)"))


MIGRATIONS: Sequence[Callable[[Connection], None]] = (_v1, _v2, _v3, _v4)
"""Schema steps; step ``i`` takes the schema from version ``i`` to ``i + 1``. Only append."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@attrs.frozen
class Event:
    event: str
    actor: str
    at: dt.datetime
    detail: dict[str, Any]


@attrs.frozen
class StoredCertificate:
    pk: int
    profile_id: str
    cert_id: str
    direction: str
    partner: str
    status: str
    document: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen
class OutboxMessage:
    pk: int
    message_id: str
    profile_id: str
    certificate_pk: int
    kind: str
    sender: str
    receiver: str
    content_type: str
    body: bytes
    headers: dict[str, str]
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    receipt: dict[str, Any] | None
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen
class InboundMessage:
    """What the store remembers of a message it received: enough to recognise a resend and answer it again."""

    profile_id: str
    sender: str
    body_sha256: str | None  # None for messages stored before schema version 4
    receipt: dict[str, Any]


def _inbound_message(conn: Connection, message_id: str) -> InboundMessage | None:
    row = conn.execute(
        sa.select(messages.c.profile_id, messages.c.sender, messages.c.body_sha256, messages.c.receipt)
        .where(messages.c.direction == "inbound", messages.c.message_id == message_id)
    ).first()
    if row is None:
        return None
    return InboundMessage(row.profile_id, row.sender, row.body_sha256, json.loads(row.receipt) if row.receipt else {})


class Conflict(IbbError):
    """The request contradicts what the store already holds (same certificate id again, …)."""

    http_status = 409


class Tx:
    """One open transaction. Everything done through it commits together or not at all."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.at = now()

    def insert_certificate(self, *, profile_id: str, cert_id: str, direction: str, partner: str, status: str,
                           document: dict[str, Any], wire: bytes | None = None) -> int:
        try:
            with self.conn.begin_nested():
                result = self.conn.execute(
                    certificates.insert().values(
                        profile_id=profile_id, cert_id=cert_id, direction=direction, partner=partner,
                        status=status, document=json.dumps(document), created_at=self.at, updated_at=self.at, wire=wire,
                    )
                )
        except sa.exc.IntegrityError:
            raise Conflict(f"certificate {cert_id!r} is already recorded ({direction}) in profile {profile_id!r}") from None
        return int(result.inserted_primary_key[0])

    def certificate(self, profile_id: str, cert_id: str, direction: str, *, lock: bool = False) -> StoredCertificate:
        query = sa.select(certificates).where(
            certificates.c.profile_id == profile_id, certificates.c.cert_id == cert_id, certificates.c.direction == direction
        )
        if lock:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        if row is None:
            raise UnknownName(f"{direction} certificate", cert_id, [])
        return _stored(row)

    def certificate_by_pk(self, pk: int) -> StoredCertificate:
        return _stored(self.conn.execute(sa.select(certificates).where(certificates.c.pk == pk)).one())

    def sent_to(self, pk: int) -> set[str]:
        """Entities a certificate was sent to (its partners for feedback)."""
        rows = self.conn.execute(
            sa.select(outbox.c.receiver).where(outbox.c.certificate_pk == pk, outbox.c.kind == "certificate").distinct()
        )
        return set(rows.scalars())

    def update_document(self, pk: int, document: dict[str, Any]) -> None:
        """Replace a draft's canonical document (the ``issue`` action stamps its status); issued ones never change."""
        status = self.conn.execute(sa.select(certificates.c.status).where(certificates.c.pk == pk)).scalar_one()
        if status != "draft":
            raise Conflict(f"certificate {pk} is {status}: an issued certificate is immutable (issue a replacement)")
        self.conn.execute(certificates.update().where(certificates.c.pk == pk).values(document=json.dumps(document), updated_at=now()))

    def event(self, pk: int, event: str, actor: str, detail: dict[str, Any] | None = None) -> None:
        self.conn.execute(
            events.insert().values(certificate_pk=pk, event=event, actor=actor, detail=json.dumps(detail or {}), at=now())
        )

    def transition(self, record: StoredCertificate, new: str, actor: str, detail: dict[str, Any] | None = None) -> StoredCertificate:
        """Move a certificate to ``new`` (checked against the lifecycle) and log it as an event."""
        current = self.conn.execute(sa.select(certificates.c.status).where(certificates.c.pk == record.pk)).scalar_one()
        lifecycle.check(record.cert_id, current, new)
        self.conn.execute(certificates.update().where(certificates.c.pk == record.pk).values(status=new, updated_at=now()))
        self.event(record.pk, new, actor, detail)
        return attrs.evolve(record, status=new)

    def enqueue(self, *, message_id: str, profile_id: str, certificate_pk: int, kind: str, sender: str, receiver: str,
                content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.conn.execute(
            outbox.insert().values(
                message_id=message_id, profile_id=profile_id, certificate_pk=certificate_pk, kind=kind, sender=sender,
                receiver=receiver, content_type=content_type, body=body, headers=json.dumps(headers or {}),
                status="pending", attempts=0, next_attempt_at=self.at, created_at=self.at, updated_at=self.at,
            )
        )

    def inbound_message(self, message_id: str) -> InboundMessage | None:
        return _inbound_message(self.conn, message_id)

    def outbox_message(self, message_id: str) -> OutboxMessage | None:
        """An outbound message, locked for update (a receipt arriving for it)."""
        row = self.conn.execute(sa.select(outbox).where(outbox.c.message_id == message_id).with_for_update()).first()
        return _outbox(row) if row is not None else None

    def record_inbound_message(self, *, message_id: str, profile_id: str, certificate_pk: int | None, sender: str,
                               receiver: str, receipt: dict[str, Any], body_sha256: str) -> None:
        self.conn.execute(
            messages.insert().values(
                message_id=message_id, direction="inbound", profile_id=profile_id, certificate_pk=certificate_pk,
                sender=sender, receiver=receiver, receipt=json.dumps(receipt), body_sha256=body_sha256, at=self.at,
            )
        )


class Store:
    """One node's store. ``url`` is any SQLAlchemy URL, or a path to an SQLite file."""

    def __init__(self, url: str | Path, *, create: bool = True):
        """Open (and create or migrate) a store. ``create=False`` refuses an SQLite file that does not exist."""
        self.url = _url(url)
        try:
            self.engine: Engine = sa.create_engine(self.url, pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise StoreError(f"cannot open store {_safe(self.url)}: {exc}") from None
        database = self.engine.url.database
        if not create and self.engine.dialect.name == "sqlite" and database and not Path(database).exists():
            raise StoreError(f"no store at {database} (give --store or $IBB_STORE)")
        self._write_lock: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if self.engine.dialect.name == "sqlite":
            self._write_lock = threading.Lock()
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        self.migrate()

    def migrate(self) -> int:
        """Create or upgrade the schema; returns the version now in force."""
        try:
            with self.transaction() as tx:
                conn = tx.conn
                metadata.create_all(conn, tables=[schema_version])
                current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
                if current > len(MIGRATIONS):
                    raise StoreError(f"store schema version {current} is newer than this ibb ({len(MIGRATIONS)})")
                for version in range(current, len(MIGRATIONS)):
                    MIGRATIONS[version](conn)
                    conn.execute(schema_version.insert().values(version=version + 1))
                return len(MIGRATIONS)
        except sa.exc.DBAPIError as exc:  # unreachable server, not a database file, permissions …
            raise StoreError(f"cannot open store {_safe(self.url)}: {exc.orig}") from None

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A transaction: committed when the block ends normally, rolled back on any exception."""
        # SQLite has one writer at a time: queue this process's writers on a lock rather
        # than in SQLite's busy handler, which sleeps up to 100 ms between polls.
        with self._write_lock, self.engine.connect() as conn:
            conn.info["write"] = True  # SQLite: BEGIN IMMEDIATE (see _sqlite_begin)
            try:
                with conn.begin():
                    yield Tx(conn)
            finally:
                conn.info.pop("write", None)

    # -- outbox (used by the dispatcher) ---------------------------------------------------

    def due_partners(self, at: dt.datetime) -> list[tuple[str, str]]:
        """(profile id, receiver) pairs that have messages due for delivery."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(outbox.c.profile_id, outbox.c.receiver)
                .where(outbox.c.status.in_(DUE_STATES), outbox.c.next_attempt_at <= at,
                       sa.or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < at))
                .distinct()
            )
            return [(r.profile_id, r.receiver) for r in rows]

    def claim(self, profile_id: str, receiver: str, limit: int, owner: str, lease: dt.timedelta) -> list[OutboxMessage]:
        """Lease up to ``limit`` due messages for one partner; a leased message is not claimed by anyone else."""
        at = now()
        free = sa.or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < at)
        earlier = outbox.alias("earlier")
        # Messages about one certificate go in order: a cancellation never overtakes the certificate.
        in_order = ~sa.exists().where(
            earlier.c.certificate_pk == outbox.c.certificate_pk, earlier.c.pk < outbox.c.pk,
            earlier.c.status == "pending",
        )
        with self.transaction() as tx:
            conn = tx.conn
            pks = conn.execute(
                sa.select(outbox.c.pk)
                .where(outbox.c.status.in_(DUE_STATES), outbox.c.profile_id == profile_id, outbox.c.receiver == receiver,
                       outbox.c.next_attempt_at <= at, free, in_order)
                .order_by(outbox.c.pk)
                .limit(limit)
            ).scalars().all()
            if not pks:
                return []
            conn.execute(
                outbox.update().where(outbox.c.pk.in_(pks), outbox.c.status.in_(DUE_STATES), free)
                .values(lease_owner=owner, lease_until=at + lease)
            )
            rows = conn.execute(
                sa.select(outbox).where(outbox.c.pk.in_(pks), outbox.c.lease_owner == owner, outbox.c.lease_until == at + lease)
                .order_by(outbox.c.pk)
            )
            return [_outbox(r) for r in rows]

    def outbox_message(self, message_id: str) -> OutboxMessage:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(outbox).where(outbox.c.message_id == message_id)).first()
        if row is None:
            raise UnknownName("outbound message", message_id, [])
        return _outbox(row)

    def outbox_list(self, *, status: str | None = None, profile_id: str | None = None, limit: int = 100) -> list[OutboxMessage]:
        query = sa.select(outbox).order_by(outbox.c.pk).limit(limit)
        if status:
            query = query.where(outbox.c.status == status)
        if profile_id:
            query = query.where(outbox.c.profile_id == profile_id)
        with self.engine.connect() as conn:
            return [_outbox(r) for r in conn.execute(query)]

    def outbox_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status))
            return {r[0]: r[1] for r in rows}

    # -- reads ---------------------------------------------------------------------------

    def inbound_message(self, message_id: str) -> InboundMessage | None:
        """The message received under this id, if any (read-only; no write lock)."""
        with self.engine.connect() as conn:
            return _inbound_message(conn, message_id)

    def get(self, profile_id: str, cert_id: str, direction: str) -> StoredCertificate | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(certificates).where(
                    certificates.c.profile_id == profile_id, certificates.c.cert_id == cert_id,
                    certificates.c.direction == direction,
                )
            ).first()
        return _stored(row) if row is not None else None

    def wire(self, pk: int) -> bytes | None:
        """The document exactly as it was received (inbound certificates)."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(certificates.c.wire).where(certificates.c.pk == pk)).scalar_one_or_none()
        return bytes(value) if value is not None else None

    def find(self, cert_id: str) -> list[StoredCertificate]:
        """Every record of a certificate id, whatever the profile or direction."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(certificates).where(certificates.c.cert_id == cert_id).order_by(certificates.c.pk))
            return [_stored(r) for r in rows]

    def list(self, *, profile_id: str | None = None, partner: str | None = None, status: str | None = None,
             direction: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
             limit: int = 1000) -> list[StoredCertificate]:
        query = sa.select(certificates).order_by(certificates.c.pk).limit(limit)
        for column, value in ((certificates.c.profile_id, profile_id), (certificates.c.partner, partner),
                              (certificates.c.status, status), (certificates.c.direction, direction)):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(certificates.c.created_at >= since)
        if until is not None:
            query = query.where(certificates.c.created_at < until)
        with self.engine.connect() as conn:
            return [_stored(r) for r in conn.execute(query)]

    def events(self, pk: int) -> list[Event]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(events).where(events.c.certificate_pk == pk).order_by(events.c.pk))
            return [Event(r.event, r.actor, _aware(r.at), json.loads(r.detail)) for r in rows]

    def counts(self) -> dict[str, int]:
        """Row counts per table (health checks and tests)."""
        with self.engine.connect() as conn:
            return {
                t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in (certificates, events, messages, outbox)
            }


def _stored(row: Any) -> StoredCertificate:
    return StoredCertificate(
        pk=row.pk, profile_id=row.profile_id, cert_id=row.cert_id, direction=row.direction, partner=row.partner,
        status=row.status, document=json.loads(row.document), created_at=_aware(row.created_at), updated_at=_aware(row.updated_at),
    )


def _outbox(row: Any) -> OutboxMessage:
    return OutboxMessage(
        pk=row.pk, message_id=row.message_id, profile_id=row.profile_id, certificate_pk=row.certificate_pk, kind=row.kind,
        sender=row.sender, receiver=row.receiver, content_type=row.content_type, body=bytes(row.body),
        headers=json.loads(row.headers), status=row.status, attempts=row.attempts,
        next_attempt_at=_aware(row.next_attempt_at), last_error=row.last_error,
        receipt=json.loads(row.receipt) if row.receipt else None,
        created_at=_aware(row.created_at), updated_at=_aware(row.updated_at),
    )


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite gives back naive datetimes; everything ibb stores is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def _safe(url: str) -> str:
    """A database URL fit for messages and logs: the password masked."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid URL>"


def _url(url: str | Path) -> str:
    text = str(url)
    return text if "://" in text else f"sqlite:///{Path(text).expanduser()}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy issue BEGIN itself (see _sqlite_begin_immediate).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    # FULL: a commit is on disk before it is acknowledged (a receipt must survive a power cut,
    # not only a process crash; NORMAL in WAL mode may lose the last commits).
    cur.execute("PRAGMA synchronous=FULL")
    # Page cache per connection (SQLite's default, made explicit): memory is bounded by this times
    # the pool's connections (5 + 10 overflow), whatever the size of the store.
    cur.execute("PRAGMA cache_size=-2000")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Writers take the write lock at BEGIN (IMMEDIATE): two writers then queue on
    # busy_timeout instead of failing with "database is locked" when a reader upgrades.
    # Readers begin DEFERRED and never wait for writers (WAL).
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")
