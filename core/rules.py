"""The business-rule contract: named, parameterised checks listed in a profile."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from .formats import NoOptions
from .model import Certificate


@attrs.frozen
class RuleContext:
    """What a rule may look at besides the certificate."""

    profile_id: str
    direction: str
    """``outbound`` (before sending) or ``inbound`` (after receiving)."""


class Rule:
    """Base class of business rules.

    A subclass sets ``name`` (the value of ``rule = "…"`` in a profile's ``[[rules]]``),
    ``Params`` (frozen attrs class for the other keys of that table, validated at load),
    and implements ``check``, returning one message per violation (empty when satisfied).
    Messages name the field: ``$.items[0].origin_criterion: 'XX' is not allowed``.
    """

    name: ClassVar[str]
    Params: ClassVar[type] = NoOptions

    def __init__(self, params: Any = None):
        self.params = params if params is not None else self.Params()

    def check(self, certificate: Certificate, context: RuleContext) -> list[str]:
        raise NotImplementedError
