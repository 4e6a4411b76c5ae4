"""The store: certificates, their lifecycle events and the messages that carried them.

SQLAlchemy Core over any SQLAlchemy URL; an SQLite file by default. The schema is
created or migrated when the store opens (``schema_version`` table, one step per
version in ``MIGRATIONS``). Every method is one transaction: it either happens whole
or not at all.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .errors import StoreError

metadata = sa.MetaData()

certificates = sa.Table(
    "certificates",
    metadata,
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
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("certificate_pk", sa.Integer, sa.ForeignKey("certificates.pk"), nullable=False, index=True),
    sa.Column("event", sa.String(40), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # JSON object
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)

messages = sa.Table(
    "messages",
    metadata,
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
)

schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[certificates, events, messages])


MIGRATIONS: Sequence[Callable[[Connection], None]] = (_v1,)
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


class Duplicate(Exception):
    """Raised inside the store when a message id was already recorded (internal)."""


class Store:
    """One node's store. ``url`` is any SQLAlchemy URL, or a path to an SQLite file."""

    def __init__(self, url: str | Path):
        self.url = _url(url)
        try:
            self.engine: Engine = sa.create_engine(self.url, future=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise StoreError(f"cannot open store {self.url!r}: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self.migrate()

    def migrate(self) -> int:
        """Create or upgrade the schema; returns the version now in force."""
        try:
            with self.engine.begin() as conn:
                metadata.create_all(conn, tables=[schema_version])
                current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
                if current > len(MIGRATIONS):
                    raise StoreError(f"store schema version {current} is newer than this ibb ({len(MIGRATIONS)})")
                for version in range(current, len(MIGRATIONS)):
                    MIGRATIONS[version](conn)
                    conn.execute(schema_version.insert().values(version=version + 1))
                return len(MIGRATIONS)
        except sa.exc.OperationalError as exc:
            raise StoreError(f"cannot open store {self.engine.url!r}: {exc.orig}") from None

    def close(self) -> None:
        self.engine.dispose()

    # -- writes -------------------------------------------------------------

    def record_certificate(
        self, *, profile_id: str, cert_id: str, direction: str, partner: str, status: str,
        document: dict[str, Any], actor: str, detail: dict[str, Any] | None = None,
    ) -> int:
        """Insert a certificate with its first event; returns its key. Refuses a second one with the same id."""
        at = now()
        with self.engine.begin() as conn:
            try:
                pk = conn.execute(
                    certificates.insert().values(
                        profile_id=profile_id, cert_id=cert_id, direction=direction, partner=partner,
                        status=status, document=json.dumps(document), created_at=at, updated_at=at,
                    )
                ).inserted_primary_key[0]
            except sa.exc.IntegrityError:
                raise StoreError(f"certificate {cert_id!r} is already recorded ({direction}) in profile {profile_id!r}") from None
            _add_event(conn, pk, status, actor, detail or {}, at)
            return int(pk)

    def record_event(self, pk: int, event: str, actor: str, detail: dict[str, Any] | None = None, *, status: str | None = None) -> None:
        """Append an event to a certificate's log, optionally moving its status, in one transaction."""
        at = now()
        with self.engine.begin() as conn:
            _add_event(conn, pk, event, actor, detail or {}, at)
            if status is not None:
                conn.execute(certificates.update().where(certificates.c.pk == pk).values(status=status, updated_at=at))

    def record_outbound_message(self, pk: int, message_id: str, profile_id: str, sender: str, receiver: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                messages.insert().values(
                    message_id=message_id, direction="outbound", profile_id=profile_id,
                    certificate_pk=pk, sender=sender, receiver=receiver, at=now(),
                )
            )

    def set_receipt(self, direction: str, message_id: str, receipt: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                messages.update()
                .where(messages.c.direction == direction, messages.c.message_id == message_id)
                .values(receipt=json.dumps(receipt))
            )

    def record_inbound(
        self, *, message_id: str, profile_id: str, sender: str, receiver: str, cert_id: str,
        document: dict[str, Any], receipt: Callable[[int], dict[str, Any]],
    ) -> tuple[bool, dict[str, Any]]:
        """Store a received certificate and its message in one transaction.

        Returns ``(True, receipt)`` when stored now, ``(False, first_receipt)`` when the
        message id was already received (the certificate is not stored twice).
        """
        at = now()
        try:
            with self.engine.begin() as conn:
                existing = self._inbound_receipt(conn, message_id)
                if existing is not None:
                    raise Duplicate(existing)
                pk = conn.execute(
                    certificates.insert().values(
                        profile_id=profile_id, cert_id=cert_id, direction="inbound", partner=sender,
                        status="received", document=json.dumps(document), created_at=at, updated_at=at,
                    )
                ).inserted_primary_key[0]
                _add_event(conn, pk, "received", sender, {"message_id": message_id}, at)
                body = receipt(int(pk))
                conn.execute(
                    messages.insert().values(
                        message_id=message_id, direction="inbound", profile_id=profile_id, certificate_pk=pk,
                        sender=sender, receiver=receiver, receipt=json.dumps(body), at=at,
                    )
                )
                return True, body
        except Duplicate as dup:
            return False, dup.args[0]
        except sa.exc.IntegrityError:
            # A concurrent delivery of the same message id, or the same certificate id again.
            with self.engine.connect() as conn:
                existing = self._inbound_receipt(conn, message_id)
            if existing is not None:
                return False, existing
            raise StoreError(f"certificate {cert_id!r} was already received in profile {profile_id!r} under another message id") from None

    @staticmethod
    def _inbound_receipt(conn: Connection, message_id: str) -> dict[str, Any] | None:
        row = conn.execute(
            sa.select(messages.c.receipt).where(messages.c.direction == "inbound", messages.c.message_id == message_id)
        ).first()
        return json.loads(row.receipt) if row is not None and row.receipt else None

    # -- reads --------------------------------------------------------------

    def get(self, profile_id: str, cert_id: str, direction: str) -> StoredCertificate | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(certificates).where(
                    certificates.c.profile_id == profile_id, certificates.c.cert_id == cert_id,
                    certificates.c.direction == direction,
                )
            ).first()
        return _stored(row) if row is not None else None

    def find(self, cert_id: str) -> list[StoredCertificate]:
        """Every record of a certificate id, whatever the profile or direction."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(certificates).where(certificates.c.cert_id == cert_id).order_by(certificates.c.pk))
            return [_stored(r) for r in rows]

    def events(self, pk: int) -> list[Event]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(events).where(events.c.certificate_pk == pk).order_by(events.c.pk))
            return [Event(r.event, r.actor, _aware(r.at), json.loads(r.detail)) for r in rows]

    def counts(self) -> dict[str, int]:
        """Row counts per table (health checks and tests)."""
        with self.engine.connect() as conn:
            return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() for t in (certificates, events, messages)}


def _add_event(conn: Connection, pk: int, event: str, actor: str, detail: dict[str, Any], at: dt.datetime) -> None:
    conn.execute(events.insert().values(certificate_pk=pk, event=event, actor=actor, detail=json.dumps(detail), at=at))


def _stored(row: Any) -> StoredCertificate:
    return StoredCertificate(
        pk=row.pk, profile_id=row.profile_id, cert_id=row.cert_id, direction=row.direction, partner=row.partner,
        status=row.status, document=json.loads(row.document), created_at=_aware(row.created_at), updated_at=_aware(row.updated_at),
    )


def _aware(value: dt.datetime) -> dt.datetime:
    # SQLite gives back naive datetimes; everything ibb stores is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def _url(url: str | Path) -> str:
    text = str(url)
    return text if "://" in text else f"sqlite:///{Path(text).expanduser()}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
