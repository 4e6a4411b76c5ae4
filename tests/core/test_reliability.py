"""Crash safety and partner outages with real gateway processes, on SQLite and PostgreSQL.

Each test runs two ``ibb serve`` processes (exporting KR-KCS, importing CN-GACC) and
checks that every certificate ends up in the receiving store exactly once, whatever was
killed and when.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from ibb.core.model import certificate_to_json
from ibb.core.samples import sample_certificate
from ibb.core.store import Store, certificates, messages
from ibb.core.testing import GatewayProcess, free_port, wire_profile
from ibb.profiles import SHIPPED_DIR

PROFILE = "kr-cn-eodes"
FAST = {  # short time-outs and retries so that a test takes seconds, not minutes
    "timeout = 10": "timeout = 2",
    "attempts = 5": "attempts = 1000",
    "initial_seconds = 0.5": "initial_seconds = 0.1",
    "max_seconds = 30": "max_seconds = 1",
}
BATCH = 2000


@pytest.fixture
def pair(tmp_path: Path, store_factory):
    """Two gateway processes (not started) wired to each other, with fresh stores."""
    ports = {"KR-KCS": free_port(), "CN-GACC": free_port()}
    endpoints = {node: f"http://127.0.0.1:{port}/rest/{PROFILE}/messages" for node, port in ports.items()}
    profiles = tmp_path / "profiles"
    wire_profile(Path(SHIPPED_DIR) / f"{PROFILE}.toml", profiles, endpoints, FAST)
    stores = {node: store_factory(node.lower()) for node in ports}
    gateways = {node: GatewayProcess(profiles, stores[node].url, ports[node], log=tmp_path / f"{node}.log", nodes=(node,)) for node in ports}
    yield gateways["KR-KCS"], gateways["CN-GACC"], stores["KR-KCS"], stores["CN-GACC"]
    for gw in gateways.values():
        gw.stop()


def submit(url: str, ids: list[str], concurrency: int = 16) -> list[str]:
    """Issue certificates through the exporting gateway's API; returns the ids it could not take (it was down)."""
    failed: list[str] = []

    async def run() -> None:
        queue = list(ids)
        async with httpx.AsyncClient(timeout=30) as client:
            async def worker() -> None:
                while queue:
                    cert_id = queue.pop()
                    try:
                        r = await client.post(f"{url}/api/{PROFILE}/certificates", params={"as": "KR-KCS"},
                                              content=certificate_to_json(sample_certificate(cert_id, items=1)))
                        assert r.status_code in (201, 409), r.text  # 409: issued before a crash
                    except httpx.TransportError:
                        failed.append(cert_id)

            await asyncio.gather(*(worker() for _ in range(concurrency)))

    asyncio.run(run())
    return failed


def received_ids(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(certificates.c.cert_id).where(certificates.c.direction == "inbound")).scalars().all()


def inbound_messages(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(messages).where(messages.c.direction == "inbound")).scalar_one()


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def assert_exactly_once(sender: Store, receiver: Store, expected: set[str]) -> None:
    ids = received_ids(receiver)
    assert len(ids) == len(expected) and set(ids) == expected, "lost or duplicated certificates"
    assert inbound_messages(receiver) == len(expected)
    assert sender.outbox_counts().get("pending", 0) == 0
    assert set(sender.outbox_counts()) <= {"delivered", "delivered-with-warnings"}
    outbound = sender.list(direction="outbound", limit=len(expected) + 10)
    assert len(outbound) == len(expected) and {r.status for r in outbound} == {"delivered"}


@pytest.mark.slow
def test_sender_killed_mid_batch_delivers_everything_exactly_once(pair) -> None:
    sender, receiver, sender_store, receiver_store = pair
    receiver.start()
    sender.start()
    ids = [f"KR-2026-{n:06d}" for n in range(1, BATCH + 1)]
    not_taken = submit(sender.url, ids[: BATCH // 2])
    assert not not_taken
    wait_until(lambda: len(received_ids(receiver_store)) >= 100, 60, "first deliveries")
    sender.kill()
    killed_at = len(received_ids(receiver_store))
    assert killed_at < BATCH, "the batch finished before the kill; the test proves nothing"
    sender.start()
    assert not submit(sender.url, ids[BATCH // 2:])
    wait_until(lambda: len(received_ids(receiver_store)) >= BATCH and not sender_store.outbox_counts().get("pending"), 180, "all deliveries")
    assert_exactly_once(sender_store, receiver_store, set(ids))


@pytest.mark.slow
def test_receiver_killed_mid_batch_delivers_everything_exactly_once(pair) -> None:
    sender, receiver, sender_store, receiver_store = pair
    receiver.start()
    sender.start()
    ids = [f"KR-2026-{n:06d}" for n in range(1, BATCH + 1)]
    assert not submit(sender.url, ids)
    wait_until(lambda: len(received_ids(receiver_store)) >= 100, 60, "first deliveries")
    receiver.kill()
    assert len(received_ids(receiver_store)) < BATCH, "the batch finished before the kill; the test proves nothing"
    time.sleep(1)
    receiver.start()
    wait_until(lambda: len(received_ids(receiver_store)) >= BATCH and not sender_store.outbox_counts().get("pending"), 180, "all deliveries")
    assert_exactly_once(sender_store, receiver_store, set(ids))


@pytest.mark.slow
def test_partner_down_for_a_while_then_back(pair) -> None:
    sender, receiver, sender_store, receiver_store = pair
    sender.start()
    ids = [f"KR-2026-{n:06d}" for n in range(1, 51)]
    assert not submit(sender.url, ids)
    wait_until(lambda: any(e.event == "retry" for e in sender_store.events(sender_store.get(PROFILE, ids[0], "outbound").pk)), 30, "retries")
    time.sleep(2)
    started = time.monotonic()
    receiver.start()
    wait_until(lambda: len(received_ids(receiver_store)) >= len(ids) and not sender_store.outbox_counts().get("pending"), 30, "deliveries after the partner came back")
    assert time.monotonic() - started < 30
    assert_exactly_once(sender_store, receiver_store, set(ids))
    events = [e.event for e in sender_store.events(sender_store.get(PROFILE, ids[0], "outbound").pk)]
    assert events.count("retry") >= 2 and events[-1] == "delivered"
    tracked = sender_store.outbox_list(limit=1)[0]
    assert tracked.attempts >= 3 and "ConnectError" in (tracked.last_error or "")
