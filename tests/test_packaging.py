"""The wheel contains every subpackage: a package forgotten in pyproject's explicit list fails here."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_every_package_and_the_profiles(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    if r.returncode != 0 and "No module named build" in r.stderr:
        pytest.skip("the 'build' package is not installed")
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("ibb-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for top, package in (("core", "ibb/core"), ("plugins", "ibb/plugins"), ("profiles", "ibb/profiles")):
        for init in (REPO / top).rglob("__init__.py"):
            expected.add(f"{package}/{init.relative_to(REPO / top).as_posix()}")
    missing = sorted(expected - names)
    assert not missing, f"packages missing from the wheel (add them to [tool.setuptools] packages): {missing}"
    assert "ibb/profiles/kr-cn-eodes.toml" in names
    data_files = [p for p in (REPO / "plugins").rglob("*") if p.suffix in (".xsd", ".toml", ".json")]
    data_files += [p for p in (REPO / "profiles").rglob("*.toml")]
    shipped = {f"ibb/{p.relative_to(REPO).as_posix()}" for p in data_files}
    assert data_files and not shipped - names, f"data files missing from the wheel (package-data): {sorted(shipped - names)}"
    assert not any(n.startswith(("core/", "plugins/", "tests/")) for n in names), "bare top-level packages shipped"
