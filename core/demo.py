"""``ibb demo``: an exporting and an importing administration exchange certificates over REST.

Two gateways run in this process on free 127.0.0.1 ports, each with its own SQLite
store in a temporary folder. The exporting side's back-office submits sample
certificates to its gateway's ``/api``; the gateway checks the business rules, records
the certificate as issued and its outbox sends it to the importing gateway, which
parses, checks and stores it and answers with a receipt. The importing administration
then grants the preference and the feedback travels back. Finally one invalid document
is sent to show a refusal. Nothing outside loopback is touched; the folder is removed.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx

from .engine import Engine
from .gateway import bind, create_app, make_server
from .model import certificate_to_json
from .plugins import Plugins
from .profile import Profile, load_profile
from .samples import sample_certificate
from .store import Store
from .timeline import format_timeline, timeline

PROFILE_FILE = "kr-cn-eodes.toml"
EXPORTER_NODE, IMPORTER_NODE = "KR-KCS", "CN-GACC"


async def run_demo(count: int = 1, echo: Callable[[str], None] = print) -> bool:
    from ibb.profiles import SHIPPED_DIR

    for variable in ("IBB_KR_KCS_TOKEN", "IBB_CN_GACC_TOKEN"):  # the profile's sender tokens
        os.environ.setdefault(variable, secrets.token_urlsafe(24))
    plugins = Plugins()
    shipped = load_profile(Path(SHIPPED_DIR) / PROFILE_FILE, plugins)
    with tempfile.TemporaryDirectory(prefix="ibb-demo-") as tmp:
        socks = {node: bind("127.0.0.1", 0) for node in (EXPORTER_NODE, IMPORTER_NODE)}
        urls = {node: f"http://127.0.0.1:{s.getsockname()[1]}" for node, s in socks.items()}
        profile: Profile = shipped
        for node in socks:
            profile = profile.with_endpoint(node, f"{urls[node]}/rest/{profile.id}/messages")
        stores = {node: Store(Path(tmp) / f"{node}.sqlite") for node in socks}
        servers = {
            node: make_server(create_app(Engine({profile.id: profile}, stores[node], plugins, local={node}))) for node in socks
        }
        tasks = [asyncio.create_task(servers[n].serve(sockets=[socks[n]])) for n in socks]
        try:
            while not all(s.started for s in servers.values()):
                if any(t.done() for t in tasks):
                    echo("error: a gateway failed to start")
                    return False
                await asyncio.sleep(0.02)
            _header(echo, profile, urls, tmp)
            ok = await _exchange(echo, profile, urls, stores, count)
        finally:
            for s in servers.values():
                s.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
            for s in stores.values():
                s.close()
    echo("")
    echo("demo finished: " + ("every certificate delivered, checked and stored." if ok else "FAILED (see above)."))
    return ok


def _header(echo: Callable[[str], None], profile: Profile, urls: dict[str, str], tmp: str) -> None:
    echo(f"profile   {profile.id}: {profile.block.name}")
    for basis in profile.block.legal_basis:
        echo(f"          legal basis: {basis}")
    echo(f"format    {profile.data_cluster.format}, transport {profile.service_interface.transport}")
    for node, url in urls.items():
        e = profile.entity(node)
        echo(f"gateway   {node:<8} ({e.role}, {e.country}) at {url}, store {tmp}/{node}.sqlite")
    echo("")


async def _wait_status(store: Store, profile_id: str, cert_id: str, direction: str, wanted: str, timeout: float = 20) -> str | None:
    """Poll a store until a certificate reaches ``wanted`` (delivery is asynchronous); the last status seen."""
    deadline = asyncio.get_running_loop().time() + timeout
    status = None
    while asyncio.get_running_loop().time() < deadline:
        record = store.get(profile_id, cert_id, direction)
        status = record.status if record else None
        if status == wanted:
            break
        await asyncio.sleep(0.05)
    return status


async def _exchange(echo: Callable[[str], None], profile: Profile, urls: dict[str, str], stores: dict[str, Store], count: int) -> bool:
    ok = True
    api = {node: f"{url}/api/{profile.id}/certificates" for node, url in urls.items()}
    async with httpx.AsyncClient(timeout=30) as client:
        for n in range(1, count + 1):
            cert = sample_certificate(f"KR-2026-{n:06d}", items=3)
            response = await client.post(api[EXPORTER_NODE], params={"as": EXPORTER_NODE}, content=certificate_to_json(cert))
            body = response.json()
            echo(f"issue     {cert.id} ({len(cert.items)} goods items, {cert.exporter.name} -> {cert.importer.name}): "
                 f"HTTP {response.status_code} {body.get('status') or body.get('detail')}")
            delivered = await _wait_status(stores[EXPORTER_NODE], profile.id, cert.id, "outbound", "delivered")
            ok = ok and response.status_code == 201 and delivered == "delivered"
        # The importing administration grants the preference for the first certificate; the feedback travels back.
        first = "KR-2026-000001"
        response = await client.post(f"{api[IMPORTER_NODE]}/{first}/decision",
                                     json={"decision": "accepted", "as": IMPORTER_NODE, "reason": "origin verified, preference granted"})
        echo(f"decide    {IMPORTER_NODE} grants the preference for {first}: HTTP {response.status_code} {response.json().get('status')}")
        accepted = await _wait_status(stores[EXPORTER_NODE], profile.id, first, "outbound", "accepted")
        ok = ok and accepted == "accepted"
        echo("")
        echo(f"timeline of {first} on both gateways:")
        for line in format_timeline(timeline(list(stores.items()), first)):
            echo(f"  {line}")
        echo("")
        # A partner that sends garbage is refused, and nothing is stored.
        deadline = asyncio.get_running_loop().time() + 20
        while stores[IMPORTER_NODE].outbox_counts().get("pending") and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)  # let the feedback's delivery be recorded first
        before = stores[IMPORTER_NODE].counts()
        response = await client.post(
            f"{urls[IMPORTER_NODE]}/rest/{profile.id}/messages",
            content=b'{"exchangedDocument": {"id": 42}}',
            headers={"Content-Type": "application/json", "Ibb-Message-Id": "demo-bad-1", "Ibb-Sender": EXPORTER_NODE,
                     "Ibb-Receiver": IMPORTER_NODE, "Authorization": f"Bearer {os.environ['IBB_KR_KCS_TOKEN']}"},
        )
        problem = response.json()
        echo(f"refusal   an invalid document sent to {IMPORTER_NODE}: HTTP {response.status_code} {problem.get('title')}")
        for line in problem.get("errors", [])[:3]:
            echo(f"          {line}")
        unchanged = stores[IMPORTER_NODE].counts() == before
        echo(f"          store of {IMPORTER_NODE} unchanged: {'yes' if unchanged else 'NO'}")
        ok = ok and response.status_code == 422 and unchanged
    return ok
