"""Every hook, CLI command and profile field is documented (a new one without docs fails here)."""

from __future__ import annotations

import inspect
from pathlib import Path

import attrs
import click

from ibb.core import hookspecs, profile
from ibb.core.cli import main

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_hook_has_a_docstring_and_a_section() -> None:
    text = (DOCS / "plugins.md").read_text()
    hooks = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("ibb_")]
    assert hooks
    for name in hooks:
        assert (getattr(hookspecs, name).__doc__ or "").strip(), f"hook {name} has no docstring"
        assert f"### `{name}(" in text, f"hook {name} is not documented in docs/plugins.md"


def _commands(group: click.Group, prefix: str = "ibb") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out.extend(_commands(cmd, f"{prefix} {name}"))
        else:
            out.append(f"{prefix} {name}")
    return out


def test_every_cli_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text()
    commands = _commands(main)
    assert "ibb demo" in commands and "ibb profiles check" in commands
    for command in commands:
        assert f"`{command}" in text, f"{command} is not documented in docs/cli.md"


def test_every_profile_field_is_documented() -> None:
    text = (DOCS / "profiles.md").read_text()
    sections = {
        "block": profile.Block, "entities": profile.Entity, "data_cluster": profile.DataCluster,
        "triggers": profile.Trigger, "service_interface": profile.ServiceInterface,
    }
    for section, cls in sections.items():
        assert f"`[{section}]`" in text or f"`[[{section}]]`" in text, section
        for f in attrs.fields(cls):
            if f.name == "settings":
                continue  # the transport's own table, documented per transport
            assert f"`{f.name}`" in text, f"profile field {section}.{f.name} is not documented"
    for f in attrs.fields(profile.Retry):
        assert f"`retry.{f.name}`" in text, f"communication.retry.{f.name} is not documented"
    for f in attrs.fields(profile.Communication):
        if f.name != "retry":
            assert f"`{f.name}`" in text, f"communication.{f.name} is not documented"


def test_every_setting_of_the_built_in_plugins_is_documented() -> None:
    """Each key of a built-in transport's Settings, format's Options and rule's Params appears in the docs."""
    from ibb.core.plugins import Plugins

    text = "\n".join(p.read_text() for p in DOCS.glob("*.md"))
    plugins = Plugins(entrypoints=False)
    missing = []
    for registry, attr in ((plugins.transports, "Settings"), (plugins.formats, "Options"), (plugins.rules, "Params")):
        for name in registry.names():
            cls = getattr(registry.get(name), attr)
            for f in attrs.fields(cls):
                if f"`{f.name}`" not in text:
                    missing.append(f"{registry.kind} {name}: {f.name}")
    assert not missing, f"undocumented plugin settings: {missing}"
