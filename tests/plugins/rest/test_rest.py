"""REST transport against real HTTP servers: failure classification (retryable or not) and receipts."""

from __future__ import annotations

import asyncio

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ibb.core.errors import TransportError
from ibb.core.gateway import bind
from ibb.core.testing import ThreadedServer
from ibb.core.transport import Message
from ibb.plugins.rest.transport import RestTransport, Settings

MESSAGE = Message(message_id="m-1", profile_id="p", sender="A", receiver="B", content_type="application/json", body=b"{}")


class Server(ThreadedServer):
    """A real uvicorn server with a scripted app, on a free loopback port."""

    def __init__(self, handler):
        super().__init__()
        self.seen: list[Request] = []

        async def endpoint(request: Request) -> Response:
            self.seen.append(request)
            return await handler(request)

        self.app = Starlette(routes=[Route("/in", endpoint, methods=["POST"])])
        self.url = f"{self.url}/in"

    def __enter__(self) -> Server:
        return self.start(self.app)

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _send(url: str, **settings) -> object:
    transport = RestTransport(Settings(allow_unauthenticated=True, **settings), "p")
    try:
        return await transport.send(MESSAGE, url)
    finally:
        await transport.close()


def send(url: str, **settings) -> object:
    return asyncio.run(_send(url, **settings))


@pytest.mark.parametrize(
    ("status", "retryable"), [(503, True), (500, True), (429, True), (408, True), (400, False), (422, False), (404, False)]
)
def test_http_failures_are_classified(status: int, retryable: bool) -> None:
    async def handler(request: Request) -> Response:
        return JSONResponse({"title": "x", "detail": f"scripted {status}"}, status_code=status, media_type="application/problem+json")

    with Server(handler) as server:
        with pytest.raises(TransportError) as info:
            send(server.url)
    assert info.value.retryable is retryable
    assert f"HTTP {status}: scripted {status}" in str(info.value)


def test_envelope_headers_reach_the_partner_and_the_receipt_comes_back() -> None:
    async def handler(request: Request) -> Response:
        return JSONResponse({"message_id": request.headers["ibb-message-id"], "status": "received", "certificate_id": "C", "reasons": [], "at": "2026-01-01T00:00:00+00:00"})

    with Server(handler) as server:
        receipt = send(server.url)
    headers = server.seen[0].headers
    assert (headers["ibb-message-id"], headers["ibb-sender"], headers["ibb-receiver"]) == ("m-1", "A", "B")
    assert headers["content-type"] == "application/json"
    assert receipt.status == "received" and receipt.message_id == "m-1"


def test_timeout_and_refused_connection_are_retryable() -> None:
    async def slow(request: Request) -> Response:
        await asyncio.sleep(2)
        return PlainTextResponse("late")

    with Server(slow) as server:
        with pytest.raises(TransportError, match="timed out") as info:
            send(server.url, timeout=0.2)
    assert info.value.retryable
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(TransportError, match="ConnectError") as info:
        send(f"http://127.0.0.1:{port}/in")
    assert info.value.retryable


def test_a_receipt_that_is_not_a_receipt_is_not_retried() -> None:
    async def handler(request: Request) -> Response:
        return PlainTextResponse("OK")

    with Server(handler) as server:
        with pytest.raises(TransportError, match="receipt is not JSON") as info:
            send(server.url)
    assert not info.value.retryable

    async def wrong_shape(request: Request) -> Response:
        return JSONResponse({"ok": True})

    with Server(wrong_shape) as server:
        with pytest.raises(TransportError, match="malformed receipt") as info:
            send(server.url)
    assert not info.value.retryable
