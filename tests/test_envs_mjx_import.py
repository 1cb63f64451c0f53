"""Importing the MJX engine on a machine without Warp prints nothing about Warp, and hides
nothing else: other printed lines and warnings still come through."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

pytest.importorskip("mujoco.mjx")

from iwbc.envs.mjx_engine import BACKEND_NOISE, without_backend_noise


def test_fresh_import_prints_no_optional_backend_noise(capfd: pytest.CaptureFixture[str]) -> None:
    """A fresh interpreter, since this one may have imported mujoco.mjx already."""
    code = "import iwbc.envs.mjx_engine; print('imported')"
    subprocess.run([sys.executable, "-c", code], check=True)
    out, err = capfd.readouterr()
    assert out.splitlines()[-1] == "imported"
    assert "Failed to import" not in out + err


def test_only_the_backend_lines_are_dropped(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.warns(UserWarning, match="still a warning"), without_backend_noise():
        print(f"{BACKEND_NOISE[0]} No module named 'warp'")
        print("something else the import said")
        print(f"{BACKEND_NOISE[1]} No module named 'warp'")
        warnings.warn("still a warning", UserWarning, stacklevel=1)
    out, _ = capfd.readouterr()
    assert out == "something else the import said\n"


def test_lines_printed_before_an_error_are_kept(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError, match="boom"), without_backend_noise():
        print("said before failing")
        raise RuntimeError("boom")
    assert capfd.readouterr().out == "said before failing\n"
