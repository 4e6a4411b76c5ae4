"""Profiles: every problem reported at once with file and $.path; typos and unknown plugins caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from ibb.core.errors import ProfileError
from ibb.core.profile import Profile, load_profile, load_profile_text, load_profiles
from ibb.core.secrets import SecretRef, SecretUnavailable
from ibb.profiles import SHIPPED_DIR

SHIPPED = (Path(SHIPPED_DIR) / "kr-cn-eodes.toml").read_text()


def problems(text: str, plugins, source: str = "p.toml") -> list[str]:
    with pytest.raises(ProfileError) as info:
        load_profile_text(text, plugins, source=source)
    return info.value.lines()


def test_shipped_profile_loads_into_frozen_classes(shipped_profile: Profile) -> None:
    p = shipped_profile
    assert p.id == "kr-cn-eodes"
    assert [e.role for e in p.entities] == ["issuing-authority", "exporting-customs", "importing-customs"]
    assert p.data_cluster.format == "uncefact-json"
    assert p.service_interface.transport == "rest"
    assert p.service_interface.settings.max_body_bytes == 1048576
    assert [r.rule for r in p.rules][:2] == ["validity-period", "origin-criteria"]
    assert p.rules[0].params.days == 365
    (issued,) = p.triggers_on("certificate.issued")
    assert issued.do == ("send",) and p.entity(issued.to).id == "CN-GACC"
    assert p.triggers_on("export-declaration.accepted")[0].do == ("issue",)
    assert p.communication.retry.delay(3) == 2.0
    with pytest.raises(AttributeError):
        p.block.id = "other"  # type: ignore[misc]


def test_every_problem_is_reported_at_once_with_its_path(plugins) -> None:
    text = SHIPPED.replace('country = "CN"', 'country = "XX"').replace("timeout = 10", 'timeout = "ten"')
    text = text.replace('role = "issuing-authority"', 'role = "issuer"').replace('[block]\n', '[block]\nnmae = "x"\n')
    lines = problems(text, plugins)
    assert any(line.startswith("p.toml: $.block: unknown key(s) nmae") for line in lines), lines
    assert "p.toml: $.entities[2].country: 'XX' is not an ISO 3166-1 alpha-2 country code" in lines
    assert any(line.startswith("p.toml: $.entities[0].role: 'issuer' is not one of") for line in lines), lines


def test_every_problem_in_one_table_and_beside_broken_tables_is_reported(plugins) -> None:
    text = SHIPPED.replace("timeout = 10", "timeout = -1").replace("max_body_bytes = 1048576", "max_body_bytes = -5")
    text = text.replace('country = "CN"', 'country = "XX"').replace('do = ["log"]', 'do = ["lgo"]')
    lines = problems(text, plugins)
    assert "p.toml: $.service_interface.rest.timeout: must be greater than 0 (got -1.0)" in lines
    assert "p.toml: $.service_interface.rest.max_body_bytes: must be greater than 0 (got -5)" in lines
    assert "p.toml: $.entities[2].country: 'XX' is not an ISO 3166-1 alpha-2 country code" in lines
    assert any(line.startswith("p.toml: $.triggers[2].do[0]: unknown action 'lgo'; did you mean 'log'") for line in lines), lines


def test_plugin_settings_are_checked_with_their_own_path(plugins) -> None:
    text = SHIPPED.replace("timeout = 10", 'timeout = "ten"\ntimout = 3')
    lines = problems(text, plugins, "kr-cn.toml")
    assert "kr-cn.toml: $.service_interface.rest.timeout: expected a number, got 'ten'" in lines
    assert "kr-cn.toml: $.service_interface.rest: unknown key(s) timout" in lines


def test_rule_params_are_checked(plugins) -> None:
    text = SHIPPED.replace("days = 365", "days = 365\nmonths = 12").replace('pattern = "KR-', 'pattern = "(KR-')
    lines = problems(text, plugins)
    assert "p.toml: $.rules[0]: unknown key(s) months" in lines
    assert any(line.startswith("p.toml: $.rules[3].pattern: invalid regular expression") for line in lines), lines


def test_unknown_plugin_names_suggest_the_known_ones(plugins) -> None:
    text = SHIPPED.replace('transport = "rest"', 'transport = "rset"').replace("[service_interface.rest]", "[service_interface.rset]")
    text = text.replace('format = "uncefact-json"', 'format = "uncefact-jsn"').replace('rule = "validity-period"', 'rule = "validity-periods"')
    text = text.replace('do = ["log"]', 'do = ["logg"]')
    lines = problems(text, plugins)
    assert "p.toml: $.service_interface.transport: unknown transport 'rset'; did you mean 'rest'? (known: rest)" in lines
    assert any(line.startswith("p.toml: $.data_cluster.format: unknown format 'uncefact-jsn'; did you mean 'uncefact-json'?") for line in lines)
    assert any(line.startswith("p.toml: $.rules[0].rule: unknown rule 'validity-periods'; did you mean 'validity-period'?") for line in lines)
    assert any(line.startswith("p.toml: $.triggers[2].do[0]: unknown action 'logg'; did you mean 'log'?") for line in lines)


def test_settings_of_another_transport_are_a_typo(plugins) -> None:
    text = SHIPPED + "\n[service_interface.soap]\nwsdl = 'x'\n"
    assert "p.toml: $.service_interface: unknown key(s) soap" in problems(text, plugins)


def test_trigger_references_are_checked(plugins) -> None:
    text = SHIPPED.replace('to = "importing-customs"', 'to = "importing-custom"')
    lines = problems(text, plugins)
    assert any(line.startswith("p.toml: $.triggers[1].to: unknown entity 'importing-custom'") for line in lines), lines
    text = SHIPPED.replace('to = "importing-customs"\n', "")
    assert "p.toml: $.triggers[1].to: required when the trigger does 'send' (an entity id or role)" in problems(text, plugins)


def test_signatures_need_a_format_that_carries_them(plugins) -> None:
    text = SHIPPED.replace('format = "uncefact-json"', 'format = "uncefact-json"\nsignatures = ["exporter"]')
    assert "p.toml: $.data_cluster.signatures: format 'uncefact-json' cannot carry signatures" in problems(text, plugins)


def test_invalid_toml_and_missing_sections(plugins, tmp_path: Path) -> None:
    assert problems("[block\nid=1", plugins)[0].startswith("p.toml: $: invalid TOML")
    lines = problems('[block]\nid = "x"\nname = "y"\n', plugins)
    assert "p.toml: $.entities: required field is missing" in lines
    assert "p.toml: $.data_cluster: required field is missing" in lines
    with pytest.raises(ProfileError, match="cannot read file"):
        load_profile(tmp_path / "absent.toml", plugins)


def test_secrets_are_references_never_inline(plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inline = SHIPPED.replace("max_body_bytes = 1048576", 'max_body_bytes = 1048576\ntoken = "s3cr3t"')
    lines = problems(inline, plugins)
    assert any(line.startswith("p.toml: $.service_interface.rest.token: must be a reference") for line in lines), lines
    assert not any("s3cr3t" in line for line in lines)

    (tmp_path / "token.txt").write_text("from-file\n")
    by_file = SHIPPED.replace("max_body_bytes = 1048576", 'max_body_bytes = 1048576\ntoken = { "$file" = "token.txt" }')
    (tmp_path / "p.toml").write_text(by_file)
    ref = load_profile(tmp_path / "p.toml", plugins).service_interface.settings.token
    assert ref == SecretRef("file", "token.txt", tmp_path)
    assert ref.read_text() == "from-file" and "from-file" not in repr(ref)

    by_env = SHIPPED.replace("max_body_bytes = 1048576", 'max_body_bytes = 1048576\ntoken = { "$env" = "IBB_TEST_TOKEN" }')
    ref = load_profile_text(by_env, plugins).service_interface.settings.token
    monkeypatch.delenv("IBB_TEST_TOKEN", raising=False)
    with pytest.raises(SecretUnavailable, match=r"secret \$env:IBB_TEST_TOKEN: environment variable IBB_TEST_TOKEN is not set"):
        ref.read()
    monkeypatch.setenv("IBB_TEST_TOKEN", "abc")
    assert ref.read() == b"abc"


def test_several_files_report_together_and_ids_are_unique(plugins, tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(SHIPPED)
    (tmp_path / "b.toml").write_text(SHIPPED)
    (tmp_path / "c.toml").write_text(SHIPPED.replace('id = "KR-KCS"', 'id = "KR-KCCI"'))
    with pytest.raises(ProfileError) as info:
        load_profiles([tmp_path], plugins)
    lines = info.value.lines()
    assert f"{tmp_path / 'b.toml'}: $.block.id: 'kr-cn-eodes' is also the id of {tmp_path / 'a.toml'}" in lines
    assert f"{tmp_path / 'c.toml'}: $.entities[1].id: 'KR-KCCI' is declared twice" in lines


def test_signed_profiles_need_a_trust_list_that_loads(tmp_path: Path, plugins) -> None:
    from ibb.core.cli_cert import write_demo

    write_demo(tmp_path)
    path = tmp_path / "kr-cn-wco-xml.toml"
    assert load_profile(path, plugins).data_cluster.signatures == ("exporter", "issuing-authority")

    def file_problems(text: str) -> list[str]:
        path.write_text(text)
        with pytest.raises(ProfileError) as info:
            load_profile(path, plugins)
        return info.value.lines()

    text = path.read_text()
    lines = file_problems(text.replace('trust_list = "demo-pki/trust.toml"\n', ""))
    assert f"{path}: $.data_cluster.options.trust_list: required when data_cluster.signatures is set" in lines
    trust = tmp_path / "demo-pki" / "trust.toml"
    trust.write_text(trust.read_text().replace('name = "ibb demo official"', 'name = "ibb demo official"\nbogus = 1', 1))
    lines = file_problems(text)
    assert f"{path}: $.data_cluster.options.trust_list: {trust}: $.officials[0]: unknown key(s) bogus" in lines
