"""ALADI COD: output validates against the real ALADI schemas; two-stage signatures verify in ibb and in xmlsec1."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import attrs
import pytest
from lxml import etree

from ibb.core.errors import CertificateError
from ibb.core.keys import credentials_from_bytes, write_demo_pki
from ibb.core.model import Address, Party
from ibb.core.plugins import Plugins
from ibb.core.samples import sample_certificate
from ibb.core.xml import load_schema
from ibb.plugins.aladi_cod.format import XMLDSIG_SCHEMA, XMLDSIG_SCHEMA_URL, AladiCod, Options

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared"
ALADI = SHARED / "fixtures" / "aladi"
TRUST = """
[trust_list]
name = "ALADI test directory"
[[roots]]
certificate = "{d}/root.pem"
[[intermediates]]
certificate = "{d}/entity-ca.pem"
[[issuing_entities]]
id = "CIR"
name = "Camara"
country = "AR"
valid_from = 2020-01-01T00:00:00Z
[[officials]]
name = "Oficial"
issuing_entity = "CIR"
certificate = "{d}/official.pem"
valid_from = 2020-01-01T00:00:00Z
"""


@pytest.fixture
def aladi() -> Path:
    if not (ALADI / "cod_ver_4.1.0.xsd").is_file():
        pytest.skip(f"ALADI schemas not found at {ALADI} (shared fixtures sit beside the repository in CI)")
    return ALADI


def ar_br():
    c = sample_certificate(cert_id="ARCIRA142600000123" + "00", items=3)
    return attrs.evolve(
        c, agreement="ACE 14 Argentina-Brasil", export_country="AR", import_country="BR", producers=(),
        exporter=attrs.evolve(c.exporter, country="AR", address=Address(country="AR", line="Av. Corrientes 1234", city="Buenos Aires")),
        importer=attrs.evolve(c.importer, country="BR", address=Address(country="BR", line="Rua Augusta 500", city="Sao Paulo")),
        issuing_authority=Party(name="Camara de Industria", country="AR", id="CIR",
                                address=Address(country="AR", line="Av. de Mayo 1147", city="Buenos Aires")),
        items=tuple(attrs.evolve(i, origin_country="AR") for i in c.items),
    )


def test_registered_as_a_plugin() -> None:
    plugins = Plugins(entrypoints=False)
    assert plugins.formats.get("aladi-cod") is AladiCod and AladiCod.supports_signatures


@pytest.mark.parametrize("version", ["4.1.0", "1.8.3"])
def test_render_validates_against_the_real_schema_and_parses_back(aladi: Path, version: str) -> None:
    f = AladiCod(Options(xsd=aladi / f"cod_ver_{version}.xsd", agreement="A14", form="FormA14"))
    cert = ar_br()
    doc = f.render(cert)
    root = etree.fromstring(doc)
    assert root.findtext(".//CODVer") == version and root.findtext(".//AgreementAcronym") == "A14"
    back = f.parse(doc)
    assert (back.id, back.exporter.name, back.items[0].hs_code, back.items[1].fob_value) == (
        cert.id, cert.exporter.name, cert.items[0].hs_code, cert.items[1].fob_value)


def test_missing_required_element_names_the_canonical_field(aladi: Path) -> None:
    f = AladiCod(Options(xsd=aladi / "cod_ver_4.1.0.xsd", agreement="A14", form="FormA14"))
    cert = ar_br()
    with pytest.raises(CertificateError, match=r"requires <TransportMeans> .*canonical field transport.means"):
        f.render(attrs.evolve(cert, transport=None))
    with pytest.raises(CertificateError, match="CertificateID"):
        f.render(attrs.evolve(cert, id="KR-2026-1"))


def test_schema_import_resolves_locally_without_network(aladi: Path) -> None:
    schema = load_schema(aladi / "cod_ver_4.1.0.xsd", {XMLDSIG_SCHEMA_URL: XMLDSIG_SCHEMA})
    assert schema is not None


def test_two_stage_signatures_validate_and_verify_with_xmlsec1(aladi: Path, tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    write_demo_pki(pki)
    (tmp_path / "trust.toml").write_text(TRUST.format(d=pki))
    f = AladiCod(Options(xsd=aladi / "cod_ver_4.1.0.xsd", agreement="A14", form="FormA14", trust_list=tmp_path / "trust.toml"))
    creds = {n: credentials_from_bytes((pki / f"{n}.key").read_bytes(), (pki / f"{n}.pem").read_bytes(), None, n) for n in ("exporter", "official")}
    doc = f.sign(f.render(ar_br()), "exporter", creds["exporter"])
    doc = f.sign(doc, "issuing-authority", creds["official"])
    report = f.verify(doc)
    assert report.ok, report.lines()  # includes validation against the real XSD, signatures present
    bad = f.verify(doc.replace(b"Lithium-ion", b"Lithium-iox", 1))
    assert [[p.code for p in r.problems] for r in bad.results] == [["digest"], ["digest"]]
    if shutil.which("xmlsec1") is None:
        pytest.skip("xmlsec1 is not installed")
    path = tmp_path / "cod.xml"
    path.write_bytes(doc)
    for node in ("ibb-sig-exporter", "ibb-sig-issuing-authority"):
        r = subprocess.run(["xmlsec1", "--verify", "--trusted-pem", str(pki / "root.pem"), "--untrusted-pem", str(pki / "entity-ca.pem"),
                            "--id-attr:id", "COD", "--id-attr:id", "CODEH", "--id-attr:Id", "http://www.w3.org/2000/09/xmldsig#:Signature",
                            "--node-id", node, str(path)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stderr.startswith("OK"), r.stderr
