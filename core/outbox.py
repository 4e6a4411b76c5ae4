"""The outbox dispatcher: delivers what the engine committed to the outbox, and records the outcome.

One dispatcher runs in each gateway. It looks for partners (profile, receiver) with due
messages, leases up to ``per_partner`` of them for each, and sends them concurrently.
A slow partner only ever holds its own ``per_partner`` slots, and a dead partner's
messages wait for their next attempt time, so neither blocks anyone else.

Outcome of a send (one transaction each):

* receipt -> ``delivered`` (``delivered-with-warnings`` when the receipt carries reasons),
  certificate event ``delivered`` (for certificate messages, state ``sent -> delivered``);
* retryable failure -> ``attempts + 1``, next attempt after the profile's backoff, event ``retry``;
* retries exhausted or non-retryable failure -> ``failed`` (the dead-letter state), event
  ``delivery-failed``; certificate messages move the certificate to ``failed``. An operator
  re-drives with ``ibb outbox redrive``.

A message leased by a process that died is claimed again once its lease expires; the
receiver's de-duplication on message id makes that resend harmless.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import uuid
from typing import Any

import anyio
import sqlalchemy as sa

from .errors import IbbError, TransportError
from .lifecycle import TRANSITIONS
from .store import DUE_STATES, OutboxMessage, Store, now, outbox
from .transport import Message, Receipt

log = logging.getLogger("ibb.outbox")


class Dispatcher:
    def __init__(self, engine: Any, *, per_partner: int = 16, poll_seconds: float = 0.5, lease_seconds: float | None = None):
        self.engine = engine
        self.store: Store = engine.store
        self.per_partner = per_partner
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.owner = uuid.uuid4().hex
        self.inflight: dict[tuple[str, str], int] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        engine.enqueued.append(self.wake)

    def wake(self) -> None:
        """Look for work now (called after a transaction enqueued messages)."""
        try:
            self._wake.set()
        except RuntimeError:  # called from a thread whose loop is gone
            pass

    def _lease(self, profile_id: str) -> dt.timedelta:
        if self.lease_seconds is not None:
            return dt.timedelta(seconds=self.lease_seconds)
        timeout = getattr(self.engine.profiles[profile_id].service_interface.settings, "timeout", 30.0)
        return dt.timedelta(seconds=float(timeout) + 10.0)

    async def run(self) -> None:
        """Deliver until ``stop`` is called."""
        while not self._stopping:
            self._wake.clear()
            try:
                await self.dispatch_once()
            except Exception:  # the store being briefly unavailable must not kill delivery
                log.exception("outbox dispatch failed; retrying")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            except asyncio.TimeoutError:
                pass

    async def dispatch_once(self) -> int:
        """Claim and start sending every due message the partners have room for; returns how many."""
        started = 0
        partners = await anyio.to_thread.run_sync(self.store.due_partners, now())
        for profile_id, receiver in partners:
            if profile_id not in self.engine.profiles:
                continue  # another node's profile in a shared database
            key = (profile_id, receiver)
            busy = self.inflight.get(key, 0)
            room = self.per_partner - busy
            if room <= 0 or (busy and room < self.per_partner // 2):
                continue  # claim in chunks, not one message per completed send
            claimed = await anyio.to_thread.run_sync(
                lambda: self.store.claim(profile_id, receiver, room, self.owner, self._lease(profile_id))
            )
            for message in claimed:
                self.inflight[key] = self.inflight.get(key, 0) + 1
                task = asyncio.create_task(self._deliver(message, key))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                started += 1
        return started

    async def _deliver(self, row: OutboxMessage, key: tuple[str, str]) -> None:
        try:
            profile = self.engine.profiles[row.profile_id]
            transport = self.engine.transports[row.profile_id]
            target = profile.entity(row.receiver)
            message = Message(
                message_id=row.message_id, profile_id=row.profile_id, sender=row.sender, receiver=row.receiver,
                content_type=row.content_type, body=row.body, kind=row.kind, headers=row.headers,
            )
            try:
                if row.status == "awaiting-receipt":  # claimed because its receipt is overdue
                    timeout = profile.communication.receipt_timeout_seconds
                    raise TransportError(f"no receipt from {row.receiver} within {timeout:g} s", retryable=True)
                if not target.endpoint:
                    raise TransportError(f"entity {target.id!r} has no endpoint", retryable=False)
                receipt = await transport.send(message, target.endpoint)
            except IbbError as failure:
                error, retryable = str(failure), transport.is_retryable(failure)
                await anyio.to_thread.run_sync(lambda: self._failed(row, profile, error, retryable))
                return
            await anyio.to_thread.run_sync(lambda: self._delivered(row, receipt))
        except Exception as bug:  # a bug or an unexpected fault: dead-letter it rather than resend it forever
            log.exception("delivering %s failed unexpectedly", row.message_id)
            unexpected = f"unexpected error: {bug!r}"
            try:
                await anyio.to_thread.run_sync(lambda: self._failed(row, self.engine.profiles[row.profile_id], unexpected, False))
            except Exception:
                log.exception("recording the failure of %s failed; it will be retried after its lease", row.message_id)
        finally:
            self.inflight[key] -= 1
            self.wake()

    def _delivered(self, row: OutboxMessage, receipt: Receipt | None) -> None:
        """Record a send: its synchronous receipt, or (asynchronous transports) that a receipt is awaited."""
        with self.store.transaction() as tx:
            if not self._still_mine(tx, row):
                return
            if receipt is not None:
                apply_receipt(tx, row, receipt, attempts=row.attempts + 1)
                return
            timeout = self.engine.profiles[row.profile_id].communication.receipt_timeout_seconds
            tx.conn.execute(
                outbox.update().where(outbox.c.pk == row.pk).values(
                    status="awaiting-receipt", attempts=row.attempts + 1, lease_owner=None, lease_until=None,
                    next_attempt_at=now() + dt.timedelta(seconds=timeout), updated_at=now(),
                )
            )
            record = tx.certificate_by_pk(row.certificate_pk)
            if row.kind == "certificate":
                record = _advance(tx, record, "sent", row.sender, {"message_id": row.message_id})
            tx.event(record.pk, f"{row.kind}-awaiting-receipt", row.sender,
                     {"message_id": row.message_id, "to": row.receiver, "attempt": row.attempts + 1, "timeout_s": timeout})

    def _failed(self, row: OutboxMessage, profile: Any, error: str, retryable: bool) -> None:
        retry = profile.communication.retry
        attempt = row.attempts + 1
        give_up = not retryable or attempt >= retry.attempts
        with self.store.transaction() as tx:
            if not self._still_mine(tx, row):
                return
            values: dict[str, Any] = {"attempts": attempt, "last_error": error[:2000], "lease_owner": None,
                                      "lease_until": None, "updated_at": now()}
            detail: dict[str, Any] = {"message_id": row.message_id, "kind": row.kind, "to": row.receiver,
                                      "attempt": attempt, "error": error}
            record = tx.certificate_by_pk(row.certificate_pk)
            if row.kind == "certificate":
                record = _advance(tx, record, "sent", row.sender, {"message_id": row.message_id})
            if give_up:
                values["status"] = "failed"
                tx.event(record.pk, "delivery-failed", row.sender, {**detail, "retryable": retryable})
                if row.kind == "certificate":
                    _advance(tx, record, "failed", row.sender, {"message_id": row.message_id, "error": error})
            else:
                delay = retry.delay(attempt)
                values.update(status="pending", next_attempt_at=now() + dt.timedelta(seconds=delay))
                tx.event(record.pk, "retry", row.sender, {**detail, "retry_in_s": delay})
            tx.conn.execute(outbox.update().where(outbox.c.pk == row.pk).values(**values))
        if give_up:
            log.warning("%s: message %s to %s failed for good: %s", row.profile_id, row.message_id, row.receiver, error)

    def _still_mine(self, tx: Any, row: OutboxMessage) -> bool:
        """False when the lease expired and another dispatcher took the message over meanwhile."""
        owner = tx.conn.execute(
            sa.select(outbox.c.lease_owner, outbox.c.status).where(outbox.c.pk == row.pk).with_for_update()
        ).one()
        if owner.lease_owner != self.owner or owner.status not in DUE_STATES:
            log.warning("message %s: lease lost before the outcome was recorded; leaving it to its new owner", row.message_id)
            return False
        return True

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; wait up to ``timeout`` seconds for sends in flight (their leases cover the rest)."""
        self._stopping = True
        self.wake()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout)

    async def drain(self, timeout: float) -> bool:
        """Deliver until nothing is pending (retries included) or ``timeout`` passes; True when drained (CLI, tests)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            await self.dispatch_once()
            if not self.tasks:
                pending = await anyio.to_thread.run_sync(lambda: self.store.outbox_counts().get("pending", 0))
                if not pending:
                    return True
            await asyncio.sleep(0.02)
        return False


def apply_receipt(tx: Any, row: OutboxMessage, receipt: Receipt, *, attempts: int) -> None:
    """Record the partner's receipt for an outbound message (synchronous, or arrived later on its own)."""
    status = "delivered-with-warnings" if receipt.reasons else "delivered"
    tx.conn.execute(
        outbox.update().where(outbox.c.pk == row.pk).values(
            status=status, attempts=attempts, receipt=json.dumps(receipt.to_dict()),
            lease_owner=None, lease_until=None, updated_at=now(),
        )
    )
    record = tx.certificate_by_pk(row.certificate_pk)
    detail = {"message_id": row.message_id, "kind": row.kind, "to": row.receiver, "attempt": attempts, "receipt": receipt.to_dict()}
    if row.kind == "certificate":
        record = _advance(tx, record, "sent", row.sender, {"message_id": row.message_id})
    if row.kind == "certificate" and _can(record, "delivered"):
        tx.transition(record, "delivered", row.receiver, detail)
    else:
        tx.event(record.pk, f"{row.kind}-{status}", row.receiver, detail)


def _can(record: Any, new: str) -> bool:
    return new in TRANSITIONS.get(record.status, ())


def _advance(tx: Any, record: Any, new: str, actor: str, detail: dict[str, Any]) -> Any:
    """Move the certificate if the lifecycle allows it from where it is now (it may have been cancelled meanwhile)."""
    return tx.transition(record, new, actor, detail) if _can(record, new) else record


def redrive(store: Store, message_id: str, actor: str = "operator") -> OutboxMessage:
    """Put a failed (dead-letter) message back in the queue, due now, with its attempt count reset."""
    from .errors import Refused

    message = store.outbox_message(message_id)
    with store.transaction() as tx:
        changed = tx.conn.execute(
            outbox.update().where(outbox.c.pk == message.pk, outbox.c.status == "failed").values(
                status="pending", attempts=0, next_attempt_at=now(), lease_owner=None, lease_until=None, updated_at=now()
            )
        ).rowcount
        if changed != 1:
            raise Refused(f"message {message_id} is {message.status}; only failed messages can be re-driven", 409)
        tx.event(message.certificate_pk, "redriven", actor, {"message_id": message_id, "last_error": message.last_error})
    return store.outbox_message(message_id)
