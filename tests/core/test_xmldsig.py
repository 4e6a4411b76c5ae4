"""XMLDSig proof against independent implementations: xmlsec1 (C, libxml2) and signxml; every attack refused with its own reason."""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from lxml import etree

from ibb.core.keys import Credentials, credentials_from_bytes, fingerprint, make_certificate, new_key, write_demo_pki
from ibb.core.samples import sample_certificate
from ibb.core.trust import trust_list_from_dict
from ibb.core.xmldsig import DS, SignatureInvalid, SigningError
from ibb.core.xmldsig import sign as xml_sign
from ibb.plugins.wco_xml.format import NS, WcoEcoXml, to_xml

XMLSEC1 = shutil.which("xmlsec1")
needs_xmlsec1 = pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 is not installed (apt-get install xmlsec1)")
UTC = dt.timezone.utc
T0 = dt.datetime(2020, 1, 1, tzinfo=UTC)
ID_ATTRS = ["--id-attr:Id", f"{NS}:Content", "--id-attr:Id", f"{NS}:CertificateOfOrigin", "--id-attr:Id", f"{DS}:Signature"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("pki")
    made = write_demo_pki(d)
    creds = {
        name: credentials_from_bytes((d / f"{name}.key").read_bytes(), (d / f"{name}.pem").read_bytes(), None, name)
        for name in ("exporter", "official")
    }
    return {"dir": d, "made": made, **creds}


def trust(pki: dict, **changes) -> object:
    data = {
        "trust_list": {"name": "test"},
        "roots": [{"certificate": "root.pem"}],
        "intermediates": [{"certificate": "entity-ca.pem"}],
        "issuing_entities": [{"id": "KR-KCCI", "name": "KCCI", "country": "KR", "valid_from": T0}],
        "officials": [{"name": "Official", "issuing_entity": "KR-KCCI", "certificate": "official.pem", "valid_from": T0}],
    }
    data.update(changes)
    return trust_list_from_dict(data, pki["dir"])


def fmt(pki: dict, tmp_path: Path, trust_toml: str | None = None, **options) -> WcoEcoXml:
    path = tmp_path / "trust.toml"
    path.write_text(trust_toml or DEFAULT_TRUST.format(d=pki["dir"]))
    return WcoEcoXml(WcoEcoXml.Options(trust_list=path, **options))


DEFAULT_TRUST = """
[trust_list]
name = "test"
[[roots]]
certificate = "{d}/root.pem"
[[intermediates]]
certificate = "{d}/entity-ca.pem"
[[issuing_entities]]
id = "KR-KCCI"
name = "KCCI"
country = "KR"
valid_from = 2020-01-01T00:00:00Z
[[officials]]
name = "Official"
issuing_entity = "KR-KCCI"
certificate = "{d}/official.pem"
valid_from = 2020-01-01T00:00:00Z
"""


def certificate():
    import attrs

    cert = sample_certificate(items=10)
    return attrs.evolve(cert, issuing_authority=attrs.evolve(cert.issuing_authority, id="KR-KCCI"))


def signed(f: WcoEcoXml, pki: dict, when: dt.datetime | None = None) -> bytes:
    doc = f.render(certificate())
    doc = f.sign(doc, "exporter", pki["exporter"], signing_time=when)
    return f.sign(doc, "issuing-authority", pki["official"], signing_time=when)


def codes(report) -> dict[str, list[str]]:
    return {r.role: [p.code for p in r.problems] for r in report.results}


def xmlsec_verify(path: Path, pki: dict, node_id: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [XMLSEC1, "--verify", "--trusted-pem", str(pki["dir"] / "root.pem"), "--untrusted-pem", str(pki["dir"] / "entity-ca.pem"),
         *ID_ATTRS, "--node-id", node_id, str(path)],
        capture_output=True, text=True, timeout=60,
    )


def test_two_stage_signatures_verify_in_ibb(pki: dict, tmp_path: Path) -> None:
    f = fmt(pki, tmp_path)
    report = f.verify(signed(f, pki))
    assert report.ok, report.lines()
    assert [r.role for r in report.results] == ["exporter", "issuing-authority"]
    assert report.results[1].official == "Official"
    assert f.parse(signed(f, pki)) == certificate()


@needs_xmlsec1
def test_ibb_signatures_verify_with_xmlsec1(pki: dict, tmp_path: Path) -> None:
    f = fmt(pki, tmp_path)
    path = tmp_path / "signed.xml"
    path.write_bytes(signed(f, pki))
    for node_id in ("ibb-sig-exporter", "ibb-sig-issuing-authority"):
        r = xmlsec_verify(path, pki, node_id)
        assert r.returncode == 0 and r.stderr.startswith("OK"), r.stderr
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(path.read_bytes().replace(b"Lithium-ion", b"Lithium-ioN", 1))
    assert xmlsec_verify(tampered, pki, "ibb-sig-exporter").returncode != 0


def test_ibb_signatures_verify_with_signxml(pki: dict, tmp_path: Path) -> None:
    from signxml import SignatureConfiguration, XMLVerifier

    f = fmt(pki, tmp_path)
    doc = signed(f, pki)
    ca = (pki["dir"] / "root.pem").read_bytes() + (pki["dir"] / "entity-ca.pem").read_bytes()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca)
    config = SignatureConfiguration(location="./", expect_references=2)
    results = XMLVerifier().verify(doc, ca_pem_file=str(ca_file), expect_config=config)
    assert results[0].signed_xml.tag == f"{{{NS}}}CertificateOfOrigin"


@needs_xmlsec1
@pytest.mark.parametrize("key_kind", ["rsa", "ec"])
def test_documents_signed_by_xmlsec1_verify_in_ibb(pki: dict, tmp_path: Path, key_kind: str) -> None:
    """xmlsec1 signs from templates (one signature per run), with its own key files; ibb verifies both signatures."""
    made = pki["made"]
    key = new_key(key_kind)
    exporter_cert = make_certificate("xmlsec1 exporter", key, made["root"][1], made["root"][0], ca=False)
    key_pem, cert_pem = tmp_path / "k.pem", tmp_path / "c.pem"
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    cert_pem.write_bytes(exporter_cert.public_bytes(serialization.Encoding.PEM))
    method = "ecdsa-sha256" if key_kind == "ec" else "rsa-sha256"
    method_uri = "http://www.w3.org/2001/04/xmldsig-more#" + method
    root = to_xml(certificate())

    def template(parent: etree._Element, ref: str, enveloped: bool, sig_id: str, method_uri: str) -> None:
        transforms = '<Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>' if enveloped else ""
        parent.append(etree.fromstring(
            f'<Signature xmlns="{DS}" Id="{sig_id}"><SignedInfo>'
            f'<CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><SignatureMethod Algorithm="{method_uri}"/>'
            f'<Reference URI="#{ref}"><Transforms>{transforms}<Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></Transforms>'
            f'<DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><DigestValue/></Reference></SignedInfo>'
            f"<SignatureValue/><KeyInfo><X509Data/></KeyInfo></Signature>"))

    def xmlsec_sign(doc: Path, key_file: Path, cert_file: Path, node_id: str) -> None:
        r = subprocess.run([XMLSEC1, "--sign", "--privkey-pem", f"{key_file},{cert_file}", *ID_ATTRS, "--node-id", node_id,
                            "--output", str(doc), str(doc)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr

    template(root.find(f"{{{NS}}}Content"), "ibb-content", True, "ibb-sig-exporter", method_uri)
    doc = tmp_path / "doc.xml"
    doc.write_bytes(etree.tostring(root))
    xmlsec_sign(doc, key_pem, cert_pem, "ibb-sig-exporter")
    root = etree.fromstring(doc.read_bytes())
    template(root, "ibb-certificate", True, "ibb-sig-issuing-authority", "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    doc.write_bytes(etree.tostring(root))
    xmlsec_sign(doc, pki["dir"] / "official.key", pki["dir"] / "official.pem", "ibb-sig-issuing-authority")

    f = fmt(pki, tmp_path, signature_methods=(method, "rsa-sha256"))
    report = f.verify(doc.read_bytes())
    assert report.ok, report.lines()
    assert report.results[0].algorithm == method


def test_tampering_with_signed_content_is_refused_per_role(pki: dict, tmp_path: Path) -> None:
    f = fmt(pki, tmp_path)
    doc = signed(f, pki)
    # a byte of the exporter's content: both signatures cover it
    report = f.verify(doc.replace(b"Hanbit Energy", b"Hanbit Enorgy", 1))
    assert codes(report) == {"exporter": ["digest"], "issuing-authority": ["digest"]}
    # a byte only the official signs (the certification)
    report = f.verify(doc.replace(b"Certification Officer", b"Certification Offic3r", 1))
    assert codes(report) == {"exporter": [], "issuing-authority": ["digest"]}
    # the signature value itself
    root = etree.fromstring(doc)
    value = root.find(f"{{{DS}}}Signature/{{{DS}}}SignatureValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[10] ^= 1
    value.text = base64.b64encode(bytes(raw)).decode()
    assert codes(f.verify(etree.tostring(root)))["issuing-authority"] == ["signature-value"]


def test_swapped_certificate_is_refused(pki: dict, tmp_path: Path) -> None:
    f = fmt(pki, tmp_path)
    root = etree.fromstring(signed(f, pki))
    sig = root.find(f"{{{DS}}}Signature")
    other = pki["made"]["exporter"][1].public_bytes(serialization.Encoding.DER)
    sig.find(f".//{{{DS}}}X509Certificate").text = base64.b64encode(other).decode()
    report = f.verify(etree.tostring(root))
    assert codes(report) == {"exporter": [], "issuing-authority": ["signature-value"]}


def test_signature_wrapping_is_refused(pki: dict, tmp_path: Path) -> None:
    f = fmt(pki, tmp_path)
    doc = signed(f, pki)
    # 1. the official's signature moved to cover another element: it now sits in Content
    root = etree.fromstring(doc)
    sig = root.find(f"{{{DS}}}Signature")
    root.find(f"{{{NS}}}Content").append(sig)
    report = f.verify(etree.tostring(root))
    assert "missing" in codes(report)["issuing-authority"] and "wrapping" in codes(report)["exporter"]
    # 2. signed content wrapped away, forged content in its place, same id twice
    root = etree.fromstring(doc)
    content = root.find(f"{{{NS}}}Content")
    forged = etree.fromstring(etree.tostring(content))
    forged.find(f"{{{NS}}}Exporter/{{{NS}}}Name").text = "Forger Ltd."
    holder = etree.SubElement(root.find(f"{{{NS}}}Certification"), "wrapper")
    holder.append(content)
    root.insert(0, forged)
    assert codes(f.verify(etree.tostring(root)))["exporter"] == ["wrapping"]
    # 3. the reference re-pointed at another element
    root = etree.fromstring(doc)
    ref = root.find(f"{{{NS}}}Content/{{{DS}}}Signature/{{{DS}}}SignedInfo/{{{DS}}}Reference")
    ref.set("URI", "#ibb-certificate")
    assert codes(f.verify(etree.tostring(root)))["exporter"] == ["wrapping"]


def test_expired_and_revoked_signers_are_refused(pki: dict, tmp_path: Path) -> None:
    f = fmt(pki, tmp_path)
    made = pki["made"]
    root_key, root_cert = made["root"]
    old_key = new_key()
    now = dt.datetime.now(UTC)
    old_cert = make_certificate("expired exporter", old_key, root_cert, root_key, ca=False,
                                not_before=now - dt.timedelta(hours=20), not_after=now - dt.timedelta(hours=10))
    expired = Credentials(old_key, old_cert)
    doc = f.sign(f.render(certificate()), "exporter", expired)
    report = f.verify(f.sign(doc, "issuing-authority", pki["official"]))
    assert codes(report)["exporter"] == ["expired"] and "had expired at signing time" in report.results[0].problems[0].message
    # signed while valid (signing time inside the validity): accepted even though expired now
    back_then = now - dt.timedelta(hours=15)  # the demo root is valid from a day ago
    doc = f.sign(f.render(certificate()), "exporter", expired, signing_time=back_then)
    assert codes(f.verify(f.sign(doc, "issuing-authority", pki["official"], signing_time=back_then)))["exporter"] == []

    # revoked official: signatures after the revocation refused, before it accepted
    revoked_at = dt.datetime.now(UTC) - dt.timedelta(hours=2)
    toml = DEFAULT_TRUST.format(d=pki["dir"]) + f"revoked = {{ at = {revoked_at.strftime('%Y-%m-%dT%H:%M:%SZ')}, reason = \"left office\" }}\n"
    g = fmt(pki, tmp_path, toml)
    report = g.verify(signed(g, pki))
    assert codes(report)["issuing-authority"] == ["revoked"] and "left office" in report.lines()[-1]
    # judged at the time it claims (archived documents); a live exchange also bounds that claim
    # (communication.max_signature_age_hours, tests/core/test_signed_exchange.py)
    assert g.verify(signed(g, pki, when=revoked_at - dt.timedelta(hours=3))).ok
    # revoked certificate (key compromise): refused whatever signing time it claims
    toml = DEFAULT_TRUST.format(d=pki["dir"]) + (
        f'[[revoked_certificates]]\nsha256 = "{fingerprint(pki["exporter"].certificate)}"\n'
        'at = 2030-01-01T00:00:00Z\nreason = "key-compromise"\n')
    h = fmt(pki, tmp_path, toml)
    report = h.verify(signed(h, pki))
    assert codes(report)["exporter"] == ["revoked"] and "key-compromise" in report.results[0].problems[0].message


def test_official_not_authorised_for_the_issuing_entity_is_refused(pki: dict, tmp_path: Path) -> None:
    toml = DEFAULT_TRUST.format(d=pki["dir"]).replace('issuing_entity = "KR-KCCI"', 'issuing_entity = "KR-OTHER"') + (
        '[[issuing_entities]]\nid = "KR-OTHER"\nname = "Other"\ncountry = "KR"\nvalid_from = 2020-01-01T00:00:00Z\n')
    f = fmt(pki, tmp_path, toml)
    report = f.verify(signed(f, pki))
    assert codes(report) == {"exporter": [], "issuing-authority": ["not-authorised"]}
    assert "not authorised to sign for issuing entity 'KR-KCCI' (only for KR-OTHER)" in report.results[1].problems[0].message
    # the exporter's certificate is trusted (chains to the root) but is no official at all
    f = fmt(pki, tmp_path)
    doc = f.sign(f.render(certificate()), "exporter", pki["exporter"])
    report = f.verify(f.sign(doc, "issuing-authority", pki["exporter"]))
    assert codes(report)["issuing-authority"] == ["not-authorised"]


def test_certificates_unfit_for_signing_are_refused(pki: dict, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    f = fmt(pki, tmp_path)
    made = pki["made"]
    ca_key, ca_cert = made["entity-ca"]
    root_key, root_cert = made["root"]
    weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak = Credentials(weak_key, make_certificate("weak exporter", weak_key, root_cert, root_key, ca=False))
    for creds, reason in ((Credentials(ca_key, ca_cert), "is a CA certificate, not a signer's"),
                          (weak, "has a 1024-bit RSA key (at least 2048 required)")):
        doc = f.sign(f.render(certificate()), "exporter", creds)
        report = f.verify(f.sign(doc, "issuing-authority", pki["official"]))
        assert codes(report) == {"exporter": ["untrusted"], "issuing-authority": []}
        assert reason in report.results[0].problems[0].message


def test_one_signer_cannot_sign_both_stages(pki: dict, tmp_path: Path) -> None:
    f = fmt(pki, tmp_path)
    doc = f.sign(f.render(certificate()), "exporter", pki["official"])
    report = f.verify(f.sign(doc, "issuing-authority", pki["official"]))
    assert codes(report) == {"exporter": [], "issuing-authority": ["same-signer"]}
    assert "same certificate as the exporter signature" in report.results[1].problems[0].message


def test_a_revoked_intermediate_revokes_what_it_issued(pki: dict, tmp_path: Path) -> None:
    ca_print = fingerprint(pki["made"]["entity-ca"][1])
    toml = DEFAULT_TRUST.format(d=pki["dir"]) + (
        f'[[revoked_certificates]]\nsha256 = "{ca_print}"\nat = 2021-01-01T00:00:00Z\nreason = "ca-compromise"\n')
    f = fmt(pki, tmp_path, toml)
    report = f.verify(signed(f, pki))
    assert codes(report) == {"exporter": [], "issuing-authority": ["revoked"]}
    assert "is issued by" in report.results[1].problems[0].message and "ca-compromise" in report.results[1].problems[0].message


def test_untrusted_root_is_refused(pki: dict, tmp_path: Path) -> None:
    f = fmt(pki, tmp_path)
    key = new_key()
    stranger = make_certificate("self-signed stranger", key, None, None, ca=False)
    doc = f.sign(f.render(certificate()), "exporter", Credentials(key, stranger))
    report = f.verify(f.sign(doc, "issuing-authority", pki["official"]))
    assert codes(report)["exporter"] == ["untrusted"]


def test_sha1_is_refused_unless_allowed_for_legacy_verification(pki: dict, tmp_path: Path) -> None:
    f = fmt(pki, tmp_path)
    with pytest.raises(SigningError, match="not allowed"):  # never used to sign
        xml_sign(to_xml(certificate()), f.slots()[0], pki["exporter"], algorithm="rsa-sha1")
    # a document claiming rsa-sha1
    doc = signed(f, pki)
    root = etree.fromstring(doc)
    sig = root.find(f"{{{DS}}}Signature")
    sig.find(f"{{{DS}}}SignedInfo/{{{DS}}}SignatureMethod").set("Algorithm", "http://www.w3.org/2000/09/xmldsig#rsa-sha1")
    report = f.verify(etree.tostring(root))
    assert codes(report)["issuing-authority"] == ["algorithm"] and "SHA-1" in report.results[1].problems[0].message
    lenient = fmt(pki, tmp_path, allow_sha1=True)
    # allowed now, so the check moves on to the (wrong) signature value: SHA-1 itself is no longer the reason
    assert codes(lenient.verify(etree.tostring(root)))["issuing-authority"] == ["signature-value"]


def test_algorithms_are_pinned_per_profile(pki: dict, tmp_path: Path) -> None:
    f = fmt(pki, tmp_path, signature_methods=("ecdsa-sha256",))
    g = fmt(pki, tmp_path)
    report = f.verify(signed(g, pki))
    assert codes(report) == {"exporter": ["algorithm"], "issuing-authority": ["algorithm"]}
    with pytest.raises(SigningError, match="not allowed by the profile"):
        f.sign(f.render(certificate()), "exporter", pki["exporter"])


def test_signing_order_and_errors(pki: dict, tmp_path: Path) -> None:
    f = fmt(pki, tmp_path)
    doc = f.render(certificate())
    with pytest.raises(SigningError, match="the exporter signs before the issuing-authority"):
        f.sign(doc, "issuing-authority", pki["official"])
    once = f.sign(doc, "exporter", pki["exporter"])
    with pytest.raises(SigningError, match="already signed by the exporter"):
        f.sign(once, "exporter", pki["exporter"])
    with pytest.raises(SigningError, match="no signature for role 'importer'"):
        f.sign(once, "importer", pki["exporter"])
    report = f.verify(once)
    assert codes(report) == {"exporter": [], "issuing-authority": ["missing"]}
    with pytest.raises(SignatureInvalid, match=r"signature issuing-authority: no issuing-authority signature"):
        report.raise_for_problems()


def test_ecdsa_keys_sign_and_verify(pki: dict, tmp_path: Path) -> None:
    made = pki["made"]
    key = new_key("ec")
    cert = make_certificate("ec exporter", key, made["root"][1], made["root"][0], ca=False)
    f = fmt(pki, tmp_path)
    doc = f.sign(f.render(certificate()), "exporter", Credentials(key, cert))
    report = f.verify(f.sign(doc, "issuing-authority", pki["official"]))
    assert report.ok and report.results[0].algorithm == "ecdsa-sha256"


def test_certificate_load_helpers(pki: dict) -> None:
    assert isinstance(pki["official"].certificate, x509.Certificate)
    assert pki["official"].chain and "key=<hidden>" in repr(pki["official"])
