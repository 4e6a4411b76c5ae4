"""UN/CEFACT PreferentialCoO (D23B) JSON: the canonical certificate on the UN/CEFACT vocabulary.

The D23B snapshot schema is a narrow subset: most code lists admit a single value and
trade parties carry only an ``id``. Every canonical field goes to its UN/CEFACT element
where the schema admits the value, and otherwise to an ``x-`` extension property of the
nearest element (the schema allows ``^x-`` keys on every object):

=============================  =============================================================
canonical                      UN/CEFACT JSON
=============================  =============================================================
id                             exchangedDocument.id.content
(document type)                exchangedDocument.typeCode.content = "864" (UNCL 1001)
issue_date                     exchangedDocument.issueDateTime (midnight UTC)
issue_place                    exchangedDocument.firstSignatoryDocumentAuthentication
                               .issueLogisticsLocation.id[0].content
issuing_authority              exchangedDocument.issuer (id + x-name, x-country, x-address)
type, valid_until, countries,  exchangedDocument.x-ibb {type, validUntil, exportCountry,
remarks, declarations,         importCountry, remarks, exporterDeclaration, certification,
signatures, status             signatures, status}
exporter / importer            specifiedConsignment[0].consignor / .consignee
producers                      specifiedConsignment[0].associated[]
agreement                      specifiedConsignment[0].applicableCrossBorderRegulatoryProcedure
                               [0].freeTradeAgreementName.content
transport.means                ….mainCarriageLogisticsTransportMovement[0]
                               .usedLogisticsTransportMeans.name.content
transport mode, departure      ….mainCarriageLogisticsTransportMovement[0].x-mode, x-departureDate
loading / discharge place      ….loadingLogisticsLocation / unloadingLogisticsLocation .id[0].content
items[].sequence               ….includedConsignmentItem[].id[0].content
items[].hs_code                ….includedTradeLineItem[0].specifiedTradeProduct[0]
                               .designatedProductClassification[0].classCode.content
items[] description, origin    ….specifiedTradeProduct[0].x-description, x-originCountry,
criterion and country          x-originCriterion
package count, marks, kind     ….physicalReferencedLogisticsPackage[0].itemQuantity.content,
                               .physicalLogisticsShippingMarks[0].marking[0].content, x-kind
quantity, gross mass, invoice, ….includedTradeLineItem[0].x-quantity {content, unitCode},
FOB value                      x-grossMassKg, x-invoice {number, date}, x-fob {content, currency}
=============================  =============================================================
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import attrs

from ibb.core.errors import CertificateError
from ibb.core.formats import MessageFormat
from ibb.core.model import Certificate, FieldError, certificate_from_dict, converter

DOCUMENT_TYPE_CODE = "864"


def _positive(instance: Any, attribute: attrs.Attribute, value: int) -> None:
    if value <= 0:
        raise FieldError(attribute.name, f"must be greater than 0 (got {value})")


@attrs.frozen
class Options:
    """``[data_cluster.options]`` of the ``uncefact-json`` format."""

    schema: str | None = None
    """Path of PreferentialCoO_D23B.json; default ``$IBB_UNCEFACT_SCHEMA``; none: structural checks only."""
    max_bytes: int = attrs.field(default=5_000_000, validator=_positive)


@lru_cache(maxsize=4)
def _validator(path: str) -> Any:
    import jsonschema

    try:
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CertificateError([f"UN/CEFACT schema {path} cannot be read: {exc}"]) from None
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


class UncefactJson(MessageFormat):
    name = "uncefact-json"
    content_type = "application/json"
    Options = Options

    def __init__(self, options: Options | None = None):
        super().__init__(options)
        path = self.options.schema or os.environ.get("IBB_UNCEFACT_SCHEMA")
        self.validator = _validator(str(Path(path).expanduser())) if path else None

    def render(self, certificate: Certificate) -> bytes:
        document = to_uncefact(certificate)
        self._validate(document)
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()

    def parse(self, data: bytes) -> Certificate:
        if len(data) > self.options.max_bytes:
            raise CertificateError([f"$: document of {len(data)} bytes exceeds the limit of {self.options.max_bytes}"])
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CertificateError([f"$: not valid JSON ({exc})"]) from None
        if not isinstance(document, dict):
            raise CertificateError(["$: a UN/CEFACT PreferentialCoO document is a JSON object"])
        self._validate(document)
        return from_uncefact(document)

    def _validate(self, document: dict[str, Any]) -> None:
        if self.validator is None:
            return
        errors = sorted(self.validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        if errors:
            lines = [f"{_json_path(e.absolute_path)}: {_short(e.message)} (UN/CEFACT D23B schema)" for e in errors[:20]]
            if len(errors) > 20:
                lines.append(f"… and {len(errors) - 20} more schema errors")
            raise CertificateError(lines)


def _json_path(parts: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _short(message: str) -> str:
    return message if len(message) <= 200 else message[:200] + "…"


# -- model -> UN/CEFACT ----------------------------------------------------------------------


def _text(value: str) -> dict[str, str]:
    return {"content": value}


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != [] and v != {}}


def _plain(value: Any) -> Any:
    """Canonical JSON form of a model value (dates and decimals as strings, no empty fields)."""
    raw = converter.unstructure(value)
    if isinstance(raw, dict):
        return _drop_none(raw)
    return raw


def _party(party: Any) -> dict[str, Any]:
    return _drop_none(
        {
            "id": [_text(party.id)] if party.id else None,
            "x-name": party.name,
            "x-country": party.country,
            "x-address": _plain(party.address) if party.address else None,
        }
    )


def _location(name: str | None) -> dict[str, Any] | None:
    return {"id": [_text(name)]} if name else None


def _item(item: Any) -> dict[str, Any]:
    product = _drop_none(
        {
            "designatedProductClassification": [{"classCode": _text(item.hs_code)}],
            "x-description": item.description,
            "x-originCriterion": item.origin_criterion,
            "x-originCountry": item.origin_country,
        }
    )
    package = None
    if item.package_count is not None or item.marks or item.package_kind:
        package = _drop_none(
            {
                "itemQuantity": {"content": str(item.package_count if item.package_count is not None else 0)},
                "levelCode": {"content": "1"},
                "physicalLogisticsShippingMarks": [{"marking": [_text(item.marks)]}] if item.marks else None,
                "x-kind": item.package_kind,
                "x-countGiven": item.package_count is not None,
            }
        )
    line = _drop_none(
        {
            "specifiedTradeProduct": [product],
            "physicalReferencedLogisticsPackage": [package] if package else None,
            "x-quantity": _drop_none({"content": str(item.quantity), "unitCode": item.quantity_unit}) if item.quantity is not None else None,
            "x-grossMassKg": str(item.gross_mass_kg) if item.gross_mass_kg is not None else None,
            "x-invoice": _drop_none({"number": item.invoice_number, "date": item.invoice_date.isoformat() if item.invoice_date else None}) or None,
            "x-fob": {"content": str(item.fob_value), "currency": item.currency} if item.fob_value is not None else None,
        }
    )
    return {"id": [_text(str(item.sequence))], "includedTradeLineItem": [line]}


def to_uncefact(cert: Certificate) -> dict[str, Any]:
    """The UN/CEFACT PreferentialCoO JSON document for a certificate."""
    t = cert.transport
    movement = None
    if t is not None and (t.means or t.mode or t.departure_date):
        movement = _drop_none(
            {
                "usedLogisticsTransportMeans": {"name": _text(t.means)} if t.means else None,
                "x-mode": t.mode,
                "x-departureDate": t.departure_date.isoformat() if t.departure_date else None,
            }
        )
    consignment = _drop_none(
        {
            "consignor": _party(cert.exporter),
            "consignee": _party(cert.importer),
            "associated": [_party(p) for p in cert.producers],
            "applicableCrossBorderRegulatoryProcedure": [{"freeTradeAgreementName": _text(cert.agreement)}],
            "mainCarriageLogisticsTransportMovement": [movement] if movement else None,
            "loadingLogisticsLocation": _location(t.loading_place) if t else None,
            "unloadingLogisticsLocation": _location(t.discharge_place) if t else None,
            "includedConsignmentItem": [_item(i) for i in cert.items],
            "x-transportGiven": t is not None,
        }
    )
    extension = _drop_none(
        {
            "type": cert.type,
            "validUntil": cert.valid_until.isoformat(),
            "exportCountry": cert.export_country,
            "importCountry": cert.import_country,
            "remarks": cert.remarks,
            "exporterDeclaration": _plain(cert.exporter_declaration) if cert.exporter_declaration else None,
            "certification": _plain(cert.certification) if cert.certification else None,
            "signatures": [_plain(s) for s in cert.signatures],
            "status": cert.status,
        }
    )
    document = {
        "id": _text(cert.id),
        "typeCode": {"content": DOCUMENT_TYPE_CODE},
        "issueDateTime": f"{cert.issue_date.isoformat()}T00:00:00Z",
        "firstSignatoryDocumentAuthentication": {"issueLogisticsLocation": _location(cert.issue_place)},
        "issuer": _party(cert.issuing_authority),
        "x-ibb": extension,
    }
    return {"exchangedDocument": document, "specifiedConsignment": [consignment]}


# -- UN/CEFACT -> model ----------------------------------------------------------------------


class _Reader:
    """Reads required and optional values by path, naming the path of whatever is missing."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def get(self, obj: Any, path: str, *keys: Any, required: bool = True, kind: type = str) -> Any:
        current, where = obj, path
        for key in keys:
            where += f"[{key}]" if isinstance(key, int) else f".{key}"
            if isinstance(key, int):
                ok = isinstance(current, list) and len(current) > key
            else:
                ok = isinstance(current, dict) and key in current
            if not ok:
                if required:
                    self.problems.append(f"{where}: required by ibb, missing")
                return None
            current = current[key]
        if not isinstance(current, kind):
            self.problems.append(f"{where}: expected {kind.__name__}, got {type(current).__name__}")
            return None
        return current


def _party_from(r: _Reader, obj: Any, path: str) -> dict[str, Any]:
    return _drop_none(
        {
            "name": r.get(obj, path, "x-name"),
            "country": r.get(obj, path, "x-country"),
            "id": r.get(obj, path, "id", 0, "content", required=False),
            "address": r.get(obj, path, "x-address", required=False, kind=dict),
        }
    )


def _item_from(r: _Reader, obj: Any, path: str) -> dict[str, Any]:
    line = r.get(obj, path, "includedTradeLineItem", 0, kind=dict) or {}
    lpath = f"{path}.includedTradeLineItem[0]"
    product = r.get(line, lpath, "specifiedTradeProduct", 0, kind=dict) or {}
    ppath = f"{lpath}.specifiedTradeProduct[0]"
    package = r.get(line, lpath, "physicalReferencedLogisticsPackage", 0, required=False, kind=dict)
    kpath = f"{lpath}.physicalReferencedLogisticsPackage[0]"
    sequence = r.get(obj, path, "id", 0, "content")
    quantity = r.get(line, lpath, "x-quantity", required=False, kind=dict) or {}
    invoice = r.get(line, lpath, "x-invoice", required=False, kind=dict) or {}
    fob = r.get(line, lpath, "x-fob", required=False, kind=dict) or {}
    count = None
    if package is not None and package.get("x-countGiven", True):
        count = r.get(package, kpath, "itemQuantity", "content")
    return _drop_none(
        {
            "sequence": int(sequence) if sequence is not None and sequence.isdigit() else sequence,
            "hs_code": r.get(product, ppath, "designatedProductClassification", 0, "classCode", "content"),
            "description": r.get(product, ppath, "x-description"),
            "origin_criterion": r.get(product, ppath, "x-originCriterion"),
            "origin_country": r.get(product, ppath, "x-originCountry"),
            "package_count": int(count) if count is not None and count.isdigit() else count,
            "package_kind": r.get(package, kpath, "x-kind", required=False) if package else None,
            "marks": r.get(package, kpath, "physicalLogisticsShippingMarks", 0, "marking", 0, "content", required=False) if package else None,
            "quantity": quantity.get("content"),
            "quantity_unit": quantity.get("unitCode"),
            "gross_mass_kg": r.get(line, lpath, "x-grossMassKg", required=False),
            "invoice_number": invoice.get("number"),
            "invoice_date": invoice.get("date"),
            "fob_value": fob.get("content"),
            "currency": fob.get("currency"),
        }
    )


def from_uncefact(document: dict[str, Any]) -> Certificate:
    """The certificate in a UN/CEFACT PreferentialCoO JSON document (already schema-checked if configured)."""
    r = _Reader()
    doc = r.get(document, "$", "exchangedDocument", kind=dict) or {}
    dpath = "$.exchangedDocument"
    cons = r.get(document, "$", "specifiedConsignment", 0, kind=dict) or {}
    cpath = "$.specifiedConsignment[0]"
    ext = r.get(doc, dpath, "x-ibb", kind=dict) or {}
    epath = f"{dpath}.x-ibb"
    issued = r.get(doc, dpath, "issueDateTime")
    movement = r.get(cons, cpath, "mainCarriageLogisticsTransportMovement", 0, required=False, kind=dict) or {}
    mpath = f"{cpath}.mainCarriageLogisticsTransportMovement[0]"
    transport = None
    if cons.get("x-transportGiven", False):
        transport = _drop_none(
            {
                "mode": r.get(movement, mpath, "x-mode", required=False),
                "means": r.get(movement, mpath, "usedLogisticsTransportMeans", "name", "content", required=False),
                "departure_date": r.get(movement, mpath, "x-departureDate", required=False),
                "loading_place": r.get(cons, cpath, "loadingLogisticsLocation", "id", 0, "content", required=False),
                "discharge_place": r.get(cons, cpath, "unloadingLogisticsLocation", "id", 0, "content", required=False),
            }
        )
    items = r.get(cons, cpath, "includedConsignmentItem", kind=list) or []
    producers = r.get(cons, cpath, "associated", required=False, kind=list) or []
    data = _drop_none(
        {
            "id": r.get(doc, dpath, "id", "content"),
            "type": r.get(ext, epath, "type"),
            "agreement": r.get(cons, cpath, "applicableCrossBorderRegulatoryProcedure", 0, "freeTradeAgreementName", "content"),
            "issue_date": issued[:10] if issued else None,
            "issue_place": r.get(doc, dpath, "firstSignatoryDocumentAuthentication", "issueLogisticsLocation", "id", 0, "content"),
            "valid_until": r.get(ext, epath, "validUntil"),
            "exporter": _party_from(r, r.get(cons, cpath, "consignor", kind=dict) or {}, f"{cpath}.consignor"),
            "importer": _party_from(r, r.get(cons, cpath, "consignee", kind=dict) or {}, f"{cpath}.consignee"),
            "issuing_authority": _party_from(r, r.get(doc, dpath, "issuer", kind=dict) or {}, f"{dpath}.issuer"),
            "export_country": r.get(ext, epath, "exportCountry"),
            "import_country": r.get(ext, epath, "importCountry"),
            "items": [_item_from(r, it, f"{cpath}.includedConsignmentItem[{i}]") for i, it in enumerate(items)],
            "producers": [_party_from(r, p, f"{cpath}.associated[{i}]") for i, p in enumerate(producers)],
            "transport": transport,
            "remarks": r.get(ext, epath, "remarks", required=False),
            "exporter_declaration": r.get(ext, epath, "exporterDeclaration", required=False, kind=dict),
            "certification": r.get(ext, epath, "certification", required=False, kind=dict),
            "signatures": r.get(ext, epath, "signatures", required=False, kind=list),
            "status": r.get(ext, epath, "status", required=False),
        }
    )
    if transport == {} and cons.get("x-transportGiven"):
        data["transport"] = {}
    if r.problems:
        raise CertificateError(r.problems)
    try:
        return certificate_from_dict(data)
    except CertificateError as exc:
        raise CertificateError([f"{line} (canonical field, after mapping from UN/CEFACT)" for line in exc.problems]) from None


__all__ = ["Options", "UncefactJson", "from_uncefact", "to_uncefact"]
