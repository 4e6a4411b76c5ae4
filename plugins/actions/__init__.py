"""Built-in trigger actions.

Actions run inside the transaction of the event that triggered them: whatever they
enqueue is committed with the state change, and the outbox delivers it afterwards.

=================  ==================================================================
action             what it does
=================  ==================================================================
``issue``          a draft becomes issued (business rules checked), then the
                   ``certificate.issued`` triggers run (e.g. on ``export-declaration.accepted``)
``send``           render the certificate with the profile's format, sign it for each role
                   of ``data_cluster.signatures`` with that entity's key, and queue it
                   for the trigger's ``to`` entity (``replaces`` travels in the envelope)
``send-feedback``  queue the importing side's decision (accepted / refused, reason) for
                   the partner the certificate came from
``notify``         queue a cancellation notice for the trigger's ``to`` entity, or the
                   partner of the certificate
``log``            write one line to the ``ibb.events`` logger
=================  ==================================================================
"""

from __future__ import annotations

import logging

import pluggy

import attrs

from ibb.core.engine import CONTROL_CONTENT_TYPE, ActionContext, control_body
from ibb.core.errors import RuleViolation
from ibb.core.model import certificate_to_dict
from ibb.core.keys import entity_credentials

hookimpl = pluggy.HookimplMarker("ibb")
log = logging.getLogger("ibb.events")


def issue(ctx: ActionContext) -> None:
    """Draft -> issued: check the business rules, stamp the document, run the ``certificate.issued`` triggers."""
    certificate = attrs.evolve(ctx.certificate, status="issued")
    problems = ctx.engine.check_rules(ctx.profile.id, certificate, "outbound")
    if problems:
        raise RuleViolation(problems, source=f"certificate {certificate.id}")
    ctx.tx.update_document(ctx.record.pk, certificate_to_dict(certificate))
    record = ctx.tx.transition(ctx.record, "issued", ctx.actor, dict(ctx.detail))
    ctx.engine.fire(ctx.tx, ctx.profile, "certificate.issued", record, ctx.actor)


def send(ctx: ActionContext) -> None:
    fmt = ctx.engine.formats[ctx.profile.id]
    headers = {"replaces": ctx.detail["replaces"]} if ctx.detail.get("replaces") else {}
    document = fmt.render(ctx.certificate)
    for role in ctx.profile.data_cluster.signatures:  # in signing order: exporter, then the issuing authority
        entity = ctx.profile.entity(role)
        document = fmt.sign(document, entity.role, entity_credentials(ctx.profile, entity, fmt.options))
    ctx.enqueue("certificate", ctx.target(), document, fmt.content_type, headers)


def send_feedback(ctx: ActionContext) -> None:
    body = control_body("feedback", ctx.record.cert_id, decision=ctx.detail["decision"], reason=ctx.detail.get("reason", ""))
    ctx.enqueue("feedback", ctx.target(), body, CONTROL_CONTENT_TYPE)


def notify(ctx: ActionContext) -> None:
    body = control_body("cancellation", ctx.record.cert_id, reason=ctx.detail.get("reason", ""))
    ctx.enqueue("cancellation", ctx.target(), body, CONTROL_CONTENT_TYPE)


def log_event(ctx: ActionContext) -> None:
    log.info("%s: certificate %s %s (by %s)", ctx.profile.id, ctx.record.cert_id, ctx.event, ctx.actor)


@hookimpl
def ibb_register_actions(register):
    register("issue", issue)
    register("send", send)
    register("send-feedback", send_feedback)
    register("notify", notify)
    register("log", log_event)
