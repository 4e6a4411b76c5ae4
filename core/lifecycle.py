"""The exchange lifecycle (GNC process alignment): certificate states and the legal moves between them.

Sending side:   issued -> sent -> delivered -> accepted | refused
                sent -> failed (delivery gave up; an operator may re-drive: failed -> sent;
                a late receipt or feedback still proves delivery: failed -> delivered)
Receiving side: received -> accepted | refused   (the importing administration's decision)
Either side:    any state after issue -> cancelled | replaced

``draft`` exists only before issue (e.g. waiting for its export declaration to be accepted);
an issued certificate is immutable: a change is a replacement, a new certificate whose
``replaces`` names the old one.
"""

from __future__ import annotations

from .errors import IbbError

FINAL = frozenset({"cancelled", "replaced"})

TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"issued", "cancelled"}),
    "issued": frozenset({"sent"}) | FINAL,
    "sent": frozenset({"delivered", "failed"}) | FINAL,
    "failed": frozenset({"sent", "delivered"}) | FINAL,  # a late receipt or feedback proves delivery
    "delivered": frozenset({"accepted", "refused"}) | FINAL,
    "received": frozenset({"accepted", "refused"}) | FINAL,
    "accepted": FINAL,
    "refused": FINAL,
    "cancelled": frozenset(),
    "replaced": frozenset(),
}

STATES = tuple(TRANSITIONS)


class IllegalTransition(IbbError):
    """A certificate was asked to move to a state it cannot reach from where it is."""

    http_status = 409

    def __init__(self, cert_id: str, current: str, new: str):
        allowed = ", ".join(sorted(TRANSITIONS.get(current, ()))) or "none (final state)"
        super().__init__(f"certificate {cert_id!r} is {current}; it cannot become {new} (allowed: {allowed})")


def check(cert_id: str, current: str, new: str) -> None:
    if new not in TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(cert_id, current, new)
