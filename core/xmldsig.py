"""XML digital signatures (XMLDSig 1.0) with X.509 certificates, as certificates of origin use them.

What ibb writes, and the only shape it accepts:

- ``ds:Signature`` inside the document, at a position fixed by the message format (a
  :class:`Slot` per signing role), with an ``Id``;
- one ``Reference`` to the signed element by its id attribute (``URI="#COD"``), with the
  transforms ``[enveloped-signature,] exc-c14n`` (enveloped when the signature sits inside
  the element it signs, as in ``wco-eco-xml``; none when it is a sibling, as in ALADI COD);
- optionally a second ``Reference`` to a ``ds:Object`` inside the same signature holding
  ``ds:SignatureProperties`` with ``ibb:SigningTime`` (the signer's claimed signing time,
  covered by the signature, used to check the certificate and the authorisation "at
  signing time"); without it, signing time is the verification time;
- exclusive canonicalisation (``xml-exc-c14n#``) of ``SignedInfo``;
- ``KeyInfo/X509Data`` with the signer's certificate first, then intermediates;
- algorithms pinned by the profile: by default ``rsa-sha256`` and ``ecdsa-sha256`` with
  ``sha256`` digests. SHA-1 (``rsa-sha1``, ``sha1``) is never used to sign and is refused on
  verification unless the profile sets ``allow_sha1 = true`` for legacy documents.

Two-stage signing (ALADI): the exporter signs the certificate content; then an official of
the issuing entity signs an element that contains the content *and* the exporter's
signature. :func:`verify` checks every slot and reports, per role, what failed.

Verification refuses signature wrapping: the signature must be the only ``ds:Signature`` at
its slot, its reference must name the slot's id, exactly one element in the whole document
may carry that id (in any of ``Id``, ``ID``, ``id``, ``xml:id``), and that element must be
the one at the slot's path, which is what the message format then reads.

Built on lxml (canonicalisation) and cryptography (hashes, RSA/ECDSA, X.509 path
validation). signxml, a general-purpose XMLDSig library, cannot place a signed
``SignatureProperties`` object with a per-signature id, nor a signature as a sibling of the
element it signs, so ibb assembles and checks the few elements itself and uses signxml's
algorithm identifiers; the test suite uses signxml and xmlsec1 as independent verifiers.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import attrs
from attrs import frozen
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from lxml.builder import ElementMaker
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from .errors import InvalidInput
from .formats import MessageFormat
from .keys import Credentials, fingerprint
from .secrets import SecretRef
from .trust import TrustList
from .xml import DEFAULT_MAX_BYTES, XmlRefused, parse_xml, schema_problems

DS = "http://www.w3.org/2000/09/xmldsig#"
IBB_NS = "urn:ibb:xmldsig:properties:1"
EXC_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
PROPERTIES_TYPE = "http://www.w3.org/2000/09/xmldsig#SignatureProperties"
ID_ATTRIBUTES = ("Id", "ID", "id", "{http://www.w3.org/XML/1998/namespace}id")
CLOCK_SKEW = dt.timedelta(minutes=5)

SIGNATURE_METHODS = {
    "rsa-sha256": SignatureMethod.RSA_SHA256.value,
    "rsa-sha384": SignatureMethod.RSA_SHA384.value,
    "rsa-sha512": SignatureMethod.RSA_SHA512.value,
    "ecdsa-sha256": SignatureMethod.ECDSA_SHA256.value,
    "ecdsa-sha384": SignatureMethod.ECDSA_SHA384.value,
    "rsa-sha1": SignatureMethod.RSA_SHA1.value,
    "ecdsa-sha1": SignatureMethod.ECDSA_SHA1.value,
}
"""Short names (used in profiles) -> XMLDSig algorithm URIs."""
DIGEST_METHODS = {
    "sha256": DigestAlgorithm.SHA256.value,
    "sha384": DigestAlgorithm.SHA384.value,
    "sha512": DigestAlgorithm.SHA512.value,
    "sha1": DigestAlgorithm.SHA1.value,
}
_HASHES = {"sha1": (hashlib.sha1, hashes.SHA1), "sha256": (hashlib.sha256, hashes.SHA256),
           "sha384": (hashlib.sha384, hashes.SHA384), "sha512": (hashlib.sha512, hashes.SHA512)}
_SIG_BY_URI = {uri: name for name, uri in SIGNATURE_METHODS.items()}
_DIGEST_BY_URI = {uri: name for name, uri in DIGEST_METHODS.items()}


def _ds(tag: str) -> str:
    return f"{{{DS}}}{tag}"


class SignatureInvalid(InvalidInput):
    """A document's signatures, schema or trust checks failed; one line per problem, naming the role."""


class SigningError(InvalidInput):
    """A document cannot be signed as asked (wrong role, already signed, algorithm not allowed)."""


# -- configuration -----------------------------------------------------------------------


@frozen
class AlgorithmPolicy:
    """The algorithms a profile accepts. ``allow_sha1`` admits SHA-1 for verification only."""

    signature_methods: tuple[str, ...] = ("rsa-sha256", "ecdsa-sha256")
    digest_methods: tuple[str, ...] = ("sha256",)
    allow_sha1: bool = False

    def check(self) -> list[str]:
        problems = [f"signature method {m!r} is not one of {', '.join(SIGNATURE_METHODS)}" for m in self.signature_methods
                    if m not in SIGNATURE_METHODS]
        problems += [f"digest method {m!r} is not one of {', '.join(DIGEST_METHODS)}" for m in self.digest_methods
                     if m not in DIGEST_METHODS]
        return problems


@frozen
class Slot:
    """Where one role's signature lives in a format's document, and what it must sign.

    Paths are lxml ElementPath expressions from the root element (``.`` is the root).
    """

    role: str
    signed_path: str
    """Path of the element this role signs."""
    signed_id: str
    """Value of that element's id attribute (the reference is ``#signed_id``)."""
    parent_path: str
    """Path of the element the ``ds:Signature`` is a child of."""
    after: str | None = None
    """Tag of the sibling the signature follows; None: last child of ``parent_path``."""
    id_attribute: str = "Id"
    enveloped: bool = False
    """True when the signature sits inside the element it signs (enveloped-signature transform)."""

    @property
    def signature_id(self) -> str:
        return f"ibb-sig-{self.role}"


@frozen
class Problem:
    code: str
    """Stable machine-readable kind: ``missing``, ``algorithm``, ``structure``, ``wrapping``,
    ``digest``, ``signature-value``, ``certificate``, ``expired``, ``revoked``, ``untrusted``,
    ``not-authorised``, ``signing-time``, ``same-signer``."""
    message: str


@frozen
class SignatureResult:
    role: str
    problems: tuple[Problem, ...] = ()
    signer: str | None = None
    """Subject of the signer's certificate."""
    signed_at: dt.datetime | None = None
    algorithm: str | None = None
    official: str | None = None
    """Name of the official in the trust list, for issuing-entity signatures."""
    signer_fingerprint: str | None = None
    """SHA-256 fingerprint of the signer's certificate."""

    @property
    def ok(self) -> bool:
        return not self.problems


@frozen
class VerificationReport:
    """Per-role results plus schema problems; ``ok`` only when everything passed."""

    results: tuple[SignatureResult, ...]
    schema_problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.schema_problems and all(r.ok for r in self.results)

    def lines(self, *, passed_only: bool = False) -> list[str]:
        """One line per signature that passed and per problem (``passed_only``: the passed ones)."""
        out = [] if passed_only else [f"schema: {p}" for p in self.schema_problems]
        for r in self.results:
            if r.ok:
                out.append(f"signature {r.role}: ok ({r.algorithm}, {r.signer}, signed {r.signed_at.isoformat() if r.signed_at else '?'})")
            elif not passed_only:
                out.extend(f"signature {r.role}: {p.message} [{p.code}]" for p in r.problems)
        return out

    def raise_for_problems(self, source: str | None = None) -> None:
        if not self.ok:
            problems = [f"schema: {p}" for p in self.schema_problems]
            problems += [f"signature {r.role}: {p.message} [{p.code}]" for r in self.results for p in r.problems]
            raise SignatureInvalid(problems, source)


# -- helpers -----------------------------------------------------------------------------


def _c14n(element: etree._Element) -> bytes:
    return etree.tostring(element, method="c14n", exclusive=True, with_comments=False)


def _c14n_without(element: etree._Element, signature: etree._Element | None) -> bytes:
    """Exclusive c14n of ``element`` with ``signature`` (a descendant) removed, as the enveloped transform does."""
    if signature is None:
        return _c14n(element)
    parent = signature.getparent()
    assert parent is not None
    index = parent.index(signature)
    tail = signature.tail
    previous = signature.getprevious()
    parent.remove(signature)  # lxml removes the tail with the element: keep the text node in place
    saved = previous.tail if previous is not None else parent.text
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    try:
        return _c14n(element)
    finally:
        if previous is not None:
            previous.tail = saved
        else:
            parent.text = saved
        parent.insert(index, signature)
        signature.tail = tail


def _digest(name: str, data: bytes) -> bytes:
    return _HASHES[name][0](data).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _find(root: etree._Element, path: str) -> etree._Element | None:
    return root if path in (".", "") else root.find(path)


def elements_with_id(root: etree._Element, value: str) -> list[etree._Element]:
    """Every element carrying ``value`` in any id-like attribute (Id, ID, id, xml:id)."""
    return [el for el in root.iter(etree.Element) if any(el.get(a) == value for a in ID_ATTRIBUTES)]


def _place(root: etree._Element, slot: Slot, signature: etree._Element) -> None:
    parent = _find(root, slot.parent_path)
    if parent is None:
        raise SigningError([f"$: the document has no element at {slot.parent_path} to hold the {slot.role} signature"])
    if slot.after is None:
        parent.append(signature)
        return
    anchor = parent.find(slot.after)
    if anchor is None:
        raise SigningError([f"$: no {slot.after} element in {slot.parent_path} for the {slot.role} signature to follow"])
    anchor.addnext(signature)
    # addnext moves the anchor's tail after the signature; keep the document's text where it was.
    signature.tail, anchor.tail = anchor.tail, None


def slot_signatures(root: etree._Element, slot: Slot) -> list[etree._Element]:
    parent = _find(root, slot.parent_path)
    return [] if parent is None else parent.findall(_ds("Signature"))


# -- signing -----------------------------------------------------------------------------


def sign(root: etree._Element, slot: Slot, credentials: Credentials, *, policy: AlgorithmPolicy = AlgorithmPolicy(),
         algorithm: str | None = None, signing_time: dt.datetime | None = None) -> etree._Element:
    """Add ``slot.role``'s signature to the document ``root`` (in place) and return the ``ds:Signature``."""
    algorithm = algorithm or credentials.algorithm
    if algorithm not in policy.signature_methods or "sha1" in algorithm:
        raise SigningError([f"signature method {algorithm!r} is not allowed by the profile "
                            f"(allowed: {', '.join(m for m in policy.signature_methods if 'sha1' not in m)})"])
    if algorithm.startswith("ecdsa") != isinstance(credentials.key, ec.EllipticCurvePrivateKey):
        raise SigningError([f"signature method {algorithm!r} does not match the key ({credentials.algorithm})"])
    digest_name = next((d for d in policy.digest_methods if d != "sha1"), None)
    if digest_name is None:
        raise SigningError(["the profile allows no digest method ibb may sign with (SHA-1 is never used to sign)"])
    signed = _find(root, slot.signed_path)
    if signed is None:
        raise SigningError([f"$: the document has no element at {slot.signed_path} for the {slot.role} to sign"])
    if slot_signatures(root, slot):
        raise SigningError([f"$: the document is already signed by the {slot.role}"])
    if signed.get(slot.id_attribute) != slot.signed_id:
        raise SigningError([f"$: the element to sign has {slot.id_attribute}={signed.get(slot.id_attribute)!r}, expected {slot.signed_id!r}"])
    when = (signing_time or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).replace(microsecond=0)

    E = ElementMaker(namespace=DS, nsmap={"ds": DS})
    sig_id = slot.signature_id
    props_id = f"{sig_id}-props"
    transforms = [E.Transform(Algorithm=ENVELOPED)] if slot.enveloped else []
    transforms.append(E.Transform(Algorithm=EXC_C14N))
    content_ref = E.Reference(E.Transforms(*transforms), E.DigestMethod(Algorithm=DIGEST_METHODS[digest_name]),
                              E.DigestValue(), URI=f"#{slot.signed_id}")
    props_ref = E.Reference(E.Transforms(E.Transform(Algorithm=EXC_C14N)), E.DigestMethod(Algorithm=DIGEST_METHODS[digest_name]),
                            E.DigestValue(), URI=f"#{props_id}", Type=PROPERTIES_TYPE)
    signed_info = E.SignedInfo(E.CanonicalizationMethod(Algorithm=EXC_C14N),
                               E.SignatureMethod(Algorithm=SIGNATURE_METHODS[algorithm]), content_ref, props_ref)
    certs = [credentials.certificate, *credentials.chain]
    x509_data = E.X509Data(*[E.X509Certificate(_b64(c.public_bytes(Encoding.DER))) for c in certs])
    prop = etree.Element(f"{{{IBB_NS}}}SigningTime", nsmap={"ibb": IBB_NS})
    prop.text = when.isoformat().replace("+00:00", "Z")
    obj = E.Object(E.SignatureProperties(E.SignatureProperty(prop, Target=f"#{sig_id}")), Id=props_id)
    signature = E.Signature(signed_info, E.SignatureValue(), E.KeyInfo(x509_data), obj, Id=sig_id)

    _place(root, slot, signature)
    content_ref[2].text = _b64(_digest(digest_name, _c14n_without(signed, signature if slot.enveloped else None)))
    props_ref[2].text = _b64(_digest(digest_name, _c14n(obj)))
    data = _c14n(signed_info)
    hash_cls = _HASHES[algorithm.split("-")[1]][1]
    key = credentials.key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hash_cls())))
        size = (key.curve.key_size + 7) // 8
        raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    else:
        raw = key.sign(data, padding.PKCS1v15(), hash_cls())
    signature[1].text = _b64(raw)
    return signature


# -- verification ------------------------------------------------------------------------


class _Fail(Exception):
    def __init__(self, code: str, message: str):
        self.problem = Problem(code, message)


def _algorithm_problem(kind: str, name: str | None, uri: str, allowed: Sequence[str], policy: AlgorithmPolicy) -> None:
    if name is None:
        raise _Fail("algorithm", f"{kind} {uri!r} is not supported")
    if "sha1" in name:
        if not policy.allow_sha1:
            raise _Fail("algorithm", f"{kind} {name} uses SHA-1, which is refused (a profile may set allow_sha1 = true "
                                     "to verify legacy documents)")
        return
    if name not in allowed:
        raise _Fail("algorithm", f"{kind} {name} is not allowed by the profile (allowed: {', '.join(allowed)})")


def _children(el: etree._Element, tag: str) -> list[etree._Element]:
    return el.findall(_ds(tag))


def _one(el: etree._Element, tag: str, where: str) -> etree._Element:
    found = _children(el, tag)
    if len(found) != 1:
        raise _Fail("structure", f"{where} must have exactly one ds:{tag} (found {len(found)})")
    return found[0]


def verify_slot(root: etree._Element, slot: Slot, *, trust: TrustList | None, policy: AlgorithmPolicy = AlgorithmPolicy(),
                issuing_entity: str | None = None, official: bool = False, now: dt.datetime | None = None) -> SignatureResult:
    """Check one role's signature: structure, wrapping, digests, signature value, then trust at signing time.

    ``official`` makes this an official's signature: the signer must be authorised in the
    trust list for ``issuing_entity`` (the id the document names). ``trust`` None skips the
    trust checks (used only by tools that report integrity alone).
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    signer = signer_print = algorithm = official_name = None
    signed_at: dt.datetime | None = None
    try:
        found = slot_signatures(root, slot)
        if not found:
            raise _Fail("missing", f"no {slot.role} signature (expected a ds:Signature in {slot.parent_path})")
        if len(found) > 1:
            raise _Fail("wrapping", f"{len(found)} signatures where one {slot.role} signature is expected")
        signature = found[0]
        signed_info = _one(signature, "SignedInfo", "ds:Signature")
        c14n_method = _one(signed_info, "CanonicalizationMethod", "ds:SignedInfo").get("Algorithm")
        if c14n_method != EXC_C14N:
            raise _Fail("algorithm", f"canonicalisation {c14n_method!r} is not exclusive c14n ({EXC_C14N})")
        sig_uri = _one(signed_info, "SignatureMethod", "ds:SignedInfo").get("Algorithm") or ""
        algorithm = _SIG_BY_URI.get(sig_uri)
        _algorithm_problem("signature method", algorithm, sig_uri, policy.signature_methods, policy)
        references = _children(signed_info, "Reference")
        if not 1 <= len(references) <= 2:
            raise _Fail("structure", f"{len(references)} references; expected the signed content and optionally signing properties")

        signed = _find(root, slot.signed_path)
        expected_uri = f"#{slot.signed_id}"
        content_ref = references[0]
        if content_ref.get("URI") != expected_uri:
            raise _Fail("wrapping", f"the signature covers {content_ref.get('URI')!r}, not the {slot.role}'s element {expected_uri!r}")
        holders = elements_with_id(root, slot.signed_id)
        if len(holders) != 1:
            raise _Fail("wrapping", f"id {slot.signed_id!r} is carried by {len(holders)} elements (signature wrapping?)")
        if signed is None or holders[0] is not signed or signed.get(slot.id_attribute) != slot.signed_id:
            raise _Fail("wrapping", f"the element with id {slot.signed_id!r} is not the one at {slot.signed_path} "
                                    "(signature moved or content wrapped)")
        properties: etree._Element | None = None
        for i, ref in enumerate(references):
            transforms = [t.get("Algorithm") for t in (ref.find(_ds("Transforms")) if ref.find(_ds("Transforms")) is not None else [])]
            if i == 0:
                wanted = [ENVELOPED, EXC_C14N] if slot.enveloped else [EXC_C14N]
                target = signed
            else:
                wanted = [EXC_C14N]
                uri = ref.get("URI") or ""
                objects = [o for o in _children(signature, "Object") if uri == f"#{o.get('Id')}"]
                if len(objects) != 1 or len(elements_with_id(root, uri[1:])) != 1:
                    raise _Fail("structure", f"reference {uri!r} must name one ds:Object of this signature")
                target = properties = objects[0]
            if transforms != wanted:
                raise _Fail("structure", f"reference {ref.get('URI')!r} has transforms {transforms}, expected {wanted}")
            digest_uri = _one(ref, "DigestMethod", "ds:Reference").get("Algorithm") or ""
            digest_name = _DIGEST_BY_URI.get(digest_uri)
            _algorithm_problem("digest method", digest_name, digest_uri, policy.digest_methods, policy)
            assert digest_name is not None
            try:
                expected = base64.b64decode("".join((_one(ref, "DigestValue", "ds:Reference").text or "").split()), validate=True)
            except ValueError:
                raise _Fail("structure", f"reference {ref.get('URI')!r}: DigestValue is not base64") from None
            data = _c14n_without(target, signature if (i == 0 and slot.enveloped) else None)
            if _digest(digest_name, data) != expected:
                what = "signed content" if i == 0 else "signing properties"
                raise _Fail("digest", f"the {what} ({ref.get('URI')}) changed after signing: digest does not match")

        certs = _certificates(signature)
        leaf, chain = certs[0], certs[1:]
        signer, signer_print = leaf.subject.rfc4514_string(), fingerprint(leaf)
        try:
            value = base64.b64decode("".join((_one(signature, "SignatureValue", "ds:Signature").text or "").split()), validate=True)
        except ValueError:
            raise _Fail("structure", "SignatureValue is not base64") from None
        assert algorithm is not None
        _check_value(leaf, algorithm, value, _c14n(signed_info))

        signed_at = _signing_time(properties, signature) or now
        if signed_at > now + CLOCK_SKEW:
            raise _Fail("signing-time", f"signing time {signed_at.isoformat()} is in the future")
        if trust is not None:
            for message in trust.check_certificate(leaf, chain, signed_at):
                code = "expired" if "expired" in message or "not yet valid" in message else (
                    "revoked" if "revoked" in message else "untrusted")
                raise _Fail(code, message)
            if official:
                if not issuing_entity:
                    raise _Fail("not-authorised", "the document names no issuing entity id, so no official can be authorised for it")
                check = trust.check_official(leaf, issuing_entity, signed_at)
                if check.problems:
                    code = "revoked" if "revoked" in check.problems[0] else "not-authorised"
                    raise _Fail(code, check.problems[0])
                official_name = check.official.name if check.official else None
    except _Fail as fail:
        return SignatureResult(slot.role, (fail.problem,), signer, signed_at, algorithm, official_name, signer_print)
    return SignatureResult(slot.role, (), signer, signed_at, algorithm, official_name, signer_print)


def _certificates(signature: etree._Element) -> list[x509.Certificate]:
    key_info = signature.find(_ds("KeyInfo"))
    nodes = key_info.findall(f"{_ds('X509Data')}/{_ds('X509Certificate')}") if key_info is not None else []
    if not nodes:
        raise _Fail("certificate", "no X.509 certificate in KeyInfo/X509Data")
    certs = []
    for node in nodes:
        try:
            certs.append(x509.load_der_x509_certificate(base64.b64decode("".join((node.text or "").split()), validate=True)))
        except ValueError:
            raise _Fail("certificate", "an X509Certificate in KeyInfo is not a DER certificate") from None
    return certs


def _check_value(cert: x509.Certificate, algorithm: str, value: bytes, data: bytes) -> None:
    hash_cls = _HASHES[algorithm.split("-")[1]][1]
    key = cert.public_key()
    message = ("the signature value does not verify with the certificate in KeyInfo "
               "(signed content or certificate replaced after signing)")
    try:
        if algorithm.startswith("ecdsa"):
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise _Fail("signature-value", f"{algorithm} signature but the certificate holds a {type(key).__name__}")
            size = (key.curve.key_size + 7) // 8
            if len(value) != 2 * size:
                raise _Fail("signature-value", message)
            der = encode_dss_signature(int.from_bytes(value[:size], "big"), int.from_bytes(value[size:], "big"))
            key.verify(der, data, ec.ECDSA(hash_cls()))
        else:
            if not isinstance(key, rsa.RSAPublicKey):
                raise _Fail("signature-value", f"{algorithm} signature but the certificate holds a {type(key).__name__}")
            key.verify(value, data, padding.PKCS1v15(), hash_cls())
    except InvalidSignature:
        raise _Fail("signature-value", message) from None


def _signing_time(properties: etree._Element | None, signature: etree._Element) -> dt.datetime | None:
    if properties is None:
        return None
    nodes = properties.findall(f"{_ds('SignatureProperties')}/{_ds('SignatureProperty')}/{{{IBB_NS}}}SigningTime")
    if len(nodes) != 1:
        return None
    prop = nodes[0].getparent()
    if prop is None or prop.get("Target") != f"#{signature.get('Id')}":
        raise _Fail("structure", "the signing properties belong to another signature")
    text = (nodes[0].text or "").strip().replace("Z", "+00:00")
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _Fail("signing-time", f"signing time {nodes[0].text!r} is not an ISO date-time") from None
    if when.tzinfo is None:
        raise _Fail("signing-time", f"signing time {nodes[0].text!r} has no time zone")
    return when


def verify(root: etree._Element, slots: Iterable[Slot], *, trust: TrustList | None, policy: AlgorithmPolicy = AlgorithmPolicy(),
           issuing_entity: str | None = None, official_roles: Sequence[str] = ("issuing-authority",),
           now: dt.datetime | None = None, schema_problems: Sequence[str] = ()) -> VerificationReport:
    """Check every slot's signature; the roles in ``official_roles`` must be officials of ``issuing_entity``."""
    results: list[SignatureResult] = []
    for slot in slots:
        result = verify_slot(root, slot, trust=trust, policy=policy, now=now, issuing_entity=issuing_entity,
                             official=slot.role in official_roles)
        earlier = next((r for r in results if result.signer_fingerprint and r.signer_fingerprint == result.signer_fingerprint), None)
        if earlier is not None and result.ok:  # two-stage signing means two signers: the official does not sign for the exporter
            result = attrs.evolve(result, problems=(*result.problems, Problem(
                "same-signer", f"signed with the same certificate as the {earlier.role} signature; each stage needs its own signer")))
        results.append(result)
    return VerificationReport(tuple(results), tuple(schema_problems))


__all__ = [
    "AlgorithmPolicy", "Problem", "SignatureInvalid", "SignatureResult", "SigningError", "Slot", "VerificationReport",
    "sign", "verify", "verify_slot",
]


# -- shared base of signed XML message formats ----------------------------------------------


def _allowed_methods(instance: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    from .model import FieldError

    known = SIGNATURE_METHODS if "signature" in attribute.name else DIGEST_METHODS
    bad = [v for v in value if v not in known]
    if bad:
        raise FieldError(attribute.name, f"unknown algorithm(s) {', '.join(bad)} (known: {', '.join(known)})")
    if not value:
        raise FieldError(attribute.name, "at least one algorithm is required")


@attrs.frozen
class SignatureOptions:
    """Format options shared by the signed XML formats (``[data_cluster.options]``)."""

    trust_list: Path | None = None
    """Trust list file (relative to the profile); required to verify signatures."""
    signature_methods: tuple[str, ...] = attrs.field(default=("rsa-sha256", "ecdsa-sha256"), validator=_allowed_methods)
    """Signature algorithms accepted (pinned): ``rsa-sha256``, ``ecdsa-sha256`` …"""
    digest_methods: tuple[str, ...] = attrs.field(default=("sha256",), validator=_allowed_methods)
    """Digest algorithms accepted (pinned): ``sha256`` …"""
    allow_sha1: bool = False
    """Accept SHA-1 signatures and digests when verifying legacy documents (never used to sign)."""
    key_passwords: dict[str, SecretRef] = attrs.field(factory=dict)
    """Entity id -> reference to the password of that entity's private key (``$env`` / ``$file``)."""
    max_bytes: int = attrs.field(default=DEFAULT_MAX_BYTES, validator=attrs.validators.gt(0))
    """Largest document accepted by ``parse``, ``sign`` and ``verify``."""

    @property
    def policy(self) -> AlgorithmPolicy:
        return AlgorithmPolicy(self.signature_methods, self.digest_methods, self.allow_sha1)


class SignedXmlFormat(MessageFormat):
    """Base of XML formats that carry two-stage XMLDSig signatures (exporter, then issuing authority).

    A subclass gives its ``slots()``, its compiled ``schema()``, how to read the issuing
    entity's id from a document (``issuing_entity_of``) and how to add placeholder
    signatures so that an unsigned document can be checked against a schema that requires
    them (``placeholder_signatures``).
    """

    supports_signatures: ClassVar[bool] = True
    signature_roles: ClassVar[tuple[str, ...]] = ("exporter", "issuing-authority")
    official_roles: ClassVar[tuple[str, ...]] = ("issuing-authority",)

    def slots(self) -> tuple[Slot, ...]:
        raise NotImplementedError

    def schema(self) -> etree.XMLSchema:
        raise NotImplementedError

    def issuing_entity_of(self, root: etree._Element) -> str | None:
        raise NotImplementedError

    def _slot(self, role: str) -> Slot:
        for slot in self.slots():
            if slot.role == role:
                return slot
        raise SigningError([f"format {self.name!r} has no signature for role {role!r} "
                            f"(roles: {', '.join(s.role for s in self.slots())})"])

    def _parse(self, document: bytes) -> etree._Element:
        return parse_xml(document, max_bytes=self.options.max_bytes)

    def validate_partial(self, root: etree._Element) -> list[str]:
        """Schema problems of a document that may still lack signatures (placeholders stand in)."""
        copy = etree.fromstring(etree.tostring(root))
        for slot in self.slots():
            if not slot_signatures(copy, slot) and _find(copy, slot.parent_path) is not None:
                _place(copy, slot, _placeholder())
        return schema_problems(self.schema(), copy)

    def sign(self, document: bytes, role: str, credentials: Credentials, *, signing_time: dt.datetime | None = None) -> bytes:
        root = self._parse(document)
        slot = self._slot(role)
        for earlier in self.slots():
            if earlier.role == role:
                break
            if not slot_signatures(root, earlier):
                raise SigningError([f"the {earlier.role} signs before the {role}: the document has no {earlier.role} signature"])
        problems = self.validate_partial(root)
        if problems:
            raise SigningError([f"document does not match the {self.name} schema: {p}" for p in problems])
        sign(root, slot, credentials, policy=self.options.policy, signing_time=signing_time)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    @classmethod
    def check_profile(cls, options: Any, signatures: tuple[str, ...]) -> list[str]:
        """Signatures need a trust list, and the trust list must load."""
        if options.trust_list is None:
            return ["$.data_cluster.options.trust_list: required when data_cluster.signatures is set"] if signatures else []
        from .trust import TrustListError, cached_trust_list

        try:
            cached_trust_list(options.trust_list)
        except TrustListError as exc:
            return [f"$.data_cluster.options.trust_list: {line}" for line in exc.lines()]
        return []

    def verify(self, document: bytes, *, now: dt.datetime | None = None) -> VerificationReport:
        try:
            root = self._parse(document)
        except XmlRefused as exc:
            return VerificationReport((), tuple(exc.problems))
        problems = schema_problems(self.schema(), root)
        trust = None
        if self.options.trust_list is None:
            problems.append("no trust list in the profile (data_cluster.options.trust_list): signers cannot be trusted")
        else:
            from .trust import cached_trust_list

            trust = cached_trust_list(self.options.trust_list)
        report = verify(root, self.slots(), trust=trust, policy=self.options.policy, now=now,
                        issuing_entity=self.issuing_entity_of(root), official_roles=self.official_roles,
                        schema_problems=problems)
        if trust is None:
            results = tuple(attrs.evolve(r, problems=r.problems + (Problem("untrusted", "no trust list configured"),)) for r in report.results)
            report = attrs.evolve(report, results=results)
        return report


def _placeholder() -> etree._Element:
    """A structurally valid, meaningless ``ds:Signature`` (for schema checks of unsigned documents)."""
    E = ElementMaker(namespace=DS, nsmap={"ds": DS})
    return E.Signature(
        E.SignedInfo(E.CanonicalizationMethod(Algorithm=EXC_C14N), E.SignatureMethod(Algorithm=SIGNATURE_METHODS["rsa-sha256"]),
                     E.Reference(E.DigestMethod(Algorithm=DIGEST_METHODS["sha256"]), E.DigestValue("AA=="), URI="")),
        E.SignatureValue("AA=="),
    )
