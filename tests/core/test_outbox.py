"""The outbox dispatcher: a slow partner holds only its own slots; the CLI shows and re-drives messages."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from ibb.core.cli import main
from ibb.core.engine import Engine
from ibb.core.gateway import bind
from ibb.core.outbox import Dispatcher
from ibb.core.samples import sample_certificate
from ibb.core.testing import ThreadedServer


class SlowPartner(ThreadedServer):
    """A real HTTP server that answers every request after ``delay`` seconds."""

    def __init__(self, delay: float):
        super().__init__()

        async def slow(request: Request) -> PlainTextResponse:
            await asyncio.sleep(delay)
            return PlainTextResponse("too late", status_code=503)

        self.app = Starlette(routes=[Route("/in", slow, methods=["POST"])])
        self.url = f"{self.url}/in"

    def __enter__(self) -> SlowPartner:
        return self.start(self.app)

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.mark.anyio
async def test_a_slow_partner_does_not_hold_up_another(shipped_profile, plugins, store_factory, gateway_class) -> None:
    good_gateway = gateway_class()
    fast = shipped_profile.with_endpoint("CN-GACC", good_gateway.endpoint(shipped_profile.id))
    slow_block = attrs.evolve(shipped_profile.block, id="kr-xx-slow")
    with SlowPartner(delay=3.0) as partner:
        slow = attrs.evolve(shipped_profile.with_endpoint("CN-GACC", partner.url), block=slow_block)
        good_gateway.start(Engine({fast.id: fast}, store_factory("cn"), plugins))
        try:
            engine = Engine({fast.id: fast, slow.id: slow}, store_factory("kr"), plugins)
            for n in range(1, 21):  # the slow partner's messages are queued first
                await engine.issue(slow.id, sample_certificate(f"KR-2026-{n:06d}"), "KR-KCS")
            for n in range(21, 41):
                await engine.issue(fast.id, sample_certificate(f"KR-2026-{n:06d}"), "KR-KCS")
            dispatcher = Dispatcher(engine, per_partner=4, poll_seconds=0.05)
            runner = asyncio.create_task(dispatcher.run())
            started = time.monotonic()
            while time.monotonic() - started < 20:
                delivered = [engine.store.get(fast.id, f"KR-2026-{n:06d}", "outbound").status for n in range(21, 41)]
                if set(delivered) == {"delivered"}:
                    break
                await asyncio.sleep(0.05)
            took = time.monotonic() - started
            assert set(delivered) == {"delivered"}
            assert took < 3.0, f"the fast partner waited {took:.1f}s behind the slow one"
            assert dispatcher.inflight[(slow.id, "CN-GACC")] == 4  # the slow partner holds only its own slots
            await dispatcher.stop(timeout=5)
            runner.cancel()
            await engine.close()
        finally:
            good_gateway.stop()


def test_outbox_commands_show_and_redrive(tmp_path: Path, shipped_profile, plugins) -> None:
    from ibb.core.store import Store

    closed = bind("127.0.0.1", 0)
    port = closed.getsockname()[1]
    closed.close()
    text = (Path(shipped_profile.source)).read_text().replace("127.0.0.1:8702", f"127.0.0.1:{port}").replace("attempts = 5", "attempts = 2")
    text = text.replace("initial_seconds = 0.5", "initial_seconds = 0.05")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "kr-cn-eodes.toml").write_text(text)
    cert = tmp_path / "c.json"
    from ibb.core.model import certificate_to_json

    cert.write_text(certificate_to_json(sample_certificate("KR-2026-000001")))
    store = str(tmp_path / "kr.sqlite")
    run = CliRunner().invoke
    common = ["--profiles", str(tmp_path / "p"), "--store", store]
    r = run(main, ["cert", "issue", "--profile", "kr-cn-eodes", "--as", "KR-KCS", *common, "--wait", "10", str(cert)])
    assert r.exit_code == 0, r.output
    assert "status failed" in r.output and "delivery-failed" in r.output and "retry" in r.output

    r = run(main, ["outbox", "list", "--status", "failed", "--store", store])
    assert r.exit_code == 0 and "failed: 1" in r.output and "ConnectError" in r.output
    message_id = Store(store).outbox_list()[0].message_id
    r = run(main, ["outbox", "show", message_id, "--store", store])
    assert r.exit_code == 0 and '"status": "failed"' in r.output and '"attempts": 2' in r.output
    r = run(main, ["outbox", "redrive", "--all-failed", "--store", store])
    assert r.exit_code == 0 and f"{message_id}: pending again" in r.output
    r = run(main, ["outbox", "redrive", message_id, "--store", store])
    assert r.exit_code == 1 and "only failed messages can be re-driven" in r.output

    r = run(main, ["certs", "list", "--state", "failed", "--store", store])
    assert r.exit_code == 0 and r.output.startswith("KR-2026-000001\tkr-cn-eodes\toutbound\tCN-GACC\tfailed")
    r = run(main, ["certs", "list", "--state", "delivered", "--store", store])
    assert r.exit_code == 0 and r.output == ""
    r = run(main, ["certs", "list", "--state", "lost", "--store", store])
    assert r.exit_code == 1 and "--state: 'lost' is not one of" in r.output
    r = run(main, ["certs", "list", "--since", "2099-01-01", "--store", store])
    assert r.exit_code == 0 and r.output == ""
    r = run(main, ["status", "KR-2026-000001", "--store", store])
    assert r.exit_code == 0 and "redriven" in r.output
