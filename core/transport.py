"""The transport contract: how a plugin carries messages between gateways.

Designed with all four planned transports in view:

=========  ===================  ==========================================
transport  receipt               inbound endpoint
=========  ===================  ==========================================
REST       synchronous (HTTP)    route on the gateway
SOAP       synchronous (SOAP)    route on the gateway
AS2        sync or async MDN     route on the gateway
MQTT       asynchronous          subscription on a broker (no route)
=========  ===================  ==========================================
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

import attrs

from .errors import TransportError
from .formats import NoOptions


@attrs.frozen
class Capabilities:
    """What a transport can do; the engine and profile checks read these."""

    synchronous_receipt: bool
    """``send`` returns the partner's receipt. When False ``send`` returns None, the outbox marks the
    message ``awaiting-receipt``, and the receipt arrives later as an inbound message of kind
    ``receipt``; one that does not arrive within ``communication.receipt_timeout_seconds`` makes
    the message be sent again (the receiver answers a resend with the same receipt)."""
    inbound_routes: bool
    """Inbound messages arrive on HTTP routes of the gateway (else the transport listens itself)."""


@attrs.frozen
class Message:
    """One message on the wire: a rendered document plus its envelope."""

    message_id: str
    profile_id: str
    sender: str
    """Entity id of the sending party, as declared in the profile."""
    receiver: str
    content_type: str
    body: bytes
    kind: str = "certificate"
    """``certificate``, ``feedback``, ``cancellation``, or ``receipt`` (asynchronous transports)."""
    headers: Mapping[str, str] = attrs.field(factory=dict)
    """Further envelope fields, e.g. ``replaces`` (id of the certificate this one replaces)."""


@attrs.frozen
class Receipt:
    """The receiving gateway's answer to a message (a business-level acknowledgment)."""

    message_id: str
    status: str
    """``received``: the message is stored and applied (refusals are errors, not receipts)."""
    certificate_id: str | None = None
    reasons: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    """Warnings: a receipt with reasons makes the delivery ``delivered-with-warnings``."""
    at: dt.datetime = attrs.field(factory=lambda: dt.datetime.now(dt.timezone.utc))

    def to_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "status": self.status,
            "certificate_id": self.certificate_id,
            "reasons": list(self.reasons),
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Receipt:
        try:
            return cls(
                message_id=str(data["message_id"]),
                status=str(data["status"]),
                certificate_id=data.get("certificate_id"),
                reasons=tuple(str(r) for r in data.get("reasons", ())),
                at=dt.datetime.fromisoformat(data["at"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TransportError(f"malformed receipt from partner: {exc!r}", retryable=False) from None


RECEIPT_CONTENT_TYPE = "application/vnd.ibb.receipt+json"
"""Content type of a receipt travelling on its own (asynchronous transports), body ``Receipt.to_dict()``."""


def receipt_message(receipt: Receipt, *, message_id: str, profile_id: str, sender: str, receiver: str) -> Message:
    """The message of kind ``receipt`` that carries ``receipt`` back to the entity that sent the
    acknowledged message (``receiver`` here), from the entity that received it (``sender``)."""
    return Message(message_id=message_id, profile_id=profile_id, sender=sender, receiver=receiver,
                   content_type=RECEIPT_CONTENT_TYPE, body=json.dumps(receipt.to_dict()).encode(), kind="receipt")


InboundHandler = Callable[[Message], Awaitable[Receipt]]
"""What the gateway gives a transport to hand over inbound messages: returns the receipt.

Transports without synchronous receipts hand the partner's receipts to the same handler, as
messages of kind ``receipt`` (see :func:`receipt_message`); what it returns for those is only an
acknowledgment of the receipt."""


class Transport:
    """Base class of transport plugins.

    A subclass sets ``name`` (the value of ``service_interface.transport``),
    ``capabilities``, and ``Settings`` (a frozen attrs class for
    ``[service_interface.<name>]``, validated when the profile loads).

    One instance serves one profile. It is created by the engine with the profile's
    settings and must not do I/O in ``__init__``.
    """

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    Settings: ClassVar[type] = NoOptions

    def __init__(self, settings: Any, profile_id: str):
        self.settings = settings
        self.profile_id = profile_id

    async def send(self, message: Message, endpoint: str) -> Receipt | None:
        """Deliver ``message`` to the partner at ``endpoint``.

        Returns the partner's receipt when ``capabilities.synchronous_receipt``, else None.
        Raises :class:`TransportError` with ``retryable`` set (see ``is_retryable``).
        """
        raise NotImplementedError

    def routes(self, handler: InboundHandler) -> Sequence[Any]:
        """Starlette routes of the inbound endpoint, mounted by the gateway. Empty if none."""
        return ()

    async def start(self, handler: InboundHandler) -> None:
        """Start listening for transports that do not use gateway routes (e.g. MQTT)."""

    async def close(self) -> None:
        """Release connections. Called once when the engine shuts down."""

    def is_retryable(self, exc: BaseException) -> bool:
        """Whether a failure of ``send`` is worth retrying later."""
        return isinstance(exc, TransportError) and exc.retryable
