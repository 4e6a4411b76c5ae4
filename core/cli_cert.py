"""Command-line tools for signed certificates: ``ibb keys demo`` and ``ibb cert render|sign|verify|parse``.

Attached to the main CLI by :func:`register` (``register(main, cert)``). Every expected
error is an :class:`IbbError`, which the main group prints as ``error: …`` with exit 1.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from .errors import IbbError, InvalidInput, UnknownName
from .formats import MessageFormat
from .plugins import Plugins
from .profile import Profile, load_profiles

DEMO_PROFILES = ("kr-cn-wco-xml.toml", "aladi-ar-br.toml")
"""Shipped profiles (in ``profiles/xml/``) whose keys and trust list ``ibb keys demo`` creates (``demo-pki/`` beside them)."""


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise IbbError(f"{path}: cannot read ({exc.strerror})") from None


def _write(path: str, data: bytes) -> None:
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise IbbError(f"{path}: cannot write ({exc.strerror})") from None


def _profile(profile_id: str, profile_paths: tuple[str, ...]) -> tuple[Profile, MessageFormat]:
    from .cli import _profile_paths

    plugins = Plugins()
    loaded = load_profiles(profile_paths or _profile_paths(), plugins)
    if profile_id not in loaded:
        raise UnknownName("profile", profile_id, loaded)
    profile = loaded[profile_id]
    fmt_cls = plugins.formats.get(profile.data_cluster.format)
    return profile, fmt_cls(profile.data_cluster.options)


def _parse(fmt: MessageFormat, document: bytes, file: str) -> Any:
    """``fmt.parse``, with errors that name ``file``."""
    try:
        return fmt.parse(document)
    except InvalidInput as exc:
        if exc.source:
            raise
        raise type(exc)(exc.problems, file) from None


def _signed_format(profile: Profile, fmt: MessageFormat) -> MessageFormat:
    if not fmt.supports_signatures:
        raise IbbError(f"profile {profile.id}: format {fmt.name!r} does not carry signatures")
    return fmt


def write_demo(directory: Path, aladi_xsd: Path | None = None) -> list[Path]:
    """The demo PKI in ``directory/demo-pki`` and copies of the shipped XML profiles in ``directory``.

    A profile whose schema (``xsd``) is not found is left out, so that every profile written
    loads: the ALADI schemas are not shipped; ``aladi_xsd`` names ``cod_ver_4.1.0.xsd``."""
    from ibb.profiles import SHIPPED_DIR

    from .keys import write_demo_pki

    pki = directory / "demo-pki"
    write_demo_pki(pki)
    (pki / "trust.toml").write_text(DEMO_TRUST_LIST, encoding="utf-8")
    written = [pki]
    for name in DEMO_PROFILES:
        source = Path(SHIPPED_DIR) / "xml" / name
        if not source.is_file() or source.resolve().parent == directory.resolve():
            continue
        text = source.read_text(encoding="utf-8")
        # Paths to files that are not part of the demo PKI are made absolute (relative to the shipped profile).
        xsd = re.search(r'^xsd\s*=\s*"([^"]+)"', text, flags=re.M)
        if xsd is not None:
            schema = (aladi_xsd or source.parent / xsd.group(1)).resolve()
            if not schema.is_file():
                continue
            text = text.replace(xsd.group(0), f'xsd = "{schema.as_posix()}"')
        (directory / name).write_text(text, encoding="utf-8")
        written.append(directory / name)
    return written


DEMO_TRUST_LIST = """\
# Demo trust list written by `ibb keys demo` (the ALADI "secure directory" of the demo profiles).
[trust_list]
name = "ibb demo signatories"
version = "demo"

[[roots]]
name = "ibb demo root CA"
certificate = "root.pem"

[[intermediates]]
name = "ibb demo issuing entity CA"
certificate = "entity-ca.pem"

[[issuing_entities]]
id = "KR-KCCI"
name = "Korea Chamber of Commerce and Industry"
country = "KR"
valid_from = 2020-01-01T00:00:00Z

[[issuing_entities]]
id = "CIR"
name = "Camara de Industria de la Republica Argentina (demo)"
country = "AR"
valid_from = 2020-01-01T00:00:00Z

[[officials]]
name = "ibb demo official"
issuing_entity = "KR-KCCI"
certificate = "official.pem"
valid_from = 2020-01-01T00:00:00Z

[[officials]]
name = "ibb demo official"
issuing_entity = "CIR"
certificate = "official.pem"
valid_from = 2020-01-01T00:00:00Z
"""


def register(main: click.Group, cert: click.Group) -> None:
    """Attach ``keys demo`` to ``main`` and ``render``, ``sign``, ``verify``, ``parse`` to ``cert``."""
    from .cli import profiles_option

    @main.group()
    def keys() -> None:
        """Keys and certificates for signing."""

    @keys.command("demo")
    @click.argument("directory", type=click.Path(file_okay=False))
    @click.option("--aladi-xsd", type=click.Path(dir_okay=False, exists=True),
                  help="The ALADI schema cod_ver_4.1.0.xsd, for the ALADI demo profile (not shipped with ibb).")
    def keys_demo(directory: str, aladi_xsd: str | None) -> None:
        """Create a demo PKI (root, issuing entity CA, official, exporter) and a trust list in DIRECTORY/demo-pki,
        with copies of the shipped XML profiles in DIRECTORY that use them (--profiles DIRECTORY)."""
        target = Path(directory)
        if (target / "demo-pki").exists():
            raise IbbError(f"{target / 'demo-pki'} already exists; remove it or choose another directory")
        try:
            written = write_demo(target, Path(aladi_xsd) if aladi_xsd else None)
        except OSError as exc:
            raise IbbError(f"{directory}: cannot write ({exc.strerror})") from None
        for path in written:
            click.echo(f"wrote {path}")
        for name in DEMO_PROFILES:
            if target / name not in written:
                click.echo(f"skipped {name}: its schema was not found (the ALADI schemas are not shipped; "
                           "give cod_ver_4.1.0.xsd with --aladi-xsd)")
        click.echo(f"use: ibb cert sign --profiles {target} --profile kr-cn-wco-xml --as exporter …")

    @cert.command("render")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--profile", "profile_id", required=True, help="Profile id.")
    @click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Wire document to write.")
    @profiles_option
    def cert_render(file: str, profile_id: str, output: str, profile_paths: tuple[str, ...]) -> None:
        """Render the canonical JSON certificate FILE in the profile's wire format (schema-checked)."""
        from .model import certificate_from_json

        certificate = certificate_from_json(_read(file), source=file)
        _, fmt = _profile(profile_id, profile_paths)
        _write(output, fmt.render(certificate))
        click.echo(f"{output}: {fmt.name}, unsigned")

    @cert.command("sign")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--profile", "profile_id", required=True, help="Profile id.")
    @click.option("--as", "role", required=True, help="Signing role (exporter, issuing-authority) or entity id.")
    @click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Signed document to write.")
    @profiles_option
    def cert_sign(file: str, profile_id: str, role: str, output: str, profile_paths: tuple[str, ...]) -> None:
        """Add ROLE's signature to the wire document FILE with the key of the profile's entity for that role."""
        from .keys import entity_credentials

        profile, fmt = _profile(profile_id, profile_paths)
        fmt = _signed_format(profile, fmt)
        entity = profile.entity(role)
        credentials = entity_credentials(profile, entity, fmt.options)
        _write(output, fmt.sign(_read(file), entity.role, credentials))
        click.echo(f"{output}: signed as {entity.role} ({entity.id}) by {credentials.certificate.subject.rfc4514_string()}")

    @cert.command("verify")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--profile", "profile_id", required=True, help="Profile id.")
    @profiles_option
    def cert_verify(file: str, profile_id: str, profile_paths: tuple[str, ...]) -> None:
        """Check the schema, every signature and the trust list; exit 0 only when all pass."""
        from .engine import signed_certificate_problems
        from .xmldsig import SignatureInvalid

        profile, fmt = _profile(profile_id, profile_paths)
        document = _read(file)
        report = _signed_format(profile, fmt).verify(document)
        for line in report.lines(passed_only=True):
            click.echo(line)
        report.raise_for_problems(file)
        # Archived documents too: no bound on the signatures' age, but the same window and issuing authority.
        problems = signed_certificate_problems(profile, report.results, _parse(fmt, document, file), max_age=None)
        if problems:
            raise SignatureInvalid(problems, file)
        click.echo(f"{file}: valid")

    @cert.command("parse")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option("--profile", "profile_id", required=True, help="Profile id.")
    @click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the JSON here instead of standard output.")
    @profiles_option
    def cert_parse(file: str, profile_id: str, output: str | None, profile_paths: tuple[str, ...]) -> None:
        """Read the wire document FILE and print the canonical JSON certificate (signatures are not checked: use verify)."""
        from .model import certificate_to_json

        _, fmt = _profile(profile_id, profile_paths)
        text = certificate_to_json(_parse(fmt, _read(file), file))
        if output:
            _write(output, (text + "\n").encode())
        else:
            click.echo(text)


