"""Signing credentials: a private key, its X.509 certificate and the chain up to (not including) the root.

Keys are never inlined in profiles: an entity names them with secret references
(``key = {"$file" = "keys/official.key"}``, ``certificate = {"$file" = "keys/official.pem"}``)
and an optional password reference (``$env`` or ``$file``). Two file forms are read:

- PEM: the key file holds a private key (PKCS#8 or traditional, encrypted or not); the
  certificate file holds the holder's certificate first, then any intermediates;
- PKCS#12 (``.p12`` / ``.pfx``, detected by content): key, certificate and chain in one
  file; the certificate reference may then be omitted.

Credentials are loaded once per (key, certificate, password) reference and cached for
the life of the process. Their ``repr`` shows the subject, never key material, and no
error message contains a password or key bytes.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from .errors import IbbError
from .secrets import SecretRef

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class KeyUnavailable(IbbError):
    """Signing credentials cannot be loaded (missing file, wrong password, unsupported key)."""


@attrs.frozen(repr=False)
class Credentials:
    """A signer's private key, certificate and intermediate certificates."""

    key: Any = attrs.field(eq=False)
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    def __repr__(self) -> str:
        return f"Credentials(subject={self.certificate.subject.rfc4514_string()!r}, key=<hidden>)"

    @property
    def algorithm(self) -> str:
        """The signature algorithm this key makes: ``rsa-sha256`` or ``ecdsa-sha256``."""
        return "ecdsa-sha256" if isinstance(self.key, ec.EllipticCurvePrivateKey) else "rsa-sha256"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.certificate)


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 fingerprint of a certificate's DER encoding, lowercase hex (how trust lists name certificates)."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def _check_key(key: Any, where: str) -> PrivateKey:
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise KeyUnavailable(f"{where}: RSA key of {key.key_size} bits; at least 2048 are required")
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key
    raise KeyUnavailable(f"{where}: unsupported key type {type(key).__name__}; use RSA (2048+) or EC")


def load_pem_certificates(data: bytes, where: str) -> list[x509.Certificate]:
    """Every certificate in a PEM (or a single DER) blob."""
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise KeyUnavailable(f"{where}: not a PEM or DER X.509 certificate") from None
    return certs


def credentials_from_bytes(key_data: bytes, cert_data: bytes | None, password: bytes | None, where: str) -> Credentials:
    """Build credentials from file contents (PEM key + PEM certificates, or one PKCS#12 blob)."""
    if b"-----BEGIN" not in key_data:  # PKCS#12 is DER: no PEM armour
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(key_data, password)
        except ValueError:
            raise KeyUnavailable(f"{where}: not a PKCS#12 file, or wrong password") from None
        if key is None or cert is None:
            raise KeyUnavailable(f"{where}: the PKCS#12 file holds no private key and certificate")
        chain = list(extra or [])
        if cert_data:
            given = load_pem_certificates(cert_data, where)
            cert, chain = given[0], given[1:] or chain
        return _matched(_check_key(key, where), cert, chain, where)
    try:
        key = serialization.load_pem_private_key(key_data, password=password)
    except TypeError:  # password given for an unencrypted key, or missing for an encrypted one
        state = "is encrypted and needs a password" if password is None else "is not encrypted but a password was given"
        raise KeyUnavailable(f"{where}: the private key {state}") from None
    except ValueError:
        raise KeyUnavailable(f"{where}: not a PEM private key, or wrong password") from None
    if not cert_data:
        raise KeyUnavailable(f"{where}: a PEM key needs its certificate (the entity's 'certificate' reference)")
    certs = load_pem_certificates(cert_data, where)
    return _matched(_check_key(key, where), certs[0], certs[1:], where)


def _matched(key: PrivateKey, cert: x509.Certificate, chain: list[x509.Certificate], where: str) -> Credentials:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if key.public_key().public_bytes(enc, fmt) != cert.public_key().public_bytes(enc, fmt):
        raise KeyUnavailable(f"{where}: the certificate ({cert.subject.rfc4514_string()}) is not the private key's")
    return Credentials(key, cert, tuple(chain))


_cache: dict[tuple[str, str, str], Credentials] = {}
_lock = threading.Lock()


def load_credentials(key: SecretRef, certificate: SecretRef | None = None, password: SecretRef | None = None) -> Credentials:
    """Load (once) and return the credentials named by these references."""
    ident = (_ident(key), _ident(certificate), _ident(password))
    with _lock:
        cached = _cache.get(ident)
        if cached is not None:
            return cached
    where = f"key {key}"
    secret = password.read() if password is not None else None
    if secret is not None and password is not None and password.kind == "file":
        secret = secret.rstrip(b"\r\n")
    creds = credentials_from_bytes(key.read(), certificate.read() if certificate else None, secret, where)
    with _lock:
        _cache[ident] = creds
    return creds


def entity_credentials(profile: Any, entity: Any, format_options: Any) -> Credentials:
    """The signing credentials of a profile entity (its ``key`` and ``certificate``), loaded once.

    The key's password, if any, comes from the format option ``key_passwords[entity id]``.
    """
    if entity.key is None:
        raise KeyUnavailable(f"profile {profile.id}: entity {entity.id} ({entity.role}) has no key on this node to sign with")
    password = getattr(format_options, "key_passwords", {}).get(entity.id)
    return load_credentials(entity.key, entity.certificate, password)


def _ident(ref: SecretRef | None) -> str:
    if ref is None:
        return ""
    return f"{ref.kind}:{(ref.base_dir / ref.name).resolve() if ref.kind == 'file' else ref.name}"


def clear_cache() -> None:
    """Forget loaded credentials (tests, key rotation)."""
    with _lock:
        _cache.clear()


# -- demo PKI ------------------------------------------------------------------------------


@attrs.frozen
class DemoParty:
    """One certificate of the demo PKI: file stem, subject common name, issued by which CA."""

    stem: str
    common_name: str
    issuer: str | None
    ca: bool = False


DEMO_PARTIES = (
    DemoParty("root", "ibb demo root CA", None, ca=True),
    DemoParty("entity-ca", "ibb demo issuing entity CA", "root", ca=True),
    DemoParty("official", "ibb demo official (issuing entity)", "entity-ca"),
    DemoParty("exporter", "ibb demo exporter", "root"),
)


def make_certificate(common_name: str, key: Any, issuer_cert: x509.Certificate | None, issuer_key: Any, *, ca: bool,
                     not_before: Any = None, days: int = 3650, serial: int | None = None,
                     not_after: Any = None) -> x509.Certificate:
    """An X.509 v3 certificate for ``key`` (self-signed when ``issuer_cert`` is None), openssl-compatible."""
    import datetime as dt

    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ibb demo")])
    start = not_before or (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1))
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert is not None else name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after or start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                                      data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                                      encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                                      data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                                                      encipher_only=False, decipher_only=False), critical=True)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()), critical=False)  # type: ignore[arg-type]
    return builder.sign(issuer_key if issuer_cert is not None else key, hashes.SHA256())


def new_key(kind: str = "rsa") -> PrivateKey:
    """A fresh RSA-2048 or EC P-256 key."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_demo_pki(directory: Any) -> dict[str, Any]:
    """Write the demo PKI as PEM files in ``directory``; returns {stem: (key, certificate)}.

    ``root.pem``; ``entity-ca.pem``; ``official.pem`` (certificate then the entity CA) and
    ``official.key``; ``exporter.pem`` and ``exporter.key``; ``official.p12`` with its
    password in ``official.p12.pass``. Keys are unencrypted PEM (PKCS#8), mode 0600.
    """
    from pathlib import Path

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    made: dict[str, Any] = {}
    pem = serialization.Encoding.PEM
    for party in DEMO_PARTIES:
        key = new_key()
        issuer_key, issuer_cert = made[party.issuer] if party.issuer else (None, None)
        cert = make_certificate(party.common_name, key, issuer_cert, issuer_key, ca=party.ca)
        made[party.stem] = (key, cert)
        chain = [cert] + ([issuer_cert] if issuer_cert is not None and party.issuer != "root" else [])
        (out / f"{party.stem}.pem").write_bytes(b"".join(c.public_bytes(pem) for c in chain))
        if not party.ca:
            _write_private(out / f"{party.stem}.key", key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    import secrets as _secrets

    password = _secrets.token_urlsafe(16).encode()
    key, cert = made["official"]
    p12 = pkcs12.serialize_key_and_certificates(b"official", key, cert, [made["entity-ca"][1]],
                                                serialization.BestAvailableEncryption(password))
    _write_private(out / "official.p12", p12)
    _write_private(out / "official.p12.pass", password + b"\n")
    return made


def _write_private(path: Any, data: bytes) -> None:
    """Write a secret file readable by its owner only, from its first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a file that already existed keeps its mode otherwise
    with os.fdopen(fd, "wb") as f:
        f.write(data)
