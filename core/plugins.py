"""Plugin loading and the registries the core owns.

:class:`Plugins` is the typed façade over pluggy: it loads plugins (entry points of the
group ``ibb`` first, then the built-ins listed in ``BUILTIN_PLUGINS``), checks that every
hook implementation matches a spec, and fills one :class:`Registry` per kind.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import attrs
import pluggy

from . import hookspecs
from .errors import PluginError, UnknownName

T = TypeVar("T")

BUILTIN_PLUGINS = (
    "ibb.plugins.rest",
    "ibb.plugins.uncefact_json",
    "ibb.plugins.wco_xml",
    "ibb.plugins.aladi_cod",
    "ibb.plugins.rules",
    "ibb.plugins.actions",
)

hookimpl = pluggy.HookimplMarker("ibb")
"""Marker for hook implementations; third-party plugins may use their own ``HookimplMarker("ibb")``."""


@attrs.frozen
class Entry:
    name: str
    target: Any
    """The registered object, or a ``"module:attr"`` string resolved on first use."""
    plugin: str


class Registry(Generic[T]):
    """Names -> plugin objects of one kind (transport, format, rule, action)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._resolved: dict[str, T] = {}

    def add(self, name: str, target: Any, plugin: str) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered a {self.kind} with an invalid name {name!r}")
        if name in self._entries:
            first = self._entries[name].plugin
            raise PluginError(f"{self.kind} {name!r} is registered twice: by {first!r} and by {plugin!r}")
        self._entries[name] = Entry(name, target, plugin)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def get(self, name: str) -> T:
        """The object registered under ``name``, importing it if registered as a string."""
        if name not in self._entries:
            raise UnknownName(self.kind, name, self._entries)
        if name not in self._resolved:
            target = self._entries[name].target
            if isinstance(target, str):
                target = _import(target, self.kind, name)
            self._resolved[name] = target
        return self._resolved[name]


def _import(spec: str, kind: str, name: str) -> Any:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr) if attr else module
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"{kind} {name!r} cannot be loaded from {spec!r}: {exc}") from exc


class Plugins:
    """The loaded plugins and their registries.

    ``entrypoints=False`` loads only the built-ins (and ``extra``): tests use it so that
    whatever happens to be installed cannot change their outcome.
    """

    def __init__(self, *, entrypoints: bool = True, extra: Iterable[Any] = ()):
        self.pm = pluggy.PluginManager("ibb")
        self.pm.add_hookspecs(hookspecs)
        if entrypoints:
            self.pm.load_setuptools_entrypoints("ibb")
        for module_name in BUILTIN_PLUGINS:
            self.pm.register(importlib.import_module(module_name), name=module_name)
        for plugin in extra:
            self.pm.register(plugin)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(str(exc)) from None
        self.transports: Registry[Any] = self._collect("transport", self.pm.hook.ibb_register_transports)
        self.formats: Registry[Any] = self._collect("format", self.pm.hook.ibb_register_formats)
        self.rules: Registry[Any] = self._collect("rule", self.pm.hook.ibb_register_rules)
        self.actions: Registry[Any] = self._collect("action", self.pm.hook.ibb_register_actions)

    def _collect(self, kind: str, hook: Any) -> Registry[Any]:
        registry: Registry[Any] = Registry(kind)
        for impl in hook.get_hookimpls():
            impl.function(register=lambda name, target, _p=impl.plugin_name: registry.add(name, target, _p))
        return registry

    def describe(self) -> list[dict[str, Any]]:
        """One row per plugin: name, version and what it registers (for ``ibb plugins list``)."""
        dists = {id(plugin): dist for plugin, dist in self.pm.list_plugin_distinfo()}
        rows = []
        for name, plugin in self.pm.list_name_plugin():
            dist = dists.get(id(plugin))
            version = dist.version if dist is not None else _own_version()
            registers = {
                reg.kind: [e.name for e in reg.entries() if e.plugin == name]
                for reg in (self.transports, self.formats, self.rules, self.actions)
            }
            rows.append(
                {
                    "plugin": name,
                    "version": version,
                    "builtin": name in BUILTIN_PLUGINS,
                    "registers": {k: v for k, v in registers.items() if v},
                }
            )
        return rows


def _own_version() -> str:
    try:
        return importlib.metadata.version("ibb")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
