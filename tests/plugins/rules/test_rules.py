"""Built-in business rules: each reports the field it objects to, and profile parameters are validated."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest

from ibb.core.errors import ProfileError
from ibb.core.profile import load_profile_text
from ibb.core.rules import RuleContext
from ibb.core.samples import sample_certificate
from ibb.plugins.rules import CertificateNumberPattern, HsCodeLength, MandatoryFields, OriginCriteria, ValidityPeriod

OUT = RuleContext(profile_id="p", direction="outbound")
IN = RuleContext(profile_id="p", direction="inbound")


def test_validity_period() -> None:
    cert = sample_certificate("KR-2026-000001")
    rule = ValidityPeriod(ValidityPeriod.Params(days=30))
    span = (cert.valid_until - cert.issue_date).days
    assert rule.check(cert, OUT) == [f"$.valid_until: valid for {span} days, the agreement allows at most 30"]
    long_enough = ValidityPeriod(ValidityPeriod.Params(days=span))
    assert long_enough.check(cert, OUT) == []
    expired = attrs.evolve(cert, issue_date=dt.date(2020, 1, 1), valid_until=dt.date(2020, 6, 1))
    assert long_enough.check(expired, IN) == ["$.valid_until: certificate expired on 2020-06-01"]
    assert long_enough.check(expired, OUT) == []


def test_mandatory_fields_expand_over_items() -> None:
    cert = sample_certificate("KR-2026-000001", items=2)
    stripped = attrs.evolve(cert, transport=None, items=(attrs.evolve(cert.items[0], invoice_number=None), cert.items[1]))
    rule = MandatoryFields(MandatoryFields.Params(fields=("transport.means", "items[].invoice_number", "remarks")))
    problems = rule.check(attrs.evolve(stripped, remarks=None), OUT)
    assert problems == [
        "$.transport.means: required by this agreement",
        "$.items[0].invoice_number: required by this agreement",
        "$.remarks: required by this agreement",
    ]


def test_origin_criteria_and_hs_length_and_number_pattern() -> None:
    cert = sample_certificate("KR-2026-000001", items=2)
    odd = attrs.evolve(cert, items=(attrs.evolve(cert.items[0], origin_criterion="XX", hs_code="85171300"), cert.items[1]))
    assert OriginCriteria(OriginCriteria.Params(allowed=("WO", "PE", "CTH", "CTSH", "RVC", "PSR"))).check(odd, OUT) == [
        "$.items[0].origin_criterion: 'XX' is not one of WO, PE, CTH, CTSH, RVC, PSR"
    ]
    assert HsCodeLength(HsCodeLength.Params(digits=(6,))).check(odd, OUT) == [
        "$.items[0].hs_code: '85171300' has 8 digits, the agreement wants 6"
    ]
    rule = CertificateNumberPattern(CertificateNumberPattern.Params(pattern=r"KR-\d{4}-\d{6}"))
    assert rule.check(cert, OUT) == []
    assert rule.check(attrs.evolve(cert, id="KR-2026-1"), OUT) == ["$.id: 'KR-2026-1' does not match the pattern 'KR-\\\\d{4}-\\\\d{6}'"]


def test_rule_parameters_are_validated_in_the_profile(plugins) -> None:
    from ibb.profiles import SHIPPED_DIR

    text = (SHIPPED_DIR / "kr-cn-eodes.toml").read_text()
    text = text.replace('fields = ["transport.means"', 'fields = ["transport.mean"').replace("digits = [6, 8, 10]", "digits = [6, 7]")
    with pytest.raises(ProfileError) as info:
        load_profile_text(text, plugins, source="p.toml")
    lines = info.value.lines()
    assert any(line.startswith("p.toml: $.rules[4].fields: unknown certificate field(s) transport.mean") for line in lines), lines
    assert any(line.startswith("p.toml: $.rules[2].digits") for line in lines), lines
