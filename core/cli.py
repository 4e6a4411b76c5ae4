"""The ``ibb`` command line. Every expected error is printed as ``error: …`` with a non-zero exit, no traceback."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from .errors import IbbError, InvalidInput
from .plugins import Plugins
from .profile import Profile, load_profile, load_profiles

DEFAULT_STORE = "ibb.sqlite"


class HandledError(click.ClickException):
    """An IbbError on its way out of the CLI: printed line by line, no traceback."""

    def __init__(self, error: IbbError):
        super().__init__(str(error))
        self.error = error
        self.exit_code = error.exit_code

    def show(self, file: Any = None) -> None:
        for line in self.error.lines():
            click.echo(f"error: {line}", err=True)


class IbbGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IbbError as exc:
            raise HandledError(exc) from None


def _profile_paths() -> list[str]:
    from ibb.profiles import SHIPPED_DIR

    env = os.environ.get("IBB_PROFILES")
    return env.split(os.pathsep) if env else [str(SHIPPED_DIR)]


profiles_option = click.option(
    "--profiles", "profile_paths", multiple=True, metavar="PATH",
    help="Profile file or folder of *.toml (repeatable). Default: $IBB_PROFILES, else the shipped profiles.",
)
store_option = click.option(
    "--store", default=lambda: os.environ.get("IBB_STORE", DEFAULT_STORE), show_default="$IBB_STORE or ibb.sqlite",
    help="SQLAlchemy URL or SQLite file path of this node's store.",
)


def _load(profile_paths: tuple[str, ...], plugins: Plugins) -> dict[str, Profile]:
    return load_profiles(profile_paths or _profile_paths(), plugins)


@click.group(cls=IbbGroup)
@click.version_option(package_name="ibb")
def main() -> None:
    """ibb: exchange electronic certificates of origin between customs administrations.

    Each trade agreement is a profile (a GNC utility block); `ibb demo` shows one end to end.
    """


# -- profiles -----------------------------------------------------------------------------


@main.group()
def profiles() -> None:
    """List, show and check profiles."""


@profiles.command("list")
@profiles_option
def profiles_list(profile_paths: tuple[str, ...]) -> None:
    """List the loaded profiles: id, transport, format, name."""
    for p in _load(profile_paths, Plugins()).values():
        click.echo(f"{p.id}\t{p.service_interface.transport}\t{p.data_cluster.format}\t{p.block.name}")


@profiles.command("show")
@click.argument("profile_id")
@profiles_option
def profiles_show(profile_id: str, profile_paths: tuple[str, ...]) -> None:
    """Show one profile as a utility block."""
    from .errors import UnknownName

    loaded = _load(profile_paths, Plugins())
    if profile_id not in loaded:
        raise UnknownName("profile", profile_id, loaded)
    click.echo(describe_profile(loaded[profile_id]))


def describe_profile(p: Profile) -> str:
    lines = [f"{p.block.name}  [{p.id}, version {p.block.version}]", f"  source:     {p.source}"]
    if p.block.purpose:
        lines.append(f"  purpose:    {p.block.purpose}")
    if p.block.benefit:
        lines.append(f"  benefit:    {p.block.benefit}")
    for basis in p.block.legal_basis:
        lines.append(f"  legal basis: {basis}")
    lines.append("  entities:")
    for e in p.entities:
        lines.append(f"    {e.id:<12} {e.role:<18} {e.country}  {e.name or ''}{'  -> ' + e.endpoint if e.endpoint else ''}")
    signatures = f", signatures: {', '.join(p.data_cluster.signatures)}" if p.data_cluster.signatures else ""
    lines.append(f"  data cluster: format {p.data_cluster.format}{signatures}")
    lines.append("  business rules:")
    for spec in p.rules:
        lines.append(f"    {spec.rule} {_params(spec.params)}")
    lines.append("  triggers:")
    for t in p.triggers:
        lines.append(f"    on {t.on}: {', '.join(t.do)}{' -> ' + t.to if t.to else ''}")
    lines.append(f"  service interface: {p.service_interface.transport} {_params(p.service_interface.settings)}")
    r = p.communication.retry
    lines.append(f"  communication: retry {r.attempts} attempts, {r.backoff} backoff from {r.initial_seconds}s up to {r.max_seconds}s")
    return "\n".join(lines)


def _params(obj: Any) -> str:
    import attrs

    if obj is None or not attrs.has(type(obj)):
        return ""
    return " ".join(f"{k}={v}" for k, v in attrs.asdict(obj, recurse=False).items() if v is not None)


@profiles.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path())
def profiles_check(files: tuple[str, ...]) -> None:
    """Check profile files; exit 0 when all are valid, 1 with every problem otherwise."""
    plugins = Plugins()
    problems: list[str] = []
    for f in files:
        try:
            p = load_profile(f, plugins)
            click.echo(f"{f}: ok ({p.id})")
        except InvalidInput as exc:
            problems.extend(exc.lines())
    if problems:
        raise InvalidInput(problems)


# -- plugins ------------------------------------------------------------------------------


@main.group()
def plugins() -> None:
    """Inspect installed plugins."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins_list(as_json: bool) -> None:
    """Each plugin, its version and what it registers."""
    rows = Plugins().describe()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        kind = "built-in" if row["builtin"] else "installed"
        regs = "; ".join(f"{k}: {', '.join(v)}" for k, v in row["registers"].items()) or "nothing"
        click.echo(f"{row['plugin']} {row['version']} ({kind}): {regs}")


# -- gateway ------------------------------------------------------------------------------


@main.command()
@profiles_option
@store_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8701, show_default=True, type=int)
@click.option("--node", "nodes", multiple=True, metavar="ENTITY",
              help="Entity id this gateway acts for (repeatable). Default: every entity of its profiles.")
@click.option("--api-token-env", metavar="NAME", help="Environment variable holding the bearer token of the local /api.")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
def serve(profile_paths: tuple[str, ...], store: str, host: str, port: int, nodes: tuple[str, ...], api_token_env: str | None,
          log_level: str) -> None:
    """Run the gateway: inbound endpoints of every loaded profile, /health and /api. Stops on SIGTERM."""
    from .engine import Engine
    from .gateway import bind, create_app, make_server
    from .secrets import SecretRef, check_readable
    from .store import Store

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    plugins = Plugins()
    loaded = _load(profile_paths, plugins)
    token = SecretRef("env", api_token_env).read_text() if api_token_env else None
    if token is None and host not in ("127.0.0.1", "::1", "localhost"):
        raise IbbError(f"the local /api would be open to anyone reaching {host}: give --api-token-env NAME, or listen on 127.0.0.1")
    for profile in loaded.values():  # fail now, not on the first message, when a transport secret is missing
        check_readable(profile.service_interface.settings)
    engine = Engine(loaded, Store(store), plugins, local=nodes or None)
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise IbbError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    click.echo(f"ibb gateway on http://{host}:{sock.getsockname()[1]} with profiles {', '.join(sorted(loaded))}", err=True)
    server = make_server(create_app(engine, api_token=token), log_level=log_level)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it: make that a clean exit 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(server.serve(sockets=[sock]))


# -- certificates -------------------------------------------------------------------------


@main.group()
def cert() -> None:
    """Issue certificates and follow them."""


def _engine(profile_paths: tuple[str, ...], store: str) -> Any:
    from .engine import Engine
    from .store import Store

    plugins = Plugins()
    return Engine(_load(profile_paths, plugins), Store(store), plugins)


def _run_and_deliver(engine: Any, step: Any, wait: float) -> None:
    """Run one engine step, then deliver what it queued (bounded by ``wait`` seconds)."""
    from .outbox import Dispatcher

    async def run() -> None:
        try:
            await step()
            if wait > 0:
                dispatcher = Dispatcher(engine)
                if not await dispatcher.drain(wait):
                    click.echo("note: some messages are still queued; a running gateway on this store will deliver them", err=True)
        finally:
            await engine.close()

    asyncio.run(run())


wait_option = click.option("--wait", default=30.0, show_default=True, type=float,
                           help="Seconds to spend delivering queued messages now (0: leave them to the gateway).")


from .cli_cert import register as _register_cert  # noqa: E402  (keys demo, cert render/sign/verify/parse)

_register_cert(main, cert)


@cert.command("issue")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--profile", "profile_id", required=True, help="Profile id.")
@click.option("--as", "issuer", required=True, help="Entity id (or role) issuing the certificate.")
@click.option("--replaces", metavar="CERT_ID", help="Id of the certificate this one replaces.")
@click.option("--draft", is_flag=True, help="Only record a draft; it is issued when its export declaration is accepted.")
@profiles_option
@store_option
@wait_option
def cert_issue(file: str, profile_id: str, issuer: str, replaces: str | None, draft: bool, profile_paths: tuple[str, ...],
               store: str, wait: float) -> None:
    """Issue the canonical JSON certificate FILE and run the profile's triggers (e.g. send it)."""
    from .model import certificate_from_json

    try:
        text = Path(file).read_bytes()
    except OSError as exc:
        raise IbbError(f"{file}: cannot read ({exc.strerror})") from None
    certificate = certificate_from_json(text, source=file)
    engine = _engine(profile_paths, store)
    _run_and_deliver(engine, lambda: engine.issue(profile_id, certificate, issuer, replaces=replaces, draft=draft), wait)
    _print_timeline(store, certificate.id)


@cert.command("declaration-accepted")
@click.argument("cert_id")
@click.option("--profile", "profile_id", required=True)
@click.option("--as", "actor", required=True, help="Entity id (the exporting side).")
@click.option("--declaration", required=True, help="Reference of the accepted export declaration.")
@profiles_option
@store_option
@wait_option
def cert_declaration_accepted(cert_id: str, profile_id: str, actor: str, declaration: str, profile_paths: tuple[str, ...],
                              store: str, wait: float) -> None:
    """The export declaration covering draft CERT_ID was accepted: run the profile's triggers (e.g. issue and send)."""
    engine = _engine(profile_paths, store)
    _run_and_deliver(engine, lambda: engine.declaration_accepted(profile_id, cert_id, actor, declaration), wait)
    _print_timeline(store, cert_id)


@cert.command("cancel")
@click.argument("cert_id")
@click.option("--profile", "profile_id", required=True)
@click.option("--as", "actor", required=True, help="Entity id cancelling.")
@click.option("--reason", required=True)
@profiles_option
@store_option
@wait_option
def cert_cancel(cert_id: str, profile_id: str, actor: str, reason: str, profile_paths: tuple[str, ...], store: str, wait: float) -> None:
    """Cancel an issued certificate and notify the partner (per the profile's triggers)."""
    engine = _engine(profile_paths, store)
    _run_and_deliver(engine, lambda: engine.cancel(profile_id, cert_id, actor, reason), wait)
    _print_timeline(store, cert_id)


@cert.command("decide")
@click.argument("cert_id")
@click.argument("decision", type=click.Choice(["accepted", "refused"]))
@click.option("--profile", "profile_id", required=True)
@click.option("--as", "actor", required=True, help="Entity id deciding (the importing administration).")
@click.option("--reason", default="")
@profiles_option
@store_option
@wait_option
def cert_decide(cert_id: str, decision: str, profile_id: str, actor: str, reason: str, profile_paths: tuple[str, ...], store: str, wait: float) -> None:
    """Record the preference decision on a received certificate and send the feedback."""
    engine = _engine(profile_paths, store)
    _run_and_deliver(engine, lambda: engine.decide(profile_id, cert_id, decision, actor, reason), wait)
    _print_timeline(store, cert_id)


@main.command()
@click.argument("cert_id")
@store_option
def status(cert_id: str, store: str) -> None:
    """Show a certificate's timeline from this node's store."""
    from .errors import UnknownName

    if not _print_timeline(store, cert_id):
        raise UnknownName("certificate", cert_id, [])


def _print_timeline(store: str, cert_id: str) -> bool:
    from .store import Store
    from .timeline import format_timeline, timeline

    opened = Store(store, create=False)
    try:
        records = opened.find(cert_id)
        for record in records:
            click.echo(f"{record.cert_id}  {record.profile_id}  {record.direction}  partner {record.partner or '-'}  status {record.status}")
        for line in format_timeline(timeline([("", opened)], cert_id)):
            click.echo(f"  {line}")
        return bool(records)
    finally:
        opened.close()


@main.group()
def certs() -> None:
    """Query certificates in this node's store."""


def _parse_time(value: str | None, name: str) -> Any:
    import datetime as dt

    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput([f"--{name}: {value!r} is not an ISO date or date-time"]) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


@certs.command("list")
@click.option("--profile", "profile_id")
@click.option("--partner", help="Entity id of the partner.")
@click.option("--state", help="Lifecycle state (issued, sent, delivered, received, accepted, refused, failed, cancelled, replaced).")
@click.option("--direction", type=click.Choice(["outbound", "inbound"]))
@click.option("--since", help="ISO date or date-time (UTC when no offset).")
@click.option("--until", help="ISO date or date-time, exclusive.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100000))
@store_option
def certs_list(profile_id: str | None, partner: str | None, state: str | None, direction: str | None,
               since: str | None, until: str | None, limit: int, store: str) -> None:
    """List certificates by profile, partner, state and date."""
    from .lifecycle import STATES
    from .store import Store

    if state is not None and state not in STATES:
        raise InvalidInput([f"--state: {state!r} is not one of {', '.join(STATES)}"])
    opened = Store(store, create=False)
    try:
        rows = opened.list(profile_id=profile_id, partner=partner, status=state, direction=direction,
                           since=_parse_time(since, "since"), until=_parse_time(until, "until"), limit=limit)
    finally:
        opened.close()
    for r in rows:
        click.echo(f"{r.cert_id}\t{r.profile_id}\t{r.direction}\t{r.partner or '-'}\t{r.status}\t{r.created_at.isoformat(timespec='seconds')}")


@main.group()
def outbox() -> None:
    """Inspect and re-drive outbound messages (delivery tracking, dead letters)."""


@outbox.command("list")
@click.option("--status", type=click.Choice(["pending", "awaiting-receipt", "delivered", "delivered-with-warnings", "failed"]))
@click.option("--profile", "profile_id")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100000))
@store_option
def outbox_list(status: str | None, profile_id: str | None, limit: int, store: str) -> None:
    """Outbound messages with their delivery status."""
    from .store import Store

    opened = Store(store, create=False)
    try:
        counts = opened.outbox_counts()
        rows = opened.outbox_list(status=status, profile_id=profile_id, limit=limit)
    finally:
        opened.close()
    click.echo("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "outbox is empty")
    for m in rows:
        error = f"  last error: {m.last_error}" if m.last_error and m.status != "delivered" else ""
        click.echo(f"{m.message_id}\t{m.kind}\t{m.sender} -> {m.receiver}\t{m.status}\tattempts {m.attempts}{error}")


@outbox.command("show")
@click.argument("message_id")
@store_option
def outbox_show(message_id: str, store: str) -> None:
    """One message's delivery tracking, as JSON."""
    from .gateway import message_json
    from .store import Store

    opened = Store(store, create=False)
    try:
        click.echo(json.dumps(message_json(opened.outbox_message(message_id)), indent=2))
    finally:
        opened.close()


@outbox.command("redrive")
@click.argument("message_ids", nargs=-1)
@click.option("--all-failed", is_flag=True, help="Re-drive every failed message.")
@store_option
def outbox_redrive(message_ids: tuple[str, ...], all_failed: bool, store: str) -> None:
    """Put failed (dead-letter) messages back in the queue; a running gateway sends them."""
    from .outbox import redrive
    from .store import Store

    opened = Store(store, create=False)
    try:
        ids = list(message_ids)
        if all_failed:
            ids += [m.message_id for m in opened.outbox_list(status="failed", limit=100000)]
        if not ids:
            raise InvalidInput(["give MESSAGE_ID… or --all-failed"])
        for message_id in ids:
            redrive(opened, message_id)
            click.echo(f"{message_id}: pending again")
    finally:
        opened.close()


# -- demo ---------------------------------------------------------------------------------


@main.command()
@click.option("--certificates", default=1, show_default=True, type=click.IntRange(1, 1000), help="How many to issue.")
def demo(certificates: int) -> None:
    """Two gateways on loopback exchange a certificate over REST; prints the timeline."""
    from .demo import run_demo

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    ok = asyncio.run(run_demo(certificates, echo=click.echo))
    sys.exit(0 if ok else 1)
