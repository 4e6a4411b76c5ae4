"""The plugin contract: registries owned by the core, built-ins registered like third-party plugins."""

from __future__ import annotations

import sys

import attrs
import pluggy
import pytest

from ibb.core.errors import PluginError, UnknownName
from ibb.core.plugins import BUILTIN_PLUGINS, Plugins
from ibb.core.profile import load_profile_text
from ibb.core.rules import Rule

hookimpl = pluggy.HookimplMarker("ibb")


class MaxItems(Rule):
    name = "max-items"

    @attrs.frozen
    class Params:
        limit: int

    def check(self, certificate, context):
        return [f"$.items: {len(certificate.items)} > {self.params.limit}"] if len(certificate.items) > self.params.limit else []


class ThirdParty:
    """An inline plugin, as a third party would write it."""

    @hookimpl
    def ibb_register_rules(self, register):
        register("max-items", MaxItems)


def test_builtins_register_every_kind() -> None:
    p = Plugins(entrypoints=False)
    assert "rest" in p.transports.names()
    assert "uncefact-json" in p.formats.names()
    assert {"validity-period", "origin-criteria", "hs-code-length", "certificate-number-pattern", "mandatory-fields"} <= set(p.rules.names())
    assert {"send", "log"} <= set(p.actions.names())
    rows = {r["plugin"]: r for r in p.describe()}
    assert set(BUILTIN_PLUGINS) <= set(rows)
    assert rows["ibb.plugins.rest"]["registers"] == {"transport": ["rest"]}
    assert rows["ibb.plugins.rest"]["builtin"] is True


def test_third_party_plugin_is_used_by_a_profile_like_a_builtin() -> None:
    p = Plugins(entrypoints=False, extra=[ThirdParty()])
    assert p.rules.get("max-items") is MaxItems
    from ibb.profiles import SHIPPED_DIR

    text = (SHIPPED_DIR / "kr-cn-eodes.toml").read_text() + '\n[[rules]]\nrule = "max-items"\nlimit = 2\n'
    profile = load_profile_text(text, p)
    assert profile.rules[-1].params == MaxItems.Params(limit=2)
    row = next(r for r in p.describe() if r["registers"].get("rule") == ["max-items"])
    assert row["builtin"] is False


def test_duplicate_names_are_refused() -> None:
    class Again:
        @hookimpl
        def ibb_register_transports(self, register):
            register("rest", object)

    with pytest.raises(PluginError, match="transport 'rest' is registered twice"):
        Plugins(entrypoints=False, extra=[Again()])


def test_hook_without_spec_is_an_error_at_startup() -> None:
    class Misspelt:
        @hookimpl
        def ibb_register_transport(self, register):  # missing "s"
            pass

    with pytest.raises(PluginError, match="ibb_register_transport"):
        Plugins(entrypoints=False, extra=[Misspelt()])


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(UnknownName, match=r"unknown transport 'resst'; did you mean 'rest'\?"):
        Plugins(entrypoints=False).transports.get("resst")


def test_transports_are_imported_only_when_used() -> None:
    sys.modules.pop("ibb.plugins.rest.transport", None)
    p = Plugins(entrypoints=False)
    assert "ibb.plugins.rest.transport" not in sys.modules
    cls = p.transports.get("rest")
    assert "ibb.plugins.rest.transport" in sys.modules
    assert cls.name == "rest" and cls.capabilities.synchronous_receipt


def test_broken_lazy_target_is_a_plugin_error() -> None:
    class Broken:
        @hookimpl
        def ibb_register_transports(self, register):
            register("carrier-pigeon", "ibb_no_such_module:Pigeon")

    p = Plugins(entrypoints=False, extra=[Broken()])
    with pytest.raises(PluginError, match="transport 'carrier-pigeon' cannot be loaded from 'ibb_no_such_module:Pigeon'"):
        p.transports.get("carrier-pigeon")
