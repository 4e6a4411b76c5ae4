"""Profiles: one TOML file per GNC utility block (one trade agreement's exchange).

A profile declares the block header, the entities (parties), the data cluster (message
format), the business rules, the triggers, the service interface (transport) and the
communication settings. It is loaded into frozen attrs classes; every problem in a file is
reported at once, each as ``file: $.path: message``. See ``docs/profiles.md``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import cattrs
from attrs import field, frozen

from .codes import COUNTRIES
from .errors import IbbError, ProfileError, UnknownName
from .model import FieldError, error_paths
from .plugins import Plugins
from .secrets import SecretRef, structure_secret

ROLES = ("exporter", "issuing-authority", "exporting-customs", "importing-customs", "importer", "hub")
EVENTS = (
    "export-declaration.accepted",
    "certificate.issued",
    "certificate.received",
    "certificate.cancelled",
    "preference.decided",
    "feedback.received",
    "cancellation.received",
)
"""Events a trigger can bind to (``[[triggers]] on = …``)."""


def _one_of(choices: Iterable[str]) -> Any:
    allowed = tuple(choices)

    def check(instance: Any, attribute: attrs.Attribute, value: str) -> None:
        if value not in allowed:
            raise FieldError(attribute.name, f"{value!r} is not one of {', '.join(allowed)}")

    return check


def _country(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if value not in COUNTRIES:
        raise FieldError(attribute.name, f"{value!r} is not an ISO 3166-1 alpha-2 country code")


def _positive(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if value <= 0:
        raise FieldError(attribute.name, f"must be greater than 0 (got {value})")


@frozen
class Block:
    """The utility block header: what the exchange is, why, and on which legal basis."""

    id: str
    name: str
    purpose: str = ""
    benefit: str = ""
    legal_basis: tuple[str, ...] = ()
    version: str = "1"


@frozen
class Entity:
    """A party of the exchange."""

    id: str
    role: str = field(validator=_one_of(ROLES))
    country: str = field(validator=_country)
    name: str | None = None
    endpoint: str | None = None
    """Where this party's gateway receives messages for this profile."""
    certificate: SecretRef | None = None
    """X.509 certificate of this party (reference to a PEM file)."""
    key: SecretRef | None = None
    """Private key of this party, used only on this party's own gateway."""


@frozen
class DataCluster:
    format: str
    options: Any = None
    """The format plugin's ``Options`` instance (``[data_cluster.options]``)."""
    signatures: tuple[str, ...] = ()
    """Roles whose signatures a certificate must carry, in signing order."""


@frozen
class RuleSpec:
    rule: str
    params: Any = None
    """The rule plugin's ``Params`` instance (the other keys of the ``[[rules]]`` table)."""


@frozen
class Trigger:
    on: str = field(validator=_one_of(EVENTS))
    do: tuple[str, ...] = ()
    to: str | None = None
    """Entity id or role that ``send`` delivers to."""


@frozen
class ServiceInterface:
    transport: str
    settings: Any = None
    """The transport plugin's ``Settings`` instance (``[service_interface.<transport>]``)."""


@frozen
class Retry:
    attempts: int = field(default=5, validator=_positive)
    backoff: str = field(default="exponential", validator=_one_of(("exponential", "fixed")))
    initial_seconds: float = field(default=0.5, validator=_positive)
    max_seconds: float = field(default=30.0, validator=_positive)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if self.backoff == "fixed":
            return self.initial_seconds
        return min(self.max_seconds, self.initial_seconds * 2 ** (attempt - 1))


@frozen
class Communication:
    retry: Retry = Retry()
    receipt_timeout_seconds: float = field(default=300.0, validator=_positive)
    """Transports with asynchronous receipts (AS2 async MDN, MQTT): a message whose receipt has
    not arrived after this long is sent again (counted as a failed attempt of ``retry``)."""
    max_signature_age_hours: float = field(default=168.0, validator=_positive)
    """Receiving: a signature claiming to be older than this is refused. Signing times are
    written by the signer, so this bounds how far back a signer whose authorisation has
    since ended (revoked, suspended, expired) could date a new signature."""


@frozen
class Profile:
    block: Block
    entities: tuple[Entity, ...]
    data_cluster: DataCluster
    service_interface: ServiceInterface
    rules: tuple[RuleSpec, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    communication: Communication = Communication()
    source: str = "<memory>"

    @property
    def id(self) -> str:
        return self.block.id

    def entity(self, ref: str) -> Entity:
        """The entity with this id, or the only entity with this role."""
        for e in self.entities:
            if e.id == ref:
                return e
        by_role = [e for e in self.entities if e.role == ref]
        if len(by_role) == 1:
            return by_role[0]
        raise UnknownName("entity", ref, [e.id for e in self.entities])

    def with_endpoint(self, entity_id: str, endpoint: str) -> Profile:
        """A copy whose entity ``entity_id`` has another endpoint (used by the demo and tests)."""
        entities = tuple(attrs.evolve(e, endpoint=endpoint) if e.id == entity_id else e for e in self.entities)
        return attrs.evolve(self, entities=entities)

    def triggers_on(self, event: str) -> list[Trigger]:
        return [t for t in self.triggers if t.on == event]


def _converter(base_dir: Path) -> cattrs.Converter:
    from .model import converter as model_converter

    c = model_converter.copy(forbid_extra_keys=True)
    c.register_structure_hook(SecretRef, lambda v, _: structure_secret(v, base_dir))
    c.register_structure_hook(Path, lambda v, _: _path(v, base_dir))
    c.register_structure_hook(float, _float)
    return c


def _path(v: Any, base_dir: Path) -> Path:
    """Plugin settings typed ``Path`` are relative to the profile's folder."""
    if not isinstance(v, str) or not v:
        raise ValueError(f"expected a file path, got {v!r}")
    path = (base_dir / Path(v).expanduser()).resolve()
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    return path


def _float(v: Any, _: type) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"expected a number, got {v!r}")
    return float(v)


def load_profile(path: str | Path, plugins: Plugins) -> Profile:
    """Load and fully check one profile file. Raises :class:`ProfileError` with every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError([f"cannot read file ({exc.strerror})"], str(path)) from None
    except UnicodeDecodeError:
        raise ProfileError(["$: file is not UTF-8 text"], str(path)) from None
    return load_profile_text(text, plugins, source=str(path), base_dir=path.parent)


def load_profile_text(text: str, plugins: Plugins, *, source: str = "<memory>", base_dir: Path = Path(".")) -> Profile:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError([f"$: invalid TOML ({exc})"], source) from None
    return _Loader(plugins, source, base_dir).load(raw)


class _Loader:
    """Builds a Profile from TOML data in three passes, collecting every problem."""

    def __init__(self, plugins: Plugins, source: str, base_dir: Path):
        self.plugins = plugins
        self.source = source
        self.converter = _converter(base_dir)
        self.problems: list[str] = []

    def load(self, raw: dict[str, Any]) -> Profile:
        raw = _reshape(raw)
        # Pass 1: each plugin section checked by its plugin, and every plugin name, even if the rest is broken.
        options = self._plugin_section(self.plugins.formats, "Options", raw, "data_cluster", "format", "options",
                                       "$.data_cluster.format", "$.data_cluster.options")
        transport = raw.get("service_interface", {}).get("transport") if isinstance(raw.get("service_interface"), dict) else None
        settings = self._plugin_section(self.plugins.transports, "Settings", raw, "service_interface", "transport", "settings",
                                        "$.service_interface.transport", f"$.service_interface.{transport}")
        rules = raw.get("rules") if isinstance(raw.get("rules"), list) else []
        params = [
            self._plugin_section(self.plugins.rules, "Params", {"r": spec}, "r", "rule", "params", f"$.rules[{i}].rule", f"$.rules[{i}]")
            for i, spec in enumerate(rules)
        ]
        triggers = raw.get("triggers") if isinstance(raw.get("triggers"), list) else []
        for i, trigger in enumerate(triggers):
            actions = trigger.get("do") if isinstance(trigger, dict) else None
            for j, action in enumerate(actions if isinstance(actions, list) else []):
                if isinstance(action, str) and action not in self.plugins.actions:
                    self.problems.append(f"$.triggers[{i}].do[{j}]: {UnknownName('action', action, self.plugins.actions.names())}")
        # Pass 2: the generic shape (plugin sections pass through as raw tables).
        try:
            profile = self.converter.structure(raw, Profile)
        except Exception as exc:
            self.problems.extend(error_paths(exc))
            raise ProfileError(self.problems, self.source) from None
        profile = attrs.evolve(
            profile,
            source=self.source,
            data_cluster=attrs.evolve(profile.data_cluster, options=options),
            service_interface=attrs.evolve(profile.service_interface, settings=settings),
            rules=tuple(attrs.evolve(spec, params=p) for spec, p in zip(profile.rules, params)),
        )
        # Pass 3: cross-references between sections.
        self._check_references(profile)
        if self.problems:
            raise ProfileError(self.problems, self.source)
        return profile

    def _plugin_section(self, registry: Any, attr: str, raw: dict[str, Any], section: str, name_key: str,
                        data_key: str, name_path: str, data_path: str) -> Any:
        """Structure one plugin's own table with the class the plugin declares (``Options``, ``Settings``, ``Params``)."""
        table = raw.get(section)
        name = table.get(name_key) if isinstance(table, dict) else None
        if not isinstance(name, str):
            return None  # missing or malformed: reported by pass 2
        try:
            plugin_cls = registry.get(name)
        except IbbError as exc:
            self.problems.append(f"{name_path}: {exc}")
            return None
        data = table.get(data_key)
        if data is not None and not isinstance(data, dict):
            self.problems.append(f"{data_path}: expected a table")
            return None
        try:
            return self.converter.structure(data or {}, getattr(plugin_cls, attr))
        except Exception as exc:
            self.problems.extend(error_paths(exc, data_path))
            return None

    def _check_references(self, profile: Profile) -> None:
        seen: set[str] = set()
        for i, entity in enumerate(profile.entities):
            if entity.id in seen:
                self.problems.append(f"$.entities[{i}].id: {entity.id!r} is declared twice")
            seen.add(entity.id)
        for i, trigger in enumerate(profile.triggers):
            if "send" in trigger.do and trigger.to is None:
                self.problems.append(f"$.triggers[{i}].to: required when the trigger does 'send' (an entity id or role)")
            if trigger.to is not None:
                try:
                    target = profile.entity(trigger.to)
                except UnknownName as exc:
                    self.problems.append(f"$.triggers[{i}].to: {exc}")
                    continue
                if "send" in trigger.do and not target.endpoint:
                    self.problems.append(f"$.triggers[{i}].to: entity {target.id!r} has no endpoint to send to")
        for i, role in enumerate(profile.data_cluster.signatures):
            if role not in ROLES:
                self.problems.append(f"$.data_cluster.signatures[{i}]: {role!r} is not one of {', '.join(ROLES)}")
            elif sum(e.role == role for e in profile.entities) != 1:
                self.problems.append(f"$.data_cluster.signatures[{i}]: exactly one entity must have the role {role!r}")
        fmt_name = profile.data_cluster.format
        if profile.data_cluster.signatures and fmt_name in self.plugins.formats:
            fmt = self.plugins.formats.get(fmt_name)
            if not getattr(fmt, "supports_signatures", False):
                self.problems.append(f"$.data_cluster.signatures: format {fmt_name!r} cannot carry signatures")
        if fmt_name in self.plugins.formats and profile.data_cluster.options is not None:
            self.problems.extend(self.plugins.formats.get(fmt_name).check_profile(profile.data_cluster.options,
                                                                                  profile.data_cluster.signatures))


def _reshape(raw: dict[str, Any]) -> dict[str, Any]:
    """Move plugin-specific keys under the generic field names of the profile classes.

    ``[[rules]] rule = "x", days = 1`` -> ``{"rule": "x", "params": {"days": 1}}``;
    ``[service_interface] transport = "rest"`` + ``[service_interface.rest]`` ->
    ``{"transport": "rest", "settings": {...}}``. Malformed shapes are left alone for
    pass 1 to report.
    """
    raw = dict(raw)
    rules = raw.get("rules")
    if isinstance(rules, list):
        raw["rules"] = [
            {"rule": r.get("rule"), "params": {k: v for k, v in r.items() if k != "rule"}} if isinstance(r, dict) and "rule" in r else r
            for r in rules
        ]
    si = raw.get("service_interface")
    if isinstance(si, dict) and isinstance(si.get("transport"), str):
        si = dict(si)
        si["settings"] = si.pop(si["transport"], {})
        raw["service_interface"] = si
    return raw


def load_profiles(paths: Iterable[str | Path], plugins: Plugins) -> dict[str, Profile]:
    """Load several profile files (or folders of ``*.toml``); every file's problems are reported together."""
    profiles: dict[str, Profile] = {}
    problems: list[str] = []
    for path in _expand(paths):
        try:
            profile = load_profile(path, plugins)
        except ProfileError as exc:
            problems.extend(exc.lines())
            continue
        if profile.id in profiles:
            problems.append(f"{path}: $.block.id: {profile.id!r} is also the id of {profiles[profile.id].source}")
            continue
        profiles[profile.id] = profile
    if problems:
        raise ProfileError(problems)
    return profiles


def _expand(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        out.extend(sorted(p.glob("*.toml")) if p.is_dir() else [p])
    return out
