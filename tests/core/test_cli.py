"""The command line as a user runs it: the installed ``ibb`` script, exit codes, no tracebacks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ibb.profiles import SHIPPED_DIR

SHIPPED = (Path(SHIPPED_DIR) / "kr-cn-eodes.toml").read_text()


def ibb(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    exe = shutil.which("ibb") or str(Path(sys.executable).with_name("ibb"))
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env={**os.environ, **(env or {})})


def test_profiles_check_valid_and_invalid(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(SHIPPED)
    bad = tmp_path / "kr-cn.toml"
    bad.write_text(SHIPPED.replace('transport = "rest"', 'transport = "rets"').replace("days = 365", "days = -1"))
    r = ibb("profiles", "check", str(good))
    assert r.returncode == 0 and "ok (kr-cn-eodes)" in r.stdout
    r = ibb("profiles", "check", str(good), str(bad))
    assert r.returncode == 1
    assert f"error: {bad}: $.service_interface.transport: unknown transport 'rets'; did you mean 'rest'?" in r.stderr
    assert f"error: {bad}: $.rules[0]: 'days' must be > 0: -1" in r.stderr
    assert "Traceback" not in r.stderr


def test_profiles_list_and_show() -> None:
    r = ibb("profiles", "list")
    assert r.returncode == 0 and r.stdout.startswith("kr-cn-eodes\trest\tuncefact-json\tKorea-China")
    r = ibb("profiles", "show", "kr-cn-eodes")
    assert r.returncode == 0
    for expected in ("legal basis: Free Trade Agreement", "CN-GACC", "importing-customs", "validity-period days=365", "on certificate.issued: send -> importing-customs"):
        assert expected in r.stdout
    r = ibb("profiles", "show", "kr-cn-eodse")
    assert r.returncode == 1 and "did you mean 'kr-cn-eodes'?" in r.stderr and "Traceback" not in r.stderr


def test_plugins_list() -> None:
    r = ibb("plugins", "list")
    assert r.returncode == 0
    assert "ibb.plugins.rest" in r.stdout and "transport: rest" in r.stdout
    assert "format: uncefact-json" in r.stdout


def test_cert_issue_and_status_with_clear_errors(tmp_path: Path) -> None:
    from ibb.core.model import certificate_to_json
    from ibb.core.samples import sample_certificate

    cert = tmp_path / "c.json"
    cert.write_text(certificate_to_json(sample_certificate("KR-2026-000001")).replace('"USD"', '"USX"'))
    store = str(tmp_path / "node.sqlite")
    r = ibb("cert", "issue", "--profile", "kr-cn-eodes", "--as", "KR-KCS", "--store", store, str(cert))
    assert r.returncode == 1 and "$.items[0].currency: 'USX' is not an ISO 4217 currency code" in r.stderr
    r = ibb("status", "KR-2026-000001", "--store", store)
    assert r.returncode == 1 and f"no store at {store}" in r.stderr
    assert not Path(store).exists(), "a read-only command must not create a store at a mistyped path"
    r = ibb("cert", "issue", "--profile", "kr-cn-eodes", "--as", "KR-KCS", "--store", store, str(tmp_path / "absent.json"))
    assert r.returncode == 1 and "cannot read" in r.stderr and "Traceback" not in r.stderr


def test_serve_answers_health_and_stops_on_sigterm(tmp_path: Path) -> None:
    import signal
    import time

    import httpx

    from ibb.core.gateway import bind

    s = bind("127.0.0.1", 0)
    port = s.getsockname()[1]
    s.close()
    exe = shutil.which("ibb") or str(Path(sys.executable).with_name("ibb"))
    proc = subprocess.Popen([exe, "serve", "--store", str(tmp_path / "gw.sqlite"), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"gateway did not come up: {proc.communicate(timeout=5)}")
                time.sleep(0.1)
        assert r.json() == {"status": "ok", "profiles": ["kr-cn-eodes"]}
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "gateway stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_demo_runs_end_to_end() -> None:
    r = ibb("demo", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "timeline of KR-2026-000001" in out
    for event in ("issued", "sent", "received", "delivered"):
        assert f" {event} " in out
    assert "HTTP 422" in out and "store of CN-GACC unchanged: yes" in out
    assert "demo finished: every certificate delivered, checked and stored." in out


def test_serve_reports_a_missing_token_before_starting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "IBB_CN_GACC_TOKEN"}
    exe = shutil.which("ibb") or str(Path(sys.executable).with_name("ibb"))
    r = subprocess.run([exe, "serve", "--store", str(tmp_path / "gw.sqlite"), "--port", "0"], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 1
    assert "error: secret $env:IBB_CN_GACC_TOKEN: environment variable IBB_CN_GACC_TOKEN is not set" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_store_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.sqlite"
    bogus.write_text("shopping list\n" * 100)
    r = ibb("certs", "list", "--store", str(bogus))
    assert r.returncode == 1, r.stderr
    assert f"cannot open store sqlite:///{bogus}: file is not a database" in r.stderr
    assert "Traceback" not in r.stderr
    assert bogus.read_text() == "shopping list\n" * 100
