"""Signature throughput: ibb vs xmlsec1 vs the raw RSA operation, for a ~10 KB certificate (JSON lines).

Run: ``python benchmarks/signatures.py [--ops N]``. Measures, in one run:

- ibb: parse the document with the hardened parser, add (or check) one RSA-2048 /
  SHA-256 signature with exclusive c14n, serialise. Verification includes the trust
  checks (chain to the root at signing time, revocation).
- xmlsec1 (Debian CLI): the same operation on the same document and keys. Two figures:
  one process per operation (what a shell user pays), and the marginal cost per
  document when one process handles many files (``xmlsec1 --verify a.xml b.xml …``:
  process start and key loading excluded), which is the fair comparison.
- raw: cryptography's RSA-2048 PKCS#1 v1.5 SHA-256 sign / verify of one SignedInfo-sized
  message: the floor any XMLDSig implementation pays.

Ratios are ibb's time per operation over the other's (< 1 means ibb is faster).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import attrs
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree

from ibb.core.keys import credentials_from_bytes, write_demo_pki
from ibb.core.samples import sample_certificate
from ibb.core.trust import trust_list_from_dict
from ibb.core.xml import parse_xml
from ibb.core.xmldsig import DS, sign, verify_slot
from ibb.plugins.wco_xml.format import NS, SLOTS, WcoEcoXml

ID_ATTRS = ["--id-attr:Id", f"{NS}:Content", "--id-attr:Id", f"{NS}:CertificateOfOrigin", "--id-attr:Id", f"{DS}:Signature"]


def timed(fn, ops: int) -> float:
    """Seconds per operation (best of three bounded runs)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(ops):
            fn()
        best = min(best, (time.perf_counter() - start) / ops)
    return best


def emit(**row) -> None:
    print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=200, help="operations per measurement (bounded)")
    args = parser.parse_args()
    ops = max(10, min(args.ops, 5000))
    work = Path(tempfile.mkdtemp(prefix="ibb-bench-"))
    made = write_demo_pki(work)
    creds = credentials_from_bytes((work / "exporter.key").read_bytes(), (work / "exporter.pem").read_bytes(), None, "exporter")
    trust = trust_list_from_dict({"trust_list": {"name": "bench"}, "roots": [{"certificate": "root.pem"}]}, work)
    cert = sample_certificate(items=10)
    unsigned = WcoEcoXml().render(attrs.evolve(cert, issuing_authority=attrs.evolve(cert.issuing_authority, id="KR-KCCI")))
    slot = SLOTS[0]

    def ibb_sign() -> bytes:
        root = parse_xml(unsigned)
        sign(root, slot, creds)
        return etree.tostring(root)

    signed = ibb_sign()

    def ibb_verify() -> None:
        result = verify_slot(parse_xml(signed), slot, trust=trust)
        assert result.ok, result.problems

    ibb_verify()
    t_sign, t_verify = timed(ibb_sign, ops), timed(ibb_verify, ops)
    emit(impl="ibb", doc_bytes=len(unsigned), signs_per_s=round(1 / t_sign), verifies_per_s=round(1 / t_verify))

    key = made["exporter"][0]
    signed_info = etree.tostring(parse_xml(signed).find(f".//{{{DS}}}SignedInfo"), method="c14n", exclusive=True)
    sig = key.sign(signed_info, padding.PKCS1v15(), hashes.SHA256())
    pub = key.public_key()
    r_sign = timed(lambda: key.sign(signed_info, padding.PKCS1v15(), hashes.SHA256()), ops)
    r_verify = timed(lambda: pub.verify(sig, signed_info, padding.PKCS1v15(), hashes.SHA256()), ops)
    emit(impl="raw-rsa-2048 (cryptography)", signs_per_s=round(1 / r_sign), verifies_per_s=round(1 / r_verify),
         ibb_over_raw_sign=round(t_sign / r_sign, 2), ibb_over_raw_verify=round(t_verify / r_verify, 2))

    xmlsec1 = shutil.which("xmlsec1")
    if xmlsec1 is None:
        emit(impl="xmlsec1", skipped="xmlsec1 not installed")
        return
    # a template: the unsigned document with an empty exporter signature
    root = parse_xml(unsigned)
    root.find(f"{{{NS}}}Content").append(etree.fromstring(
        f'<Signature xmlns="{DS}" Id="ibb-sig-exporter"><SignedInfo><CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
        '<SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/><Reference URI="#ibb-content"><Transforms>'
        '<Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/><Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
        '</Transforms><DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><DigestValue/></Reference></SignedInfo>'
        '<SignatureValue/><KeyInfo><X509Data/></KeyInfo></Signature>'))
    template = work / "template.xml"
    template.write_bytes(etree.tostring(root))
    (work / "signed.xml").write_bytes(signed)
    key_arg = ["--privkey-pem", f"{work / 'exporter.key'},{work / 'exporter.pem'}"]
    trust_arg = ["--trusted-pem", str(work / "root.pem")]
    n = min(ops, 200)
    copies_t = [work / f"t{i}.xml" for i in range(n)]
    copies_s = [work / f"s{i}.xml" for i in range(n)]
    for t, s in zip(copies_t, copies_s):
        shutil.copy(template, t)
        shutil.copy(work / "signed.xml", s)

    def run(cmd: list[str]) -> float:
        start = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(r.stderr.decode()[-500:])
        return time.perf_counter() - start

    sign_cmd = [xmlsec1, "--sign", *key_arg, *ID_ATTRS, "--node-id", "ibb-sig-exporter"]
    verify_cmd = [xmlsec1, "--verify", *trust_arg, *ID_ATTRS, "--node-id", "ibb-sig-exporter"]
    per_proc_sign = min(run(sign_cmd + ["--output", str(work / "o.xml"), str(template)]) for _ in range(min(n, 30)))
    per_proc_verify = min(run(verify_cmd + [str(work / "signed.xml")]) for _ in range(min(n, 30)))
    row = {"impl": "xmlsec1 1 process per op", "signs_per_s": round(1 / per_proc_sign), "verifies_per_s": round(1 / per_proc_verify),
           "ibb_over_xmlsec1_sign": round(t_sign / per_proc_sign, 3), "ibb_over_xmlsec1_verify": round(t_verify / per_proc_verify, 3)}
    emit(**row)
    try:  # marginal cost per file in one process (xmlsec1 processes every file named on its command line)
        one_v, many_v = run(verify_cmd + [str(copies_s[0])]), run(verify_cmd + [str(p) for p in copies_s])
        batch_verify = max((many_v - one_v) / (n - 1), 1e-6)
        one_s, many_s = run(sign_cmd + [str(copies_t[0])]), run(sign_cmd + [str(p) for p in copies_t])
        batch_sign = max((many_s - one_s) / (n - 1), 1e-6)
        emit(impl="xmlsec1 batch (marginal per document)", files=n, signs_per_s=round(1 / batch_sign),
             verifies_per_s=round(1 / batch_verify), ibb_over_xmlsec1_sign=round(t_sign / batch_sign, 2),
             ibb_over_xmlsec1_verify=round(t_verify / batch_verify, 2))
    except RuntimeError as exc:
        emit(impl="xmlsec1 batch", skipped=f"xmlsec1 did not process several files in one run: {exc}")


if __name__ == "__main__":
    main()
