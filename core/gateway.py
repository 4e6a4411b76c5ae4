"""The gateway: one ASGI app (Starlette) hosting a node's endpoints, served by uvicorn.

Routes:

* ``GET /health``: liveness and the loaded profiles;
* each profile's transport routes (e.g. ``POST /rest/{profile}/messages``);
* ``POST /api/{profile}/certificates``: the node's own back-office submits a canonical
  certificate to issue and send (guarded by a bearer token when ``api_token`` is set).

Errors are answered as RFC 9457 problem documents (``application/problem+json``).
Uvicorn stops cleanly on SIGTERM/SIGINT: in-flight requests finish, then the engine
closes its transports and store.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .engine import Engine
from .errors import IbbError, InvalidInput, Refused
from .model import certificate_from_json

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


def create_app(engine: Engine, *, api_token: str | None = None, api_max_body_bytes: int = 5_000_000) -> Starlette:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "profiles": sorted(engine.profiles)})

    async def submit(request: Request) -> Response:
        try:
            if api_token is not None:
                given = request.headers.get("authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {api_token}".encode()):
                    raise Refused("missing or wrong bearer token", 401)
            profile = engine.profile(request.path_params["profile"])
            issuer = request.query_params.get("as")
            if not issuer:
                raise Refused("query parameter 'as' (the issuing entity id) is required", 400)
            body = await read_body(request, api_max_body_bytes)
            certificate = certificate_from_json(body, source="request body")
            issued = await engine.issue(profile.id, certificate, issuer)
            return JSONResponse({"certificate_id": issued.certificate.id, "status": issued.status}, status_code=201)
        except IbbError as exc:
            return problem_for(exc)

    routes: list[Any] = [
        Route("/health", health, methods=["GET"]),
        Route("/api/{profile}/certificates", submit, methods=["POST"]),
    ]
    for transport in engine.transports.values():
        routes.extend(transport.routes(engine.receive))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for transport in engine.transports.values():
            await transport.start(engine.receive)
        log.info("gateway up with profiles %s", ", ".join(sorted(engine.profiles)))
        try:
            yield
        finally:
            await engine.close()
            log.info("gateway stopped")

    return Starlette(routes=routes, lifespan=lifespan)


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
