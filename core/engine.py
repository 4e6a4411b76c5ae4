"""The engine: runs a node's side of every loaded profile.

Outbound (``issue``): business rules -> record as issued -> the profile's
``certificate.issued`` triggers (typically ``send``: render with the format plugin,
deliver with the transport plugin, record the receipt).

Inbound (``receive``): check envelope -> parse with the format plugin -> business
rules -> store (once per message id) -> receipt -> ``certificate.received`` triggers.

Every step that changes something is recorded as a lifecycle event with a timestamp.
Store calls run in worker threads so the gateway's event loop never blocks on I/O.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import anyio
import attrs

from .errors import IbbError, Refused, RuleViolation, UnknownName
from .formats import MessageFormat
from .model import Certificate, certificate_to_dict
from .plugins import Plugins
from .profile import Profile, Trigger
from .rules import Rule, RuleContext
from .store import Store
from .transport import Message, Receipt, Transport

log = logging.getLogger("ibb.engine")


@attrs.frozen
class ActionContext:
    """What a trigger action receives."""

    engine: Engine
    profile: Profile
    event: str
    trigger: Trigger
    certificate: Certificate
    record_pk: int
    """Key of the certificate's record in the store (for ``engine.store.record_event``)."""
    actor: str
    """Entity id of the local party on whose behalf the action runs."""


@attrs.frozen
class Issued:
    pk: int
    certificate: Certificate
    status: str
    """Status once the ``certificate.issued`` triggers ran (``delivered`` after a synchronous send)."""


class Engine:
    """A node: its profiles, their plugins instantiated, and its store."""

    def __init__(self, profiles: Mapping[str, Profile], store: Store, plugins: Plugins):
        self.profiles = dict(profiles)
        self.store = store
        self.plugins = plugins
        self.formats: dict[str, MessageFormat] = {}
        self.transports: dict[str, Transport] = {}
        self.rules: dict[str, list[Rule]] = {}
        for pid, p in self.profiles.items():
            self.formats[pid] = plugins.formats.get(p.data_cluster.format)(p.data_cluster.options)
            self.transports[pid] = plugins.transports.get(p.service_interface.transport)(p.service_interface.settings, pid)
            self.rules[pid] = [plugins.rules.get(spec.rule)(spec.params) for spec in p.rules]

    def profile(self, profile_id: str) -> Profile:
        try:
            return self.profiles[profile_id]
        except KeyError:
            raise UnknownName("profile", profile_id, self.profiles) from None

    def check_rules(self, profile_id: str, certificate: Certificate, direction: str) -> list[str]:
        context = RuleContext(profile_id=profile_id, direction=direction)
        problems: list[str] = []
        for rule in self.rules[profile_id]:
            problems.extend(f"rule {rule.name}: {p}" for p in rule.check(certificate, context))
        return problems

    # -- outbound -------------------------------------------------------------

    async def issue(self, profile_id: str, certificate: Certificate, issuer: str) -> Issued:
        """Issue a certificate on behalf of entity ``issuer`` and run the ``certificate.issued`` triggers.

        Raises :class:`RuleViolation` (nothing recorded) when a business rule fails.
        Failures of actions are recorded as events and raised.
        """
        profile = self.profile(profile_id)
        actor = profile.entity(issuer).id
        problems = self.check_rules(profile_id, certificate, "outbound")
        if problems:
            raise RuleViolation(problems, source=f"certificate {certificate.id}")
        certificate = attrs.evolve(certificate, status="issued")
        partners = [profile.entity(t.to).id for t in profile.triggers_on("certificate.issued") if t.to]
        pk = await anyio.to_thread.run_sync(
            lambda: self.store.record_certificate(
                profile_id=profile_id, cert_id=certificate.id, direction="outbound",
                partner=partners[0] if partners else "", status="issued",
                document=certificate_to_dict(certificate), actor=actor,
            )
        )
        await self._fire(profile, "certificate.issued", certificate, pk, actor)
        record = await anyio.to_thread.run_sync(lambda: self.store.get(profile_id, certificate.id, "outbound"))
        return Issued(pk, certificate, record.status if record is not None else "issued")

    async def record(self, pk: int, event: str, actor: str, detail: dict[str, Any] | None = None, status: str | None = None) -> None:
        """Append a lifecycle event (from a worker thread)."""
        await anyio.to_thread.run_sync(lambda: self.store.record_event(pk, event, actor, detail, status=status))

    # -- inbound --------------------------------------------------------------

    async def receive(self, message: Message) -> Receipt:
        """Handle one inbound message; returns the receipt for the sender.

        Raises an :class:`IbbError` (nothing stored) when the message is refused; a
        message id received before gets the first receipt again and changes nothing.
        """
        profile = self.profile(message.profile_id)
        for role, entity_id in (("sender", message.sender), ("receiver", message.receiver)):
            if entity_id not in {e.id for e in profile.entities}:
                raise Refused(f"{role} {entity_id!r} is not an entity of profile {profile.id!r}", 403)
        fmt = self.formats[profile.id]
        if message.content_type.split(";")[0].strip().lower() != fmt.content_type:
            raise Refused(f"content type {message.content_type!r} is not {fmt.content_type!r} (format {fmt.name!r})", 415)
        certificate = fmt.parse(message.body)
        problems = self.check_rules(profile.id, certificate, "inbound")
        if problems:
            raise RuleViolation(problems, source=f"certificate {certificate.id}")
        certificate = attrs.evolve(certificate, status="received")

        def make_receipt(_pk: int) -> dict[str, Any]:
            return Receipt(message_id=message.message_id, status="received", certificate_id=certificate.id).to_dict()

        stored, receipt = await anyio.to_thread.run_sync(
            lambda: self.store.record_inbound(
                message_id=message.message_id, profile_id=profile.id, sender=message.sender,
                receiver=message.receiver, cert_id=certificate.id, document=certificate_to_dict(certificate),
                receipt=make_receipt,
            )
        )
        if not stored:
            log.info("%s: message %s received again; first receipt returned", profile.id, message.message_id)
            return Receipt.from_dict(receipt)
        record = await anyio.to_thread.run_sync(lambda: self.store.get(profile.id, certificate.id, "inbound"))
        assert record is not None
        await self._fire(profile, "certificate.received", certificate, record.pk, message.receiver)
        return Receipt.from_dict(receipt)

    # -- triggers ---------------------------------------------------------------

    async def _fire(self, profile: Profile, event: str, certificate: Certificate, pk: int, actor: str) -> None:
        for trigger in profile.triggers_on(event):
            for name in trigger.do:
                action = self.plugins.actions.get(name)
                ctx = ActionContext(self, profile, event, trigger, certificate, pk, actor)
                try:
                    await action(ctx)
                except IbbError as exc:
                    await self.record(pk, "action-failed", actor, {"action": name, "error": str(exc)})
                    raise

    def new_message_id(self) -> str:
        return f"{uuid.uuid4()}@ibb"

    async def close(self) -> None:
        for transport in self.transports.values():
            await transport.close()
        self.store.close()
