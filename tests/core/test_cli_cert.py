"""`ibb keys demo` and `ibb cert render|sign|verify|parse`, run in process through the real command group."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ibb.core.model import certificate_to_json
from ibb.core.samples import sample_certificate


@pytest.fixture
def cli() -> click.Group:
    """The real ``ibb`` command group, in process."""
    from ibb.core.cli import main

    return main


def test_demo_keys_then_render_sign_verify_parse(cli: click.Group, tmp_path: Path) -> None:
    import attrs

    run = CliRunner().invoke
    r = run(cli, ["keys", "demo", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "demo-pki" / "trust.toml").is_file() and (tmp_path / "kr-cn-wco-xml.toml").is_file()
    cert = sample_certificate()
    cert = attrs.evolve(cert, issuing_authority=attrs.evolve(cert.issuing_authority, id="KR-KCCI"))
    (tmp_path / "in.json").write_text(certificate_to_json(cert))
    common = ["--profiles", str(tmp_path), "--profile", "kr-cn-wco-xml"]  # the whole folder, as the command suggests
    assert run(cli, ["cert", "render", *common, str(tmp_path / "in.json"), "-o", str(tmp_path / "c.xml")]).exit_code == 0
    r = run(cli, ["cert", "verify", *common, str(tmp_path / "c.xml")])
    assert r.exit_code == 1 and "signature exporter: no exporter signature" in r.output and "[missing]" in r.output
    r = run(cli, ["cert", "sign", *common, "--as", "exporter", str(tmp_path / "c.xml"), "-o", str(tmp_path / "s1.xml")])
    assert r.exit_code == 0, r.output
    r = run(cli, ["cert", "sign", *common, "--as", "issuing-authority", str(tmp_path / "s1.xml"), "-o", str(tmp_path / "s2.xml")])
    assert r.exit_code == 0, r.output
    r = run(cli, ["cert", "verify", *common, str(tmp_path / "s2.xml")])
    assert r.exit_code == 0 and "valid" in r.output, r.output
    (tmp_path / "bad.xml").write_bytes((tmp_path / "s2.xml").read_bytes().replace(b"Hanbit", b"Hanbiz", 1))
    r = run(cli, ["cert", "verify", *common, str(tmp_path / "bad.xml")])
    assert r.exit_code == 1 and "[digest]" in r.output and "Traceback" not in r.output
    r = run(cli, ["cert", "parse", *common, str(tmp_path / "s2.xml")])
    assert r.exit_code == 0 and '"id": "KR-2026-000001"' in r.output
    (tmp_path / "dtd.xml").write_text('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>')
    r = run(cli, ["cert", "parse", *common, str(tmp_path / "dtd.xml")])
    assert r.exit_code == 1 and f"{tmp_path / 'dtd.xml'}: $: " in r.output and "DTD" in r.output, r.output

    # Sound signatures over a certificate that names another issuing entity than the profile's: not valid.
    other = attrs.evolve(cert, issuing_authority=attrs.evolve(cert.issuing_authority, id="CIR"))
    (tmp_path / "other.json").write_text(certificate_to_json(other))
    assert run(cli, ["cert", "render", *common, str(tmp_path / "other.json"), "-o", str(tmp_path / "o.xml")]).exit_code == 0
    for role, source, target in (("exporter", "o.xml", "o1.xml"), ("issuing-authority", "o1.xml", "o2.xml")):
        assert run(cli, ["cert", "sign", *common, "--as", role, str(tmp_path / source), "-o", str(tmp_path / target)]).exit_code == 0
    r = run(cli, ["cert", "verify", *common, str(tmp_path / "o2.xml")])
    assert r.exit_code == 1, r.output
    assert "$.issuing_authority.id: 'CIR' is not the issuing authority of profile 'kr-cn-wco-xml' ('KR-KCCI')" in r.output, r.output
    oks = [line for line in r.output.splitlines() if ": ok (" in line]
    assert len(oks) == 2 and not any(line.startswith("error:") for line in oks), r.output


def test_demo_leaves_out_a_profile_whose_schema_is_missing_so_the_folder_still_loads(tmp_path: Path) -> None:
    from ibb.core.cli_cert import write_demo
    from ibb.core.plugins import Plugins
    from ibb.core.profile import load_profiles

    written = write_demo(tmp_path, aladi_xsd=tmp_path / "nowhere" / "cod_ver_4.1.0.xsd")
    assert tmp_path / "kr-cn-wco-xml.toml" in written and not (tmp_path / "aladi-ar-br.toml").exists()
    assert list(load_profiles([tmp_path], Plugins(entrypoints=False))) == ["kr-cn-wco-xml"]


def test_demo_with_the_aladi_schema_writes_the_aladi_profile(cli: click.Group, tmp_path: Path, shared_fixtures: Path) -> None:
    xsd = shared_fixtures / "aladi" / "cod_ver_4.1.0.xsd"
    r = CliRunner().invoke(cli, ["keys", "demo", str(tmp_path / "d"), "--aladi-xsd", str(xsd)])
    assert r.exit_code == 0, r.output
    assert f'xsd = "{xsd.resolve().as_posix()}"' in (tmp_path / "d" / "aladi-ar-br.toml").read_text()
    assert "skipped" not in r.output
