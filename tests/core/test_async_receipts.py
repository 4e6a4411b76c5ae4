"""Transports whose receipts arrive later, on their own (AS2 async MDN, MQTT): the outbox waits for
them, applies them once, and sends again when one does not come in time.

The transport here is an inline third-party plugin built on the REST transport: its ``send``
returns no receipt, and its receiving side answers each message with a separate ``receipt``
message POSTed back to the sender's gateway, as an asynchronous transport does.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import attrs
import httpx
import pluggy
import pytest

from ibb.core.engine import Engine
from ibb.core.model import certificate_to_json
from ibb.core.plugins import Plugins
from ibb.core.samples import sample_certificate
from ibb.core.transport import RECEIPT_CONTENT_TYPE, Capabilities, Message, Receipt, receipt_message
from ibb.plugins.rest.transport import RestTransport

hookimpl = pluggy.HookimplMarker("ibb")


class AsyncRest(RestTransport):
    name = "rest-async"
    capabilities = Capabilities(synchronous_receipt=False, inbound_routes=True)
    endpoints: dict[str, str] = {}
    """Entity id -> inbound endpoint, to send receipts back (set by the test)."""
    receipts_to_drop = 0
    """How many receipts are lost on the way back (set by the test)."""

    async def send(self, message: Message, endpoint: str) -> Receipt | None:
        receipt = await super().send(message, endpoint)
        return receipt if message.kind == "receipt" else None  # the partner's real receipt comes later

    def routes(self, handler):
        async def receive_then_answer_later(message: Message) -> Receipt:
            receipt = await handler(message)
            if message.kind != "receipt":
                asyncio.get_running_loop().create_task(self._answer(message, receipt))
            return receipt

        return super().routes(receive_then_answer_later)

    async def _answer(self, message: Message, receipt: Receipt) -> None:
        await asyncio.sleep(0.05)
        if AsyncRest.receipts_to_drop > 0:
            AsyncRest.receipts_to_drop -= 1
            return
        back = receipt_message(receipt, message_id=f"{uuid.uuid4()}@receipt", profile_id=message.profile_id,
                               sender=message.receiver, receiver=message.sender)
        await RestTransport.send(self, back, self.endpoints[message.sender])


class AsyncPlugin:
    @hookimpl
    def ibb_register_transports(self, register):
        register("rest-async", AsyncRest)


@pytest.fixture
def async_pair(shipped_profile, store_factory, gateway_class):
    plugins = Plugins(entrypoints=False, extra=[AsyncPlugin()])
    exporter, importer = gateway_class(), gateway_class()
    pid = shipped_profile.id
    profile = shipped_profile.with_endpoint("KR-KCS", exporter.endpoint(pid)).with_endpoint("CN-GACC", importer.endpoint(pid))
    communication = attrs.evolve(profile.communication, receipt_timeout_seconds=1.0,
                                 retry=attrs.evolve(profile.communication.retry, initial_seconds=0.1))
    profile = attrs.evolve(profile, communication=communication,
                           service_interface=attrs.evolve(profile.service_interface, transport="rest-async"))
    AsyncRest.endpoints = {"KR-KCS": exporter.endpoint(pid), "CN-GACC": importer.endpoint(pid)}
    AsyncRest.receipts_to_drop = 0
    try:
        exporter.start(Engine({pid: profile}, store_factory("kr"), plugins, local={"KR-KCS"}))
        importer.start(Engine({pid: profile}, store_factory("cn"), plugins, local={"CN-GACC"}))
        yield exporter, importer, profile
    finally:
        exporter.stop()
        importer.stop()


def _issue(exporter, profile, cert_id: str) -> None:
    r = httpx.post(f"{exporter.url}/api/{profile.id}/certificates", params={"as": "KR-KCS"},
                   content=certificate_to_json(sample_certificate(cert_id)), timeout=30)
    assert r.status_code == 201, r.text


def _events(gateway, profile, cert_id: str) -> list:
    record = gateway.engine.store.get(profile.id, cert_id, "outbound")
    return gateway.engine.store.events(record.pk)


def test_the_receipt_arrives_later_and_completes_the_delivery(async_pair, waiter) -> None:
    exporter, importer, profile = async_pair
    _issue(exporter, profile, "KR-2026-000201")
    waiter(lambda: exporter.engine.store.get(profile.id, "KR-2026-000201", "outbound").status == "delivered", what="async receipt")
    assert [e.event for e in _events(exporter, profile, "KR-2026-000201")] == [
        "issued", "queued", "sent", "certificate-awaiting-receipt", "delivered"]
    (sent,) = exporter.engine.store.outbox_list()
    assert sent.status == "delivered" and sent.attempts == 1 and sent.receipt["certificate_id"] == "KR-2026-000201"
    assert importer.engine.store.get(profile.id, "KR-2026-000201", "inbound").status == "received"


def test_a_lost_receipt_makes_the_message_go_again_and_it_is_applied_once(async_pair, waiter) -> None:
    exporter, importer, profile = async_pair
    AsyncRest.receipts_to_drop = 1
    _issue(exporter, profile, "KR-2026-000202")
    waiter(lambda: exporter.engine.store.get(profile.id, "KR-2026-000202", "outbound").status == "delivered",
           timeout=30, what="delivery after a lost receipt")
    events = _events(exporter, profile, "KR-2026-000202")
    retries = [e for e in events if e.event == "retry"]
    assert retries and "no receipt from CN-GACC within 1 s" in retries[0].detail["error"]
    assert [e.event for e in events].count("certificate-awaiting-receipt") == 2
    (sent,) = exporter.engine.store.outbox_list()
    assert sent.attempts == 3  # sent, timed out, sent again
    assert sent.status == "delivered-with-warnings" and sent.receipt["reasons"][0].startswith("duplicate: ")
    assert importer.engine.store.counts()["certificates"] == 1


def test_receipts_for_unknown_messages_are_refused_and_repeats_change_nothing(async_pair, waiter) -> None:
    exporter, _, profile = async_pair
    _issue(exporter, profile, "KR-2026-000203")
    waiter(lambda: exporter.engine.store.get(profile.id, "KR-2026-000203", "outbound").status == "delivered", what="delivery")
    (sent,) = exporter.engine.store.outbox_list()

    def post(receipt: dict, message_id: str) -> httpx.Response:
        return httpx.post(exporter.endpoint(profile.id), json=receipt, headers={
            "Content-Type": RECEIPT_CONTENT_TYPE, "Ibb-Message-Id": message_id, "Ibb-Sender": "CN-GACC",
            "Ibb-Receiver": "KR-KCS", "Ibb-Message-Kind": "receipt", "Authorization": f"Bearer {os.environ['IBB_CN_GACC_TOKEN']}"})

    before = exporter.engine.store.counts()
    again = post(sent.receipt, "r-again")
    assert again.status_code == 200 and again.json()["reasons"] == [f"duplicate: message {sent.message_id} was already acknowledged"]
    unknown = post({**sent.receipt, "message_id": "never-sent"}, "r-unknown")
    assert unknown.status_code == 404 and "no message 'never-sent' was sent" in unknown.json()["detail"]
    malformed = post({"status": "received"}, "r-bad")
    assert malformed.status_code == 422 and "malformed receipt" in " ".join(malformed.json()["errors"])
    assert exporter.engine.store.counts() == before


def test_a_receipt_from_an_entity_the_message_was_not_sent_to_is_refused(async_pair, waiter) -> None:
    """Checked by the engine itself (the REST route only lets authenticated senders this far)."""
    import anyio

    from ibb.core.errors import Refused

    exporter, _, profile = async_pair
    AsyncRest.receipts_to_drop = 1  # the message stays awaiting its receipt
    _issue(exporter, profile, "KR-2026-000204")
    waiter(lambda: exporter.engine.store.outbox_list()[0].status == "awaiting-receipt", what="awaiting receipt")
    (sent,) = exporter.engine.store.outbox_list()
    forged = Receipt(message_id=sent.message_id, status="received", certificate_id="KR-2026-000204")
    engine = Engine({profile.id: profile}, exporter.engine.store, exporter.engine.plugins, local={"KR-KCS"})
    message = receipt_message(forged, message_id="r-forged", profile_id=profile.id, sender="KR-KCCI", receiver="KR-KCS")
    with pytest.raises(Refused, match=f"message '{sent.message_id}' was not sent to 'KR-KCCI'") as refused:
        anyio.run(engine.receive, message)
    assert refused.value.http_status == 403
    assert exporter.engine.store.outbox_message(sent.message_id).status == "awaiting-receipt"
