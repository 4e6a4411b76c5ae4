"""The ``wco-eco-xml`` format: the canonical e-CO model as XML, schema-checked, with enveloped signatures.

The document (namespace ``urn:ibb:wco-eco-xml:1``, schema ``wco-eco-xml-1.xsd`` shipped
beside this module) has one element per canonical field, in model order, so render and
parse round-trip every field losslessly::

    <eco:CertificateOfOrigin Id="ibb-certificate" version="1">
      <eco:Content Id="ibb-content">          id, type, agreement, dates, countries, parties,
        …                                     producers, transport, goods items, remarks,
        <eco:ExporterDeclaration>…            exporter's declaration
        <ds:Signature Id="ibb-sig-exporter">  exporter: enveloped, over #ibb-content
      </eco:Content>
      <eco:Certification>…                    the issuing authority's certification
      <eco:SignatureRecord>…                  the model's ``signatures`` (who signed, when)
      <ds:Signature Id="ibb-sig-issuing-authority">   official: enveloped, over #ibb-certificate
    </eco:CertificateOfOrigin>

The exporter signs the certificate content; the official of the issuing authority then
signs the whole document, exporter signature included. The issuing authority's ``id``
(``Content/IssuingAuthority/ID``) names the issuing entity in the trust list.

Options (``[data_cluster.options]``): those of :class:`ibb.core.xmldsig.SignatureOptions`
(``trust_list``, ``signature_methods``, ``digest_methods``, ``allow_sha1``,
``key_passwords``, ``max_bytes``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
from lxml import etree

from ibb.core.errors import CertificateError
from ibb.core.model import Certificate, certificate_from_dict, certificate_to_dict
from ibb.core.xml import load_schema, schema_problems
from ibb.core.xmldsig import DS, SignatureOptions, SignedXmlFormat, Slot

NS = "urn:ibb:wco-eco-xml:1"
HERE = Path(__file__).resolve().parent
SCHEMA = HERE / "wco-eco-xml-1.xsd"

Spec = list[tuple[str, str, Any]]
"""(canonical JSON key, element local name, kind): kind is "text", "int", a nested Spec, or ("many", Spec)."""

ADDRESS: Spec = [("line", "Line", "text"), ("city", "City", "text"), ("postcode", "Postcode", "text"), ("country", "Country", "text")]
PARTY: Spec = [("name", "Name", "text"), ("id", "ID", "text"), ("country", "Country", "text"), ("address", "Address", ADDRESS)]
TRANSPORT: Spec = [("mode", "Mode", "text"), ("means", "Means", "text"), ("departure_date", "DepartureDate", "text"),
                   ("loading_place", "LoadingPlace", "text"), ("discharge_place", "DischargePlace", "text")]
DECLARATION: Spec = [("place", "Place", "text"), ("date", "Date", "text"), ("signatory", "Signatory", "text"), ("text", "Text", "text")]
ITEM: Spec = [
    ("sequence", "Sequence", "int"), ("hs_code", "HSCode", "text"), ("description", "Description", "text"),
    ("origin_criterion", "OriginCriterion", "text"), ("origin_country", "OriginCountry", "text"),
    ("package_count", "PackageCount", "int"), ("package_kind", "PackageKind", "text"), ("marks", "Marks", "text"),
    ("quantity", "Quantity", "text"), ("quantity_unit", "QuantityUnit", "text"), ("gross_mass_kg", "GrossMassKg", "text"),
    ("invoice_number", "InvoiceNumber", "text"), ("invoice_date", "InvoiceDate", "text"), ("fob_value", "FOBValue", "money"),
]
SIGNATURE: Spec = [("role", "Role", "text"), ("signer", "Signer", "text"), ("signed_at", "SignedAt", "text")]
CONTENT: Spec = [
    ("id", "ID", "text"), ("type", "TypeCode", "text"), ("agreement", "Agreement", "text"), ("issue_date", "IssueDate", "text"),
    ("issue_place", "IssuePlace", "text"), ("valid_until", "ValidUntil", "text"), ("status", "Status", "text"),
    ("export_country", "ExportCountry", "text"), ("import_country", "ImportCountry", "text"), ("exporter", "Exporter", PARTY),
    ("importer", "Importer", PARTY), ("issuing_authority", "IssuingAuthority", PARTY), ("producers", "Producer", ("many", PARTY)),
    ("transport", "Transport", TRANSPORT), ("items", "GoodsItem", ("many", ITEM)), ("remarks", "Remarks", "text"),
    ("exporter_declaration", "ExporterDeclaration", DECLARATION),
]
ROOT: Spec = [("certification", "Certification", DECLARATION), ("signatures", "SignatureRecord", ("many", SIGNATURE))]

SLOTS = (
    Slot("exporter", f"{{{NS}}}Content", "ibb-content", f"{{{NS}}}Content", enveloped=True),
    Slot("issuing-authority", ".", "ibb-certificate", ".", enveloped=True),
)


def _q(name: str) -> str:
    return f"{{{NS}}}{name}"


def _write(parent: etree._Element, data: dict[str, Any], spec: Spec) -> None:
    for key, name, kind in spec:
        value = data.get(key)
        if value is None:
            continue
        if isinstance(kind, tuple):
            for entry in value:
                _write(etree.SubElement(parent, _q(name)), entry, kind[1])
        elif isinstance(kind, list):
            _write(etree.SubElement(parent, _q(name)), value, kind)
        elif kind == "money":
            el = etree.SubElement(parent, _q(name), currency=data["currency"])
            el.text = str(value)
        else:
            etree.SubElement(parent, _q(name)).text = str(value)


def _read(parent: etree._Element, spec: Spec, out: dict[str, Any]) -> dict[str, Any]:
    by_name = {name: (key, kind) for key, name, kind in spec}
    for child in parent:
        if not isinstance(child.tag, str) or not child.tag.startswith(f"{{{NS}}}"):
            continue  # ds:Signature
        if etree.QName(child).localname not in by_name:
            continue  # Content, read on its own
        key, kind = by_name[etree.QName(child).localname]
        if isinstance(kind, tuple):
            out.setdefault(key, []).append(_read(child, kind[1], {}))
        elif isinstance(kind, list):
            out[key] = _read(child, kind, {})
        elif kind == "int":
            out[key] = int(child.text or "0")
        elif kind == "money":
            out[key], out["currency"] = child.text or "", child.get("currency")
        else:
            out[key] = child.text or ""
    return out


def to_xml(cert: Certificate) -> etree._Element:
    """The document for a certificate (unsigned)."""
    data = certificate_to_dict(cert)
    root = etree.Element(_q("CertificateOfOrigin"), nsmap={"eco": NS}, Id="ibb-certificate", version="1")
    content = etree.SubElement(root, _q("Content"), Id="ibb-content")
    _write(content, data, CONTENT)
    _write(root, data, ROOT)
    return root


def from_xml(root: etree._Element) -> Certificate:
    """The certificate in a (schema-valid) document."""
    content = root.find(_q("Content"))
    assert content is not None  # guaranteed by the schema
    data = _read(content, CONTENT, {})
    _read(root, ROOT, data)
    try:
        return certificate_from_dict(data)
    except CertificateError as exc:
        raise CertificateError([f"{p} (canonical field, read from wco-eco-xml)" for p in exc.problems]) from None


@attrs.frozen
class Options(SignatureOptions):
    """``[data_cluster.options]`` of ``wco-eco-xml``: the signature options only."""


class WcoEcoXml(SignedXmlFormat):
    """Certificates as ``wco-eco-xml`` documents; see the module docstring."""

    name = "wco-eco-xml"
    content_type = "application/xml"
    Options = Options

    def slots(self) -> tuple[Slot, ...]:
        return SLOTS

    def schema(self) -> etree.XMLSchema:
        return load_schema(SCHEMA, {"xmldsig-core-schema.xsd": HERE / "xmldsig-core-schema.xsd"})

    def issuing_entity_of(self, root: etree._Element) -> str | None:
        node = root.find(f"{_q('Content')}/{_q('IssuingAuthority')}/{_q('ID')}")
        return node.text if node is not None else None

    def render(self, certificate: Certificate) -> bytes:
        try:
            root = to_xml(certificate)
        except ValueError as exc:  # lxml refuses control characters in text
            raise CertificateError([f"$: cannot be written as XML ({exc})"]) from None
        problems = schema_problems(self.schema(), root)
        if problems:
            raise CertificateError(problems)
        etree.indent(root, space="  ")
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def parse(self, data: bytes) -> Certificate:
        root = self._parse(data)
        if root.tag != _q("CertificateOfOrigin"):
            raise CertificateError([f"$: root element is {root.tag!r}, expected {{{NS}}}CertificateOfOrigin"])
        problems = schema_problems(self.schema(), root)
        if problems:
            raise CertificateError(problems)
        return from_xml(root)


__all__ = ["DS", "NS", "Options", "WcoEcoXml", "from_xml", "to_xml"]
