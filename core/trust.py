"""Trust lists: who may sign certificates of origin, for whom, and when (the ALADI "secure directory").

A profile names one trust list file (a format option, ``trust_list = "trust/kr-cn.toml"``).
It declares the trusted root certificates, the issuing entities, the officials who may
sign for each, and revoked certificates, all with validity periods::

    [trust_list]
    name = "Korea-China e-CO signatories"
    version = "2026-01"

    [[roots]]                        # trust anchors; every signer's chain must end here
    name = "Demo root CA"
    certificate = "root.pem"         # PEM, relative to this file

    [[intermediates]]                # optional: CA certificates used to build chains
    certificate = "issuing-ca.pem"

    [[issuing_entities]]
    id = "KR-KCCI"                   # the issuing authority's id in certificates (ALADI: EHId)
    name = "Korea Chamber of Commerce and Industry"
    country = "KR"
    valid_from = 2024-01-01T00:00:00Z
    valid_until = 2030-12-31T23:59:59Z          # optional
    suspensions = [{ from = 2025-03-01T00:00:00Z, until = 2025-03-15T00:00:00Z, reason = "audit" }]
    revoked = { at = 2031-01-01T00:00:00Z, reason = "accreditation withdrawn" }   # optional

    [[officials]]                    # who may sign for an issuing entity
    name = "Lee Seo-yeon"
    issuing_entity = "KR-KCCI"
    certificate = "official.pem"     # or sha256 = "<hex fingerprint of the DER certificate>"
    valid_from = 2024-01-01T00:00:00Z
    valid_until = 2027-01-01T00:00:00Z
    suspensions = []
    revoked = { at = 2026-06-01T00:00:00Z, reason = "left the chamber" }

    [[revoked_certificates]]         # any signer (exporters too)
    sha256 = "<hex>"                 # or certificate = "file.pem"
    at = 2026-02-01T00:00:00Z
    reason = "key-compromise"

Dates are TOML date-times with an offset (a bare date means midnight UTC). A signature
is checked at its signing time: the certificate chain must be valid then, the holder
authorised then, and neither suspended nor revoked then. A revocation with reason
``key-compromise`` refuses every signature by that certificate, whatever time it claims.
Every problem in the file is reported with its ``$.path``, like profile errors.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any

import attrs
from attrs import field, frozen
from cryptography import x509
from cryptography.x509 import verification as xv

from .errors import InvalidInput
from .keys import KeyUnavailable, fingerprint, load_pem_certificates
from .model import FieldError, error_paths

KEY_COMPROMISE = "key-compromise"


class TrustListError(InvalidInput):
    """A trust list file is invalid."""


def _hex64(instance: Any, attribute: attrs.Attribute, value: str | None) -> None:
    if value is not None and (len(value) != 64 or any(c not in "0123456789abcdef" for c in value.lower())):
        raise FieldError(attribute.name, "must be a SHA-256 fingerprint: 64 hexadecimal digits")


@frozen
class Period:
    """A span of time; ``until`` None means open-ended."""

    from_: dt.datetime
    until: dt.datetime | None = None
    reason: str = ""

    def __attrs_post_init__(self) -> None:
        if self.until is not None and self.until <= self.from_:
            raise FieldError("until", f"{self.until.isoformat()} is not after from {self.from_.isoformat()}")

    def covers(self, at: dt.datetime) -> bool:
        return self.from_ <= at and (self.until is None or at < self.until)


@frozen
class Revocation:
    at: dt.datetime
    reason: str = "unspecified"

    def applies(self, at: dt.datetime) -> bool:
        return self.reason == KEY_COMPROMISE or at >= self.at


@frozen
class CertificateFile:
    name: str = ""
    certificate: str = ""
    """PEM file, relative to the trust list."""


@frozen
class IssuingEntity:
    id: str
    name: str
    country: str
    valid_from: dt.datetime
    valid_until: dt.datetime | None = None
    suspensions: tuple[Period, ...] = ()
    revoked: Revocation | None = None


@frozen
class Official:
    name: str
    issuing_entity: str
    valid_from: dt.datetime
    certificate: str | None = None
    sha256: str | None = field(default=None, validator=_hex64)
    valid_until: dt.datetime | None = None
    suspensions: tuple[Period, ...] = ()
    revoked: Revocation | None = None


@frozen
class RevokedCertificate:
    at: dt.datetime
    certificate: str | None = None
    sha256: str | None = field(default=None, validator=_hex64)
    reason: str = "unspecified"

    def applies(self, at: dt.datetime) -> bool:
        return self.reason == KEY_COMPROMISE or at >= self.at


@frozen
class Header:
    name: str
    version: str = ""


@frozen
class TrustListFile:
    """The TOML document as written (certificate paths not yet read)."""

    trust_list: Header
    roots: tuple[CertificateFile, ...]
    intermediates: tuple[CertificateFile, ...] = ()
    issuing_entities: tuple[IssuingEntity, ...] = ()
    officials: tuple[Official, ...] = ()
    revoked_certificates: tuple[RevokedCertificate, ...] = ()


def _converter() -> Any:
    from .model import converter as model_converter

    c = model_converter.copy(forbid_extra_keys=True)

    def _when(v: Any, _: type) -> dt.datetime:
        if isinstance(v, dt.datetime):
            if v.tzinfo is None:
                raise ValueError(f"{v.isoformat()} has no time zone offset (write e.g. 2026-01-01T00:00:00Z)")
            return v
        if isinstance(v, dt.date):
            return dt.datetime.combine(v, dt.time(), dt.timezone.utc)
        raise ValueError(f"expected a TOML date-time, got {v!r}")

    c.register_structure_hook(dt.datetime, _when)
    from cattrs.gen import make_dict_structure_fn

    period_fn = make_dict_structure_fn(Period, c, _cattrs_forbid_extra_keys=True)

    def _period(v: Any, _: type) -> Period:
        if not isinstance(v, dict):
            raise ValueError("expected a table {from = …, until = …, reason = …}")
        data = {("from_" if k == "from" else k): x for k, x in v.items()}
        return period_fn(data, Period)

    c.register_structure_hook(Period, _period)
    return c


SIGNER_CURVES = ("secp256r1", "secp384r1", "secp521r1")
MIN_RSA_BITS = 2048


def signer_certificate_problems(cert: x509.Certificate) -> str | None:
    """Why ``cert`` cannot be a signer's certificate (a CA, a key usage without signing, a weak key), or None."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return "is a CA certificate, not a signer's"
    except x509.ExtensionNotFound:
        pass
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not (usage.digital_signature or usage.content_commitment):
            return "does not allow signing (key usage has neither digitalSignature nor nonRepudiation)"
    except x509.ExtensionNotFound:
        pass
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"has a {key.key_size}-bit RSA key (at least {MIN_RSA_BITS} required)"
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in SIGNER_CURVES:
        return f"has a key on curve {key.curve.name} (allowed: {', '.join(SIGNER_CURVES)})"
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        return f"has a {type(key).__name__} key (RSA or EC required)"
    return None


@attrs.frozen
class SignerCheck:
    """The outcome of the trust checks on one signer: ``problems`` empty means trusted."""

    problems: tuple[str, ...]
    official: Official | None = None


class TrustList:
    """A loaded trust list: root and intermediate certificates read, officials indexed by fingerprint."""

    def __init__(self, spec: TrustListFile, roots: list[x509.Certificate], intermediates: list[x509.Certificate],
                 official_prints: list[str], revoked_prints: list[str], source: str = "<memory>"):
        self.spec = spec
        self.source = source
        self.roots = roots
        self.intermediates = intermediates
        self.entities = {e.id: e for e in spec.issuing_entities}
        self.officials: dict[str, list[Official]] = {}
        for fp, official in zip(official_prints, spec.officials):
            self.officials.setdefault(fp, []).append(official)
        self.revoked = {fp: r for fp, r in zip(revoked_prints, spec.revoked_certificates)}
        self._store = xv.Store(roots) if roots else None

    @property
    def name(self) -> str:
        return self.spec.trust_list.name

    # -- checks --------------------------------------------------------------------------

    def check_certificate(self, leaf: x509.Certificate, chain: list[x509.Certificate], at: dt.datetime) -> list[str]:
        """Problems with the signer's certificate at time ``at``: validity, chain to a root, revocation."""
        subject = leaf.subject.rfc4514_string()
        if at < leaf.not_valid_before_utc:
            return [f"certificate of {subject} was not yet valid at signing time {at.isoformat()} "
                    f"(valid from {leaf.not_valid_before_utc.isoformat()})"]
        if at > leaf.not_valid_after_utc:
            return [f"certificate of {subject} had expired at signing time {at.isoformat()} "
                    f"(valid until {leaf.not_valid_after_utc.isoformat()})"]
        revoked = self.revoked.get(fingerprint(leaf))
        if revoked is not None and revoked.applies(at):
            return [f"certificate of {subject} is revoked in the trust list since {revoked.at.isoformat()} ({revoked.reason})"]
        unfit = signer_certificate_problems(leaf)
        if unfit:
            return [f"certificate of {subject} {unfit}"]
        if self._store is None:
            return ["the trust list has no root certificate: nothing can be trusted"]
        policy = (
            xv.PolicyBuilder()
            .store(self._store)
            .time(at)
            .max_chain_depth(4)
            .extension_policies(ca_policy=xv.ExtensionPolicy.webpki_defaults_ca(), ee_policy=xv.ExtensionPolicy.permit_all())
        )
        try:
            verified = policy.build_client_verifier().verify(leaf, [c for c in chain if c != leaf] + self.intermediates)
        except xv.VerificationError as exc:
            return [f"certificate of {subject} does not chain to a root of trust list {self.name!r} at {at.isoformat()} ({exc})"]
        for issuer in verified.chain[1:]:
            revoked = self.revoked.get(fingerprint(issuer))
            if revoked is not None and revoked.applies(at):
                return [f"certificate of {subject} is issued by {issuer.subject.rfc4514_string()}, revoked in the trust list "
                        f"since {revoked.at.isoformat()} ({revoked.reason})"]
        return []

    def check_official(self, leaf: x509.Certificate, entity_id: str, at: dt.datetime) -> SignerCheck:
        """Is the holder of ``leaf`` authorised to sign for issuing entity ``entity_id`` at ``at``?"""
        subject = leaf.subject.rfc4514_string()
        entity = self.entities.get(entity_id)
        if entity is None:
            return SignerCheck((f"issuing entity {entity_id!r} is not in trust list {self.name!r}",))
        if entity.revoked is not None and entity.revoked.applies(at):
            return SignerCheck((f"issuing entity {entity_id!r} is revoked since {entity.revoked.at.isoformat()} ({entity.revoked.reason})",))
        if at < entity.valid_from or (entity.valid_until is not None and at >= entity.valid_until):
            return SignerCheck((f"issuing entity {entity_id!r} was not accredited at signing time {at.isoformat()}",))
        for period in entity.suspensions:
            if period.covers(at):
                return SignerCheck((f"issuing entity {entity_id!r} was suspended at signing time {at.isoformat()} ({period.reason or 'no reason given'})",))
        entries = self.officials.get(fingerprint(leaf), [])
        if not entries:
            return SignerCheck((f"{subject} is not an official of any issuing entity in trust list {self.name!r}",))
        mine = [o for o in entries if o.issuing_entity == entity_id]
        if not mine:
            others = ", ".join(sorted({o.issuing_entity for o in entries}))
            return SignerCheck((f"{subject} is not authorised to sign for issuing entity {entity_id!r} (only for {others})",))
        reasons = []
        for official in mine:
            if official.revoked is not None and official.revoked.applies(at):
                reasons.append(f"authorisation of {official.name} for {entity_id!r} is revoked since "
                               f"{official.revoked.at.isoformat()} ({official.revoked.reason})")
                continue
            if at < official.valid_from or (official.valid_until is not None and at >= official.valid_until):
                reasons.append(f"{official.name} was not authorised for {entity_id!r} at signing time {at.isoformat()} "
                               f"(authorised from {official.valid_from.isoformat()}"
                               f"{' until ' + official.valid_until.isoformat() if official.valid_until else ''})")
                continue
            suspended = next((p for p in official.suspensions if p.covers(at)), None)
            if suspended is not None:
                reasons.append(f"authorisation of {official.name} for {entity_id!r} was suspended at signing time "
                               f"{at.isoformat()} ({suspended.reason or 'no reason given'})")
                continue
            return SignerCheck((), official)
        return SignerCheck(tuple(reasons[:1]))


def load_trust_list(path: str | Path) -> TrustList:
    """Read and check a trust list file; raises :class:`TrustListError` with every problem and its path."""
    path = Path(path)
    source = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TrustListError([f"cannot read file ({exc.strerror})"], source) from None
    except UnicodeDecodeError:
        raise TrustListError(["$: file is not UTF-8 text"], source) from None
    except tomllib.TOMLDecodeError as exc:
        raise TrustListError([f"$: invalid TOML ({exc})"], source) from None
    return trust_list_from_dict(raw, path.parent, source)


def trust_list_from_dict(raw: dict[str, Any], base_dir: Path, source: str = "<memory>") -> TrustList:
    try:
        spec = _converter().structure(raw, TrustListFile)
    except Exception as exc:
        raise TrustListError(error_paths(exc), source) from None
    problems: list[str] = []

    def read(rel: str, where: str) -> list[x509.Certificate]:
        file = base_dir / rel
        try:
            return load_pem_certificates(file.read_bytes(), str(file))
        except OSError as exc:
            problems.append(f"{where}: cannot read {file} ({exc.strerror})")
        except KeyUnavailable as exc:
            problems.append(f"{where}: {exc}")
        return []

    def one_print(obj: Any, where: str) -> str:
        if (obj.certificate is None) == (obj.sha256 is None):
            problems.append(f"{where}: give exactly one of certificate (a PEM file) or sha256 (a fingerprint)")
            return ""
        if obj.sha256 is not None:
            return obj.sha256.lower()
        certs = read(obj.certificate, f"{where}.certificate")
        return fingerprint(certs[0]) if certs else ""

    roots = [c for i, r in enumerate(spec.roots) for c in read(r.certificate, f"$.roots[{i}].certificate")]
    inters = [c for i, r in enumerate(spec.intermediates) for c in read(r.certificate, f"$.intermediates[{i}].certificate")]
    if not spec.roots:
        problems.append("$.roots: at least one root certificate is required")
    official_prints = [one_print(o, f"$.officials[{i}]") for i, o in enumerate(spec.officials)]
    revoked_prints = [one_print(r, f"$.revoked_certificates[{i}]") for i, r in enumerate(spec.revoked_certificates)]
    ids = set()
    for i, entity in enumerate(spec.issuing_entities):
        if entity.id in ids:
            problems.append(f"$.issuing_entities[{i}].id: {entity.id!r} is declared twice")
        ids.add(entity.id)
    for i, official in enumerate(spec.officials):
        if official.issuing_entity not in ids:
            problems.append(f"$.officials[{i}].issuing_entity: {official.issuing_entity!r} is not an issuing entity of this list")
    if problems:
        raise TrustListError(problems, source)
    return TrustList(spec, roots, inters, official_prints, revoked_prints, source)


_loaded: dict[tuple[str, float], TrustList] = {}


def cached_trust_list(path: Path) -> TrustList:
    """Load a trust list once per file version (its modification time)."""
    path = Path(path)
    try:
        mtime = path.stat().st_mtime
    except OSError as exc:
        raise TrustListError([f"cannot read file ({exc.strerror})"], str(path)) from None
    key = (str(path.resolve()), mtime)
    if key not in _loaded:
        _loaded[key] = load_trust_list(path)
    return _loaded[key]
