"""The ``uncefact-json`` message format: UN/CEFACT JSON "Preferential CoO" (D23B).

The wire document is an instance of the UN/CEFACT JSON Schema 2020-12 snapshot
``BuyShipPay/D23B/PreferentialCoO``: a root object with ``exchangedDocument`` (the
document header) and ``specifiedConsignment`` (one consignment: parties, transport,
goods). The snapshot is small: a trade party carries only an identifier, a trade
product only its HS classification and origin country, and several code lists hold
a single value (country ``DE``, package type ``SS``, transport mode ``1``...). Every
object of the schema accepts extension members whose names start with ``x-``
(``extensibleType``); canonical fields without a standard slot travel there, named
after the UN/CEFACT core component they stand for where one exists.

Mapping (``SC`` = ``specifiedConsignment[0]``, ``ITEM`` = ``SC.includedConsignmentItem[i]``,
``LINE`` = ``ITEM.includedTradeLineItem[0]``, ``PROD`` = ``LINE.specifiedTradeProduct[0]``,
``PKG`` = ``LINE.physicalReferencedLogisticsPackage[0]``, ``AUTH`` =
``exchangedDocument.firstSignatoryDocumentAuthentication``; ``x-`` marks an extension)::

    canonical field                UN/CEFACT JSON path
    -----------------------------  ------------------------------------------------------------
    (constant "864")               exchangedDocument.typeCode.content  (preference CoO)
    id                             exchangedDocument.id.content
    type                           exchangedDocument.x-certificateType  (absent: "preferential")
    issue_date                     exchangedDocument.issueDateTime  ("YYYY-MM-DDT00:00:00Z")
    issue_place                    AUTH.issueLogisticsLocation.id[0].content
    certification.date             AUTH.actualDateTime  ("YYYY-MM-DDT00:00:00Z")
    certification.place            AUTH.x-place
    certification.signatory        AUTH.x-signatory
    certification.text             AUTH.x-statement
    valid_until                    exchangedDocument.x-validUntil  (ISO date)
    status                         exchangedDocument.x-status
    remarks                        exchangedDocument.x-remarks
    exporter_declaration           exchangedDocument.x-exporterDeclaration {place, date, signatory, text}
    signatures[]                   exchangedDocument.x-signatures[] {role, signer, signedAt}
    issuing_authority              exchangedDocument.issuer                       (a PARTY)
    exporter                       SC.consignor                                   (a PARTY)
    importer                       SC.consignee                                   (a PARTY)
    producers[]                    SC.associated[]                                (PARTYs)
      PARTY.id                       .id[0].content
      PARTY.name                     .x-name
      PARTY.country                  .x-countryId
      PARTY.address                  .x-postalTradeAddress {countryId, lineOne, cityName, postcode}
    agreement                      SC.applicableCrossBorderRegulatoryProcedure[0].freeTradeAgreementName.content
    export_country                 SC.x-exportCountryId
    import_country                 SC.x-importCountryId
    transport (present)            SC.mainCarriageLogisticsTransportMovement[0]  (an object, maybe empty)
    transport.mode                 SC.mainCarriageLogisticsTransportMovement[0].x-mode
                                     (read fallback: .modeCode.content)
    transport.means                SC.mainCarriageLogisticsTransportMovement[0].usedLogisticsTransportMeans.name.content
                                     (read fallback: the movement's .id.content)
    transport.departure_date       SC.mainCarriageLogisticsTransportMovement[0].x-departureDate
    transport.loading_place        SC.loadingLogisticsLocation.id[0].content
    transport.discharge_place      SC.unloadingLogisticsLocation.id[0].content
    items[i]                       ITEM, with exactly one LINE and one PROD
    items[i].sequence              ITEM.id[0].content  (absent: position + 1)
    items[i].gross_mass_kg         ITEM.x-grossWeightMeasure {content, unitCode "KGM"}
    items[i].hs_code               PROD.designatedProductClassification[0].classCode.content
                                     (listAgencyId "1": CCC, the WCO, keeper of the HS)
    items[i].description           PROD.x-description
    items[i].origin_criterion      PROD.x-originCriterion
    items[i].origin_country        PROD.originTradeCountry[0] = "https://vocabulary.uncefact.org/CountryId#KR"
                                     (read also: {"id": [{"content": "KR"}]})
    items[i].package_count         PKG.itemQuantity.content  (PKG.levelCode is "1", the only allowed value)
    items[i].package_kind          PKG.x-packageKind  (read fallback: PKG.typeCode.content);
                                     without a package count: LINE.x-packageKind
    items[i].marks                 PKG.physicalLogisticsShippingMarks[0].marking[0].content;
                                     without a package count: LINE.x-marks
    items[i].quantity, quantity_unit  LINE.x-quantity {content, unitCode}
    items[i].invoice_number, _date    LINE.x-invoice {id, issueDate}
    items[i].fob_value, currency      LINE.x-fobValue {content, currencyId}

Why extensions where the snapshot has an element: the D23B code lists of
``countryIdType`` (only ``DE``), ``packageTypeCodeType`` (only ``SS``) and
``transportModeCodeType`` (only ``1``) reject real values, so origin countries are
sent as UN/CEFACT vocabulary URIs (the schema's ``resourceType`` alternative of
``originTradeCountry``), and package kind and transport mode as extensions; the
standard elements are still read from documents written by others.

Decimals are written as plain decimal strings (``format(d, "f")``), dates as ISO
dates. Schema validation (``Options.schema`` or ``$IBB_UNCEFACT_SCHEMA``) uses the
real schema file, compiled once per instance into an equivalent faster form (see
``compile_schema``); with or without it, parsing checks the structure of every field
it reads and reports each problem as ``$.json.path: message``.

Documents written by others: the standard elements above are read, and so are the
fallbacks noted. What ibb cannot map is refused rather than dropped (a second
consignment, trade line item, product or package; URI references in place of
objects), except that without a schema unknown members are ignored, and an
``actualDateTime`` without the ``x-signatory`` of a certification is not read.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from ibb.core.errors import CertificateError
from ibb.core.formats import MessageFormat
from ibb.core.model import (
    Address,
    Certificate,
    Declaration,
    FieldError,
    GoodsItem,
    Party,
    SignatureInfo,
    TransportDetails,
)

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

hookimpl = pluggy.HookimplMarker("ibb")

SCHEMA_ENV = "IBB_UNCEFACT_SCHEMA"
"""Environment variable naming the schema file when ``Options.schema`` is not set."""

DOCUMENT_TYPE = "864"
"""UNTDID 1001 "Preference certificate of origin"."""
HS_LIST_AGENCY = "1"
"""UNTDID 3055 agency "CCC" (Customs Co-operation Council, now the WCO): keeper of the HS."""
PACKAGE_LEVEL = "1"
"""UNTDID 7075 packaging level: the only value the D23B snapshot allows; required with a package."""
COUNTRY_URI = "https://vocabulary.uncefact.org/CountryId#"
_COUNTRY_REF = re.compile(r"(?:https?://vocabulary\.uncefact\.org/|unece:)CountryId#([A-Z]{2})")
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d+)?|\.\d+)")  # no nested quantifiers: linear time
_DIGITS = re.compile(r"\d+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SIMPLE_KEY = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*")  # same rule as jsonschema's ``json_path``
MAX_ERROR_LINES = 20
MAX_MESSAGE_CHARS = 200
MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted; ibb's own documents nest 13 levels."""


@attrs.frozen
class Options:
    """``[data_cluster.options]`` of the ``uncefact-json`` format."""

    schema: Path | None = None
    """Path of the UN/CEFACT PreferentialCoO D23B JSON schema to validate against (relative to the profile).

    Default: the file named by ``$IBB_UNCEFACT_SCHEMA``; neither set: no schema
    validation, only the structural check of the fields ibb reads."""
    max_bytes: int = attrs.field(default=5_000_000, validator=attrs.validators.gt(0))
    """Largest message ``parse`` accepts."""


class UncefactJson(MessageFormat):
    """Certificates as UN/CEFACT JSON Preferential CoO (D23B) documents; see the module docstring."""

    name = "uncefact-json"
    content_type = "application/json"
    Options = Options

    def __init__(self, options: Any = None):
        super().__init__(options)
        configured: Options = self.options
        self.schema_path: str | None = str(configured.schema or "") or os.environ.get(SCHEMA_ENV) or None
        self.validator: Validator | None = _load_validator(self.schema_path) if self.schema_path else None

    def render(self, certificate: Certificate) -> bytes:
        """The certificate as UTF-8 JSON; validated against the schema when one is configured."""
        document = _render_document(certificate)
        if self.validator is not None:
            problems = schema_errors(self.validator, document)
            if problems:
                raise CertificateError([f"rendered document breaks the schema: {p}" for p in problems])
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def parse(self, data: bytes) -> Certificate:
        """The certificate in a UN/CEFACT JSON document; :class:`CertificateError` on any problem."""
        document = self.decode(data)
        if self.validator is not None:
            problems = schema_errors(self.validator, document)
            if problems:
                raise CertificateError(problems)
        reader = _Reader()
        certificate = reader.certificate(document)
        if reader.errors or certificate is None:
            raise CertificateError(_cap(reader.errors or ["$: not a certificate of origin"]))
        return certificate

    def decode(self, data: bytes | bytearray | memoryview | str) -> dict[str, Any]:
        """Size check, JSON decoding and the root type check."""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise CertificateError([f"$: expected bytes, got {type(data).__name__}"])
        data = bytes(data)
        if len(data) > self.options.max_bytes:
            raise CertificateError([f"$: message of {len(data)} bytes exceeds the limit of {self.options.max_bytes} bytes"])
        try:
            document = json.loads(data, parse_constant=_reject_constant)
        except RecursionError:
            raise CertificateError(["$: not valid JSON (nested too deeply)"]) from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits, NaN
            raise CertificateError([f"$: not valid JSON ({exc})"]) from None
        if not isinstance(document, dict):
            raise CertificateError([f"$: expected a JSON object (a UN/CEFACT Preferential CoO document), got {_kind(document)}"])
        if _depth_exceeds(document, MAX_DEPTH):
            raise CertificateError([f"$: nested more than {MAX_DEPTH} levels deep"])
        return document


@hookimpl
def ibb_register_formats(register: Any) -> None:
    register("uncefact-json", UncefactJson)


# --------------------------------------------------------------------------- schema


def _load_validator(path: str) -> Validator:
    """A Draft 2020-12 validator for the schema file at ``path``, compiled once (see ``compile_schema``)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    file = Path(path)
    if not file.is_file():
        raise CertificateError([f"schema file not found: {path}"])
    try:
        schema = json.loads(file.read_bytes())
    except (OSError, ValueError) as exc:
        raise CertificateError([f"schema file {path}: cannot be read as JSON ({exc})"]) from None
    if not isinstance(schema, dict) or "exchangedDocument" not in schema.get("properties", {}):
        raise CertificateError([f"schema file {path}: not a UN/CEFACT document schema (no exchangedDocument property)"])
    compiled = compile_schema(schema)
    try:
        Draft202012Validator.check_schema(compiled)
    except SchemaError as exc:
        raise CertificateError([f"schema file {path}: not a JSON Schema 2020-12 ({exc.message})"]) from None
    return Draft202012Validator(compiled)


# Schema compilation. Evaluated as published, the PreferentialCoO schema costs jsonschema
# about 15 ms for a 10-item certificate: every association is a ``$ref`` looked up at run
# time, every object closes itself with ``unevaluatedProperties`` (which re-evaluates its
# siblings), every association is a ``oneOf`` whose URI branch fails and builds an error,
# and code lists are ``oneOf``s of ``const``s. ``compile_schema`` rewrites it into a schema
# that accepts and refuses exactly the same documents, about three times faster:
#
# 1. local ``$ref``s are inlined: ``{"$ref": R, ...}`` becomes ``{..., "allOf": [R]}`` (both
#    are in-place applicators), or R itself when nothing else is beside the ``$ref``;
# 2. ``unevaluatedProperties: false`` becomes ``additionalProperties: false`` where only
#    ``properties`` and ``patternProperties`` (own, or of ``allOf`` members holding nothing
#    else, such as the inlined ``extensibleType``) evaluate properties;
# 3. a ``oneOf`` of distinct string ``const``s becomes an ``enum``;
# 4. ``oneOf: [object schema, string schema]`` (an association: inline object or URI)
#    becomes one schema of type ``["object", "string"]`` when each side holds only
#    keywords of its own type, else ``if: {type: string}, then: ..., else: ...``;
# 5. annotations (``title``, ``description``...) are dropped;
# 6. the ``decimalType`` pattern, whose overlapping quantifiers backtrack quadratically
#    (a 20,000-digit string takes seconds), is replaced by an equivalent linear one.
#
# A schema with features these rewrites do not cover (``$id`` below the root, anchors,
# dynamic or non-local references, recursive references) is used as published.

_ANNOTATIONS = frozenset({"title", "description", "$comment", "examples", "default", "deprecated", "readOnly", "writeOnly"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas"})
_SCHEMA_VALUES = frozenset({
    "items", "additionalProperties", "unevaluatedProperties", "unevaluatedItems", "contains",
    "propertyNames", "not", "if", "then", "else",
})
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_LINEAR_PATTERNS = {
    r"^([+-]?(0?|[1-9][0-9]*)(\.?\d+))$": r"^[+-]?(\d+|(0|[1-9][0-9]*)?\.\d+)$",
}
_UNSUPPORTED = frozenset({"$anchor", "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor"})
_CLOSABLE = frozenset({
    "type", "properties", "patternProperties", "required", "allOf", "unevaluatedProperties",
    "minProperties", "maxProperties", "$schema", "$id",
})
_STRING_ONLY = frozenset({"type", "format", "pattern", "minLength", "maxLength"})
_OBJECT_ONLY = frozenset({
    "type", "properties", "patternProperties", "additionalProperties", "required",
    "minProperties", "maxProperties", "propertyNames", "dependentRequired",
})


class _CannotCompile(Exception):
    """The schema uses something the rewrites do not cover: use it as published."""


def compile_schema(schema: Any) -> Any:
    """An equivalent, faster form of ``schema`` (see the comment above), or ``schema`` itself."""
    if not isinstance(schema, dict):
        return schema
    try:
        compiled = _Compiler(schema).compile(schema, (), root=True)
    except (_CannotCompile, TypeError, AttributeError, ValueError):  # malformed: check_schema will say how
        return schema
    return schema if _has_ref(compiled) else compiled


def _has_ref(node: Any) -> bool:
    """Whether a ``$ref`` survived (in a keyword the compiler does not know): ``$defs`` are gone."""
    if isinstance(node, dict):
        return "$ref" in node or any(_has_ref(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_ref(v) for v in node)
    return False


class _Compiler:
    def __init__(self, root: dict[str, Any]):
        self.root = root

    def compile(self, node: Any, refs: tuple[str, ...], root: bool = False) -> Any:
        if not isinstance(node, dict):
            return node  # true / false
        if _UNSUPPORTED & node.keys() or ("$id" in node and not root):
            raise _CannotCompile
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _ANNOTATIONS or key == "$defs":
                continue
            if key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {name: self.compile(sub, refs) for name, sub in value.items()}
            elif key in _SCHEMA_VALUES:
                out[key] = [self.compile(v, refs) for v in value] if isinstance(value, list) else self.compile(value, refs)
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                out[key] = [self.compile(v, refs) for v in value]
            elif key == "pattern" and isinstance(value, str):
                out[key] = _LINEAR_PATTERNS.get(value, value)
            else:
                out[key] = value
        if "$ref" in out:
            ref = out.pop("$ref")
            if not isinstance(ref, str) or not ref.startswith("#/") or ref in refs:
                raise _CannotCompile
            target = self.compile(self.resolve(ref), (*refs, ref))
            if not out or (root and set(out) <= {"$schema", "$id"}):
                out = {**out, **target} if isinstance(target, dict) and not (out.keys() & target.keys()) else {**out, "allOf": [target]}
            else:
                out["allOf"] = [*out.get("allOf", []), target]
        return _uri_alternative(_code_list(_closed_object(out)))

    def resolve(self, ref: str) -> Any:
        node: Any = self.root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise CertificateError([f"schema: $ref {ref!r} does not resolve"])
        return node


def _closed_object(node: dict[str, Any]) -> dict[str, Any]:
    """Rewrite 2: ``unevaluatedProperties: false`` -> ``additionalProperties: false``."""
    if node.get("unevaluatedProperties") is not False or not node.keys() <= _CLOSABLE:
        return node
    members = node.get("allOf", [])
    if not isinstance(members, list):
        return node
    patterns = dict(node.get("patternProperties", {}))
    for member in members:
        if not isinstance(member, dict) or not member.keys() <= {"patternProperties"}:
            return node
        for pattern, sub in member.get("patternProperties", {}).items():
            if patterns.get(pattern, sub) != sub:
                return node
            patterns[pattern] = sub
    out = {k: v for k, v in node.items() if k not in ("allOf", "unevaluatedProperties", "patternProperties")}
    if patterns:
        out["patternProperties"] = patterns
    out["additionalProperties"] = False
    return out


def _code_list(node: dict[str, Any]) -> dict[str, Any]:
    """Rewrite 3: ``oneOf`` of distinct string ``const``s -> ``enum``."""
    options = node.get("oneOf")
    if not isinstance(options, list) or not options or "enum" in node:
        return node
    if not all(isinstance(o, dict) and o.keys() == {"const"} and isinstance(o["const"], str) for o in options):
        return node
    values = [o["const"] for o in options]
    if len(set(values)) != len(values):
        return node
    out = {k: v for k, v in node.items() if k != "oneOf"}
    out["enum"] = values
    return out


def _uri_alternative(node: dict[str, Any]) -> dict[str, Any]:
    """Rewrite 4: ``oneOf: [object schema, string schema]``, an association given inline or as a URI.

    When the object schema holds only object keywords, both merge into one schema of type
    ``["object", "string"]`` (each keyword ignores the other type); otherwise it becomes
    ``if: {type: string}, then: <string schema>, else: <object schema>``.
    """
    options = node.get("oneOf")
    if not isinstance(options, list) or len(options) != 2:
        return node
    for as_object, as_string in (options, options[::-1]):
        if not (
            isinstance(as_string, dict) and as_string.get("type") == "string" and as_string.keys() <= _STRING_ONLY
            and _requires_object(as_object)
        ):
            continue
        out = {k: v for k, v in node.items() if k != "oneOf"}
        if as_object.keys() <= _OBJECT_ONLY and not out.keys() & (_OBJECT_ONLY | _STRING_ONLY):
            out.update(as_object)
            out.update(as_string)
            out["type"] = ["object", "string"]
        elif not out.keys() & {"if", "then", "else"}:
            out.update({"if": {"type": "string"}, "then": as_string, "else": as_object})
        else:
            return node
        return out
    return node


def _requires_object(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    members = schema.get("allOf", [])
    return schema.get("type") == "object" or (isinstance(members, list) and any(_requires_object(m) for m in members))


def schema_errors(validator: Validator, document: Any) -> list[str]:
    """Every schema violation as a ``$.json.path: message`` line in document order, at most ``MAX_ERROR_LINES``."""
    found: list[tuple[list[tuple[int, str]], str]] = []
    for error in validator.iter_errors(document):
        for leaf in _leaves(error):
            for where, line in _schema_lines(leaf):
                found.append((_document_order(where), line))
    lines: list[str] = []
    for _, line in sorted(found):
        if line not in lines:
            lines.append(line)
    return _cap(lines)


def _document_order(path: Any) -> list[tuple[int, str]]:
    return [(0, f"{p:09d}") if isinstance(p, int) else (1, p) for p in path]


def _leaves(error: ValidationError) -> list[ValidationError]:
    """The errors worth showing for ``error``: inside a ``oneOf``, those of the branch meant.

    In the schema as published (``compile_schema`` rewrites these), each association is
    ``oneOf: [object type, URI]``: the branch whose ``type`` does not even match the
    instance is dropped and the errors of the other shown, instead of "is not valid under
    any of the given schemas".
    """
    if error.validator not in ("oneOf", "anyOf") or not error.context or _is_code_list(error):
        return [error]
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    meant = [
        subs for subs in branches.values()
        if not any(s.validator == "type" and not s.relative_path for s in subs)
    ]
    if len(meant) != 1:
        return [error]
    return [leaf for sub in meant[0] for leaf in _leaves(sub)]


def _is_code_list(error: ValidationError) -> bool:
    options = error.validator_value
    return error.validator == "oneOf" and isinstance(options, list) and all(isinstance(o, dict) and "const" in o for o in options)


def _schema_lines(error: ValidationError) -> list[tuple[list[Any], str]]:
    """``(instance path, line)`` for one error, in the words of the reader's messages where it has some.

    jsonschema's messages quote the whole failing instance, which for an array or object
    is a screenful; these name what is wrong instead.
    """
    at, path, instance = list(error.absolute_path), error.json_path, error.instance
    value: Any = error.validator_value
    if error.validator == "required" and isinstance(instance, dict):
        return [([*at, key], f"{_join(path, key)}: required field is missing") for key in value if key not in instance]
    if error.validator == "additionalProperties" and isinstance(instance, dict) and value is False:
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        patterns = error.schema.get("patternProperties", {}) if isinstance(error.schema, dict) else {}
        extra = [k for k in instance if k not in known and not any(re.search(p, k) for p in patterns)]
        if extra:
            return [([*at, k], f"{_join(path, k)}: not a member of this element (extensions are named x-...)") for k in extra]
    if error.validator == "type":
        expected = " or ".join(value) if isinstance(value, list) else value
        return [(at, f"{path}: expected {expected}, got {_kind(instance)}")]
    if error.validator in ("maxItems", "minItems") and isinstance(instance, list):
        bound = "at most" if error.validator == "maxItems" else "at least"
        return [(at, f"{path}: holds {len(instance)} elements, {bound} {value} allowed")]
    if error.validator == "pattern" and isinstance(instance, str):
        published = {linear: original for original, linear in _LINEAR_PATTERNS.items()}.get(value, value)
        shown = repr(instance) if len(instance) <= 40 else repr(instance[:37] + "...")
        return [(at, f"{path}: {shown} does not match the pattern {published}")]
    if error.validator == "enum" or _is_code_list(error):
        allowed = value if error.validator == "enum" else [o["const"] for o in value]
        shown = ", ".join(repr(a) for a in allowed[:8]) + (", ..." if len(allowed) > 8 else "")
        return [(at, f"{path}: {_short(repr(instance))} is not in the code list ({shown})")]
    return [(at, f"{path}: {_short(error.message)}")]


def _short(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def _cap(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_ERROR_LINES:
        return lines
    return [*lines[: MAX_ERROR_LINES - 1], f"... and {len(lines) - MAX_ERROR_LINES + 1} more problems"]


def _depth_exceeds(document: Any, limit: int) -> bool:
    """Whether arrays and objects nest deeper than ``limit`` (checked level by level, without recursion)."""
    level, depth = [document], 1
    while level:
        if depth > limit:
            return True
        deeper: list[Any] = []
        for node in level:
            deeper.extend(v for v in (node.values() if isinstance(node, dict) else node) if isinstance(v, (dict, list)))
        level, depth = deeper, depth + 1
    return False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# --------------------------------------------------------------------------- render


def _render_document(cert: Certificate) -> dict[str, Any]:
    header: dict[str, Any] = {
        "id": {"content": cert.id},
        "typeCode": {"content": DOCUMENT_TYPE},
        "issueDateTime": _midnight(cert.issue_date),
        "firstSignatoryDocumentAuthentication": _authentication(cert),
        "issuer": _party(cert.issuing_authority),
        "x-certificateType": cert.type,
        "x-validUntil": cert.valid_until.isoformat(),
        "x-status": cert.status,
    }
    if cert.remarks is not None:
        header["x-remarks"] = cert.remarks
    if cert.exporter_declaration is not None:
        header["x-exporterDeclaration"] = _declaration(cert.exporter_declaration)
    if cert.signatures:
        header["x-signatures"] = [_signature(s, f"$.signatures[{i}]") for i, s in enumerate(cert.signatures)]

    consignment: dict[str, Any] = {
        "consignor": _party(cert.exporter),
        "consignee": _party(cert.importer),
        "includedConsignmentItem": [_item(item, f"$.items[{i}]") for i, item in enumerate(cert.items)],
    }
    if cert.producers:
        consignment["associated"] = [_party(p) for p in cert.producers]
    consignment["applicableCrossBorderRegulatoryProcedure"] = [{"freeTradeAgreementName": {"content": cert.agreement}}]
    if cert.transport is not None:
        consignment.update(_transport(cert.transport))
    consignment["x-exportCountryId"] = cert.export_country
    consignment["x-importCountryId"] = cert.import_country
    return {"exchangedDocument": header, "specifiedConsignment": [consignment]}


def _authentication(cert: Certificate) -> dict[str, Any]:
    auth: dict[str, Any] = {"issueLogisticsLocation": {"id": [{"content": cert.issue_place}]}}
    certification = cert.certification
    if certification is not None:
        auth["actualDateTime"] = _midnight(certification.date)
        auth["x-place"] = certification.place
        auth["x-signatory"] = certification.signatory
        if certification.text is not None:
            auth["x-statement"] = certification.text
    return auth


def _party(party: Party) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if party.id is not None:
        out["id"] = [{"content": party.id}]
    out["x-name"] = party.name
    out["x-countryId"] = party.country
    if party.address is not None:
        address = {
            "countryId": party.address.country,
            "lineOne": party.address.line,
            "cityName": party.address.city,
            "postcode": party.address.postcode,
        }
        out["x-postalTradeAddress"] = {k: v for k, v in address.items() if v is not None}
    return out


def _declaration(declaration: Declaration) -> dict[str, Any]:
    out = {"place": declaration.place, "date": declaration.date.isoformat(), "signatory": declaration.signatory}
    if declaration.text is not None:
        out["text"] = declaration.text
    return out


def _signature(signature: SignatureInfo, where: str) -> dict[str, Any]:
    if signature.signed_at.tzinfo is None:
        raise CertificateError([f"{where}.signed_at: {signature.signed_at.isoformat()} has no time zone offset"])
    return {"role": signature.role, "signer": signature.signer, "signedAt": signature.signed_at.isoformat()}


def _transport(transport: TransportDetails) -> dict[str, Any]:
    movement: dict[str, Any] = {}
    if transport.means is not None:
        movement["usedLogisticsTransportMeans"] = {"name": {"content": transport.means}}
    if transport.mode is not None:
        movement["x-mode"] = transport.mode
    if transport.departure_date is not None:
        movement["x-departureDate"] = transport.departure_date.isoformat()
    out: dict[str, Any] = {"mainCarriageLogisticsTransportMovement": [movement]}
    if transport.discharge_place is not None:
        out["unloadingLogisticsLocation"] = {"id": [{"content": transport.discharge_place}]}
    if transport.loading_place is not None:
        out["loadingLogisticsLocation"] = {"id": [{"content": transport.loading_place}]}
    return out


def _item(item: GoodsItem, where: str) -> dict[str, Any]:
    product: dict[str, Any] = {
        "designatedProductClassification": [{"classCode": {"content": item.hs_code, "listAgencyId": HS_LIST_AGENCY}}],
        "originTradeCountry": [COUNTRY_URI + item.origin_country],
        "x-description": item.description,
        "x-originCriterion": item.origin_criterion,
    }
    line: dict[str, Any] = {"specifiedTradeProduct": [product]}
    if item.package_count is not None:
        package: dict[str, Any] = {
            "itemQuantity": {"content": str(item.package_count)},
            "levelCode": {"content": PACKAGE_LEVEL},
        }
        if item.marks is not None:
            package["physicalLogisticsShippingMarks"] = [{"marking": [{"content": item.marks}]}]
        if item.package_kind is not None:
            package["x-packageKind"] = item.package_kind
        line["physicalReferencedLogisticsPackage"] = [package]
    else:
        if item.package_kind is not None:
            line["x-packageKind"] = item.package_kind
        if item.marks is not None:
            line["x-marks"] = item.marks
    if item.quantity is not None or item.quantity_unit is not None:
        quantity: dict[str, Any] = {}
        if item.quantity is not None:
            quantity["content"] = _decimal(item.quantity, f"{where}.quantity")
        if item.quantity_unit is not None:
            quantity["unitCode"] = item.quantity_unit
        line["x-quantity"] = quantity
    if item.invoice_number is not None or item.invoice_date is not None:
        invoice: dict[str, Any] = {}
        if item.invoice_number is not None:
            invoice["id"] = item.invoice_number
        if item.invoice_date is not None:
            invoice["issueDate"] = item.invoice_date.isoformat()
        line["x-invoice"] = invoice
    if item.fob_value is not None and item.currency is not None:
        line["x-fobValue"] = {"content": _decimal(item.fob_value, f"{where}.fob_value"), "currencyId": item.currency}

    consignment_item: dict[str, Any] = {"id": [{"content": str(item.sequence)}], "includedTradeLineItem": [line]}
    if item.gross_mass_kg is not None:
        consignment_item["x-grossWeightMeasure"] = {
            "content": _decimal(item.gross_mass_kg, f"{where}.gross_mass_kg"),
            "unitCode": "KGM",
        }
    return consignment_item


def _midnight(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _decimal(value: Decimal, where: str) -> str:
    """Plain notation (no exponent), as the UN/CEFACT decimal pattern requires."""
    if not value.is_finite():
        raise CertificateError([f"{where}: {value} is not a finite number"])
    return format(value, "f")


# --------------------------------------------------------------------------- parse


def _join(path: str, key: str | int) -> str:
    """``path`` extended by ``key``, written the way jsonschema writes ``json_path``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _SIMPLE_KEY.fullmatch(key):
        return f"{path}.{key}"
    escaped = key.replace("\\", "\\\\").replace("'", "\\'")
    return f"{path}['{escaped}']"


def _kind(value: Any) -> str:
    """A short description of a JSON value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        text = repr(value)
        return f"the number {text if len(text) <= 40 else text[:37] + '...'}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list):
        return "an array"
    return "an object"


class _Reader:
    """Reads a certificate out of a decoded document, collecting every problem with its path.

    Each ``read``-style method returns ``None`` when the value is absent or wrong (the
    latter recorded in ``errors``); builders skip constructing an object once any of its
    parts failed, so one mistake is reported once.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    # ---- typed accessors

    def value(self, obj: dict[str, Any], key: str, path: str, kinds: tuple[type, ...], what: str, required: bool) -> Any:
        where = _join(path, key)
        if key not in obj:
            if required:
                self.fail(where, "required field is missing")
            return None
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, kinds):
            self.fail(where, f"expected {what}, got {_kind(value)}")
            return None
        return value

    def object(self, obj: dict[str, Any], key: str, path: str, required: bool = False) -> dict[str, Any] | None:
        value: dict[str, Any] | str | None = self.value(obj, key, path, (dict, str), "an object", required)
        if isinstance(value, str):  # the schema's resourceType: a URI standing for the object
            self.fail(_join(path, key), "URI references are not followed; give the object inline")
            return None
        return value

    def string(self, obj: dict[str, Any], key: str, path: str, required: bool = False, default: str | None = None) -> str | None:
        """``obj[key]``, a string; ``default`` when absent."""
        if key not in obj and default is not None:
            return default
        text: str | None = self.value(obj, key, path, (str,), "a string", required)
        return text

    def content(self, obj: dict[str, Any], key: str, path: str, required: bool = False) -> str | None:
        """The ``content`` of a text, identifier or code object ``{"content": "..."}``."""
        holder = self.object(obj, key, path, required)
        if holder is None:
            return None
        return self.string(holder, "content", _join(path, key), required=True)

    def single(self, obj: dict[str, Any], key: str, path: str, required: bool = False, uri: bool = False) -> tuple[Any, str]:
        """The one element of the array ``obj[key]`` and its path; ibb maps exactly one."""
        where = _join(path, key)
        array = self.value(obj, key, path, (list,), "an array", required)
        if array is None:
            return None, where
        if not array:
            if required:
                self.fail(where, "must hold one element, it is empty")
            return None, where
        if len(array) > 1:
            self.fail(where, f"holds {len(array)} elements; ibb maps exactly one here")
            return None, where
        first = _join(where, 0)
        element = array[0]
        if isinstance(element, str) and uri:
            return element, first
        if isinstance(element, str):
            self.fail(first, "URI references are not followed; give the object inline")
            return None, first
        if not isinstance(element, dict):
            self.fail(first, f"expected an object, got {_kind(element)}")
            return None, first
        return element, first

    def first_id(self, obj: dict[str, Any], path: str, required: bool = False) -> str | None:
        """``obj.id[0].content``: the identifier of a party, location or consignment item."""
        element, where = self.single(obj, "id", path, required)
        if element is None:
            return None
        return self.string(element, "content", where, required=True)

    def date(self, obj: dict[str, Any], key: str, path: str, required: bool = False) -> dt.date | None:
        text = self.string(obj, key, path, required)
        if text is None:
            return None
        try:
            if not _DATE.fullmatch(text):
                raise ValueError
            return dt.date.fromisoformat(text)
        except ValueError:
            self.fail(_join(path, key), f"{text!r} is not an ISO date (YYYY-MM-DD)")
            return None

    def date_of_datetime(self, obj: dict[str, Any], key: str, path: str, required: bool = False) -> dt.date | None:
        """The calendar date of a date-time, in the time zone it is written in."""
        moment = self.datetime(obj, key, path, required, offset=False)
        return moment.date() if moment is not None else None

    def datetime(self, obj: dict[str, Any], key: str, path: str, required: bool = False, offset: bool = True) -> dt.datetime | None:
        text = self.string(obj, key, path, required)
        if text is None:
            return None
        try:
            if not _DATE.match(text) or "T" not in text:
                raise ValueError
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            self.fail(_join(path, key), f"{text!r} is not an ISO date-time (YYYY-MM-DDThh:mm:ss+hh:mm)")
            return None
        if offset and moment.tzinfo is None:
            self.fail(_join(path, key), f"{text!r} has no time zone offset")
            return None
        return moment

    def decimal(self, obj: dict[str, Any], key: str, path: str, required: bool = False) -> Decimal | None:
        text = self.string(obj, key, path, required)
        if text is None:
            return None
        if not _DECIMAL.fullmatch(text):
            self.fail(_join(path, key), f"{text!r} is not a decimal number (like 1234.50)")
            return None
        try:
            return Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
            self.fail(_join(path, key), f"{text!r} is not a decimal number")
            return None

    def build(self, cls: type, fields: dict[str, tuple[Any, str]], path: str) -> Any:
        """``cls(**values)``, the model's complaints reported at the wire path of the field.

        ``fields`` maps each keyword to ``(value, wire path)``; ``None`` values are left
        out so the model's defaults apply.
        """
        kwargs = {name: value for name, (value, _) in fields.items() if value is not None}
        try:
            return cls(**kwargs)
        except FieldError as exc:
            self.fail(fields.get(exc.field_name, (None, path))[1], str(exc))
        except (ValueError, TypeError) as exc:
            if len(exc.args) > 1 and isinstance(exc.args[1], attrs.Attribute):
                name = exc.args[1].name
                self.fail(fields.get(name, (None, path))[1], str(exc.args[0]))
            else:
                self.fail(path, str(exc))
        return None

    # ---- the model

    def certificate(self, doc: dict[str, Any]) -> Certificate | None:
        mark = len(self.errors)
        header = self.object(doc, "exchangedDocument", "$", required=True)
        consignment, sc = self.single(doc, "specifiedConsignment", "$", required=True)
        if header is None or consignment is None:
            return None
        h = "$.exchangedDocument"

        type_code = self.content(header, "typeCode", h)
        if type_code is not None and type_code != DOCUMENT_TYPE:
            self.fail(f"{h}.typeCode.content", f"{type_code!r} is not {DOCUMENT_TYPE!r} (preference certificate of origin)")
        auth_path = _join(h, "firstSignatoryDocumentAuthentication")
        auth = self.object(header, "firstSignatoryDocumentAuthentication", h, required=True)
        issue_place = certification = None
        if auth is not None:
            location = self.object(auth, "issueLogisticsLocation", auth_path, required=True)
            if location is not None:
                issue_place = self.first_id(location, _join(auth_path, "issueLogisticsLocation"), required=True)
            certification = self.certification(auth, auth_path)
        issuer = self.party_at(header, "issuer", h)
        declaration = None
        if "x-exporterDeclaration" in header:
            decl = self.object(header, "x-exporterDeclaration", h)
            if decl is not None:
                declaration = self.declaration(decl, _join(h, "x-exporterDeclaration"))
        signatures = self.signatures(header, h)

        agreement = None
        procedure, proc_path = self.single(consignment, "applicableCrossBorderRegulatoryProcedure", sc, required=True)
        if procedure is not None:
            agreement = self.content(procedure, "freeTradeAgreementName", proc_path, required=True)
        exporter = self.party_at(consignment, "consignor", sc)
        importer = self.party_at(consignment, "consignee", sc)
        producers = self.producers(consignment, sc)
        transport = self.transport(consignment, sc)
        items = self.items(consignment, sc)

        fields: dict[str, tuple[Any, str]] = {
            "id": (self.content(header, "id", h, required=True), f"{h}.id.content"),
            "type": (self.string(header, "x-certificateType", h, default="preferential"), _join(h, "x-certificateType")),
            "agreement": (agreement, f"{proc_path}.freeTradeAgreementName.content"),
            "issue_date": (self.date_of_datetime(header, "issueDateTime", h, required=True), f"{h}.issueDateTime"),
            "issue_place": (issue_place, f"{auth_path}.issueLogisticsLocation.id[0].content"),
            "valid_until": (self.date(header, "x-validUntil", h, required=True), _join(h, "x-validUntil")),
            "status": (self.string(header, "x-status", h), _join(h, "x-status")),
            "remarks": (self.string(header, "x-remarks", h), _join(h, "x-remarks")),
            "exporter": (exporter, f"{sc}.consignor"),
            "importer": (importer, f"{sc}.consignee"),
            "issuing_authority": (issuer, f"{h}.issuer"),
            "export_country": (self.string(consignment, "x-exportCountryId", sc, required=True), _join(sc, "x-exportCountryId")),
            "import_country": (self.string(consignment, "x-importCountryId", sc, required=True), _join(sc, "x-importCountryId")),
            "items": (items, f"{sc}.includedConsignmentItem"),
            "producers": (producers, f"{sc}.associated"),
            "transport": (transport, f"{sc}.mainCarriageLogisticsTransportMovement"),
            "exporter_declaration": (declaration, _join(h, "x-exporterDeclaration")),
            "certification": (certification, auth_path),
            "signatures": (signatures, _join(h, "x-signatures")),
        }
        if len(self.errors) > mark:
            return None
        certificate: Certificate | None = self.build(Certificate, fields, "$")
        return certificate

    def party_at(self, obj: dict[str, Any], key: str, path: str) -> Party | None:
        party = self.object(obj, key, path, required=True)
        return self.party(party, _join(path, key)) if party is not None else None

    def party(self, obj: dict[str, Any], path: str) -> Party | None:
        mark = len(self.errors)
        address = None
        address_path = _join(path, "x-postalTradeAddress")
        address_obj = self.object(obj, "x-postalTradeAddress", path)
        if address_obj is not None:
            address = self.build(Address, {
                "country": (self.string(address_obj, "countryId", address_path, required=True), f"{address_path}.countryId"),
                "line": (self.string(address_obj, "lineOne", address_path), f"{address_path}.lineOne"),
                "city": (self.string(address_obj, "cityName", address_path), f"{address_path}.cityName"),
                "postcode": (self.string(address_obj, "postcode", address_path), f"{address_path}.postcode"),
            }, address_path) if len(self.errors) == mark else None
        fields = {
            "name": (self.string(obj, "x-name", path, required=True), _join(path, "x-name")),
            "country": (self.string(obj, "x-countryId", path, required=True), _join(path, "x-countryId")),
            "id": (self.first_id(obj, path), f"{path}.id[0].content"),
            "address": (address, address_path),
        }
        return self.build(Party, fields, path) if len(self.errors) == mark else None

    def producers(self, consignment: dict[str, Any], sc: str) -> tuple[Party, ...] | None:
        parties = self.value(consignment, "associated", sc, (list,), "an array", required=False) or []
        where = f"{sc}.associated"
        out = []
        for i, element in enumerate(parties):
            if isinstance(element, dict):
                party = self.party(element, _join(where, i))
                if party is not None:
                    out.append(party)
            elif isinstance(element, str):
                self.fail(_join(where, i), "URI references are not followed; give the object inline")
            else:
                self.fail(_join(where, i), f"expected an object, got {_kind(element)}")
        return tuple(out)

    def declaration(self, obj: dict[str, Any], path: str) -> Declaration | None:
        mark = len(self.errors)
        fields = {
            "place": (self.string(obj, "place", path, required=True), f"{path}.place"),
            "date": (self.date(obj, "date", path, required=True), f"{path}.date"),
            "signatory": (self.string(obj, "signatory", path, required=True), f"{path}.signatory"),
            "text": (self.string(obj, "text", path), f"{path}.text"),
        }
        return self.build(Declaration, fields, path) if len(self.errors) == mark else None

    def certification(self, auth: dict[str, Any], path: str) -> Declaration | None:
        """The authority's certification: date in ``actualDateTime``, the rest in extensions.

        Present when ``x-signatory`` is; an ``actualDateTime`` alone (a document written
        by others) cannot make a certification and is not read.
        """
        if "x-signatory" not in auth:
            return None
        mark = len(self.errors)
        fields = {
            "place": (self.string(auth, "x-place", path, required=True), _join(path, "x-place")),
            "date": (self.date_of_datetime(auth, "actualDateTime", path, required=True), f"{path}.actualDateTime"),
            "signatory": (self.string(auth, "x-signatory", path, required=True), _join(path, "x-signatory")),
            "text": (self.string(auth, "x-statement", path), _join(path, "x-statement")),
        }
        return self.build(Declaration, fields, path) if len(self.errors) == mark else None

    def signatures(self, header: dict[str, Any], h: str) -> tuple[SignatureInfo, ...] | None:
        where = _join(h, "x-signatures")
        entries = self.value(header, "x-signatures", h, (list,), "an array", required=False) or []
        out = []
        for i, entry in enumerate(entries):
            path = _join(where, i)
            if not isinstance(entry, dict):
                self.fail(path, f"expected an object, got {_kind(entry)}")
                continue
            mark = len(self.errors)
            fields = {
                "role": (self.string(entry, "role", path, required=True), f"{path}.role"),
                "signer": (self.string(entry, "signer", path, required=True), f"{path}.signer"),
                "signed_at": (self.datetime(entry, "signedAt", path, required=True), f"{path}.signedAt"),
            }
            if len(self.errors) == mark:
                signature = self.build(SignatureInfo, fields, path)
                if signature is not None:
                    out.append(signature)
        return tuple(out)

    def transport(self, consignment: dict[str, Any], sc: str) -> TransportDetails | None:
        keys = ("mainCarriageLogisticsTransportMovement", "loadingLogisticsLocation", "unloadingLogisticsLocation")
        if not any(k in consignment for k in keys):
            return None
        mark = len(self.errors)
        mode = means = departure = None
        movement, mp = self.single(consignment, "mainCarriageLogisticsTransportMovement", sc)
        if movement is not None:
            mode = self.string(movement, "x-mode", mp) if "x-mode" in movement else self.content(movement, "modeCode", mp)
            vehicle = self.object(movement, "usedLogisticsTransportMeans", mp)
            if vehicle is not None:
                means = self.content(vehicle, "name", _join(mp, "usedLogisticsTransportMeans"))
            if means is None and "id" in movement:
                means = self.content(movement, "id", mp)
            departure = self.date(movement, "x-departureDate", mp)
        places = {}
        for key in ("loadingLogisticsLocation", "unloadingLogisticsLocation"):
            location = self.object(consignment, key, sc)
            places[key] = self.first_id(location, _join(sc, key), required=True) if location is not None else None
        fields = {
            "mode": (mode, _join(mp, "x-mode")),
            "means": (means, f"{mp}.usedLogisticsTransportMeans.name.content"),
            "departure_date": (departure, _join(mp, "x-departureDate")),
            "loading_place": (places["loadingLogisticsLocation"], f"{sc}.loadingLogisticsLocation.id[0].content"),
            "discharge_place": (places["unloadingLogisticsLocation"], f"{sc}.unloadingLogisticsLocation.id[0].content"),
        }
        return self.build(TransportDetails, fields, sc) if len(self.errors) == mark else None

    def items(self, consignment: dict[str, Any], sc: str) -> tuple[GoodsItem, ...] | None:
        where = _join(sc, "includedConsignmentItem")
        elements = self.value(consignment, "includedConsignmentItem", sc, (list,), "an array", required=True)
        if elements is None:
            return None
        if not elements:
            self.fail(where, "a certificate needs at least one goods item")
            return None
        out = []
        for i, element in enumerate(elements):
            path = _join(where, i)
            if isinstance(element, dict):
                item = self.item(element, path, position=i + 1)
                if item is not None:
                    out.append(item)
            elif isinstance(element, str):
                self.fail(path, "URI references are not followed; give the consignment item inline")
            else:
                self.fail(path, f"expected an object, got {_kind(element)}")
        return tuple(out) if len(out) == len(elements) else None

    def item(self, ci: dict[str, Any], path: str, position: int) -> GoodsItem | None:
        mark = len(self.errors)
        sequence: int | None = position
        sequence_text = self.first_id(ci, path)
        if sequence_text is not None:
            if _DIGITS.fullmatch(sequence_text):
                sequence = int(sequence_text)
            else:
                self.fail(f"{path}.id[0].content", f"{sequence_text!r} is not a goods item sequence number")
        gross = None
        mass = self.object(ci, "x-grossWeightMeasure", path)
        if mass is not None:
            mass_path = _join(path, "x-grossWeightMeasure")
            gross = self.decimal(mass, "content", mass_path, required=True)
            unit = self.string(mass, "unitCode", mass_path)
            if unit not in (None, "KGM"):
                self.fail(f"{mass_path}.unitCode", f"{unit!r}: ibb carries gross mass in kilograms ('KGM')")

        line, lp = self.single(ci, "includedTradeLineItem", path, required=True)
        if line is None:
            return None
        product, pp = self.single(line, "specifiedTradeProduct", lp, required=True)
        hs_code = description = criterion = origin = None
        hs_path = f"{pp}.designatedProductClassification[0].classCode.content"
        origin_path = f"{pp}.originTradeCountry[0]"
        if product is not None:
            classification, cp = self.single(product, "designatedProductClassification", pp, required=True)
            if classification is not None:
                hs_code = self.content(classification, "classCode", cp, required=True)
            description = self.string(product, "x-description", pp, required=True)
            criterion = self.string(product, "x-originCriterion", pp, required=True)
            origin, origin_path = self.origin_country(product, pp)

        count = kind = marks = None
        kind_path = _join(lp, "x-packageKind")
        marks_path = _join(lp, "x-marks")
        count_path = f"{lp}.physicalReferencedLogisticsPackage[0].itemQuantity.content"
        package, kp = self.single(line, "physicalReferencedLogisticsPackage", lp)
        if package is not None:
            count = self.package_count(package, kp)
            if "x-packageKind" in package:
                kind, kind_path = self.string(package, "x-packageKind", kp), _join(kp, "x-packageKind")
            else:
                kind, kind_path = self.content(package, "typeCode", kp), f"{kp}.typeCode.content"
            shipping, sp = self.single(package, "physicalLogisticsShippingMarks", kp)
            if shipping is not None:
                marking, marks_path = self.single(shipping, "marking", sp, required=True)
                if marking is not None:
                    marks = self.string(marking, "content", marks_path, required=True)
        else:
            kind = self.string(line, "x-packageKind", lp)
            marks = self.string(line, "x-marks", lp)

        quantity = unit = None
        q_path = _join(lp, "x-quantity")
        q = self.object(line, "x-quantity", lp)
        if q is not None:
            quantity = self.decimal(q, "content", q_path)
            unit = self.string(q, "unitCode", q_path)
        invoice_number = invoice_date = None
        inv_path = _join(lp, "x-invoice")
        invoice = self.object(line, "x-invoice", lp)
        if invoice is not None:
            invoice_number = self.string(invoice, "id", inv_path)
            invoice_date = self.date(invoice, "issueDate", inv_path)
        fob = currency = None
        fob_path = _join(lp, "x-fobValue")
        value = self.object(line, "x-fobValue", lp)
        if value is not None:
            fob = self.decimal(value, "content", fob_path, required=True)
            currency = self.string(value, "currencyId", fob_path, required=True)

        fields = {
            "sequence": (sequence, f"{path}.id[0].content"),
            "hs_code": (hs_code, hs_path),
            "description": (description, _join(pp, "x-description")),
            "origin_criterion": (criterion, _join(pp, "x-originCriterion")),
            "origin_country": (origin, origin_path),
            "package_count": (count, count_path),
            "package_kind": (kind, kind_path),
            "marks": (marks, marks_path),
            "quantity": (quantity, f"{q_path}.content"),
            "quantity_unit": (unit, f"{q_path}.unitCode"),
            "gross_mass_kg": (gross, f"{_join(path, 'x-grossWeightMeasure')}.content"),
            "invoice_number": (invoice_number, f"{inv_path}.id"),
            "invoice_date": (invoice_date, f"{inv_path}.issueDate"),
            "fob_value": (fob, f"{fob_path}.content"),
            "currency": (currency, f"{fob_path}.currencyId"),
        }
        return self.build(GoodsItem, fields, path) if len(self.errors) == mark else None

    def package_count(self, package: dict[str, Any], kp: str) -> int | None:
        count_path = f"{kp}.itemQuantity"
        quantity = self.object(package, "itemQuantity", kp, required=True)
        if quantity is None:
            return None
        number = self.decimal(quantity, "content", count_path, required=True)
        if number is None:
            return None
        if number != number.to_integral_value():
            self.fail(f"{count_path}.content", f"{number} packages: a package count is a whole number")
            return None
        return int(number)

    def origin_country(self, product: dict[str, Any], pp: str) -> tuple[str | None, str]:
        """``originTradeCountry[0]``: a UN/CEFACT country URI, or ``{"id": [{"content": "KR"}]}``."""
        element, where = self.single(product, "originTradeCountry", pp, required=True, uri=True)
        if element is None:
            return None, where
        if isinstance(element, str):
            match = _COUNTRY_REF.fullmatch(element)
            if match is None:
                self.fail(where, f"{element[:80]!r} is not a country reference like '{COUNTRY_URI}KR'")
                return None, where
            return match.group(1), where
        return self.first_id(element, where, required=True), f"{where}.id[0].content"
