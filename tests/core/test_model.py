"""The canonical certificate: field checks with paths, every problem at once, lossless JSON."""

from __future__ import annotations

import pytest

from ibb.core.errors import CertificateError
from ibb.core.model import certificate_from_dict, certificate_to_dict
from ibb.core.samples import sample_certificate


def test_round_trip_through_canonical_json_is_lossless() -> None:
    cert = sample_certificate(items=4)
    assert certificate_from_dict(certificate_to_dict(cert)) == cert


def test_every_bad_field_is_reported_with_its_path_even_in_one_object() -> None:
    data = certificate_to_dict(sample_certificate())
    data["exporter"]["country"] = "ZZ"
    data["items"][0].update(currency="XXQ", fob_value="-5", hs_code="12")
    with pytest.raises(CertificateError) as info:
        certificate_from_dict(data, source="in.json")
    lines = info.value.lines()
    assert "in.json: $.exporter.country: 'ZZ' is not an ISO 3166-1 alpha-2 country code" in lines
    assert "in.json: $.items[0].currency: 'XXQ' is not an ISO 4217 currency code" in lines
    assert "in.json: $.items[0].fob_value: must not be negative (got -5)" in lines
    assert any(line.startswith("in.json: $.items[0].hs_code: ") for line in lines), lines
    assert len(lines) == 4, lines


def test_unknown_and_missing_keys_are_errors() -> None:
    data = certificate_to_dict(sample_certificate())
    data["exporter"]["nmae"] = data["exporter"].pop("name")
    with pytest.raises(CertificateError) as info:
        certificate_from_dict(data)
    assert info.value.lines() == ["$.exporter.name: required field is missing", "$.exporter: unknown key(s) nmae"]
