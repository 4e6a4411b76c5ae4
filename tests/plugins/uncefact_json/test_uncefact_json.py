"""The ``uncefact-json`` format: UN/CEFACT JSON Preferential CoO (D23B).

Rendered documents validate against the real schema file, the round trip is lossless,
documents written by others are read, and every kind of bad input is a
``CertificateError`` naming the path of the problem.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from jsonschema import Draft202012Validator

from ibb.core.errors import CertificateError
from ibb.core.model import (
    Address,
    Certificate,
    Declaration,
    GoodsItem,
    Party,
    SignatureInfo,
    TransportDetails,
)
from ibb.core.samples import sample_certificate
from ibb.plugins.uncefact_json import (
    _LINEAR_PATTERNS,
    SCHEMA_ENV,
    Options,
    UncefactJson,
    compile_schema,
    ibb_register_formats,
)

# tests/plugins/uncefact_json/<this file>: parents[3] is the repository; shared/ sits beside it.
SCHEMA_FILE = Path(__file__).resolve().parents[3] / ".." / "shared" / "fixtures" / "uncefact" / "PreferentialCoO_D23B.json"
KST = dt.timezone(dt.timedelta(hours=9))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def schema_file() -> Path:
    if not SCHEMA_FILE.is_file():
        pytest.skip(f"UN/CEFACT schema not found at {SCHEMA_FILE.resolve()} (the shared fixtures sit beside the repository)")
    return SCHEMA_FILE


@pytest.fixture(scope="module")
def published(schema_file: Path) -> Draft202012Validator:
    """The schema exactly as published, not compiled: the arbiter of validity."""
    return Draft202012Validator(json.loads(schema_file.read_bytes()))


@pytest.fixture(scope="module")
def checked(schema_file: Path) -> UncefactJson:
    """The format validating against the real schema."""
    return UncefactJson(Options(schema=str(schema_file)))


@pytest.fixture
def plain(monkeypatch: pytest.MonkeyPatch) -> UncefactJson:
    """The format without a schema: structural checks only."""
    monkeypatch.delenv(SCHEMA_ENV, raising=False)
    return UncefactJson()


def rich_certificate() -> Certificate:
    """Every optional field set: 3 items, 2 producers, 2 signatures, awkward decimals."""
    cert = sample_certificate("KR-2026-000042", items=3, issue_date=dt.date(2026, 3, 16))
    items = list(cert.items)
    items[1] = attrs.evolve(items[1], quantity=Decimal("800.000"), gross_mass_kg=Decimal("0.5"), fob_value=Decimal("0.01"))
    return attrs.evolve(
        cert,
        type="FTA-KC",
        status="issued",
        items=items,
        issuing_authority=attrs.evolve(cert.issuing_authority, id="KR-KCCI-001"),
        producers=(
            Party(
                name="Hanbit Cell Manufacturing Co.", country="KR", id="KR-BRN-3178854321",
                address=Address(country="KR", line="77 Osong-ro, Heungdeok-gu", city="Cheongju", postcode="28160"),
            ),
            Party(name="Daehan Polymer Ltd.", country="KR", address=Address(country="KR", city="Ulsan")),
        ),
        certification=attrs.evolve(cert.certification, text="It is hereby certified that the declaration is correct."),
        signatures=(
            SignatureInfo(role="exporter", signer="Kim Min-jun", signed_at=dt.datetime(2026, 3, 16, 9, 30, tzinfo=KST)),
            SignatureInfo(role="issuing-authority", signer="Lee Seo-yeon", signed_at=dt.datetime(2026, 3, 16, 1, 5, 30, 250000, tzinfo=dt.UTC)),
        ),
    )


def minimal_certificate() -> Certificate:
    """Only the required fields."""
    return Certificate(
        id="KR-2026-000043",
        type="preferential",
        agreement="Korea-China FTA",
        issue_date=dt.date(2026, 3, 16),
        issue_place="Busan",
        valid_until=dt.date(2027, 3, 15),
        exporter=Party(name="Hanbit Energy Co., Ltd.", country="KR"),
        importer=Party(name="Shanghai Donghai Trading Co., Ltd.", country="CN"),
        issuing_authority=Party(name="Korea Chamber of Commerce and Industry", country="KR"),
        export_country="KR",
        import_country="CN",
        items=(GoodsItem(sequence=1, hs_code="851713", description="Smartphones", origin_criterion="CTSH", origin_country="KR"),),
    )


def edge_certificate() -> Certificate:
    """Optional parts present but empty or half-filled, where a naive mapping loses them."""
    return attrs.evolve(
        minimal_certificate(),
        transport=TransportDetails(),
        items=(
            GoodsItem(sequence=7, hs_code="39012000", description="Polyethylene granules", origin_criterion="RVC",
                      origin_country="KR", package_kind="BG", marks="N/M", quantity_unit="KGM",
                      invoice_date=dt.date(2026, 3, 1)),
            GoodsItem(sequence=2, hs_code="8708991000", description="Steering gear parts", origin_criterion="CTH",
                      origin_country="JP", package_count=0, quantity=Decimal("1E+3"), quantity_unit="C62",
                      invoice_number="INV-7"),
        ),
        exporter_declaration=Declaration(place="Busan", date=dt.date(2026, 3, 15), signatory="Park Ji-ho"),
        certification=Declaration(place="Busan", date=dt.date(2026, 3, 16), signatory="Choi Yu-na"),
    )


def document(fmt: UncefactJson, cert: Certificate) -> dict[str, Any]:
    return json.loads(fmt.render(cert))


def problems(fmt: UncefactJson, data: bytes | dict[str, Any]) -> list[str]:
    body = json.dumps(data).encode() if isinstance(data, dict) else data
    with pytest.raises(CertificateError) as info:
        fmt.parse(body)
    return list(info.value.problems)


# --------------------------------------------------------------------------- (a) valid under the real schema


def test_rich_certificate_renders_a_document_valid_under_the_published_schema(published: Draft202012Validator, checked: UncefactJson) -> None:
    doc = document(checked, rich_certificate())
    assert [e.message for e in published.iter_errors(doc)] == []

    header, consignment = doc["exchangedDocument"], doc["specifiedConsignment"][0]
    assert header["id"] == {"content": "KR-2026-000042"}
    assert header["typeCode"] == {"content": "864"}
    assert header["issueDateTime"] == "2026-03-16T00:00:00Z"
    assert header["firstSignatoryDocumentAuthentication"]["issueLogisticsLocation"] == {"id": [{"content": "Seoul"}]}
    assert header["issuer"]["id"] == [{"content": "KR-KCCI-001"}]
    assert consignment["consignor"]["x-name"] == "Hanbit Energy Co., Ltd."
    assert [p["x-name"] for p in consignment["associated"]] == ["Hanbit Cell Manufacturing Co.", "Daehan Polymer Ltd."]
    assert consignment["applicableCrossBorderRegulatoryProcedure"] == [{"freeTradeAgreementName": {"content": "Korea-China FTA"}}]
    assert consignment["loadingLogisticsLocation"] == {"id": [{"content": "Busan, KR"}]}
    line = consignment["includedConsignmentItem"][1]["includedTradeLineItem"][0]
    product = line["specifiedTradeProduct"][0]
    assert product["designatedProductClassification"] == [{"classCode": {"content": "870899", "listAgencyId": "1"}}]
    assert product["originTradeCountry"] == ["https://vocabulary.uncefact.org/CountryId#KR"]
    assert line["physicalReferencedLogisticsPackage"][0]["itemQuantity"] == {"content": "20"}
    assert line["x-fobValue"] == {"content": "0.01", "currencyId": "USD"}


@pytest.mark.parametrize("make", [minimal_certificate, edge_certificate, lambda: sample_certificate(items=10)])
def test_other_certificates_render_valid_documents_too(published: Draft202012Validator, checked: UncefactJson, make: Any) -> None:
    assert [e.message for e in published.iter_errors(document(checked, make()))] == []


# --------------------------------------------------------------------------- (b) lossless round trip


@pytest.mark.parametrize("make", [rich_certificate, minimal_certificate, edge_certificate])
@pytest.mark.parametrize("fmt_name", ["checked", "plain"])
def test_round_trip_is_lossless(make: Any, fmt_name: str, request: pytest.FixtureRequest) -> None:
    fmt: UncefactJson = request.getfixturevalue(fmt_name)
    cert = make()
    back = fmt.parse(fmt.render(cert))
    assert back == cert
    # Decimal equality ignores trailing zeros; the digits themselves survive too
    for mine, theirs in zip(cert.items, back.items, strict=True):
        for name in ("quantity", "gross_mass_kg", "fob_value"):
            if getattr(mine, name) is not None:
                assert format(getattr(theirs, name), "f") == format(getattr(mine, name), "f")
    assert [s.signed_at.utcoffset() for s in back.signatures] == [s.signed_at.utcoffset() for s in cert.signatures]


def test_empty_strings_survive(plain: UncefactJson) -> None:
    cert = attrs.evolve(
        minimal_certificate(), type="", remarks="", issue_place="",
        exporter=Party(name="Hanbit Energy Co., Ltd.", country="KR", id=""),
        transport=TransportDetails(mode="", means="", loading_place=""),
    )
    assert plain.parse(plain.render(cert)) == cert


def test_output_is_compact_utf8(plain: UncefactJson) -> None:
    cert = attrs.evolve(minimal_certificate(), remarks="原产地证书 — 원산지증명서")
    body = plain.render(cert)
    assert "原产地证书 — 원산지증명서".encode() in body
    assert b"\n" not in body and b": " not in body


# --------------------------------------------------------------------------- (c) schema errors with paths


def test_schema_errors_name_every_path(checked: UncefactJson) -> None:
    doc = document(checked, rich_certificate())
    doc["exchangedDocument"]["id"] = 42
    doc["exchangedDocument"]["typeCode"]["content"] = "861"
    doc["exchangedDocument"]["remark"] = "not an extension"
    product = doc["specifiedConsignment"][0]["includedConsignmentItem"][2]["includedTradeLineItem"][0]["specifiedTradeProduct"][0]
    product["originTradeCountry"] = [{"id": [{"content": "KR"}]}]  # the D23B code list holds only DE
    del doc["specifiedConsignment"][0]["includedConsignmentItem"][0]["includedTradeLineItem"][0]["physicalReferencedLogisticsPackage"][0]["levelCode"]
    lines = problems(checked, doc)
    item = "$.specifiedConsignment[0].includedConsignmentItem"
    assert lines == [
        "$.exchangedDocument.id: expected object, got the number 42",
        "$.exchangedDocument.remark: not a member of this element (extensions are named x-...)",
        "$.exchangedDocument.typeCode.content: '861' is not in the code list ('864')",
        f"{item}[0].includedTradeLineItem[0].physicalReferencedLogisticsPackage[0].levelCode: required field is missing",
        f"{item}[2].includedTradeLineItem[0].specifiedTradeProduct[0].originTradeCountry[0].id[0].content: 'KR' is not in the code list ('DE')",
    ]


def test_schema_errors_are_capped(checked: UncefactJson) -> None:
    doc = document(checked, sample_certificate(items=30))
    for consignment_item in doc["specifiedConsignment"][0]["includedConsignmentItem"]:
        consignment_item["id"] = "one"
    lines = problems(checked, doc)
    assert len(lines) == 20
    assert lines[0] == "$.specifiedConsignment[0].includedConsignmentItem[0].id: expected array, got the string 'one'"
    assert lines[-1] == "... and 11 more problems"


def test_too_many_consignments_is_a_short_message(checked: UncefactJson) -> None:
    doc = document(checked, minimal_certificate())
    doc["specifiedConsignment"].append(doc["specifiedConsignment"][0])
    assert problems(checked, doc) == ["$.specifiedConsignment: holds 2 elements, at most 1 allowed"]


def test_model_errors_point_at_the_wire_path(checked: UncefactJson, plain: UncefactJson) -> None:
    doc = document(plain, rich_certificate())
    line = doc["specifiedConsignment"][0]["includedConsignmentItem"][1]["includedTradeLineItem"][0]
    line["specifiedTradeProduct"][0]["designatedProductClassification"][0]["classCode"]["content"] = "8708.99"
    line["x-fobValue"]["currencyId"] = "EURO"
    doc["specifiedConsignment"][0]["consignee"]["x-countryId"] = "ZZ"
    doc["exchangedDocument"]["x-validUntil"] = "2020-01-01"
    where = "$.specifiedConsignment[0].includedConsignmentItem[1].includedTradeLineItem[0]"
    expected = [
        "$.specifiedConsignment[0].consignee['x-countryId']: 'ZZ' is not an ISO 3166-1 alpha-2 country code",
        f"{where}.specifiedTradeProduct[0].designatedProductClassification[0].classCode.content: '8708.99' is not an HS code (6, 8 or 10 digits, no dots)",
    ]
    for fmt in (checked, plain):
        assert problems(fmt, doc) == expected  # the model checks items before the certificate
    del doc["specifiedConsignment"][0]["consignee"]["x-countryId"]
    line["specifiedTradeProduct"][0]["designatedProductClassification"][0]["classCode"]["content"] = "870899"
    assert problems(plain, doc) == [
        "$.specifiedConsignment[0].consignee['x-countryId']: required field is missing",
        f"{where}['x-fobValue'].currencyId: 'EURO' is not an ISO 4217 currency code",
    ]
    doc["specifiedConsignment"][0]["consignee"]["x-countryId"] = "CN"
    line["x-fobValue"]["currencyId"] = "EUR"
    assert problems(plain, doc) == ["$.exchangedDocument['x-validUntil']: 2020-01-01 is before issue_date 2026-03-16"]


# --------------------------------------------------------------------------- (d) bad input


@pytest.mark.parametrize("fmt_name", ["checked", "plain"])
def test_bad_input_is_a_certificate_error(fmt_name: str, request: pytest.FixtureRequest) -> None:
    fmt: UncefactJson = request.getfixturevalue(fmt_name)
    (line,) = problems(fmt, b"{not json")
    assert line.startswith("$: not valid JSON (Expecting property name")
    assert problems(fmt, b"[1, 2]") == ["$: expected a JSON object (a UN/CEFACT Preferential CoO document), got an array"]
    assert problems(fmt, b'{"exchangedDocument": NaN}') == ["$: not valid JSON (NaN is not a JSON number)"]
    assert problems(fmt, b"[" * 100_000) == ["$: not valid JSON (nested too deeply)"]
    assert problems(fmt, b"\xff\xfe{")[0].startswith("$: not valid JSON (")
    assert problems(fmt, b"{}") == ["$.exchangedDocument: required field is missing", "$.specifiedConsignment: required field is missing"]

    doc = document(fmt, minimal_certificate())
    del doc["exchangedDocument"]["id"]
    assert problems(fmt, doc) == ["$.exchangedDocument.id: required field is missing"]


def test_oversized_input_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SCHEMA_ENV, raising=False)
    small = UncefactJson(Options(max_bytes=1000))
    assert problems(small, b" " * 1001) == ["$: message of 1001 bytes exceeds the limit of 1000 bytes"]
    assert UncefactJson().options.max_bytes == 5_000_000
    assert len(problems(UncefactJson(), b"{" * 5_000_001)) == 1


def test_structural_check_without_schema(plain: UncefactJson) -> None:
    doc = document(plain, rich_certificate())
    consignment = doc["specifiedConsignment"][0]
    consignment["consignor"] = "https://example.org/parties/hanbit"
    consignment["includedConsignmentItem"][0]["includedTradeLineItem"].append({})
    consignment["includedConsignmentItem"][1]["includedTradeLineItem"][0]["physicalReferencedLogisticsPackage"][0]["itemQuantity"]["content"] = "2.5"
    consignment["includedConsignmentItem"][2]["id"] = [{"content": "third"}]
    doc["exchangedDocument"]["x-signatures"][0]["signedAt"] = "2026-03-16T09:30:00"
    doc["exchangedDocument"]["issueDateTime"] = "16 March 2026"
    items = "$.specifiedConsignment[0].includedConsignmentItem"
    assert problems(plain, doc) == [
        "$.exchangedDocument['x-signatures'][0].signedAt: '2026-03-16T09:30:00' has no time zone offset",
        "$.specifiedConsignment[0].consignor: URI references are not followed; give the object inline",
        f"{items}[0].includedTradeLineItem: holds 2 elements; ibb maps exactly one here",
        f"{items}[1].includedTradeLineItem[0].physicalReferencedLogisticsPackage[0].itemQuantity.content: 2.5 packages: a package count is a whole number",
        f"{items}[2].id[0].content: 'third' is not a goods item sequence number",
        "$.exchangedDocument.issueDateTime: '16 March 2026' is not an ISO date-time (YYYY-MM-DDThh:mm:ss+hh:mm)",
    ]


def _mutations(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value in a document."""
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _mutations(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _mutations(value, (*path, i))


@pytest.mark.parametrize("fmt_name", ["checked", "plain"])
def test_no_other_exception_escapes(fmt_name: str, request: pytest.FixtureRequest) -> None:
    """Each value of a document replaced by each wrong kind of value, and each key removed."""
    fmt: UncefactJson = request.getfixturevalue(fmt_name)
    cert = attrs.evolve(rich_certificate(), items=rich_certificate().items[:1], producers=rich_certificate().producers[:1])
    original = document(fmt, cert)
    paths = [p for p in _mutations(original) if p]
    replacements: list[Any] = [None, 42, -1.5, True, "", "x", [], [{}], {}, {"content": 7}]
    outcomes = {"parsed": 0, "refused": 0}
    for path in paths:
        for replacement in [*replacements, KeyError]:
            doc = copy.deepcopy(original)
            parent = doc
            for key in path[:-1]:
                parent = parent[key]
            if replacement is KeyError:
                if not isinstance(parent, dict):
                    continue
                del parent[path[-1]]
            else:
                parent[path[-1]] = replacement
            try:
                fmt.parse(json.dumps(doc).encode())
                outcomes["parsed"] += 1
            except CertificateError as exc:
                assert exc.problems and all(p.startswith("$") for p in exc.problems), exc.problems
                outcomes["refused"] += 1
    assert outcomes["refused"] > outcomes["parsed"] > 0


# --------------------------------------------------------------------------- (e) a document written by others


HAND_WRITTEN = """
{
  "exchangedDocument": {
    "id": {"content": "KR-2026-007001"},
    "typeCode": {"content": "864"},
    "issueDateTime": "2026-04-02T08:45:00+09:00",
    "issuer": {
      "id": [{"content": "KCCI"}],
      "x-name": "Korea Chamber of Commerce and Industry",
      "x-countryId": "KR"
    },
    "firstSignatoryDocumentAuthentication": {
      "issueLogisticsLocation": {"id": [{"content": "Incheon"}]}
    },
    "x-validUntil": "2027-04-01"
  },
  "specifiedConsignment": [
    {
      "consignor": {
        "id": [{"content": "KR-BRN-1208155555"}],
        "x-name": "Seohae Marine Products Co.",
        "x-countryId": "KR",
        "x-postalTradeAddress": {"countryId": "KR", "cityName": "Incheon"}
      },
      "consignee": {"x-name": "Qingdao Ocean Foods Ltd.", "x-countryId": "CN"},
      "associated": [{"x-name": "Seohae Fisheries Cooperative", "x-countryId": "KR"}],
      "applicableCrossBorderRegulatoryProcedure": [
        {"freeTradeAgreementName": {"content": "Korea-China FTA", "languageId": "en"}}
      ],
      "mainCarriageLogisticsTransportMovement": [
        {
          "modeCode": {"content": "1"},
          "id": {"content": "0815E"},
          "usedLogisticsTransportMeans": {"name": {"content": "SINOKOR QINGDAO"}}
        }
      ],
      "loadingLogisticsLocation": {"id": [{"content": "KRINC"}]},
      "unloadingLogisticsLocation": {"id": [{"content": "CNTAO"}]},
      "includedConsignmentItem": [
        {
          "includedTradeLineItem": [
            {
              "specifiedTradeProduct": [
                {
                  "designatedProductClassification": [{"classCode": {"content": "030389", "listAgencyId": "1"}}],
                  "originTradeCountry": ["https://vocabulary.uncefact.org/CountryId#KR"],
                  "x-description": "Frozen hairtail fish, whole",
                  "x-originCriterion": "WO"
                }
              ],
              "physicalReferencedLogisticsPackage": [
                {
                  "itemQuantity": {"content": "480"},
                  "levelCode": {"content": "1"},
                  "typeCode": {"content": "SS"},
                  "physicalLogisticsShippingMarks": [{"marking": [{"content": "SEOHAE/QD/1-480"}]}]
                }
              ],
              "x-fobValue": {"content": "38400.00", "currencyId": "USD"}
            }
          ],
          "x-grossWeightMeasure": {"content": "12350.5", "unitCode": "KGM"}
        }
      ],
      "x-exportCountryId": "KR",
      "x-importCountryId": "CN"
    }
  ]
}
"""


def expected_hand_written() -> Certificate:
    return Certificate(
        id="KR-2026-007001",
        type="preferential",  # typeCode 864 without x-certificateType
        agreement="Korea-China FTA",
        issue_date=dt.date(2026, 4, 2),  # the date where it was written (+09:00), not in UTC
        issue_place="Incheon",
        valid_until=dt.date(2027, 4, 1),
        exporter=Party(name="Seohae Marine Products Co.", country="KR", id="KR-BRN-1208155555", address=Address(country="KR", city="Incheon")),
        importer=Party(name="Qingdao Ocean Foods Ltd.", country="CN"),
        issuing_authority=Party(name="Korea Chamber of Commerce and Industry", country="KR", id="KCCI"),
        producers=(Party(name="Seohae Fisheries Cooperative", country="KR"),),
        export_country="KR",
        import_country="CN",
        transport=TransportDetails(mode="1", means="SINOKOR QINGDAO", loading_place="KRINC", discharge_place="CNTAO"),
        items=(
            GoodsItem(
                sequence=1,  # no consignment item id: its position
                hs_code="030389", description="Frozen hairtail fish, whole", origin_criterion="WO", origin_country="KR",
                package_count=480, package_kind="SS", marks="SEOHAE/QD/1-480",
                gross_mass_kg=Decimal("12350.5"), fob_value=Decimal("38400.00"), currency="USD",
            ),
        ),
    )  # status: the model's default "draft"


def test_hand_written_document_is_valid_and_parses(published: Draft202012Validator, checked: UncefactJson) -> None:
    doc = json.loads(HAND_WRITTEN)
    assert [e.message for e in published.iter_errors(doc)] == []
    cert = checked.parse(HAND_WRITTEN.encode())
    assert cert == expected_hand_written()
    assert cert.status == "draft"


def test_hand_written_variants_read_by_the_structural_check(plain: UncefactJson) -> None:
    doc = json.loads(HAND_WRITTEN)
    assert plain.parse(HAND_WRITTEN.encode()) == expected_hand_written()
    # the structured country form (refused by the D23B code list, which holds only DE)
    product = doc["specifiedConsignment"][0]["includedConsignmentItem"][0]["includedTradeLineItem"][0]["specifiedTradeProduct"][0]
    product["originTradeCountry"] = [{"id": [{"content": "CN"}]}]
    # the movement id stands for the means when no means is named
    del doc["specifiedConsignment"][0]["mainCarriageLogisticsTransportMovement"][0]["usedLogisticsTransportMeans"]
    cert = plain.parse(json.dumps(doc).encode())
    assert cert.items[0].origin_country == "CN"
    assert cert.transport == TransportDetails(mode="1", means="0815E", loading_place="KRINC", discharge_place="CNTAO")
    product["originTradeCountry"] = ["https://example.org/countries/korea"]
    assert problems(plain, doc) == [
        "$.specifiedConsignment[0].includedConsignmentItem[0].includedTradeLineItem[0].specifiedTradeProduct[0].originTradeCountry[0]: "
        "'https://example.org/countries/korea' is not a country reference like 'https://vocabulary.uncefact.org/CountryId#KR'"
    ]


def test_document_without_our_extensions_says_what_is_missing(plain: UncefactJson) -> None:
    """A document using only standard elements lacks what the D23B schema has no slot for."""
    doc = json.loads(HAND_WRITTEN)

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if not k.startswith("x-")}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    sc = "$.specifiedConsignment[0]"
    product = f"{sc}.includedConsignmentItem[0].includedTradeLineItem[0].specifiedTradeProduct[0]"
    assert problems(plain, strip(doc)) == [
        "$.exchangedDocument.issuer['x-name']: required field is missing",
        "$.exchangedDocument.issuer['x-countryId']: required field is missing",
        f"{sc}.consignor['x-name']: required field is missing",
        f"{sc}.consignor['x-countryId']: required field is missing",
        f"{sc}.consignee['x-name']: required field is missing",
        f"{sc}.consignee['x-countryId']: required field is missing",
        f"{sc}.associated[0]['x-name']: required field is missing",
        f"{sc}.associated[0]['x-countryId']: required field is missing",
        f"{product}['x-description']: required field is missing",
        f"{product}['x-originCriterion']: required field is missing",
        "$.exchangedDocument['x-validUntil']: required field is missing",
        f"{sc}['x-exportCountryId']: required field is missing",
        f"{sc}['x-importCountryId']: required field is missing",
    ]


# --------------------------------------------------------------------------- schema handling


def test_schema_from_environment_and_missing_schema_file(schema_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(SCHEMA_ENV, str(schema_file))
    assert UncefactJson().validator is not None
    monkeypatch.delenv(SCHEMA_ENV)
    assert UncefactJson().validator is None
    missing = tmp_path / "nope.json"
    with pytest.raises(CertificateError) as info:
        UncefactJson(Options(schema=str(missing)))
    assert info.value.problems == (f"schema file not found: {missing}",)
    monkeypatch.setenv(SCHEMA_ENV, str(missing))
    with pytest.raises(CertificateError, match="schema file not found"):
        UncefactJson()
    broken = tmp_path / "broken.json"
    broken.write_text('{"properties": {"exchangedDocument": {"type": 12}}}')
    with pytest.raises(CertificateError, match="not a JSON Schema 2020-12"):
        UncefactJson(Options(schema=str(broken)))
    broken.write_text(json.dumps({"id": "KR-2026-000001", "items": []}))
    with pytest.raises(CertificateError, match="not a UN/CEFACT document schema"):
        UncefactJson(Options(schema=str(broken)))
    broken.write_text("{")
    with pytest.raises(CertificateError, match="cannot be read as JSON"):
        UncefactJson(Options(schema=str(broken)))


def test_compiled_schema_accepts_and_refuses_what_the_published_one_does(published: Draft202012Validator, checked: UncefactJson) -> None:
    compiled = Draft202012Validator(compile_schema(published.schema))
    docs = [document(checked, make()) for make in (rich_certificate, minimal_certificate, edge_certificate)]
    docs.append(json.loads(HAND_WRITTEN))
    base = document(checked, attrs.evolve(rich_certificate(), items=rich_certificate().items[:1]))
    for path in [p for p in _mutations(base) if p]:
        for replacement in (7, "x", {}, {"content": "DE"}):
            doc = copy.deepcopy(base)
            parent = doc
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = replacement
            docs.append(doc)
    extra = copy.deepcopy(base)
    extra["specifiedConsignment"][0]["associated"] = [{"id": [{"content": "P1", "schemeAgencyId": "9"}]}]
    docs.append(extra)
    verdicts = [(published.is_valid(d), compiled.is_valid(d)) for d in docs]
    assert [i for i, (a, b) in enumerate(verdicts) if a != b] == []
    assert any(a for a, _ in verdicts) and not all(a for a, _ in verdicts)


def test_decimal_pattern_replacement_is_equivalent_and_linear(checked: UncefactJson) -> None:
    original = re.compile(r"^([+-]?(0?|[1-9][0-9]*)(\.?\d+))$")
    (linear,) = [re.compile(p) for o, p in _LINEAR_PATTERNS.items() if o == original.pattern]
    for n in range(7):
        for chars in itertools.product("01.+-x", repeat=n):
            text = "".join(chars)
            assert bool(original.search(text)) == bool(linear.search(text)), text

    doc = document(checked, minimal_certificate())
    doc["specifiedConsignment"][0]["includedConsignmentItem"][0]["includedTradeLineItem"][0]["physicalReferencedLogisticsPackage"] = [
        {"itemQuantity": {"content": "1" * 1_000_000 + "x"}, "levelCode": {"content": "1"}}
    ]
    started = time.perf_counter()
    (line,) = problems(checked, doc)
    assert time.perf_counter() - started < 5  # the published pattern would take hours
    assert line == (
        "$.specifiedConsignment[0].includedConsignmentItem[0].includedTradeLineItem[0].physicalReferencedLogisticsPackage[0]"
        ".itemQuantity.content: '1111111111111111111111111111111111111...' does not match the pattern "
        r"^([+-]?(0?|[1-9][0-9]*)(\.?\d+))$"
    )


def test_hook_registers_the_format() -> None:
    registered: dict[str, Any] = {}
    ibb_register_formats(register=lambda name, cls: registered.__setitem__(name, cls))
    assert registered == {"uncefact-json": UncefactJson}
    assert (UncefactJson.name, UncefactJson.content_type, UncefactJson.Options) == ("uncefact-json", "application/json", Options)
    assert not getattr(UncefactJson, "supports_signatures", False)
