"""A certificate's timeline: its lifecycle events from one or more nodes' stores, in time order."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import attrs

from .store import Store


@attrs.frozen
class TimelineRow:
    at: dt.datetime
    node: str
    profile_id: str
    direction: str
    event: str
    actor: str
    detail: dict


def timeline(stores: Sequence[tuple[str, Store]], cert_id: str) -> list[TimelineRow]:
    """Every event of ``cert_id`` in the given ``(node label, store)`` pairs, oldest first."""
    rows = []
    for node, store in stores:
        for record in store.find(cert_id):
            for e in store.events(record.pk):
                rows.append(TimelineRow(e.at, node, record.profile_id, record.direction, e.event, e.actor, e.detail))
    rows.sort(key=lambda r: r.at)
    return rows


def format_timeline(rows: Iterable[TimelineRow]) -> list[str]:
    lines = []
    for r in rows:
        note = _note(r)
        node = f"{r.node:<8} " if r.node else ""
        lines.append(f"{r.at.strftime('%H:%M:%S.%f')[:-3]}  {node}{r.event:<10} by {r.actor:<10}{note}")
    return lines


def _note(r: TimelineRow) -> str:
    d = r.detail
    if r.event == "sent":
        return f" message {d.get('message_id')} to {d.get('to')} over {d.get('transport')}"
    if r.event == "delivered":
        receipt = d.get("receipt", {})
        return f" receipt: {receipt.get('status')} at {receipt.get('at')}"
    if r.event == "received":
        return f" message {d.get('message_id')}"
    if r.event in ("retry", "failed", "action-failed"):
        return f" {d.get('error')}"
    return ""
