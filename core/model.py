"""The canonical e-CO model: the GNC *data cluster* of a certificate of origin.

Frozen attrs classes. Message-format plugins map this model to and from the wire;
the canonical JSON form (``to_json`` / ``from_json``) is what integrators feed to
``ibb cert issue``. Field-level checks (ISO 3166 countries, ISO 4217 currencies, HS
code shape) run on construction, so an invalid certificate cannot exist in memory.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
import cattrs
import cattrs.gen
from attrs import field, frozen

from .codes import COUNTRIES, CURRENCIES
from .errors import CertificateError

HS_CODE = re.compile(r"^\d{6}(\d{2}){0,2}$")


class FieldError(ValueError):
    """A validator's complaint about one field; ``error_paths`` appends the field to the path."""

    def __init__(self, field_name: str, message: str):
        self.field_name = field_name
        super().__init__(message)


def _country(instance: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and value not in COUNTRIES:
        raise FieldError(attribute.name, f"{value!r} is not an ISO 3166-1 alpha-2 country code")


def _currency(instance: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and value not in CURRENCIES:
        raise FieldError(attribute.name, f"{value!r} is not an ISO 4217 currency code")


def _hs_code(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if not HS_CODE.match(value):
        raise FieldError(attribute.name, f"{value!r} is not an HS code (6, 8 or 10 digits, no dots)")


def _not_blank(instance: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and not value.strip():
        raise FieldError(attribute.name, "must not be blank")


def _positive(instance: Any, attribute: attrs.Attribute, value: Decimal | int | None) -> None:
    if value is not None and value < 0:
        raise FieldError(attribute.name, f"must not be negative (got {value})")


@frozen
class Address:
    country: str = field(validator=_country)
    line: str | None = None
    city: str | None = None
    postcode: str | None = None


@frozen
class Party:
    """A trade party or authority: exporter, producer, importer, issuing authority."""

    name: str = field(validator=_not_blank)
    country: str = field(validator=_country)
    id: str | None = None
    """Identifier in the party's country (tax id, EORI, business number)."""
    address: Address | None = None


@frozen
class TransportDetails:
    mode: str | None = None
    """UN/ECE Rec. 19 mode code or free text (``sea``, ``air``, ``road``, ``rail``)."""
    means: str | None = None
    """Vessel name, flight number, vehicle registration."""
    departure_date: dt.date | None = None
    loading_place: str | None = None
    discharge_place: str | None = None


@frozen
class GoodsItem:
    sequence: int = field(validator=_positive)
    hs_code: str = field(validator=_hs_code)
    description: str = field(validator=_not_blank)
    origin_criterion: str = field(validator=_not_blank)
    origin_country: str = field(validator=_country)
    package_count: int | None = field(default=None, validator=_positive)
    package_kind: str | None = None
    """UN/ECE Rec. 21 package code, e.g. ``CT`` (carton)."""
    marks: str | None = None
    quantity: Decimal | None = field(default=None, validator=_positive)
    quantity_unit: str | None = None
    """UN/ECE Rec. 20 unit code, e.g. ``KGM``, ``C62``."""
    gross_mass_kg: Decimal | None = field(default=None, validator=_positive)
    invoice_number: str | None = None
    invoice_date: dt.date | None = None
    fob_value: Decimal | None = field(default=None, validator=_positive)
    currency: str | None = field(default=None, validator=_currency)

    def __attrs_post_init__(self) -> None:
        if (self.fob_value is None) != (self.currency is None):
            raise FieldError("currency", "fob_value and currency go together: give both or neither")
        if self.quantity is not None and self.quantity_unit is None:
            raise FieldError("quantity_unit", "required when quantity is given")


@frozen
class Declaration:
    """The exporter's declaration or the issuing authority's certification."""

    place: str
    date: dt.date
    signatory: str
    text: str | None = None


@frozen
class SignatureInfo:
    """Who signed the certificate in which role. The signature bytes live in the wire format."""

    role: str
    signer: str
    signed_at: dt.datetime


@frozen
class Certificate:
    id: str = field(validator=_not_blank)
    type: str
    """Certificate type, e.g. ``preferential`` or a form code of the agreement (``EUR.1``, ``FORM-E``)."""
    agreement: str
    issue_date: dt.date
    issue_place: str
    valid_until: dt.date
    exporter: Party
    importer: Party
    issuing_authority: Party
    export_country: str = field(validator=_country)
    import_country: str = field(validator=_country)
    items: tuple[GoodsItem, ...] = field(converter=tuple)
    producers: tuple[Party, ...] = field(default=(), converter=tuple)
    transport: TransportDetails | None = None
    remarks: str | None = None
    exporter_declaration: Declaration | None = None
    certification: Declaration | None = None
    signatures: tuple[SignatureInfo, ...] = field(default=(), converter=tuple)
    status: str = "draft"

    def __attrs_post_init__(self) -> None:
        if not self.items:
            raise FieldError("items", "a certificate needs at least one goods item")
        if self.valid_until < self.issue_date:
            raise FieldError("valid_until", f"{self.valid_until} is before issue_date {self.issue_date}")
        seqs = [i.sequence for i in self.items]
        if len(set(seqs)) != len(seqs):
            raise FieldError("items", f"goods item sequence numbers repeat: {seqs}")


def _make_converter() -> cattrs.Converter:
    c = cattrs.Converter(forbid_extra_keys=True)

    def _decimal(v: Any, _: type) -> Decimal:
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise ValueError(f"expected a decimal number, got {v!r}")
        try:
            d = Decimal(str(v))
        except InvalidOperation:
            raise ValueError(f"{v!r} is not a decimal number") from None
        if not d.is_finite():
            raise ValueError(f"{v!r} is not a finite number")
        return d

    def _date(v: Any, _: type) -> dt.date:
        if isinstance(v, dt.date):
            return v
        try:
            return dt.date.fromisoformat(v)
        except (TypeError, ValueError):
            raise ValueError(f"{v!r} is not an ISO date (YYYY-MM-DD)") from None

    def _datetime(v: Any, _: type) -> dt.datetime:
        if isinstance(v, dt.datetime):
            return v
        try:
            parsed = dt.datetime.fromisoformat(v)
        except (TypeError, ValueError):
            raise ValueError(f"{v!r} is not an ISO date-time") from None
        if parsed.tzinfo is None:
            raise ValueError(f"{v!r} has no time zone offset")
        return parsed

    def _str(v: Any, _: type) -> str:
        if not isinstance(v, str):
            raise ValueError(f"expected a string, got {v!r}")
        return v

    def _bool(v: Any, _: type) -> bool:
        if not isinstance(v, bool):
            raise ValueError(f"expected true or false, got {v!r}")
        return v

    def _int(v: Any, _: type) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected an integer, got {v!r}")
        return v

    c.register_structure_hook(Decimal, _decimal)
    c.register_unstructure_hook(Decimal, str)
    c.register_structure_hook(dt.date, _date)
    c.register_unstructure_hook(dt.date, dt.date.isoformat)
    c.register_structure_hook(dt.datetime, _datetime)
    c.register_unstructure_hook(dt.datetime, dt.datetime.isoformat)
    c.register_structure_hook(str, _str)
    c.register_structure_hook(int, _int)
    c.register_structure_hook(bool, _bool)
    c.register_structure_hook_factory(attrs.has, _every_validator_error)
    return c


def _every_validator_error(cls: type, converter: cattrs.Converter) -> Any:
    """Structure an attrs class as cattrs does; when its constructor refuses the data, report the
    problems of every field, not only the first validator's (attrs stops at the first)."""
    base = cattrs.gen.make_dict_structure_fn(cls, converter, _cattrs_forbid_extra_keys=converter.forbid_extra_keys,
                                             _cattrs_detailed_validation=converter.detailed_validation)

    def structure(data: Any, type_: type) -> Any:
        try:
            return base(data, type_)
        except cattrs.ClassValidationError as exc:
            with_notes, _ = exc.group_exceptions()
            if with_notes:  # some fields did not structure: reported per field already
                raise
            # Every field structured; unknown keys, or the constructor refused (attrs stops at the
            # first validator): report the unknown keys and every field's validator problem.
            unknown = [e for e in exc.exceptions if isinstance(e, cattrs.ForbiddenExtraKeysError)]
            problems = unknown + _field_validator_errors(cls, converter, data)
            if len(problems) > 1:
                raise cattrs.ClassValidationError(exc.message, problems, cls) from None
            raise

    return structure


def _field_validator_errors(cls: type, converter: cattrs.Converter, data: dict[str, Any]) -> list[Exception]:
    """Run every field's validator on its structured value; the errors (each naming its field).
    Empty when that cannot be done (the caller then reports the constructor's own error)."""
    try:
        attrs.resolve_types(cls)
    except Exception:  # noqa: BLE001 - a plugin class whose annotations do not resolve
        return []
    stand_in = object.__new__(cls)
    values = {}
    for f in attrs.fields(cls):
        key = f.alias or f.name
        if key in data:
            try:
                value = converter.structure(data[key], f.type) if f.type is not None else data[key]
                value = f.converter(value) if callable(f.converter) else value
            except Exception:  # noqa: BLE001 - structured fine a moment ago; give up quietly
                return []
        elif isinstance(f.default, attrs.Factory):  # type: ignore[arg-type]
            value = f.default.factory(stand_in) if f.default.takes_self else f.default.factory()
        else:
            value = f.default
        values[f.name] = value
        object.__setattr__(stand_in, f.name, value)
    errors: list[Exception] = []
    for f in attrs.fields(cls):
        if f.validator is not None:
            try:
                f.validator(stand_in, f, values[f.name])
            except Exception as exc:  # noqa: BLE001 - collected, reported with the field's path
                errors.append(exc)
    return errors


converter = _make_converter()


def error_paths(exc: BaseException, path: str = "$") -> list[str]:
    """Flatten a cattrs structuring error into ``$.path: message`` lines, one per problem."""
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return [f"{path}: unknown key(s) {', '.join(sorted(exc.extra_fields))}"]
    if isinstance(exc, cattrs.BaseValidationError):
        with_notes, without_notes = exc.group_exceptions()
        lines: list[str] = []
        for sub, note in with_notes:
            if isinstance(note, cattrs.AttributeValidationNote):
                sub_path = f"{path}.{note.name}"
            elif isinstance(note, cattrs.IterableValidationNote):
                sub_path = f"{path}[{note.index!r}]"
            else:
                sub_path = path
            lines.extend(error_paths(sub, sub_path))
        for sub in without_notes:  # raised by the class constructor (attrs validators)
            lines.extend(error_paths(sub, path))
        return lines
    if isinstance(exc, KeyError):
        return [f"{path}: required field is missing"]
    if isinstance(exc, FieldError):
        return [f"{path}.{exc.field_name}: {exc}"]
    if len(exc.args) > 1 and isinstance(exc.args[1], attrs.Attribute):
        # attrs' own validators raise (message, attribute, expected, value)
        return [f"{path}.{exc.args[1].name}: {exc.args[0]}"]
    return [f"{path}: {exc}"]


def certificate_from_dict(data: Any, source: str | None = None) -> Certificate:
    """Build a certificate from canonical JSON data, reporting every problem with its path."""
    if not isinstance(data, dict):
        raise CertificateError(["$: a certificate is a JSON object"], source)
    try:
        return converter.structure(data, Certificate)
    except Exception as exc:  # cattrs wraps validator errors in exception groups
        raise CertificateError(error_paths(exc), source) from None


def certificate_to_dict(cert: Certificate) -> dict[str, Any]:
    """The canonical JSON form of a certificate, without empty optional fields."""
    return _prune(converter.unstructure(cert))


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, (list, tuple)):
        return [_prune(v) for v in value]
    return value


def certificate_from_json(text: str | bytes, source: str | None = None) -> Certificate:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CertificateError([f"$: not valid JSON ({exc})"], source) from None
    return certificate_from_dict(data, source)


def certificate_to_json(cert: Certificate) -> str:
    return json.dumps(certificate_to_dict(cert), indent=2, ensure_ascii=False)
