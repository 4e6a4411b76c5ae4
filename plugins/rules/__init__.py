"""Built-in business rules, registered like any third-party rule plugin.

=============================  ==========================================================
rule                           parameters
=============================  ==========================================================
``validity-period``            ``days`` (longest validity allowed), ``refuse_expired``
``mandatory-fields``           ``fields``: dotted paths; ``items[].x`` means every item
``origin-criteria``            ``allowed``: origin criteria codes accepted by the agreement
``hs-code-length``             ``digits``: lengths accepted (6, 8, 10)
``certificate-number-pattern`` ``pattern``: regular expression the whole id must match
=============================  ==========================================================
"""

from __future__ import annotations

import datetime as dt
import re
import typing
from typing import Any

import attrs
import pluggy

from ibb.core.model import Certificate, FieldError
from ibb.core.rules import Rule, RuleContext

hookimpl = pluggy.HookimplMarker("ibb")


class ValidityPeriod(Rule):
    """The certificate is valid for at most ``days`` days; inbound, it must not have expired."""

    name = "validity-period"

    @attrs.frozen
    class Params:
        days: int = attrs.field(validator=attrs.validators.gt(0))
        refuse_expired: bool = True

    def check(self, certificate: Certificate, context: RuleContext) -> list[str]:
        problems = []
        span = (certificate.valid_until - certificate.issue_date).days
        if span > self.params.days:
            problems.append(f"$.valid_until: valid for {span} days, the agreement allows at most {self.params.days}")
        if self.params.refuse_expired and context.direction == "inbound" and certificate.valid_until < dt.date.today():
            problems.append(f"$.valid_until: certificate expired on {certificate.valid_until}")
        return problems


def _path_values(obj: Any, path: str) -> list[tuple[str, Any]]:
    """Values at a dotted path, ``items[]`` expanding to every item: [(concrete_path, value)]."""
    found = [("$", obj)]
    for part in path.split("."):
        many = part.endswith("[]")
        name = part[:-2] if many else part
        nxt = []
        for where, value in found:
            child = getattr(value, name, None) if value is not None else None
            if many:
                nxt.extend((f"{where}.{name}[{i}]", v) for i, v in enumerate(child or ()))
            else:
                nxt.append((f"{where}.{name}", child))
        found = nxt
    return found


def _known_path(path: str) -> bool:
    cls: Any = Certificate
    for part in path.split("."):
        name = part[:-2] if part.endswith("[]") else part
        hints = typing.get_type_hints(cls) if attrs.has(cls) else {}
        if name not in hints:
            return False
        cls = _attrs_class_in(hints[name])
    return True


def _attrs_class_in(hint: Any) -> Any:
    """The attrs class inside a type hint (``tuple[GoodsItem, ...]`` -> ``GoodsItem``), or None."""
    if attrs.has(hint):
        return hint
    for arg in typing.get_args(hint):
        found = _attrs_class_in(arg)
        if found is not None:
            return found
    return None


def _check_fields(instance: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    unknown = [p for p in value if not _known_path(p)]
    if unknown:
        raise FieldError(attribute.name, f"unknown certificate field(s) {', '.join(unknown)}")


class MandatoryFields(Rule):
    """Fields that are optional in the model but required by this agreement."""

    name = "mandatory-fields"

    @attrs.frozen
    class Params:
        fields: tuple[str, ...] = attrs.field(validator=_check_fields)

    def check(self, certificate: Certificate, context: RuleContext) -> list[str]:
        problems = []
        for path in self.params.fields:
            for where, value in _path_values(certificate, path):
                if value is None or value == "" or value == ():
                    problems.append(f"{where}: required by this agreement")
        return problems


class OriginCriteria(Rule):
    """Every goods item's origin criterion is one the agreement knows."""

    name = "origin-criteria"

    @attrs.frozen
    class Params:
        allowed: tuple[str, ...] = attrs.field(validator=attrs.validators.min_len(1))

    def check(self, certificate: Certificate, context: RuleContext) -> list[str]:
        return [
            f"$.items[{i}].origin_criterion: {item.origin_criterion!r} is not one of {', '.join(self.params.allowed)}"
            for i, item in enumerate(certificate.items)
            if item.origin_criterion not in self.params.allowed
        ]


class HsCodeLength(Rule):
    """HS codes are declared at the precision the agreement asks for."""

    name = "hs-code-length"

    @attrs.frozen
    class Params:
        digits: tuple[int, ...] = attrs.field(
            validator=attrs.validators.deep_iterable(attrs.validators.in_((6, 8, 10)), attrs.validators.min_len(1))
        )

    def check(self, certificate: Certificate, context: RuleContext) -> list[str]:
        allowed = ", ".join(map(str, self.params.digits))
        return [
            f"$.items[{i}].hs_code: {item.hs_code!r} has {len(item.hs_code)} digits, the agreement wants {allowed}"
            for i, item in enumerate(certificate.items)
            if len(item.hs_code) not in self.params.digits
        ]


def _regex(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    try:
        re.compile(value)
    except re.error as exc:
        raise FieldError(attribute.name, f"invalid regular expression: {exc}") from None


class CertificateNumberPattern(Rule):
    """The certificate id follows the agreement's numbering scheme."""

    name = "certificate-number-pattern"

    @attrs.frozen
    class Params:
        pattern: str = attrs.field(validator=_regex)

    def check(self, certificate: Certificate, context: RuleContext) -> list[str]:
        if re.fullmatch(self.params.pattern, certificate.id):
            return []
        return [f"$.id: {certificate.id!r} does not match the pattern {self.params.pattern!r}"]


@hookimpl
def ibb_register_rules(register):
    for rule in (ValidityPeriod, MandatoryFields, OriginCriteria, HsCodeLength, CertificateNumberPattern):
        register(rule.name, rule)
