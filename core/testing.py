"""Helpers for testing ibb end to end with real gateway processes (tests, benchmarks, plugin authors).

:class:`GatewayProcess` runs ``ibb serve`` as a child process on a free 127.0.0.1 port,
so a test can stop it cleanly, kill it with SIGKILL and start it again on the same
store and port. :func:`wire_profile` writes a copy of a profile whose entities point at
those ports. Only processes started here are ever signalled, by their PID.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import threading
from typing import Any

import httpx

from .gateway import bind, make_server


def free_port() -> int:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    return port


def wire_profile(source: Path, target_dir: Path, endpoints: dict[str, str], replace: dict[str, str] | None = None) -> Path:
    """Copy profile ``source`` into ``target_dir`` with ``endpoint`` of each entity id in ``endpoints`` replaced.

    ``replace`` maps further literal TOML snippets to their replacement (e.g. a shorter timeout).
    """
    text = source.read_text(encoding="utf-8")
    for entity_id, url in endpoints.items():
        pattern = re.compile(rf'(id = "{re.escape(entity_id)}"\n(?:(?!\[\[).*\n)*?)endpoint = ".*"')
        text, count = pattern.subn(lambda m: f'{m.group(1)}endpoint = "{url}"', text)
        if count != 1:
            raise ValueError(f"entity {entity_id!r} with an endpoint not found in {source}")
    for old, new in (replace or {}).items():
        if old not in text:
            raise ValueError(f"{old!r} not found in {source}")
        text = text.replace(old, new)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / source.name
    target.write_text(text, encoding="utf-8")
    return target


class GatewayProcess:
    """``ibb serve`` in a child process. The port is chosen once and kept across restarts."""

    def __init__(self, profiles: Path, store: str, port: int | None = None, log: Path | None = None, nodes: tuple[str, ...] = ()):
        self.profiles, self.store, self.nodes = profiles, store, nodes
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> GatewayProcess:
        exe = shutil.which("ibb") or str(Path(sys.executable).with_name("ibb"))
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [exe, "serve", "--profiles", str(self.profiles), "--store", self.store, "--port", str(self.port), "--log-level", "warning",
             *(arg for node in self.nodes for arg in ("--node", node))],
            stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway on port {self.port} exited with {self.proc.returncode} (log: {self.log})")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"gateway on port {self.port} did not become healthy in {timeout}s (log: {self.log})")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush: what a power cut does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait; kill if it does not stop in time. Returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


class ThreadedServer:
    """An ASGI app served by uvicorn in a thread on a free 127.0.0.1 port (a real HTTP peer for tests)."""

    def __init__(self) -> None:
        self.sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread: threading.Thread | None = None

    def start(self, app: Any, timeout: float = 10.0) -> ThreadedServer:
        self.server = make_server(app)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=15)
        self.sock.close()


class FormatConformance:
    """The checks every message-format plugin must pass: subclass it in the plugin's tests.

    ::

        from ibb.core.testing import FormatConformance
        import my_plugin

        class TestMyFormatConformance(FormatConformance):
            format_name = "my-format"
            plugins_extra = (my_plugin,)          # the plugin module, registered like an installed one

            def options(self):                     # the Options a profile would give (default: none)
                return my_plugin.MyFormat.Options(...)

    pytest collects the ``test_*`` methods through the subclass. ``lossless = False`` for a
    wire format that cannot carry every canonical field: then ``parse(render(c))`` must be
    stable (rendering it again gives the same certificate) instead of equal to ``c``.
    """

    format_name: str = ""
    plugins_extra: tuple[Any, ...] = ()
    lossless: bool = True

    def options(self) -> Any:
        return None

    def certificates(self) -> list[Any]:
        from .samples import sample_certificate

        return [sample_certificate("KR-2026-000001", items=1), sample_certificate("KR-2026-000002", items=5)]

    def make_format(self) -> Any:
        from .plugins import Plugins

        return Plugins(entrypoints=False, extra=self.plugins_extra).formats.get(self.format_name)(self.options())

    def test_declares_the_contract(self) -> None:
        import attrs

        fmt = self.make_format()
        assert fmt.name == self.format_name
        assert isinstance(fmt.content_type, str) and "/" in fmt.content_type
        assert attrs.has(type(fmt).Options), "Options must be an attrs class (the profile's [data_cluster.options])"

    def test_round_trip(self) -> None:
        fmt = self.make_format()
        for certificate in self.certificates():
            wire = fmt.render(certificate)
            assert isinstance(wire, bytes)
            back = fmt.parse(wire)
            if self.lossless:
                assert back == certificate, f"{self.format_name}: parse(render(c)) != c"
            else:
                assert fmt.parse(fmt.render(back)) == back, f"{self.format_name}: the round trip is not stable"

    def test_bad_input_raises_only_certificate_error(self) -> None:
        from .errors import InvalidInput

        fmt = self.make_format()
        wire = fmt.render(self.certificates()[0])
        middle = len(wire) // 2
        bad_inputs = [b"", b"\x00\xff\xfe", b"not a document", wire[:middle], wire[:middle] + b"\x00" + wire[middle + 1:],
                      b"[" * 10_000, "é".encode("latin-1") * 10]
        for data in bad_inputs:
            try:
                fmt.parse(data)
            except InvalidInput as exc:
                assert exc.lines() and all(isinstance(line, str) and line for line in exc.lines())
            # A parse that succeeds on altered input is allowed: only the exception type is part of the contract.
