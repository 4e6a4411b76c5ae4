"""The gateway: one ASGI app (Starlette) hosting a node's endpoints, served by uvicorn.

Routes:

* ``GET /health``: liveness and the loaded profiles;
* each profile's transport routes (e.g. ``POST /rest/{profile}/messages``);
* ``/api/…``: the node's own back-office issues, decides, cancels and tracks (guarded by a
  bearer token when ``api_token`` is set): see ``docs/gateway.md``.

Errors are answered as RFC 9457 problem documents (``application/problem+json``).
Uvicorn stops cleanly on SIGTERM/SIGINT: in-flight requests finish, then the engine
closes its transports and store.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .engine import Engine
from .errors import IbbError, InvalidInput, Refused, UnknownName
from .model import certificate_from_json
from .outbox import Dispatcher
from .store import OutboxMessage, StoredCertificate

log = logging.getLogger("ibb.gateway")

PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, errors: list[str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def problem_for(exc: IbbError) -> JSONResponse:
    """The problem response for an error raised while handling a request."""
    errors = exc.lines() if isinstance(exc, InvalidInput) else None
    title = type(exc).__name__
    return problem(exc.http_status, title, str(exc) if errors is None else f"{len(errors)} problem(s)", errors)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Refused(f"body of {declared} bytes exceeds the limit of {limit} bytes", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(f"body exceeds the limit of {limit} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def check_bearer(request: Request, token: str, whose: str = "") -> None:
    """Refuse (401) a request whose ``Authorization`` is not ``Bearer <token>``, in constant time."""
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise Refused(f"missing or wrong bearer token{whose}", 401)


def create_app(engine: Engine, *, api_token: str | None = None, api_max_body_bytes: int = 5_000_000,
               dispatcher_options: dict[str, Any] | None = None) -> Starlette:
    """The gateway app of one node. Its lifespan runs the outbox dispatcher."""
    dispatcher: Dispatcher | None = None

    def guarded(handler: Any) -> Any:
        """Local API endpoint: bearer token when configured; IbbError -> problem response."""

        async def endpoint(request: Request) -> Response:
            try:
                if api_token is not None:
                    check_bearer(request, api_token)
                return await handler(request)
            except IbbError as exc:
                return problem_for(exc)

        return endpoint

    async def read_json(request: Request) -> dict[str, Any]:
        body = await read_body(request, api_max_body_bytes)
        try:
            data = json.loads(body or b"{}")
        except ValueError as exc:
            raise InvalidInput([f"$: not valid JSON ({exc})"], "request body") from None
        if not isinstance(data, dict):
            raise InvalidInput(["$: expected a JSON object"], "request body")
        return data

    def required(data: dict[str, Any], key: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise InvalidInput([f"$.{key}: required, a non-empty string"], "request body")
        return value

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "profiles": sorted(engine.profiles)})

    async def issue(request: Request) -> Response:
        profile = engine.profile(request.path_params["profile"])
        issuer = request.query_params.get("as")
        if not issuer:
            raise Refused("query parameter 'as' (the issuing entity id) is required", 400)
        body = await read_body(request, api_max_body_bytes)
        certificate = certificate_from_json(body, source="request body")
        draft = request.query_params.get("draft", "").lower() in ("1", "true", "yes")
        record = await engine.issue(profile.id, certificate, issuer, replaces=request.query_params.get("replaces"), draft=draft)
        return JSONResponse(_record_json(engine, record), status_code=201)

    async def declaration(request: Request) -> Response:
        data = await read_json(request)
        record = await engine.declaration_accepted(request.path_params["profile"], request.path_params["cert_id"],
                                                   required(data, "as"), required(data, "declaration"))
        return JSONResponse(_record_json(engine, record))

    async def decide(request: Request) -> Response:
        data = await read_json(request)
        record = await engine.decide(request.path_params["profile"], request.path_params["cert_id"],
                                     required(data, "decision"), required(data, "as"), str(data.get("reason", "")))
        return JSONResponse(_record_json(engine, record))

    async def cancel(request: Request) -> Response:
        data = await read_json(request)
        record = await engine.cancel(request.path_params["profile"], request.path_params["cert_id"],
                                     required(data, "as"), required(data, "reason"))
        return JSONResponse(_record_json(engine, record))

    async def show(request: Request) -> Response:
        profile = engine.profile(request.path_params["profile"])
        direction = request.query_params.get("direction", "outbound")

        def read() -> dict[str, Any]:
            record = engine.store.get(profile.id, request.path_params["cert_id"], direction)
            if record is None:
                raise UnknownName(f"{direction} certificate", request.path_params["cert_id"], [])
            return _record_json(engine, record, with_events=True)

        return JSONResponse(await anyio.to_thread.run_sync(read))

    async def document(request: Request) -> Response:
        profile = engine.profile(request.path_params["profile"])

        def read() -> bytes:
            record = engine.store.get(profile.id, request.path_params["cert_id"], "inbound")
            wire = engine.store.wire(record.pk) if record is not None else None
            if wire is None:
                raise UnknownName("received certificate", request.path_params["cert_id"], [])
            return wire

        body = await anyio.to_thread.run_sync(read)
        return Response(body, media_type=engine.formats[profile.id].content_type)

    async def tracking(request: Request) -> Response:
        message = await anyio.to_thread.run_sync(engine.store.outbox_message, request.path_params["message_id"])
        return JSONResponse(message_json(message))

    routes: list[Any] = [
        Route("/health", health, methods=["GET"]),
        Route("/api/{profile}/certificates", guarded(issue), methods=["POST"]),
        Route("/api/{profile}/certificates/{cert_id}", guarded(show), methods=["GET"]),
        Route("/api/{profile}/certificates/{cert_id}/document", guarded(document), methods=["GET"]),
        Route("/api/{profile}/certificates/{cert_id}/declaration-accepted", guarded(declaration), methods=["POST"]),
        Route("/api/{profile}/certificates/{cert_id}/decision", guarded(decide), methods=["POST"]),
        Route("/api/{profile}/certificates/{cert_id}/cancel", guarded(cancel), methods=["POST"]),
        Route("/api/messages/{message_id}", guarded(tracking), methods=["GET"]),
    ]
    for transport in engine.transports.values():
        routes.extend(transport.routes(engine.receive))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal dispatcher
        for transport in engine.transports.values():
            await transport.start(engine.receive)
        dispatcher = Dispatcher(engine, **(dispatcher_options or {}))
        task = asyncio.create_task(dispatcher.run())
        log.info("gateway up with profiles %s", ", ".join(sorted(engine.profiles)))
        try:
            yield
        finally:
            await dispatcher.stop()
            await task
            await engine.close()
            log.info("gateway stopped")

    async def http_problem(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        return problem(status, "Not Found" if status == 404 else "Method Not Allowed" if status == 405 else "HTTP error",
                       f"{request.method} {request.url.path}: {getattr(exc, 'detail', '')}")

    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_problem})


def _record_json(engine: Engine, record: StoredCertificate, with_events: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "certificate_id": record.cert_id, "profile": record.profile_id, "direction": record.direction,
        "partner": record.partner, "status": record.status,
        "created_at": record.created_at.isoformat(), "updated_at": record.updated_at.isoformat(),
    }
    if with_events:
        body["events"] = [
            {"event": e.event, "actor": e.actor, "at": e.at.isoformat(), "detail": e.detail} for e in engine.store.events(record.pk)
        ]
    return body


def message_json(message: OutboxMessage) -> dict[str, Any]:
    """Delivery tracking of one outbound message (``GET /api/messages/{id}``, ``ibb outbox show``)."""
    return {
        "message_id": message.message_id, "profile": message.profile_id, "kind": message.kind,
        "from": message.sender, "to": message.receiver, "status": message.status, "attempts": message.attempts,
        "next_attempt_at": message.next_attempt_at.isoformat() if message.status == "pending" else None,
        "last_error": message.last_error, "receipt": message.receipt,
        "created_at": message.created_at.isoformat(), "updated_at": message.updated_at.isoformat(),
    }


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket; port 0 picks a free one (read it back with ``getsockname``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def make_server(app: Starlette, *, log_level: str = "warning") -> uvicorn.Server:
    config = uvicorn.Config(app, log_level=log_level, lifespan="on", access_log=False, timeout_graceful_shutdown=10)
    return uvicorn.Server(config)
