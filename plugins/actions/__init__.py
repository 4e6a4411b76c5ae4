"""Built-in trigger actions: ``send`` and ``log``.

``send`` renders the certificate with the profile's format plugin, delivers it with the
profile's transport plugin to the trigger's ``to`` entity, and records ``sent`` then
``delivered`` (with the partner's receipt) or ``failed``. Retryable transport failures
are retried with the profile's ``[communication.retry]`` settings, each recorded.

``log`` writes one line per event to the ``ibb.events`` logger.
"""

from __future__ import annotations

import logging

import anyio
import pluggy

from ibb.core.engine import ActionContext
from ibb.core.errors import TransportError
from ibb.core.transport import Message

hookimpl = pluggy.HookimplMarker("ibb")
log = logging.getLogger("ibb.events")


async def send(ctx: ActionContext) -> None:
    engine, profile = ctx.engine, ctx.profile
    assert ctx.trigger.to is not None  # the profile loader insists on it
    target = profile.entity(ctx.trigger.to)
    fmt = engine.formats[profile.id]
    transport = engine.transports[profile.id]
    message = Message(
        message_id=engine.new_message_id(), profile_id=profile.id, sender=ctx.actor, receiver=target.id,
        content_type=fmt.content_type, body=fmt.render(ctx.certificate),
    )
    await anyio.to_thread.run_sync(
        lambda: engine.store.record_outbound_message(ctx.record_pk, message.message_id, profile.id, ctx.actor, target.id)
    )
    retry = profile.communication.retry
    detail = {"message_id": message.message_id, "to": target.id, "transport": transport.name}
    await engine.record(ctx.record_pk, "sent", ctx.actor, detail, status="sent")
    for attempt in range(1, retry.attempts + 1):
        try:
            receipt = await transport.send(message, target.endpoint or "")
            break
        except TransportError as exc:
            if transport.is_retryable(exc) and attempt < retry.attempts:
                delay = retry.delay(attempt)
                await engine.record(ctx.record_pk, "retry", ctx.actor, {**detail, "attempt": attempt, "error": str(exc), "retry_in_s": delay})
                await anyio.sleep(delay)
                continue
            await engine.record(ctx.record_pk, "failed", ctx.actor, {**detail, "attempt": attempt, "error": str(exc)}, status="failed")
            raise
    if receipt is None:  # asynchronous transports: the receipt arrives later as a message
        return
    await anyio.to_thread.run_sync(lambda: engine.store.set_receipt("outbound", message.message_id, receipt.to_dict()))
    await engine.record(ctx.record_pk, "delivered", target.id, {**detail, "receipt": receipt.to_dict()}, status="delivered")


async def log_event(ctx: ActionContext) -> None:
    log.info("%s: certificate %s %s (by %s)", ctx.profile.id, ctx.certificate.id, ctx.event, ctx.actor)


@hookimpl
def ibb_register_actions(register):
    register("send", send)
    register("log", log_event)
