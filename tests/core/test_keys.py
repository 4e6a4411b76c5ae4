"""Credentials from PEM and PKCS#12, passwords from references, loaded once, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from ibb.core.keys import KeyUnavailable, clear_cache, load_credentials, write_demo_pki
from ibb.core.secrets import SecretRef


def test_pem_and_pkcs12(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_demo_pki(tmp_path)
    clear_cache()
    pem = load_credentials(SecretRef("file", "official.key", tmp_path), SecretRef("file", "official.pem", tmp_path))
    assert pem.chain and "hidden" in repr(pem)
    assert load_credentials(SecretRef("file", "official.key", tmp_path), SecretRef("file", "official.pem", tmp_path)) is pem
    p12 = load_credentials(SecretRef("file", "official.p12", tmp_path), None, SecretRef("file", "official.p12.pass", tmp_path))
    assert p12.certificate == pem.certificate
    monkeypatch.setenv("P12_PASS", "wrong")
    with pytest.raises(KeyUnavailable, match="wrong password") as exc:
        load_credentials(SecretRef("file", "official.p12", tmp_path), None, SecretRef("env", "P12_PASS"))
    assert "wrong" not in str(exc.value).replace("wrong password", "")
    with pytest.raises(KeyUnavailable, match="is not the private key's"):
        load_credentials(SecretRef("file", "official.key", tmp_path), SecretRef("file", "exporter.pem", tmp_path))


def test_demo_secrets_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    import os

    previous = os.umask(0o022)  # the usual umask, under which files are world-readable by default
    try:
        pki = tmp_path / "pki"
        write_demo_pki(pki)
    finally:
        os.umask(previous)
    assert pki.stat().st_mode & 0o777 == 0o700
    for name in ("official.key", "exporter.key", "official.p12", "official.p12.pass"):
        assert (pki / name).stat().st_mode & 0o777 == 0o600, name
    assert (pki / "root.pem").stat().st_mode & 0o077 == 0o044  # certificates are public
