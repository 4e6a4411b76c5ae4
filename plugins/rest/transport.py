"""REST transport: HTTP POST of the rendered certificate; the receipt comes back in the response.

Wire protocol (also described by ``GET /rest/{profile}/openapi.json`` on every gateway):

* ``POST {endpoint}`` where the partner's endpoint is ``…/rest/{profile}/messages``;
* body: the document in the profile's message format, ``Content-Type`` of that format;
* headers ``Ibb-Message-Id``, ``Ibb-Sender``, ``Ibb-Receiver`` (entity ids of the profile),
  ``Ibb-Message-Kind`` (``certificate``, ``feedback``, ``cancellation`` or ``receipt``;
  default ``certificate``), ``Ibb-Replaces`` (a replacement's predecessor), and
  ``Authorization: Bearer …`` when the profile sets ``token``;
* ``200`` with a JSON receipt, or an RFC 9457 problem document (``4xx``/``5xx``).

Retryable: connection failures, time-outs, ``408``, ``425``, ``429`` and ``5xx``.
Not retryable: any other ``4xx`` (the partner refused the message as it is).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ibb.core.errors import IbbError, Refused, TransportError
from ibb.core.gateway import check_bearer, problem_for, read_body
from ibb.core.model import FieldError
from ibb.core.secrets import SecretRef
from ibb.core.transport import Capabilities, InboundHandler, Message, Receipt, Transport

RETRYABLE_STATUS = frozenset({408, 425, 429})
ENVELOPE_EXTRAS = ("replaces",)
"""Optional envelope fields carried as ``Ibb-<Name>`` headers."""


def _positive(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if value <= 0:
        raise FieldError(attribute.name, f"must be greater than 0 (got {value})")


@attrs.frozen
class Settings:
    """``[service_interface.rest]``"""

    timeout: float = attrs.field(default=10.0, validator=_positive)
    """Seconds allowed for connecting, sending and reading the receipt."""
    max_body_bytes: int = attrs.field(default=1_048_576, validator=_positive)
    """Inbound messages larger than this are refused with 413."""
    sender_tokens: dict[str, SecretRef] = attrs.field(factory=dict)
    """Entity id -> the bearer token that entity presents when it sends. Inbound, the token
    must be the one of the entity named in ``Ibb-Sender``: a partner cannot speak for another."""
    token: SecretRef | None = None
    """One bearer token shared by every party of the profile (bilateral profiles only)."""
    allow_unauthenticated: bool = False
    """Accept inbound messages without any token (a closed test network only)."""

    def __attrs_post_init__(self) -> None:
        if not self.sender_tokens and self.token is None and not self.allow_unauthenticated:
            raise FieldError(
                "sender_tokens",
                "inbound messages would be unauthenticated: give each sending entity a token "
                '(sender_tokens = { ENTITY = { "$env" = "NAME" } }), or a shared token, '
                "or set allow_unauthenticated = true on a closed test network",
            )

    def token_of(self, entity_id: str) -> SecretRef | None:
        return self.sender_tokens.get(entity_id, self.token)


class RestTransport(Transport):
    name = "rest"
    capabilities = Capabilities(synchronous_receipt=True, inbound_routes=True)
    Settings = Settings

    def __init__(self, settings: Settings, profile_id: str):
        super().__init__(settings, profile_id)
        self._client: httpx.AsyncClient | None = None

    @property
    def path(self) -> str:
        return f"/rest/{self.profile_id}/messages"

    def _token(self, sender: str) -> str | None:
        ref = self.settings.token_of(sender)
        return ref.read_text() if ref is not None else None

    async def start(self, handler: InboundHandler) -> None:
        # Fail at start-up, not on the first message, when a token cannot be read.
        for ref in (*self.settings.sender_tokens.values(), self.settings.token):
            if ref is not None:
                ref.read()

    async def send(self, message: Message, endpoint: str) -> Receipt:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.settings.timeout, limits=httpx.Limits(max_connections=64))
        headers = {
            "Content-Type": message.content_type,
            "Ibb-Message-Id": message.message_id,
            "Ibb-Sender": message.sender,
            "Ibb-Receiver": message.receiver,
            "Ibb-Message-Kind": message.kind,
        }
        headers.update({f"Ibb-{name.title()}": value for name, value in message.headers.items()})
        token = self._token(message.sender)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = await self._client.post(endpoint, content=message.body, headers=headers)
        except httpx.TimeoutException as exc:
            raise TransportError(f"POST {endpoint}: timed out ({type(exc).__name__})", retryable=True) from None
        except httpx.TransportError as exc:
            raise TransportError(f"POST {endpoint}: {type(exc).__name__}: {exc}", retryable=True) from None
        if response.status_code == 200:
            try:
                return Receipt.from_dict(response.json())
            except ValueError:
                raise TransportError(f"POST {endpoint}: the receipt is not JSON", retryable=False) from None
        retryable = response.status_code in RETRYABLE_STATUS or response.status_code >= 500
        raise TransportError(f"POST {endpoint}: HTTP {response.status_code}: {_problem_text(response)}", retryable=retryable)

    def routes(self, handler: InboundHandler) -> Sequence[Any]:
        async def receive(request: Request) -> Response:
            try:
                self._authorise(request)
                message = Message(
                    message_id=_header(request, "ibb-message-id"),
                    profile_id=self.profile_id,
                    sender=_header(request, "ibb-sender"),
                    receiver=_header(request, "ibb-receiver"),
                    content_type=request.headers.get("content-type", ""),
                    body=await read_body(request, self.settings.max_body_bytes),
                    kind=request.headers.get("ibb-message-kind", "certificate"),
                    headers={name: request.headers[f"ibb-{name}"] for name in ENVELOPE_EXTRAS if f"ibb-{name}" in request.headers},
                )
                receipt = await handler(message)
            except IbbError as exc:
                return problem_for(exc)
            return JSONResponse(receipt.to_dict())

        async def openapi(request: Request) -> Response:
            return JSONResponse(openapi_document(self.profile_id, not self.settings.allow_unauthenticated))

        return [
            Route(self.path, receive, methods=["POST"]),
            Route(f"/rest/{self.profile_id}/openapi.json", openapi, methods=["GET"]),
        ]

    def _authorise(self, request: Request) -> None:
        """The bearer token must be the one of the entity the message claims to come from."""
        if self.settings.allow_unauthenticated and not self.settings.sender_tokens and self.settings.token is None:
            return
        sender = request.headers.get("ibb-sender", "")
        token = self._token(sender)
        if token is None:
            raise Refused(f"no credentials are configured for sender {sender!r}", 401)
        check_bearer(request, token, f" for sender {sender!r}")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _header(request: Request, name: str) -> str:
    value = request.headers.get(name, "").strip()
    if not value:
        raise Refused(f"header {name} is required", 400)
    if len(value) > 200:
        raise Refused(f"header {name} is longer than 200 characters", 400)
    return value


def _problem_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        errors = body.get("errors")
        return "; ".join(errors) if isinstance(errors, list) and errors else str(body.get("detail", body))[:300]
    return str(body)[:300]


def openapi_document(profile_id: str, with_token: bool) -> dict[str, Any]:
    """OpenAPI 3.1 description of one profile's inbound REST endpoint."""
    header = lambda name, text: {"name": name, "in": "header", "required": True, "schema": {"type": "string", "maxLength": 200}, "description": text}  # noqa: E731
    problem = {"description": "", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": f"ibb inbound REST endpoint, profile {profile_id}", "version": "1"},
        "paths": {
            f"/rest/{profile_id}/messages": {
                "post": {
                    "summary": "Deliver one certificate of origin",
                    "operationId": "deliverMessage",
                    "parameters": [
                        header("Ibb-Message-Id", "Unique id of this message; a repeated id gets the first receipt again"),
                        header("Ibb-Sender", "Entity id of the sender in the profile"),
                        header("Ibb-Receiver", "Entity id of the receiver in the profile"),
                        {"name": "Ibb-Message-Kind", "in": "header", "required": False,
                         "schema": {"type": "string", "enum": ["certificate", "feedback", "cancellation", "receipt"], "default": "certificate"},
                         "description": "What the body is: a certificate in the profile's format, a feedback / cancellation notice "
                                        "(application/vnd.ibb.control+json), or a receipt sent on its own (application/vnd.ibb.receipt+json)"},
                        {"name": "Ibb-Replaces", "in": "header", "required": False, "schema": {"type": "string", "maxLength": 200},
                         "description": "Id of the certificate this one replaces"},
                    ],
                    "requestBody": {
                        "required": True,
                        "description": "The certificate in the profile's message format",
                        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "Receipt: the certificate is stored (or was already)",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Receipt"}}},
                        },
                        **{
                            str(code): {**problem, "description": text}
                            for code, text in (
                                (400, "Missing or malformed envelope header"),
                                (401, "Missing or wrong bearer token for the entity named in Ibb-Sender"),
                                (403, "Sender or receiver is not an entity of the profile, or not the certificate's partner"),
                                (404, "Unknown profile, unknown certificate for a feedback or cancellation, or unknown message for a receipt"),
                                (409, "Certificate id already received under another message id, or a state change the lifecycle forbids"),
                                (413, "Body larger than the profile's limit"),
                                (415, "Content type is not the profile's message format"),
                                (422, "Invalid certificate or business rule violated"),
                            )
                        },
                    },
                }
            }
        },
        "components": {
            "schemas": {
                "Receipt": {
                    "type": "object",
                    "required": ["message_id", "status", "at"],
                    "properties": {
                        "message_id": {"type": "string"},
                        "status": {"type": "string", "enum": ["received"]},
                        "certificate_id": {"type": ["string", "null"]},
                        "reasons": {"type": "array", "items": {"type": "string"}},
                        "at": {"type": "string", "format": "date-time"},
                    },
                },
                "Problem": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "errors": {"type": "array", "items": {"type": "string"}},
                    },
                },
            }
        },
    }
    if with_token:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc
