"""The engine: runs a node's side of every loaded profile.

Every business step is one store transaction that changes a certificate's state, appends
the event (who, when, why) and enqueues the messages the profile's triggers send. Nothing
goes on the wire inside a transaction: the outbox :class:`~ibb.core.outbox.Dispatcher`
delivers what was committed, so a crash at any point loses and duplicates nothing.

Sending side: ``issue`` (rules -> record issued -> ``certificate.issued`` triggers, e.g.
``send``), ``cancel`` (-> ``certificate.cancelled``, e.g. ``notify``).
Receiving side: ``receive`` (envelope -> verify signatures and trust when the profile
requires signatures -> parse -> rules -> store once per message id -> receipt ->
``certificate.received``), ``decide`` (preference granted or refused ->
``preference.decided``, e.g. ``send-feedback``). Feedback and cancellations arrive through
``receive`` like certificates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import anyio
import attrs
import sqlalchemy as sa

from .errors import CertificateError, IbbError, Refused, RuleViolation, TransportError, UnknownName
from .formats import MessageFormat
from .model import Certificate, certificate_from_dict, certificate_to_dict
from .plugins import Plugins
from .profile import Entity, Profile, Trigger
from .rules import Rule, RuleContext
from .store import Conflict, InboundMessage, Store, StoredCertificate, Tx
from .transport import RECEIPT_CONTENT_TYPE, Message, Receipt, Transport

log = logging.getLogger("ibb.engine")

CONTROL_CONTENT_TYPE = "application/vnd.ibb.control+json"
"""Content type of feedback and cancellation messages (the same for every profile)."""
DECISIONS = ("accepted", "refused")


@attrs.frozen
class ActionContext:
    """What a trigger action receives. Actions run inside the transaction of the event."""

    engine: Engine
    profile: Profile
    event: str
    trigger: Trigger
    tx: Tx
    record: StoredCertificate
    actor: str
    """Entity id of the local party on whose behalf the action runs."""
    detail: Mapping[str, Any] = attrs.field(factory=dict)
    """What the event carries besides the certificate (a decision and its reason, …)."""

    @property
    def certificate(self) -> Certificate:
        return certificate_from_dict(self.record.document)

    def target(self) -> Entity:
        """The trigger's ``to`` entity, or else the partner of this certificate."""
        return self.profile.entity(self.trigger.to or self.record.partner)

    def enqueue(self, kind: str, to: Entity, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> str:
        """Put a message in the outbox, committed with the event; returns its message id."""
        if not to.endpoint:
            raise Refused(f"entity {to.id!r} of profile {self.profile.id!r} has no endpoint to send to", 409)
        message_id = self.engine.new_message_id()
        self.tx.enqueue(
            message_id=message_id, profile_id=self.profile.id, certificate_pk=self.record.pk, kind=kind,
            sender=self.actor, receiver=to.id, content_type=content_type, body=body, headers=headers,
        )
        self.tx.event(self.record.pk, "queued", self.actor, {"message_id": message_id, "kind": kind, "to": to.id})
        return message_id


class Engine:
    """A node: its profiles, their plugins instantiated, and its store."""

    def __init__(self, profiles: Mapping[str, Profile], store: Store, plugins: Plugins, local: Iterable[str] | None = None):
        self.profiles = dict(profiles)
        self.local = frozenset(local) if local is not None else None
        """Entity ids this node acts for (``ibb serve --node``); None: every entity of its profiles."""
        if self.local is not None:
            known = {e.id for p in self.profiles.values() for e in p.entities}
            if not self.local <= known:
                raise UnknownName("entity", ", ".join(sorted(self.local - known)), known)
        self.store = store
        self.plugins = plugins
        self.formats: dict[str, MessageFormat] = {}
        self.transports: dict[str, Transport] = {}
        self.rules: dict[str, list[Rule]] = {}
        self.enqueued: list[Callable[[], None]] = []
        """Called after a transaction that enqueued messages commits (the dispatcher wakes up)."""
        for pid, p in self.profiles.items():
            self.formats[pid] = plugins.formats.get(p.data_cluster.format)(p.data_cluster.options)
            self.transports[pid] = plugins.transports.get(p.service_interface.transport)(p.service_interface.settings, pid)
            self.rules[pid] = [plugins.rules.get(spec.rule)(spec.params) for spec in p.rules]

    def profile(self, profile_id: str) -> Profile:
        try:
            return self.profiles[profile_id]
        except KeyError:
            raise UnknownName("profile", profile_id, self.profiles) from None

    def local_entity(self, profile: Profile, ref: str) -> Entity:
        """The entity ``ref`` (id or role) of ``profile``, which this node must act for."""
        entity = profile.entity(ref)
        if self.local is not None and entity.id not in self.local:
            raise Refused(f"this gateway does not act for {entity.id!r} (it acts for {', '.join(sorted(self.local))})", 403)
        return entity

    def check_rules(self, profile_id: str, certificate: Certificate, direction: str) -> list[str]:
        context = RuleContext(profile_id=profile_id, direction=direction)
        problems: list[str] = []
        for rule in self.rules[profile_id]:
            problems.extend(f"rule {rule.name}: {p}" for p in rule.check(certificate, context))
        return problems

    def new_message_id(self) -> str:
        return f"{uuid.uuid4()}@ibb"

    async def _run(self, fn: Callable[[], Any]) -> Any:
        """Run a store transaction in a worker thread, then wake the dispatcher."""
        result = await anyio.to_thread.run_sync(fn)
        for wake in self.enqueued:
            wake()
        return result

    def fire(self, tx: Tx, profile: Profile, event: str, record: StoredCertificate, actor: str, detail: Mapping[str, Any] | None = None) -> None:
        """Run the actions of ``event``'s triggers inside ``tx`` (also for actions that cause further events)."""
        for trigger in profile.triggers_on(event):
            for name in trigger.do:
                action = self.plugins.actions.get(name)
                action(ActionContext(self, profile, event, trigger, tx, record, actor, detail or {}))

    # -- sending side ---------------------------------------------------------------------

    async def issue(self, profile_id: str, certificate: Certificate, issuer: str, replaces: str | None = None,
                    draft: bool = False) -> StoredCertificate:
        """Issue a certificate on behalf of entity ``issuer``; the ``certificate.issued`` triggers enqueue what to send.

        With ``replaces``, the old certificate of that id becomes ``replaced`` in the same
        transaction. With ``draft``, the certificate is only recorded as a draft: it is
        issued later, when its export declaration is accepted (``declaration_accepted``).
        Raises :class:`RuleViolation` (nothing recorded) when a business rule fails.
        """
        profile = self.profile(profile_id)
        actor = self.local_entity(profile, issuer).id
        if draft and replaces:
            raise Refused("a draft cannot replace a certificate; issue the replacement directly", 400)
        problems = [] if draft else self.check_rules(profile_id, certificate, "outbound")
        if problems:
            raise RuleViolation(problems, source=f"certificate {certificate.id}")
        status = "draft" if draft else "issued"
        certificate = attrs.evolve(certificate, status=status)
        partners = [profile.entity(t.to).id for t in profile.triggers_on("certificate.issued") if t.to]

        def work() -> StoredCertificate:
            with self.store.transaction() as tx:
                pk = tx.insert_certificate(
                    profile_id=profile_id, cert_id=certificate.id, direction="outbound",
                    partner=partners[0] if partners else "", status=status, document=certificate_to_dict(certificate),
                )
                detail = {"replaces": replaces} if replaces else {}
                tx.event(pk, status, actor, detail)
                if replaces:
                    old = tx.certificate(profile_id, replaces, "outbound", lock=True)
                    tx.transition(old, "replaced", actor, {"replaced_by": certificate.id})
                record = tx.certificate_by_pk(pk)
                if not draft:
                    self.fire(tx, profile, "certificate.issued", record, actor, detail)
                return record

        return await self._run(work)

    async def declaration_accepted(self, profile_id: str, cert_id: str, actor: str, declaration: str) -> StoredCertificate:
        """The export declaration covering draft ``cert_id`` was accepted: run ``export-declaration.accepted``
        (typically ``issue``, which checks the rules, issues and so sends the certificate)."""
        profile = self.profile(profile_id)
        who = self.local_entity(profile, actor).id

        def work() -> StoredCertificate:
            with self.store.transaction() as tx:
                record = tx.certificate(profile_id, cert_id, "outbound", lock=True)
                if record.status != "draft":
                    raise Refused(f"certificate {cert_id!r} is {record.status}, not a draft waiting for its export declaration", 409)
                tx.event(record.pk, "export-declaration.accepted", who, {"declaration": declaration})
                self.fire(tx, profile, "export-declaration.accepted", record, who, {"declaration": declaration})
                return tx.certificate_by_pk(record.pk)

        return await self._run(work)

    async def cancel(self, profile_id: str, cert_id: str, actor: str, reason: str) -> StoredCertificate:
        """Cancel an issued certificate; the ``certificate.cancelled`` triggers notify the partner."""
        profile = self.profile(profile_id)
        who = self.local_entity(profile, actor).id

        def work() -> StoredCertificate:
            with self.store.transaction() as tx:
                record = tx.transition(tx.certificate(profile_id, cert_id, "outbound", lock=True), "cancelled", who, {"reason": reason})
                self.fire(tx, profile, "certificate.cancelled", record, who, {"reason": reason})
                return record

        return await self._run(work)

    # -- receiving side -------------------------------------------------------------------

    async def decide(self, profile_id: str, cert_id: str, decision: str, actor: str, reason: str = "") -> StoredCertificate:
        """Record the importing administration's decision on a received certificate (preference granted or refused)."""
        if decision not in DECISIONS:
            raise CertificateError([f"$.decision: {decision!r} is not one of {', '.join(DECISIONS)}"])
        profile = self.profile(profile_id)
        who = self.local_entity(profile, actor).id

        def work() -> StoredCertificate:
            with self.store.transaction() as tx:
                record = tx.transition(tx.certificate(profile_id, cert_id, "inbound", lock=True), decision, who, {"reason": reason})
                self.fire(tx, profile, "preference.decided", record, who, {"decision": decision, "reason": reason})
                return record

        return await self._run(work)

    async def receive(self, message: Message) -> Receipt:
        """Handle one inbound message; returns the receipt for the sender.

        Raises an :class:`IbbError` (nothing stored) when the message is refused. A message
        id received before gets the first receipt again, with a warning, and changes nothing.
        """
        profile = self.profile(message.profile_id)
        entity_ids = {e.id for e in profile.entities}
        for role, entity_id in (("sender", message.sender), ("receiver", message.receiver)):
            if entity_id not in entity_ids:
                raise Refused(f"{role} {entity_id!r} is not an entity of profile {profile.id!r}", 403)
        self.local_entity(profile, message.receiver)
        if self.local is not None and message.sender in self.local:
            raise Refused(f"sender {message.sender!r} is this gateway's own entity", 403)
        # A resend is answered before any parsing, verification or rule: rules or trust lists that
        # changed since must not turn the acknowledgement of a stored certificate into a refusal.
        known = await anyio.to_thread.run_sync(self.store.inbound_message, message.message_id)
        if known is not None:
            return self._resend(known, message)
        content_type = message.content_type.split(";")[0].strip().lower()
        if message.kind == "certificate":
            fmt = self.formats[profile.id]
            if content_type != fmt.content_type:
                raise Refused(f"content type {message.content_type!r} is not {fmt.content_type!r} (format {fmt.name!r})", 415)
            certificate = await anyio.to_thread.run_sync(lambda: self._check_certificate(profile, fmt, message))
            return await self._run_receive(message, lambda: self._receive_certificate(profile, message, certificate))
        if message.kind in ("feedback", "cancellation"):
            if content_type != CONTROL_CONTENT_TYPE:
                raise Refused(f"content type {message.content_type!r} is not {CONTROL_CONTENT_TYPE!r}", 415)
            control = parse_control(message.body, message.kind)
            return await self._run_receive(message, lambda: self._receive_control(profile, message, control))
        if message.kind == "receipt":
            if content_type != RECEIPT_CONTENT_TYPE:
                raise Refused(f"content type {message.content_type!r} is not {RECEIPT_CONTENT_TYPE!r}", 415)
            receipt = parse_receipt(message.body)
            return await self._run(lambda: self._receive_receipt(profile, message, receipt))
        raise Refused(f"message kind {message.kind!r} is not one of certificate, feedback, cancellation, receipt", 400)

    def _check_certificate(self, profile: Profile, fmt: MessageFormat, message: Message) -> Certificate:
        """Signatures (when the profile requires them), parsing and business rules; CPU work, run in a thread."""
        if profile.data_cluster.signatures:
            try:
                report = fmt.verify(message.body)
            except IbbError as exc:  # our own configuration (trust list, schema), not the sender's fault: retry later
                log.error("%s: cannot verify signatures: %s", profile.id, exc)
                raise Refused(f"this gateway cannot verify signatures now: {exc}", 503) from None
            report.raise_for_problems(source=f"message {message.message_id}")
        certificate = fmt.parse(message.body)
        problems = self.check_rules(profile.id, certificate, "inbound")
        if profile.data_cluster.signatures:
            max_age = dt.timedelta(hours=profile.communication.max_signature_age_hours)
            problems.extend(signed_certificate_problems(profile, report.results, certificate, max_age))
        if problems:
            raise RuleViolation(problems, source=f"certificate {certificate.id}")
        return certificate

    async def _run_receive(self, message: Message, work: Callable[[], Receipt]) -> Receipt:
        """Apply an inbound message; a concurrent delivery of the same message id gets the first receipt."""
        try:
            return await self._run(work)
        except (Conflict, sa.exc.IntegrityError) as exc:
            def first() -> Receipt | None:
                with self.store.transaction() as tx:
                    return self._duplicate(tx, message)

            receipt = await anyio.to_thread.run_sync(first)
            if receipt is not None:
                return receipt
            if isinstance(exc, Conflict):
                raise
            raise Conflict(f"message {message.message_id} conflicts with what this gateway already holds") from None

    def _duplicate(self, tx: Tx, message: Message) -> Receipt | None:
        known = tx.inbound_message(message.message_id)
        return None if known is None else self._resend(known, message)

    def _resend(self, known: InboundMessage, message: Message) -> Receipt:
        """The first receipt again, if ``message`` is the one received under its id; 409 if it is another."""
        same = (known.profile_id == message.profile_id and known.sender == message.sender
                and known.body_sha256 in (None, _sha256(message.body)))
        if not same:
            raise Conflict(f"message id {message.message_id!r} was already used for another message; "
                           "a new message needs a new message id")
        log.info("%s: message %s received again; first receipt returned", message.profile_id, message.message_id)
        receipt = Receipt.from_dict(known.receipt)
        return attrs.evolve(receipt, reasons=(*receipt.reasons, f"duplicate: message {message.message_id} was already received and applied once"))

    def _receive_certificate(self, profile: Profile, message: Message, certificate: Certificate) -> Receipt:
        with self.store.transaction() as tx:
            duplicate = self._duplicate(tx, message)
            if duplicate is not None:
                return duplicate
            certificate = attrs.evolve(certificate, status="received")
            pk = tx.insert_certificate(
                profile_id=profile.id, cert_id=certificate.id, direction="inbound", partner=message.sender,
                status="received", document=certificate_to_dict(certificate), wire=message.body,
            )
            detail: dict[str, Any] = {"message_id": message.message_id}
            replaces = message.headers.get("replaces")
            if replaces:
                detail["replaces"] = replaces
            tx.event(pk, "received", message.sender, detail)
            if replaces:
                old = _predecessor(tx, profile.id, replaces, "inbound")
                if old.partner != message.sender:
                    raise Refused(f"certificate {replaces!r} was not received from {message.sender!r}", 403)
                tx.transition(old, "replaced", message.sender, {"replaced_by": certificate.id})
            receipt = Receipt(message_id=message.message_id, status="received", certificate_id=certificate.id)
            tx.record_inbound_message(
                message_id=message.message_id, profile_id=profile.id, certificate_pk=pk, sender=message.sender,
                receiver=message.receiver, receipt=receipt.to_dict(), body_sha256=_sha256(message.body),
            )
            self.fire(tx, profile, "certificate.received", tx.certificate_by_pk(pk), message.receiver)
            return receipt

    def _receive_control(self, profile: Profile, message: Message, control: dict[str, str]) -> Receipt:
        """Feedback on a certificate we sent, or cancellation of one we received; only from that partner."""
        cert_id = control["certificate_id"]
        with self.store.transaction() as tx:
            duplicate = self._duplicate(tx, message)
            if duplicate is not None:
                return duplicate
            direction = "outbound" if message.kind == "feedback" else "inbound"
            record = _predecessor(tx, profile.id, cert_id, direction)
            partners = tx.sent_to(record.pk) if direction == "outbound" else {record.partner}
            if message.sender not in partners:
                raise Refused(f"certificate {cert_id!r} is not exchanged with {message.sender!r}", 403)
            why = {"message_id": message.message_id, "reason": control.get("reason", "")}
            if message.kind == "feedback":
                if record.status in ("sent", "failed"):  # the feedback overtook the recording of the receipt
                    record = tx.transition(record, "delivered", message.sender, {"implied_by": message.message_id})
                record = tx.transition(record, control["decision"], message.sender, why)
                event = "feedback.received"
            else:
                record = tx.transition(record, "cancelled", message.sender, why)
                event = "cancellation.received"
            receipt = Receipt(message_id=message.message_id, status="received", certificate_id=cert_id)
            tx.record_inbound_message(
                message_id=message.message_id, profile_id=profile.id, certificate_pk=record.pk, sender=message.sender,
                receiver=message.receiver, receipt=receipt.to_dict(), body_sha256=_sha256(message.body),
            )
            self.fire(tx, profile, event, record, message.receiver, control)
            return receipt

    def _receive_receipt(self, profile: Profile, message: Message, receipt: Receipt) -> Receipt:
        """A partner's receipt that arrived on its own (asynchronous transports); applying it twice changes nothing."""
        from .outbox import apply_receipt

        ack = Receipt(message_id=message.message_id, status="received", certificate_id=receipt.certificate_id)
        with self.store.transaction() as tx:
            row = tx.outbox_message(receipt.message_id)
            if row is None or row.profile_id != profile.id:
                raise Refused(f"no message {receipt.message_id!r} was sent in profile {profile.id!r}", 404)
            if row.receiver != message.sender:
                raise Refused(f"message {receipt.message_id!r} was not sent to {message.sender!r}", 403)
            if row.status in ("delivered", "delivered-with-warnings"):
                return attrs.evolve(ack, reasons=(f"duplicate: message {receipt.message_id} was already acknowledged",))
            apply_receipt(tx, row, receipt, attempts=max(row.attempts, 1))
        return ack

    async def close(self) -> None:
        for transport in self.transports.values():
            await transport.close()
        self.store.close()


SIGNING_SKEW = dt.timedelta(minutes=10)
"""Clock difference tolerated between a signer and this gateway."""


def signed_certificate_problems(profile: Profile, results: Any, certificate: Certificate,
                                max_age: dt.timedelta | None) -> list[str]:
    """What a signed certificate's sound signatures still do not prove, for ``profile``.

    Signing times are written by the signer, and the trust list is judged at that time. They
    must fall after the day before the certificate's issue date, and not in the future. On a
    live exchange also within ``max_age`` of now, so that a signer whose authorisation has
    ended can backdate a new signature by that much at most (``None``: no bound, for archived
    documents). The document's issuing entity must be the profile's issuing authority.
    """
    problems = []
    now = dt.datetime.now(dt.timezone.utc)
    earliest = dt.datetime.combine(certificate.issue_date, dt.time.min, dt.timezone.utc) - dt.timedelta(days=1)
    for result in results:
        if result.signed_at is None:
            problems.append(f"signature {result.role}: no signing time")
        elif max_age is not None and result.signed_at < now - max_age:
            problems.append(f"signature {result.role}: signed at {result.signed_at.isoformat()}, more than "
                            f"{max_age.total_seconds() / 3600:g} hours ago (communication.max_signature_age_hours)")
        elif not earliest <= result.signed_at <= now + SIGNING_SKEW:
            problems.append(f"signature {result.role}: signed at {result.signed_at.isoformat()}, outside the window from "
                            f"the day before the issue date {certificate.issue_date} to now")
    if "issuing-authority" in profile.data_cluster.signatures:
        authority = profile.entity("issuing-authority").id
        if certificate.issuing_authority.id != authority:
            problems.append(f"$.issuing_authority.id: {certificate.issuing_authority.id!r} is not the issuing authority "
                            f"of profile {profile.id!r} ({authority!r})")
    return problems


def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _predecessor(tx: Tx, profile_id: str, cert_id: str, direction: str) -> StoredCertificate:
    """The certificate a message refers to. If it has not arrived yet, answer 425 (Too Early): the sender retries."""
    try:
        return tx.certificate(profile_id, cert_id, direction, lock=True)
    except UnknownName:
        raise Refused(f"certificate {cert_id!r} is not known here yet; send the certificate first", 425) from None


def control_body(kind: str, certificate_id: str, **fields: str) -> bytes:
    """The JSON body of a feedback or cancellation message."""
    return json.dumps({"kind": kind, "certificate_id": certificate_id, **fields}).encode()


def _json_object(body: bytes, kind: str) -> dict[str, Any]:
    """The JSON object a ``kind`` message carries, or a CertificateError saying why not."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CertificateError([f"$: not valid JSON ({exc})"]) from None
    if not isinstance(data, dict):
        raise CertificateError([f"$: a {kind} message is a JSON object"])
    return data


def parse_receipt(body: bytes) -> Receipt:
    """The receipt carried by a message of kind ``receipt``."""
    data = _json_object(body, "receipt")
    try:
        return Receipt.from_dict(data)
    except TransportError as exc:
        raise CertificateError([f"$: {exc}"]) from None


def parse_control(body: bytes, kind: str) -> dict[str, str]:
    data = _json_object(body, kind)
    problems = []
    if data.get("kind") != kind:
        problems.append(f"$.kind: expected {kind!r}, got {data.get('kind')!r}")
    if not isinstance(data.get("certificate_id"), str) or not data.get("certificate_id"):
        problems.append("$.certificate_id: required, a string")
    if kind == "feedback" and data.get("decision") not in DECISIONS:
        problems.append(f"$.decision: {data.get('decision')!r} is not one of {', '.join(DECISIONS)}")
    if not isinstance(data.get("reason", ""), str):
        problems.append("$.reason: must be a string")
    if problems:
        raise CertificateError(problems)
    return {k: v for k, v in data.items() if isinstance(v, str)}


__all__ = ["ActionContext", "CONTROL_CONTENT_TYPE", "Engine", "control_body", "parse_control"]
