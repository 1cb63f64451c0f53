"""A regular (not editable) install ships the named suites, so ``iwbc demo`` and
``iwbc bench --suite demo`` work from it instead of finding "available suites: none"."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_PROBE = """
import iwbc
from iwbc.bench.suites import available_suites, load_suite
print(iwbc.__file__)
print(",".join(available_suites()))
print(load_suite("demo").name)
"""


def test_an_installed_copy_loads_the_named_suites(tmp_path: Path) -> None:
    """setuptools' build_py lays out the files a wheel installs (offline, unlike a wheel build
    here, which needs newer setuptools or the wheel package); a copy of the sources keeps the
    build's egg-info out of the checkout."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "iwbc", source / "iwbc", ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "site"
    build = [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py"]
    subprocess.run([*build, "--build-lib", str(site)], cwd=source, check=True, capture_output=True)
    shipped = sorted(p.stem for p in (REPO / "iwbc" / "suites").glob("*.toml"))
    assert {"demo", "quick", "paper"} <= set(shipped)
    assert sorted(p.stem for p in (site / "iwbc" / "suites").glob("*.toml")) == shipped

    probe = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    )
    module, names, demo = probe.stdout.splitlines()
    assert Path(module).is_relative_to(site)
    assert names.split(",") == shipped
    assert demo == "demo"
