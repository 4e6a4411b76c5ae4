"""The ibb plugin contract: every hook a plugin may implement, one docstring each.

A plugin is a module (or object) with functions marked ``@hookimpl`` from
``pluggy.HookimplMarker("ibb")``; built-ins in ``ibb.plugins.*`` are written exactly
like third-party plugins, which are found through the ``ibb`` entry-point group::

    [project.entry-points.ibb]
    my_transport = "my_package.ibb_plugin"

Registration hooks receive a ``register(name, obj)`` callable. The core owns the
registries: it refuses a name registered twice and records which plugin registered
what (``ibb plugins list``). ``obj`` may be the class itself or a ``"module:Class"``
string, imported only when a profile uses that name, so a plugin's optional
dependencies are only needed by those who use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("ibb")

Register = Callable[[str, Any], None]


@hookspec
def ibb_register_transports(register: Register) -> None:
    """Register transport plugins (``service_interface.transport`` in a profile).

    Called once when the plugin manager starts. Call ``register(name, cls)`` for each
    transport, where ``cls`` is a subclass of :class:`ibb.core.transport.Transport`
    (or a ``"module:Class"`` string naming one). Return nothing.
    """


@hookspec
def ibb_register_formats(register: Register) -> None:
    """Register message-format plugins (``data_cluster.format`` in a profile).

    Called once when the plugin manager starts. Call ``register(name, cls)`` for each
    format, where ``cls`` is a subclass of :class:`ibb.core.formats.MessageFormat`
    (or a ``"module:Class"`` string naming one). Return nothing.
    """


@hookspec
def ibb_register_rules(register: Register) -> None:
    """Register business rules (``[[rules]] rule = "…"`` in a profile).

    Called once when the plugin manager starts. Call ``register(name, cls)`` for each
    rule, where ``cls`` is a subclass of :class:`ibb.core.rules.Rule`. Return nothing.
    """


@hookspec
def ibb_register_actions(register: Register) -> None:
    """Register trigger actions (``[[triggers]] do = ["…"]`` in a profile).

    Called once when the plugin manager starts. Call ``register(name, fn)`` for each
    action, where ``fn`` is a plain function ``fn(ctx: ibb.core.engine.ActionContext)``.
    It runs inside the store transaction of the event that fired the trigger, so it must
    not do network I/O: it queues messages with ``ctx.enqueue(…)`` and they are sent
    by the outbox after the commit. Raising :class:`ibb.core.errors.IbbError` rolls the
    whole event back. Return nothing.
    """
