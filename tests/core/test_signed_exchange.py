"""Signed WCO e-CO XML between two real gateways: signed on send (exporter, then official), verified on receipt."""

from __future__ import annotations

import os

import attrs
import httpx
import pytest

from ibb.core.cli_cert import write_demo
from ibb.core.engine import Engine
from ibb.core.model import certificate_to_json
from ibb.core.profile import load_profile
from ibb.core.samples import sample_certificate

PROFILE = "kr-cn-wco-xml"


@pytest.fixture
def signed_pair(tmp_path, plugins, store_factory, gateway_class, request):
    write_demo(tmp_path)
    profile = load_profile(tmp_path / f"{PROFILE}.toml", plugins)
    communication = getattr(request, "param", {})  # [communication] settings of both sides
    profile = attrs.evolve(profile, communication=attrs.evolve(profile.communication, **communication))
    exporter, importer = gateway_class(), gateway_class()
    profile = profile.with_endpoint("CN-GACC", importer.endpoint(PROFILE))
    try:
        exporter.start(Engine({PROFILE: profile}, store_factory("kr"), plugins))
        importer.start(Engine({PROFILE: profile}, store_factory("cn"), plugins))
        yield exporter, importer, profile
    finally:
        exporter.stop()
        importer.stop()


def _certificate(cert_id: str):
    cert = sample_certificate(cert_id)
    return attrs.evolve(cert, issuing_authority=attrs.evolve(cert.issuing_authority, id="KR-KCCI"))


def test_signed_certificate_is_verified_and_stored_and_a_tampered_one_refused(signed_pair, waiter) -> None:
    exporter, importer, profile = signed_pair
    cert = _certificate("KR-2026-000100")
    r = httpx.post(f"{exporter.url}/api/{PROFILE}/certificates", params={"as": "KR-KCCI"}, content=certificate_to_json(cert), timeout=30)
    assert r.status_code == 201, r.text
    waiter(lambda: exporter.engine.store.get(PROFILE, cert.id, "outbound").status == "delivered", what="signed delivery")
    assert importer.engine.store.get(PROFILE, cert.id, "inbound").status == "received"

    (sent,) = exporter.engine.store.outbox_list()
    assert sent.body.count(b"<ds:SignatureValue") + sent.body.count(b"<SignatureValue") == 2, "exporter and official signatures"
    report = importer.engine.formats[PROFILE].verify(sent.body)
    assert report.ok, report.lines()
    kept = httpx.get(f"{importer.url}/api/{PROFILE}/certificates/{cert.id}/document")
    assert kept.status_code == 200 and kept.content == sent.body, "the receiver keeps the signed document as evidence"

    before = importer.engine.store.counts()
    tampered = sent.body.replace(b"Hanbit Energy Co., Ltd.", b"Hanbit Energy Co., Ltc.", 1)
    assert tampered != sent.body
    r = httpx.post(importer.endpoint(PROFILE), content=tampered, headers={
        "Content-Type": sent.content_type, "Ibb-Message-Id": "tampered-1", "Ibb-Sender": "KR-KCCI", "Ibb-Receiver": "CN-GACC",
        "Authorization": f"Bearer {os.environ['IBB_KR_KCCI_TOKEN']}"})
    assert r.status_code == 422
    errors = " ".join(r.json()["errors"])
    assert "signature exporter" in errors and "[digest]" in errors
    assert importer.engine.store.counts() == before


def test_an_issuer_without_keys_cannot_issue_a_signed_certificate(tmp_path, plugins, store_factory) -> None:
    import anyio

    from ibb.core.keys import KeyUnavailable

    write_demo(tmp_path)
    profile = load_profile(tmp_path / f"{PROFILE}.toml", plugins)
    exporter = profile.entity("exporter")
    profile = attrs.evolve(profile, entities=tuple(attrs.evolve(e, key=None) if e.id == exporter.id else e for e in profile.entities))
    engine = Engine({PROFILE: profile}, store_factory("kr"), plugins)
    with pytest.raises(KeyUnavailable, match="has no key on this node"):
        anyio.run(lambda: engine.issue(PROFILE, _certificate("KR-2026-000101"), "KR-KCCI"))
    assert engine.store.counts() == {"certificates": 0, "events": 0, "messages": 0, "outbox": 0}


def _post_signed(importer, document: bytes, message_id: str) -> httpx.Response:
    return httpx.post(importer.endpoint(PROFILE), content=document, headers={
        "Content-Type": "application/xml", "Ibb-Message-Id": message_id, "Ibb-Sender": "KR-KCCI", "Ibb-Receiver": "CN-GACC",
        "Authorization": f"Bearer {os.environ['IBB_KR_KCCI_TOKEN']}"})


@pytest.mark.parametrize("signed_pair", [{"max_signature_age_hours": 2}], indirect=True)
def test_a_signature_older_than_the_profiles_limit_is_refused(signed_pair) -> None:
    """A signer whose authorisation ended cannot date a new signature back to when it was valid, beyond
    communication.max_signature_age_hours (168 by default, 2 here)."""
    import datetime as dt

    from ibb.core.keys import entity_credentials

    _, importer, profile = signed_pair
    fmt = importer.engine.formats[PROFILE]
    cert = _certificate("KR-2026-000103")
    claimed = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=3)
    document = fmt.render(cert)
    for role in ("exporter", "issuing-authority"):
        document = fmt.sign(document, role, entity_credentials(profile, profile.entity(role), fmt.options), signing_time=claimed)
    assert fmt.verify(document).ok  # sound signatures, judged at the time they claim
    r = _post_signed(importer, document, "old-1")
    assert r.status_code == 422, r.text
    errors = " ".join(r.json()["errors"])
    assert "signature exporter: signed at" in errors and "more than 2 hours ago (communication.max_signature_age_hours)" in errors
    assert importer.engine.store.counts()["certificates"] == 0


def test_a_signature_dated_before_the_issue_date_is_refused(signed_pair) -> None:
    """Signing times are the signer's claim: signatures made five days before the issue date they sign are not believed."""
    import datetime as dt

    from ibb.core.keys import entity_credentials

    _, importer, profile = signed_pair
    fmt = importer.engine.formats[PROFILE]
    cert = _certificate("KR-2026-000102")
    cert = attrs.evolve(cert, issue_date=cert.issue_date + dt.timedelta(days=5), valid_until=cert.valid_until + dt.timedelta(days=5))
    document = fmt.render(cert)
    for role in ("exporter", "issuing-authority"):  # signed now, five days before the issue date it carries
        entity = profile.entity(role)
        document = fmt.sign(document, role, entity_credentials(profile, entity, fmt.options))
    assert fmt.verify(document).ok  # the signatures themselves are sound
    r = _post_signed(importer, document, "backdated-1")
    assert r.status_code == 422, r.text
    assert "outside the window from the day before the issue date" in " ".join(r.json()["errors"])
    assert importer.engine.store.counts()["certificates"] == 0
