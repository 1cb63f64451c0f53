"""MuJoCo's warnings under the ``iwbc`` command: the HalfCheetah asset's deprecation is silent
and leaves no MUJOCO_LOG.TXT, any other warning surfaces as a Python warning, and MuJoCo's own
handler is back afterwards."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings
from pathlib import Path

import mujoco
import numpy as np
import pytest

from iwbc import cli
from iwbc.envs.mujoco_warnings import MujocoWarning, mujoco_warnings_as_python
from iwbc.envs.specs import gymnasium_asset

SLIDER = (
    '<mujoco><worldbody><body><joint type="slide"/><geom size=".1"/></body></worldbody></mujoco>'
)


def _compile_half_cheetah() -> float:
    return float(mujoco.MjModel.from_xml_path(gymnasium_asset("half_cheetah.xml")).body_mass.sum())


def _unstable_step() -> None:
    model = mujoco.MjModel.from_xml_string(SLIDER)
    data = mujoco.MjData(model)
    data.qvel[:] = np.inf
    mujoco.mj_step(model, data)


def test_the_half_cheetah_deprecation_is_silent_and_still_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with mujoco_warnings_as_python():
            mass = _compile_half_cheetah()
    assert caught == []
    assert mass == pytest.approx(14.0)  # settotalmass="14" in Gymnasium's XML
    assert list(tmp_path.iterdir()) == []  # no MUJOCO_LOG.TXT
    assert mujoco.get_mju_user_warning() is None


def test_other_mujoco_warnings_become_python_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with (
        pytest.warns(MujocoWarning, match="Nan, Inf or huge value in QVEL"),
        mujoco_warnings_as_python(),
    ):
        _unstable_step()
    assert list(tmp_path.iterdir()) == []
    assert mujoco.get_mju_user_warning() is None


_THREADED_WARNING = """
import warnings
import mujoco, numpy as np
from mujoco.batch import Batch
from iwbc.envs.mujoco_warnings import MujocoWarning, mujoco_warnings_as_python
from iwbc.envs.specs import gymnasium_asset

batch = Batch(mujoco.MjModel.from_xml_path(gymnasium_asset("hopper.xml")), 64, nthread=2)
batch.bind("qvel")[:] = np.inf
with warnings.catch_warnings(record=True) as caught, mujoco_warnings_as_python():
    warnings.simplefilter("default")
    batch.step(nstep=4)
print(sorted({str(w.message)[:30] for w in caught if w.category is MujocoWarning}))
"""


def test_warnings_from_mujocos_thread_pool_arrive_without_a_deadlock() -> None:
    """The batch engine steps on MuJoCo's threads, which call the handler without holding the
    GIL. A fresh interpreter with a timeout, so that a deadlock fails the test instead of
    hanging the suite."""
    done = subprocess.run(
        [sys.executable, "-c", _THREADED_WARNING],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['Nan, Inf or huge value in QVEL']"


def test_warnings_made_errors_are_printed_not_raised_through_mujoco(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Raised inside MuJoCo's C code, the error would abort the process (``-W error``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with mujoco_warnings_as_python():
            _unstable_step()
    assert "MuJoCo warning: Nan, Inf or huge value in QVEL" in capsys.readouterr().err


def test_the_command_runs_under_the_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    parser = argparse.ArgumentParser()
    parser.set_defaults(func=lambda _: seen.append(mujoco.get_mju_user_warning()))
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main([]) == 0
    assert seen and seen[0] is not None
    assert mujoco.get_mju_user_warning() is None


def test_a_ray_task_runs_its_unit_under_the_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    from iwbc.bench import executors

    seen = []
    monkeypatch.setattr(
        executors, "execute_unit", lambda *_: seen.append(mujoco.get_mju_user_warning())
    )
    executors.execute_in_worker(None, None)  # type: ignore[arg-type]
    assert seen and seen[0] is not None
    assert mujoco.get_mju_user_warning() is None
