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
        who = "from" if r.event == "received" else "by"
        lines.append(f"{r.at.strftime('%H:%M:%S.%f')[:-3]}  {node}{r.event:<18} {who} {r.actor:<8}{note}")
    return lines


def _note(r: TimelineRow) -> str:
    d = r.detail
    if r.event == "queued":
        return f" {d.get('kind')} message {d.get('message_id')} for {d.get('to')}"
    if r.event in ("sent", "received"):
        return f" message {d.get('message_id')}" + (f", replaces {d['replaces']}" if d.get("replaces") else "")
    if "receipt" in d:
        receipt = d["receipt"]
        warnings = f" ({'; '.join(receipt['reasons'])})" if receipt.get("reasons") else ""
        return f" receipt {receipt.get('status')} for message {receipt.get('message_id')}{warnings}"
    if r.event in ("retry", "delivery-failed", "failed"):
        return f" attempt {d.get('attempt', '?')}: {d.get('error')}" + (f", next in {d['retry_in_s']}s" if "retry_in_s" in d else "")
    if d.get("reason"):
        return f" reason: {d['reason']}"
    if d.get("replaced_by"):
        return f" by {d['replaced_by']}"
    return ""
