"""End to end between two real gateways on loopback: issue, deliver over REST, receive, store, receipt.

Also every kind of bad input, each answered with a problem document and leaving the store unchanged.
"""

from __future__ import annotations

import json
import os

import attrs
import httpx
import pytest

from ibb.core.gateway import bind
from ibb.core.model import certificate_from_dict, certificate_to_dict, certificate_to_json
from ibb.core.samples import sample_certificate

EMPTY = {"certificates": 0, "events": 0, "messages": 0, "outbox": 0}


TOKENS = {"KR-KCS": os.environ["IBB_KR_KCS_TOKEN"], "CN-GACC": os.environ["IBB_CN_GACC_TOKEN"]}


def post_message(gw, profile_id: str, body: bytes, **headers: str) -> httpx.Response:
    """POST as a partner would: envelope headers and the sending entity's own bearer token."""
    base = {"Content-Type": "application/json", "Ibb-Message-Id": "m-1", "Ibb-Sender": "KR-KCS", "Ibb-Receiver": "CN-GACC"}
    base.update({k.replace("_", "-"): v for k, v in headers.items()})
    base.setdefault("Authorization", f"Bearer {TOKENS.get(base['Ibb-Sender'], 'none')}")
    return httpx.post(f"{gw.url}/rest/{profile_id}/messages", content=body, headers=base, timeout=10)


def test_certificate_travels_and_both_sides_record_it(gateway_pair, waiter) -> None:
    exporter, importer, profile = gateway_pair
    cert = sample_certificate("KR-2026-000001", items=3)
    r = httpx.post(f"{exporter.url}/api/{profile.id}/certificates", params={"as": "KR-KCS"}, content=certificate_to_json(cert), timeout=30)
    assert r.status_code == 201, r.text
    assert r.json()["certificate_id"] == "KR-2026-000001" and r.json()["status"] == "issued"

    def delivered():
        record = exporter.engine.store.get(profile.id, cert.id, "outbound")
        return record if record.status == "delivered" else None

    sent = waiter(delivered, what="delivery")
    received = importer.engine.store.get(profile.id, cert.id, "inbound")
    assert received is not None and received.status == "received" and received.partner == "KR-KCS"
    assert certificate_from_dict(received.document) == attrs.evolve(cert, status="received")
    assert sent.partner == "CN-GACC"
    events = exporter.engine.store.events(sent.pk)
    assert [e.event for e in events] == ["issued", "queued", "sent", "delivered"]
    receipt = events[-1].detail["receipt"]
    assert receipt["status"] == "received" and receipt["certificate_id"] == cert.id
    assert receipt["message_id"] == events[1].detail["message_id"]
    assert [e.event for e in importer.engine.store.events(received.pk)] == ["received"]

    tracking = httpx.get(f"{exporter.url}/api/messages/{receipt['message_id']}").json()
    assert tracking["status"] == "delivered" and tracking["attempts"] == 1 and tracking["to"] == "CN-GACC"
    shown = httpx.get(f"{exporter.url}/api/{profile.id}/certificates/{cert.id}").json()
    assert shown["status"] == "delivered" and [e["event"] for e in shown["events"]] == ["issued", "queued", "sent", "delivered"]


def test_feedback_and_cancellation_travel_back_and_forth(gateway_pair, waiter) -> None:
    exporter, importer, profile = gateway_pair
    api = lambda gw: f"{gw.url}/api/{profile.id}/certificates"  # noqa: E731
    for n in (1, 2):
        cert = sample_certificate(f"KR-2026-00000{n}")
        assert httpx.post(api(exporter), params={"as": "KR-KCS"}, content=certificate_to_json(cert)).status_code == 201
    status = lambda gw, cid, d: gw.engine.store.get(profile.id, cid, d).status  # noqa: E731
    waiter(lambda: status(exporter, "KR-2026-000002", "outbound") == "delivered", what="delivery")

    r = httpx.post(f"{api(importer)}/KR-2026-000001/decision", json={"decision": "refused", "as": "CN-GACC", "reason": "origin criterion not met"})
    assert r.status_code == 200 and r.json()["status"] == "refused"
    waiter(lambda: status(exporter, "KR-2026-000001", "outbound") == "refused", what="feedback")
    refused = [e for e in exporter.engine.store.events(exporter.engine.store.get(profile.id, "KR-2026-000001", "outbound").pk) if e.event == "refused"]
    assert refused[0].actor == "CN-GACC" and refused[0].detail["reason"] == "origin criterion not met"

    r = httpx.post(f"{api(exporter)}/KR-2026-000002/cancel", json={"as": "KR-KCS", "reason": "issued in error"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    waiter(lambda: status(importer, "KR-2026-000002", "inbound") == "cancelled", what="cancellation")

    # Illegal transitions are refused with 409 and change nothing.
    r = httpx.post(f"{api(importer)}/KR-2026-000002/decision", json={"decision": "accepted", "as": "CN-GACC"})
    assert r.status_code == 409 and "is cancelled; it cannot become accepted" in r.json()["detail"]
    assert status(importer, "KR-2026-000002", "inbound") == "cancelled"
    r = httpx.post(f"{api(importer)}/KR-2026-000001/decision", json={"decision": "maybe", "as": "CN-GACC"})
    assert r.status_code == 422


def test_replacement_references_the_old_certificate_on_both_sides(gateway_pair, waiter) -> None:
    exporter, importer, profile = gateway_pair
    api = f"{exporter.url}/api/{profile.id}/certificates"
    old = sample_certificate("KR-2026-000010")
    httpx.post(api, params={"as": "KR-KCS"}, content=certificate_to_json(old))
    waiter(lambda: importer.engine.store.get(profile.id, old.id, "inbound"), what="first delivery")
    new = attrs.evolve(old, id="KR-2026-000011", remarks="Corrected invoice number")
    r = httpx.post(api, params={"as": "KR-KCS", "replaces": old.id}, content=certificate_to_json(new))
    assert r.status_code == 201
    assert exporter.engine.store.get(profile.id, old.id, "outbound").status == "replaced"
    waiter(lambda: importer.engine.store.get(profile.id, old.id, "inbound").status == "replaced", what="replacement")
    received = importer.engine.store.get(profile.id, new.id, "inbound")
    assert importer.engine.store.events(received.pk)[0].detail["replaces"] == old.id


def test_health_and_openapi(gateway_pair) -> None:
    _, importer, profile = gateway_pair
    assert httpx.get(f"{importer.url}/health").json() == {"status": "ok", "profiles": [profile.id]}
    doc = httpx.get(f"{importer.url}/rest/{profile.id}/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    op = doc["paths"][f"/rest/{profile.id}/messages"]["post"]
    assert {p["name"] for p in op["parameters"] if p["required"]} == {"Ibb-Message-Id", "Ibb-Sender", "Ibb-Receiver"}
    assert {p["name"] for p in op["parameters"] if not p["required"]} == {"Ibb-Message-Kind", "Ibb-Replaces"}
    assert {"200", "413", "415", "422"} <= set(op["responses"])


def test_same_message_twice_is_acknowledged_again_but_stored_once(gateway_pair) -> None:
    _, importer, profile = gateway_pair
    body = importer.engine.formats[profile.id].render(sample_certificate("KR-2026-000002"))
    first = post_message(importer, profile.id, body, Ibb_Message_Id="dup-1")
    second = post_message(importer, profile.id, body, Ibb_Message_Id="dup-1")
    assert first.status_code == second.status_code == 200
    assert first.json()["reasons"] == []
    assert {**second.json(), "reasons": []} == first.json()
    assert second.json()["reasons"] == ["duplicate: message dup-1 was already received and applied once"]
    assert importer.engine.store.counts() == {"certificates": 1, "events": 1, "messages": 1, "outbox": 0}


def test_a_resend_is_acknowledged_even_after_the_rules_changed(gateway_pair, plugins, gateway_class) -> None:
    """The sender lost the first receipt; meanwhile the receiving gateway restarted with stricter rules."""
    from ibb.core.engine import Engine
    from ibb.core.profile import RuleSpec

    _, importer, profile = gateway_pair
    body = importer.engine.formats[profile.id].render(sample_certificate("KR-2026-000006"))
    assert post_message(importer, profile.id, body, Ibb_Message_Id="lost-receipt-1").status_code == 200
    origin = plugins.rules.get("origin-criteria")
    stricter = attrs.evolve(profile, rules=(RuleSpec("origin-criteria", origin.Params(allowed=("WO",))),))
    restarted = gateway_class().start(Engine({profile.id: stricter}, importer.engine.store, plugins, local={"CN-GACC"}))
    try:
        again = post_message(restarted, profile.id, body, Ibb_Message_Id="lost-receipt-1")
        assert again.status_code == 200, again.text
        assert again.json()["certificate_id"] == "KR-2026-000006" and again.json()["reasons"][-1].startswith("duplicate:")
        fresh = post_message(restarted, profile.id, importer.engine.formats[profile.id].render(sample_certificate("KR-2026-000007")),
                             Ibb_Message_Id="new-1")
        assert fresh.status_code == 422 and "rule origin-criteria" in " ".join(fresh.json()["errors"])
    finally:
        restarted.stop()


def test_a_message_id_reused_for_another_message_is_refused_not_swallowed(gateway_pair) -> None:
    _, importer, profile = gateway_pair
    fmt = importer.engine.formats[profile.id]
    assert post_message(importer, profile.id, fmt.render(sample_certificate("KR-2026-000008")), Ibb_Message_Id="same-id").status_code == 200
    before = importer.engine.store.counts()
    other = post_message(importer, profile.id, fmt.render(sample_certificate("KR-2026-000009")), Ibb_Message_Id="same-id")
    assert other.status_code == 409, other.text
    assert "message id 'same-id' was already used for another message" in other.json()["detail"]
    assert "KR-2026-000008" not in other.text, "nothing of the first message leaks"
    assert importer.engine.store.counts() == before


def test_replayed_certificate_under_a_new_message_id_changes_nothing(gateway_pair) -> None:
    _, importer, profile = gateway_pair
    body = importer.engine.formats[profile.id].render(sample_certificate("KR-2026-000003"))
    assert post_message(importer, profile.id, body, Ibb_Message_Id="orig-1").status_code == 200
    before = importer.engine.store.counts()
    replay = post_message(importer, profile.id, body, Ibb_Message_Id="replay-1")
    assert replay.status_code == 409 and "already recorded" in replay.json()["detail"]
    forged = post_message(importer, profile.id, b'{"kind": "cancellation", "certificate_id": "KR-2026-000003"}',
                          Ibb_Message_Id="forged-1", Ibb_Message_Kind="cancellation", Content_Type="application/vnd.ibb.control+json",
                          Ibb_Sender="KR-KCCI")
    assert forged.status_code == 401 and "no credentials are configured for sender 'KR-KCCI'" in forged.json()["detail"]
    # The receiving partner's own token does not let it speak for the sender.
    impostor = post_message(importer, profile.id, b'{"kind": "cancellation", "certificate_id": "KR-2026-000003"}',
                            Ibb_Message_Id="forged-2", Ibb_Message_Kind="cancellation", Content_Type="application/vnd.ibb.control+json",
                            Authorization=f"Bearer {TOKENS['CN-GACC']}")
    assert impostor.status_code == 401 and "wrong bearer token for sender 'KR-KCS'" in impostor.json()["detail"]
    assert importer.engine.store.counts() == before
    assert importer.engine.store.get(profile.id, "KR-2026-000003", "inbound").status == "received"


def _assert_refused(importer, response: httpx.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    text = problem["detail"] + " ".join(problem.get("errors", []))
    assert fragment in text, problem
    assert importer.engine.store.counts() == EMPTY


def test_bad_input_gets_a_problem_and_leaves_the_store_unchanged(gateway_pair) -> None:
    _, importer, profile = gateway_pair
    fmt = importer.engine.formats[profile.id]
    good = fmt.render(sample_certificate("KR-2026-000003"))
    pid = profile.id

    _assert_refused(importer, post_message(importer, pid, b"{not json"), 422, "not valid JSON")
    broken = json.loads(good)
    broken["exchangedDocument"]["id"] = 42
    _assert_refused(importer, post_message(importer, pid, json.dumps(broken).encode()), 422, "$.exchangedDocument")
    _assert_refused(importer, post_message(importer, pid, good, Content_Type="application/xml"), 415, "is not 'application/json'")
    _assert_refused(importer, post_message(importer, pid, b"x" * 1_048_577), 413, "exceeds the limit of 1048576 bytes")
    _assert_refused(importer, post_message(importer, pid, good, Ibb_Sender="XX-NOBODY"), 401, "no credentials are configured for sender 'XX-NOBODY'")
    _assert_refused(importer, post_message(importer, pid, good, Ibb_Receiver="XX-NOBODY"), 403, "receiver 'XX-NOBODY' is not an entity")
    _assert_refused(importer, post_message(importer, pid, good, Ibb_Message_Id=""), 400, "header ibb-message-id is required")
    r = httpx.post(f"{importer.url}/rest/no-such-profile/messages", content=good)
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = httpx.get(f"{importer.url}/rest/{pid}/messages")
    assert r.status_code == 405 and r.json()["title"] == "Method Not Allowed"


def test_business_rule_violations_are_refused_inbound(gateway_pair) -> None:
    _, importer, profile = gateway_pair
    cert = sample_certificate("KR-2026-000004")
    bad = attrs.evolve(cert, items=(attrs.evolve(cert.items[0], origin_criterion="ZZ"),))
    body = importer.engine.formats[profile.id].render(bad)
    _assert_refused(importer, post_message(importer, profile.id, body), 422, "rule origin-criteria: $.items[0].origin_criterion: 'ZZ' is not one of")


def test_issue_refuses_rule_violations_and_invalid_json_without_recording(gateway_pair) -> None:
    exporter, importer, profile = gateway_pair
    api = f"{exporter.url}/api/{profile.id}/certificates"
    bad_id = certificate_to_dict(sample_certificate("2026-1"))
    r = httpx.post(api, params={"as": "KR-KCS"}, content=json.dumps(bad_id))
    assert r.status_code == 422 and "does not match the pattern" in " ".join(r.json()["errors"])
    bad_field = certificate_to_dict(sample_certificate("KR-2026-000005"))
    bad_field["items"][0]["currency"] = "EURO"
    r = httpx.post(api, params={"as": "KR-KCS"}, content=json.dumps(bad_field))
    assert r.status_code == 422
    assert "$.items[0].currency: 'EURO' is not an ISO 4217 currency code" in r.json()["errors"][0]
    r = httpx.post(api, content=json.dumps(bad_id))
    assert r.status_code == 400 and "'as'" in r.json()["detail"]
    assert exporter.engine.store.counts() == EMPTY
    assert importer.engine.store.counts() == EMPTY


@pytest.mark.anyio
async def test_partner_down_is_retried_then_dead_lettered_and_redriven(shipped_profile, plugins, store_factory) -> None:
    from ibb.core.engine import Engine
    from ibb.core.outbox import Dispatcher, redrive
    from ibb.core.profile import Retry

    closed = bind("127.0.0.1", 0)  # a port nobody listens on once closed
    port = closed.getsockname()[1]
    closed.close()
    profile = shipped_profile.with_endpoint("CN-GACC", f"http://127.0.0.1:{port}/rest/kr-cn-eodes/messages")
    profile = attrs.evolve(profile, communication=attrs.evolve(profile.communication, retry=Retry(attempts=3, initial_seconds=0.01)))
    engine = Engine({profile.id: profile}, store_factory("kr"), plugins)
    await engine.issue(profile.id, sample_certificate("KR-2026-000006"), "KR-KCS")
    dispatcher = Dispatcher(engine, poll_seconds=0.01)
    assert await dispatcher.drain(10) is True
    record = engine.store.get(profile.id, "KR-2026-000006", "outbound")
    assert record is not None and record.status == "failed"
    events = engine.store.events(record.pk)
    assert [e.event for e in events] == ["issued", "queued", "sent", "retry", "retry", "delivery-failed", "failed"]
    assert "ConnectError" in events[3].detail["error"] and events[3].detail["attempt"] == 1
    (message,) = engine.store.outbox_list()
    assert message.status == "failed" and message.attempts == 3 and "ConnectError" in message.last_error

    assert redrive(engine.store, message.message_id).status == "pending"
    assert [e.event for e in engine.store.events(record.pk)][-1] == "redriven"
    await engine.close()


def test_each_sender_must_present_its_own_token(gateway_pair) -> None:
    _, importer, profile = gateway_pair
    body = importer.engine.formats[profile.id].render(sample_certificate("KR-2026-000007"))
    _assert_refused(importer, post_message(importer, profile.id, body, Authorization=""), 401, "missing or wrong bearer token")
    _assert_refused(importer, post_message(importer, profile.id, body, Authorization=f"Bearer {TOKENS['CN-GACC']}"), 401,
                    "wrong bearer token for sender 'KR-KCS'")
    assert post_message(importer, profile.id, body).status_code == 200


def test_a_profile_without_inbound_authentication_is_refused(plugins) -> None:
    from ibb.core.errors import ProfileError
    from ibb.core.profile import load_profile_text
    from ibb.profiles import SHIPPED_DIR

    text = (SHIPPED_DIR / "kr-cn-eodes.toml").read_text()
    text = "\n".join(line for line in text.splitlines() if not line.startswith("sender_tokens"))
    with pytest.raises(ProfileError, match=r"\$.service_interface.rest.sender_tokens: inbound messages would be unauthenticated"):
        load_profile_text(text, plugins, source="p.toml")
    assert load_profile_text(text.replace("max_body_bytes = 1048576", "max_body_bytes = 1048576\nallow_unauthenticated = true"), plugins)


def test_a_gateway_acts_only_for_its_own_entities(gateway_pair) -> None:
    exporter, importer, profile = gateway_pair
    r = httpx.post(f"{exporter.url}/api/{profile.id}/certificates", params={"as": "CN-GACC"},
                   content=certificate_to_json(sample_certificate("KR-2026-000020")))
    assert r.status_code == 403 and "does not act for 'CN-GACC'" in r.json()["detail"]
    body = exporter.engine.formats[profile.id].render(sample_certificate("KR-2026-000021"))
    # A message for CN-GACC delivered to the KR gateway is not for it.
    r = post_message(exporter, profile.id, body, Ibb_Message_Id="misrouted-1")
    assert r.status_code == 403 and "does not act for 'CN-GACC'" in r.json()["detail"]
    assert exporter.engine.store.counts() == EMPTY


def test_serve_refuses_an_open_api_on_a_public_address() -> None:
    from click.testing import CliRunner

    from ibb.core.cli import main

    r = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert r.exit_code == 1 and "the local /api would be open to anyone reaching 0.0.0.0" in r.output


def test_a_message_about_a_certificate_not_yet_received_is_too_early(gateway_pair) -> None:
    """Feedback, cancellation or replacement overtaking its certificate gets 425, which the sender retries."""
    exporter, importer, profile = gateway_pair
    r = post_message(importer, profile.id, b'{"kind": "cancellation", "certificate_id": "KR-2026-000030", "reason": "x"}',
                     Ibb_Message_Id="early-1", Ibb_Message_Kind="cancellation", Content_Type="application/vnd.ibb.control+json")
    assert r.status_code == 425 and "not known here yet" in r.json()["detail"]
    body = importer.engine.formats[profile.id].render(sample_certificate("KR-2026-000031"))
    r = post_message(importer, profile.id, body, Ibb_Message_Id="early-2", Ibb_Replaces="KR-2026-000030")
    assert r.status_code == 425
    assert importer.engine.store.counts() == EMPTY
    from ibb.plugins.rest.transport import RETRYABLE_STATUS

    assert 425 in RETRYABLE_STATUS


def test_a_draft_is_issued_and_sent_when_its_export_declaration_is_accepted(gateway_pair, waiter) -> None:
    exporter, importer, profile = gateway_pair
    api = f"{exporter.url}/api/{profile.id}/certificates"
    cert = sample_certificate("KR-2026-000040")
    r = httpx.post(api, params={"as": "KR-KCS", "draft": "1"}, content=certificate_to_json(cert))
    assert r.status_code == 201 and r.json()["status"] == "draft"
    assert exporter.engine.store.outbox_list() == []  # nothing leaves before the declaration is accepted
    r = httpx.post(f"{api}/{cert.id}/declaration-accepted", json={"as": "KR-KCS", "declaration": "KR-ED-2026-778899"})
    assert r.status_code == 200 and r.json()["status"] == "issued"
    waiter(lambda: exporter.engine.store.get(profile.id, cert.id, "outbound").status == "delivered", what="delivery")
    record = exporter.engine.store.get(profile.id, cert.id, "outbound")
    assert record.document["status"] == "issued"
    events = [(e.event, e.detail.get("declaration")) for e in exporter.engine.store.events(record.pk)]
    assert events[:3] == [("draft", None), ("export-declaration.accepted", "KR-ED-2026-778899"), ("issued", "KR-ED-2026-778899")]
    r = httpx.post(f"{api}/{cert.id}/declaration-accepted", json={"as": "KR-KCS", "declaration": "again"})
    assert r.status_code == 409 and "not a draft" in r.json()["detail"]


def test_a_draft_that_breaks_a_rule_stays_a_draft(gateway_pair) -> None:
    exporter, _, profile = gateway_pair
    api = f"{exporter.url}/api/{profile.id}/certificates"
    cert = sample_certificate("KR-2026-000041")
    bad = attrs.evolve(cert, items=(attrs.evolve(cert.items[0], origin_criterion="ZZ"),))
    assert httpx.post(api, params={"as": "KR-KCS", "draft": "1"}, content=certificate_to_json(bad)).status_code == 201
    r = httpx.post(f"{api}/{cert.id}/declaration-accepted", json={"as": "KR-KCS", "declaration": "D-1"})
    assert r.status_code == 422 and "origin-criteria" in " ".join(r.json()["errors"])
    assert exporter.engine.store.get(profile.id, cert.id, "outbound").status == "draft"
    assert exporter.engine.store.outbox_list() == []
