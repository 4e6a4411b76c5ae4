"""The ``aladi-cod`` format: ALADI digital certificates of origin (ALADI/SEC/di 2327 Rev. 13).

The document is what the ALADI XML Schema of the version the profile names defines
(``cod_ver_4.1.0.xsd``, ``cod_ver_1.8.3.xsd``; not shipped with ibb: the profile gives
its path)::

    <tns:Envelope xmlns:tns="http://www.w3.org/2001/12/soap-envelope">
      <tns:CertOrigin>
        <CODEH id="CODEH">
          <CODExporter>
            <COD id="COD"> CODVer, CODSubmitterType, Agreement, Form<X> (the agreement's form) </COD>
            <ds:Signature>   exporter: over #COD (a sibling, not enveloped)
          </CODExporter>
          <EH> the issuing entity (EHId …) </EH>
          <CertificationEH> CertificateDate, CertificateID </CertificationEH>
        </CODEH>
        <ds:Signature>       official of the issuing entity: over #CODEH, exporter signature included
      </tns:CertOrigin>
    </tns:Envelope>

Each agreement has its own form (``FormA18``, ``FormA14``, ``FormR252`` …) with its own
elements and order. ibb writes a form by walking the schema's content model of that
form and filling each element it has a value for (table ``WRITERS``); a required element
without a value is an error naming the canonical field to fill. The schema's import of
the W3C xmldsig schema (an ``http://`` URL) resolves to ``xmldsig-core-schema.xsd``
shipped beside this module: no network.

Options (``[data_cluster.options]``), besides the signature options of
:class:`ibb.core.xmldsig.SignatureOptions`:

- ``xsd`` (path, required): the ALADI schema file; its version is the ``CODVer`` written;
- ``agreement``: the agreement acronym (``AgreementAcronym``, e.g. ``A18``);
- ``form``: the form element (``FormA18``);
- ``submitter_type``: ``EXP`` (exporter, default), ``REP`` or ``APO``;
- ``eh_url``: the issuing entity's web site (``EHURL``, required by the schema);
- ``currency``: currency of FOB values (default ``USD``, as ALADI forms state values in dollars);
- ``validity_days``: when the form has no final date, ``valid_until`` read back is issue date + this.

What a COD cannot carry (lost on render, rebuilt on parse as shown): certificate ``type``
(read back as the form name), ``issue_place`` (read back as ``EHCityLocality``),
``valid_until`` (except forms with ``CertificateFinalDate``), ``status`` (``draft``),
``transport.mode``/``departure_date``/``discharge_place``, item ``package_*``, ``marks``,
``gross_mass_kg``, ``invoice_date`` on forms without it, the exporter declaration's
place, the certification's place/signatory/text, postcodes, and the ``signatures``
records (the XML signatures themselves are the record). HS codes are written with dots
(``8507.60``) and read back as digits.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from lxml import etree

from ibb.core.errors import CertificateError
from ibb.core.model import FieldError, certificate_from_dict
from ibb.core.model import Certificate
from ibb.core.xml import load_schema
from ibb.core.xmldsig import SignatureOptions, SignedXmlFormat, Slot

TNS = "http://www.w3.org/2001/12/soap-envelope"
XS = "http://www.w3.org/2001/XMLSchema"
XMLDSIG_SCHEMA_URL = "http://www.w3.org/TR/2002/REC-xmldsig-core-20020212/xmldsig-core-schema.xsd"
HERE = Path(__file__).resolve().parent
XMLDSIG_SCHEMA = HERE / "xmldsig-core-schema.xsd"

SLOTS = (
    Slot("exporter", f"{{{TNS}}}CertOrigin/CODEH/CODExporter/COD", "COD", f"{{{TNS}}}CertOrigin/CODEH/CODExporter",
         after="COD", id_attribute="id"),
    Slot("issuing-authority", f"{{{TNS}}}CertOrigin/CODEH", "CODEH", f"{{{TNS}}}CertOrigin", after="CODEH", id_attribute="id"),
)


def _choice(values: tuple[str, ...]) -> Any:
    def check(instance: Any, attribute: attrs.Attribute, value: str) -> None:
        if value not in values:
            raise FieldError(attribute.name, f"{value!r} is not one of {', '.join(values)}")
    return check


def _form(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not re.fullmatch(r"Form[A-Z]\d+", value):
        raise FieldError(attribute.name, f"{value!r} is not an ALADI form element name like 'FormA18'")


@attrs.frozen
class Options(SignatureOptions):
    """``[data_cluster.options]`` of ``aladi-cod``."""

    xsd: Path | None = None
    """The ALADI COD schema file (``cod_ver_4.1.0.xsd``); its version is written as CODVer."""
    agreement: str = "A18"
    """Agreement acronym (``AgreementAcronym``), one of the schema's ``Acronyms``."""
    form: str = attrs.field(default="FormA18", validator=_form)
    """The agreement's form element (``FormA18`` …)."""
    submitter_type: str = attrs.field(default="EXP", validator=_choice(("EXP", "REP", "APO")))
    eh_url: str = "https://www.aladi.org"
    """The issuing entity's web site (``EHURL``)."""
    currency: str = "USD"
    validity_days: int = attrs.field(default=180, validator=attrs.validators.gt(0))


# -- the schema's content model ------------------------------------------------------------


@attrs.frozen
class Decl:
    name: str
    min: int
    max: int | None
    """None: unbounded."""
    children: tuple[Decl, ...] | None
    """None for a simple element."""
    base: str = ""
    """Built-in type of a simple element (``dateTime``, ``decimal`` …) and its fraction digits."""
    fraction_digits: int | None = None


class _Model:
    """The element tree of one form, read from the ALADI schema (named and anonymous types)."""

    def __init__(self, xsd: Path):
        doc = etree.parse(str(xsd), etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
        self.root = doc.getroot()
        q = f"{{{XS}}}"
        self.complex = {t.get("name"): t for t in self.root.findall(f"{q}complexType")}
        self.simple = {t.get("name"): t for t in self.root.findall(f"{q}simpleType")}
        version = self.root.find(f".//{q}element[@name='CODVer']")
        self.version = _version_from_path(xsd)
        del version

    def element(self, name: str) -> Decl | None:
        """The first element declaration called ``name`` (``EH``, ``CertificationEH``)."""
        for el in self.root.iter(f"{{{XS}}}element"):
            if el.get("name") == name:
                return self.decl(el)
        return None

    def form(self, name: str) -> Decl | None:
        for el in self.root.iter(f"{{{XS}}}element"):
            if el.get("name") == name and el.get("type", "").startswith("tns:Form"):
                return self.decl(el)
        return None

    def decl(self, el: etree._Element) -> Decl:
        q = f"{{{XS}}}"
        name = el.get("name")
        mx = el.get("maxOccurs", "1")
        mn = int(el.get("minOccurs", "1"))
        type_name = (el.get("type") or "").split(":")[-1]
        complex_el = el.find(f"{q}complexType") if el.get("type") is None else self.complex.get(type_name)
        if complex_el is not None:
            children = tuple(self.decl(c) for c in complex_el.iterfind(f"{q}sequence/{q}element"))
            return Decl(name, mn, None if mx == "unbounded" else int(mx), children)
        simple_el = el.find(f"{q}simpleType") if el.get("type") is None else self.simple.get(type_name)
        base, digits = type_name, None
        if simple_el is not None:
            restriction = simple_el.find(f"{q}restriction")
            if restriction is not None:
                base = (restriction.get("base") or "").split(":")[-1]
                fd = restriction.find(f"{q}fractionDigits")
                digits = int(fd.get("value")) if fd is not None else None
        return Decl(name, mn, None if mx == "unbounded" else int(mx), None, base, digits)


def _version_from_path(xsd: Path) -> str:
    match = re.search(r"(\d+\.\d+\.\d+)", xsd.name)
    return match.group(1) if match else "4.1.0"


# -- canonical -> COD ------------------------------------------------------------------------


def _hs(code: str) -> str:
    parts = [code[:4], code[4:6]] + [code[i:i + 2] for i in range(6, len(code), 2)]
    return ".".join(parts)


def _datetime(d: dt.date | None) -> str | None:
    return f"{d.isoformat()}T00:00:00Z" if d is not None else None


def _invoices(cert: Certificate) -> list[tuple[str, dt.date | None]]:
    seen: dict[str, dt.date | None] = {}
    for item in cert.items:
        if item.invoice_number and item.invoice_number not in seen:
            seen[item.invoice_number] = item.invoice_date
    return list(seen.items())


Ctx = dict[str, Any]
W = Callable[[Certificate, Ctx], Any]

_party_fields: dict[str, Callable[[Any], Any]] = {
    "Country": lambda p: p.country,
    "BusinessName": lambda p: p.name,
    "Address": lambda p: p.address.line if p.address else None,
    "City": lambda p: p.address.city if p.address else None,
    "Locality": lambda p: p.address.city if p.address else None,
    "TaxIdentification": lambda p: p.id,
}

WRITERS: dict[str, W] = {
    **{f"Exporter{k}": (lambda f: lambda c, x: f(c.exporter))(f) for k, f in _party_fields.items()},
    **{f"Importer{k}": (lambda f: lambda c, x: f(c.importer))(f) for k, f in _party_fields.items()},
    **{f"Producer{k}": (lambda f: lambda c, x: f(x["producer"]))(f) for k, f in _party_fields.items()},
    "SubscriberSubmitterName": lambda c, x: c.exporter_declaration.signatory if c.exporter_declaration else c.exporter.name,
    "ProducerQty": lambda c, x: len(c.producers),
    "ProducerOrderNo": lambda c, x: x["producer_no"],
    "ProducerExporter": lambda c, x: "DIFERENTE",
    "InvoiceQty": lambda c, x: len(_invoices(c)),
    "InvoiceOrderNo": lambda c, x: x["invoice_no"],
    "InvoiceNo": lambda c, x: x["invoice"][0],
    "InvoiceDate": lambda c, x: _datetime(x["invoice"][1]),
    "GoodsQty": lambda c, x: len(c.items),
    "GoodsOrderNo": lambda c, x: x["item"].sequence,
    "GoodsInvoiceOrderNo": lambda c, x: next((i + 1 for i, (n, _) in enumerate(_invoices(c)) if n == x["item"].invoice_number), None),
    "GoodsItemCode": lambda c, x: _hs(x["item"].hs_code),
    "GoodsItemName": lambda c, x: x["item"].description,
    "GoodsItemWeightAmount": lambda c, x: x["item"].quantity,
    "GoodsItemMeasureUnit": lambda c, x: x["item"].quantity_unit,
    "GoodsItemFOB": lambda c, x: x["item"].fob_value,
    "GoodsItemValue": lambda c, x: x["item"].fob_value,
    "GoodsItemOriginRules": lambda c, x: x["item"].origin_criterion,
    "GoodsDeclarationDate": lambda c, x: _datetime(c.exporter_declaration.date if c.exporter_declaration else None),
    "GoodsDeclarationNumber": lambda c, x: x["item"].sequence,
    "TransportPortOfLoading": lambda c, x: c.transport.loading_place if c.transport else None,
    "TransportMeans": lambda c, x: c.transport.means if c.transport else None,
    "TransportCountryDestination": lambda c, x: c.import_country,
    "GeneralComments": lambda c, x: c.remarks,
    "CountryOfOrigin": lambda c, x: c.items[0].origin_country,
    "CertificateInitialDate": lambda c, x: _datetime(c.issue_date),
    "CertificateFinalDate": lambda c, x: _datetime(c.valid_until),
    "DeclarationDate": lambda c, x: _datetime(c.exporter_declaration.date if c.exporter_declaration else c.issue_date),
    "Affidavit": lambda c, x: (c.exporter_declaration.text or "") if c.exporter_declaration else "",
    "EHId": lambda c, x: c.issuing_authority.id,
    "EHCountry": lambda c, x: c.issuing_authority.country,
    "EHName": lambda c, x: c.issuing_authority.name,
    "EHAddress": lambda c, x: c.issuing_authority.address.line if c.issuing_authority.address else None,
    "EHCityLocality": lambda c, x: c.issuing_authority.address.city if c.issuing_authority.address else None,
    "EHCity": lambda c, x: c.issuing_authority.address.city if c.issuing_authority.address else None,
    "EHURL": lambda c, x: x["options"].eh_url,
    "CertificateDate": lambda c, x: _datetime(c.certification.date if c.certification else c.issue_date),
    "CertificateID": lambda c, x: c.id,
}
"""ALADI element local name -> value for the canonical certificate (``x`` holds the current item, producer, invoice)."""

REPEATED: dict[str, Callable[[Certificate], list[Ctx]]] = {
    "Producer": lambda c: [{"producer": p, "producer_no": i + 1} for i, p in enumerate(c.producers)],
    "Invoice": lambda c: [{"invoice": inv, "invoice_no": i + 1} for i, inv in enumerate(_invoices(c))],
    "Goods": lambda c: [{"item": it} for it in c.items],
}
CANONICAL = {
    "Exporter": "exporter", "Importer": "importer", "Producer": "producers", "Invoice": "items[].invoice_number",
    "Goods": "items", "TransportPortOfLoading": "transport.loading_place", "TransportMeans": "transport.means",
    "GoodsItemWeightAmount": "items[].quantity", "GoodsItemMeasureUnit": "items[].quantity_unit",
    "GoodsItemFOB": "items[].fob_value", "GoodsItemValue": "items[].fob_value", "ExporterAddress": "exporter.address.line",
    "ExporterCity": "exporter.address.city", "ExporterLocality": "exporter.address.city", "ImporterAddress": "importer.address.line",
    "ImporterCity": "importer.address.city", "ImporterLocality": "importer.address.city", "ExporterTaxIdentification": "exporter.id",
    "InvoiceNo": "items[].invoice_number", "InvoiceDate": "items[].invoice_date", "Affidavit": "exporter_declaration.text",
    "EHId": "issuing_authority.id", "EHAddress": "issuing_authority.address.line",
    "EHCityLocality": "issuing_authority.address.city", "EHCity": "issuing_authority.address.city",
}


def _text(decl: Decl, value: Any) -> str:
    if isinstance(value, Decimal):
        if decl.fraction_digits is not None:
            value = value.quantize(Decimal(1).scaleb(-decl.fraction_digits))
        return format(value, "f")
    return str(value)


class _Writer:
    def __init__(self, cert: Certificate, form: str):
        self.cert = cert
        self.form = form
        self.problems: list[str] = []

    def fill(self, parent: etree._Element, decl: Decl, ctx: Ctx, path: str) -> None:
        for child in decl.children or ():
            if child.max == 0:
                continue
            where = f"{path}/{child.name}"
            if child.children is not None:
                contexts = REPEATED[child.name](self.cert) if child.name in REPEATED else [ctx]
                if child.max == 1 and len(contexts) > 1:
                    contexts = contexts[:1]
                if not contexts and child.min > 0:
                    self._missing(child, where)
                for sub in contexts:
                    el = etree.SubElement(parent, child.name)
                    self.fill(el, child, {**ctx, **sub}, where)
                    if child.min == 0 and len(el) == 0:
                        parent.remove(el)
                continue
            writer = WRITERS.get(child.name)
            value = writer(self.cert, ctx) if writer is not None else None
            if value is None or value == "" and child.min == 0:
                if child.min > 0:
                    self._missing(child, where)
                continue
            etree.SubElement(parent, child.name).text = _text(child, value)

    def _missing(self, decl: Decl, where: str) -> None:
        field = CANONICAL.get(decl.name)
        hint = f" (canonical field {field})" if field else " (ibb has no canonical field for it)"
        self.problems.append(f"$: ALADI {self.form} requires <{decl.name}> at {where}{hint}")


def to_cod(cert: Certificate, options: Options, model: _Model) -> etree._Element:
    """The unsigned COD document (signatures are added by ``sign``)."""
    form = model.form(options.form)
    if form is None:
        raise CertificateError([f"$: the schema {options.xsd} has no form {options.form!r}"])
    writer = _Writer(cert, options.form)
    root = etree.Element(f"{{{TNS}}}Envelope", nsmap={"tns": TNS})
    body = etree.SubElement(root, f"{{{TNS}}}CertOrigin")
    codeh = etree.SubElement(body, "CODEH", id="CODEH")
    exporter_part = etree.SubElement(codeh, "CODExporter")
    cod = etree.SubElement(exporter_part, "COD", id="COD")
    etree.SubElement(cod, "CODVer").text = model.version
    etree.SubElement(cod, "CODSubmitterType").text = options.submitter_type
    agreement = etree.SubElement(cod, "Agreement")
    etree.SubElement(agreement, "AgreementName").text = cert.agreement
    etree.SubElement(agreement, "AgreementAcronym").text = options.agreement
    writer.fill(etree.SubElement(cod, options.form), form, {"options": options}, f"COD/{options.form}")
    for name in ("EH", "CertificationEH"):
        decl = model.element(name)
        if decl is None:
            raise CertificateError([f"$: the schema {options.xsd} declares no {name}"])
        writer.fill(etree.SubElement(codeh, name), decl, {"options": options}, f"CODEH/{name}")
    if writer.problems:
        raise CertificateError(writer.problems)
    return root


# -- COD -> canonical ------------------------------------------------------------------------


def _t(el: etree._Element | None, name: str) -> str | None:
    if el is None:
        return None
    node = el.find(name)
    return node.text if node is not None else None


def _date(text: str | None) -> str | None:
    return text[:10] if text else None


def _party(form: etree._Element, prefix: str, fallback_country: str | None = None) -> dict[str, Any]:
    el = form.find(prefix) if form.find(prefix) is not None else form
    country = _t(el, f"{prefix}Country") or fallback_country
    line, city = _t(el, f"{prefix}Address"), _t(el, f"{prefix}City") or _t(el, f"{prefix}Locality")
    party = {"name": _t(el, f"{prefix}BusinessName"), "country": country, "id": _t(el, f"{prefix}TaxIdentification")}
    if line or city:
        party["address"] = {"country": country, "line": line, "city": city}
    return {k: v for k, v in party.items() if v is not None}


def from_cod(root: etree._Element, options: Options) -> Certificate:
    """The canonical certificate in a (schema-valid) COD document; see the module docstring for what is rebuilt."""
    codeh = root.find(SLOTS[1].signed_path)
    cod = codeh.find("CODExporter/COD") if codeh is not None else None
    if codeh is None or cod is None:
        raise CertificateError(["$: not an ALADI COD (no CertOrigin/CODEH/CODExporter/COD)"])
    form = next((el for el in cod if isinstance(el.tag, str) and el.tag.startswith("Form")), None)
    if form is None:
        raise CertificateError(["$: the COD has no Form element"])
    eh, certification = codeh.find("EH"), codeh.find("CertificationEH")
    issued = _date(_t(certification, "CertificateDate"))
    final = _date(form.findtext(".//CertificateFinalDate"))
    export_country = _t(form.find("Exporter"), "ExporterCountry")
    import_country = form.findtext(".//TransportCountryDestination") or _t(form.find("Importer"), "ImporterCountry")
    invoices = {inv.findtext("InvoiceOrderNo"): inv for inv in form.iterfind("Invoices/Invoice")}
    origin = form.findtext(".//CountryOfOrigin") or export_country
    items = []
    for i, goods in enumerate(form.iterfind("GoodsList/Goods")):
        invoice = invoices.get(goods.findtext("GoodsInvoiceOrderNo"))
        if invoice is None and len(invoices) == 1 and goods.find("GoodsInvoiceOrderNo") is None:
            invoice = next(iter(invoices.values()))
        value = goods.findtext("GoodsItemFOB") or goods.findtext("GoodsItemValue")
        item = {
            "sequence": int(goods.findtext("GoodsOrderNo") or i + 1),
            "hs_code": (goods.findtext("GoodsItemCode") or "").replace(".", ""),
            "description": goods.findtext("GoodsItemName"),
            "origin_criterion": goods.findtext("GoodsItemOriginRules"),
            "origin_country": origin,
            "quantity": goods.findtext("GoodsItemWeightAmount"),
            "quantity_unit": goods.findtext("GoodsItemMeasureUnit"),
            "fob_value": value,
            "currency": options.currency if value else None,
            "invoice_number": invoice.findtext("InvoiceNo") if invoice is not None else None,
            "invoice_date": _date(invoice.findtext("InvoiceDate")) if invoice is not None else None,
        }
        items.append({k: v for k, v in item.items() if v is not None})
    producers = [_party(p, "Producer", export_country) for p in form.iterfind("Producers/Producer")]
    means, port = form.findtext(".//TransportMeans"), form.findtext(".//TransportPortOfLoading")
    declaration = form.find("Declaration")
    data: dict[str, Any] = {
        "id": _t(certification, "CertificateID"),
        "type": etree.QName(form).localname,
        "agreement": cod.findtext("Agreement/AgreementName"),
        "issue_date": issued,
        "issue_place": _t(eh, "EHCityLocality") or _t(eh, "EHCity") or "",
        "valid_until": final or (str(dt.date.fromisoformat(issued) + dt.timedelta(days=options.validity_days)) if issued else None),
        "exporter": _party(form, "Exporter"),
        "importer": _party(form, "Importer"),
        "issuing_authority": {k: v for k, v in {
            "name": _t(eh, "EHName"), "country": _t(eh, "EHCountry"), "id": _t(eh, "EHId"),
            "address": {"country": _t(eh, "EHCountry"), "line": _t(eh, "EHAddress"),
                        "city": _t(eh, "EHCityLocality") or _t(eh, "EHCity")},
        }.items() if v is not None},
        "export_country": export_country,
        "import_country": import_country,
        "items": items,
        "producers": producers,
    }
    if means or port:
        data["transport"] = {k: v for k, v in {"means": means, "loading_place": port}.items() if v}
    if form.findtext(".//GeneralComments"):
        data["remarks"] = form.findtext(".//GeneralComments")
    if declaration is not None:
        data["exporter_declaration"] = {
            "place": "", "date": _date(declaration.findtext("DeclarationDate")),
            "signatory": form.findtext("Subscriber/SubscriberSubmitterName") or data["exporter"].get("name"),
            "text": declaration.findtext("Affidavit") or None,
        }
    try:
        return certificate_from_dict(data)
    except CertificateError as exc:
        raise CertificateError([f"{p} (canonical field, read from aladi-cod)" for p in exc.problems]) from None


# -- the format ------------------------------------------------------------------------------


class AladiCod(SignedXmlFormat):
    """ALADI COD documents; see the module docstring."""

    name = "aladi-cod"
    content_type = "application/xml"
    Options = Options

    def _xsd(self) -> Path:
        if self.options.xsd is None:
            raise CertificateError(["$: the profile names no ALADI schema (data_cluster.options.xsd)"])
        return self.options.xsd

    def slots(self) -> tuple[Slot, ...]:
        return SLOTS

    def schema(self) -> etree.XMLSchema:
        return load_schema(self._xsd(), {XMLDSIG_SCHEMA_URL: XMLDSIG_SCHEMA})

    def issuing_entity_of(self, root: etree._Element) -> str | None:
        return root.findtext(f"{SLOTS[1].signed_path}/EH/EHId")

    def render(self, certificate: Certificate) -> bytes:
        model = _models(self._xsd())
        try:
            root = to_cod(certificate, self.options, model)
        except ValueError as exc:
            raise CertificateError([f"$: cannot be written as XML ({exc})"]) from None
        problems = self.validate_partial(root)
        if problems:
            raise CertificateError([f"ALADI schema {self._xsd().name}: {p}" for p in problems])
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def parse(self, data: bytes) -> Certificate:
        root = self._parse(data)
        if root.tag != f"{{{TNS}}}Envelope":
            raise CertificateError([f"$: root element is {root.tag!r}, expected {{{TNS}}}Envelope"])
        problems = self.validate_partial(root)
        if problems:
            raise CertificateError([f"ALADI schema {self._xsd().name}: {p}" for p in problems])
        return from_cod(root, self.options)


_model_cache: dict[Path, _Model] = {}


def _models(xsd: Path) -> _Model:
    if xsd not in _model_cache:
        try:
            _model_cache[xsd] = _Model(xsd)
        except (OSError, etree.XMLSyntaxError) as exc:
            from ibb.core.xml import SchemaUnavailable

            raise SchemaUnavailable(f"cannot read ALADI schema {xsd}: {exc}") from None
    return _model_cache[xsd]


__all__ = ["AladiCod", "Options", "from_cod", "to_cod"]
