"""Minari's D4RL datasets beyond locomotion record Gymnasium-Robotics' envs (Adroit hands, Point
and Ant mazes, Kitchen): data recorded on them by ``minari.DataCollector`` trains and is scored
on the Gymnasium engine, Dict observations flattened on both sides."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import gymnasium_robotics
import minari
import mujoco
import numpy as np
import pytest
from conftest import save_collected
from gymnasium_robotics.utils import mujoco_utils

from iwbc.cli import main
from iwbc.data import load_dataset
from iwbc.envs.robotics_compat import enum_equals_numpy_int, fix_joint_type_checks

gym.register_envs(gymnasium_robotics)


def _record(root: Path, dataset_id: str, env_id: str, episodes: int, steps: int) -> None:
    """``episodes`` episodes of uniform random actions, each cut at ``steps`` steps."""
    collector = minari.DataCollector(gym.make(env_id, max_episode_steps=steps))
    collector.action_space.seed(0)
    for seed in range(episodes):
        collector.reset(seed=seed)
        done = False
        while not done:
            _, _, terminated, truncated, _ = collector.step(collector.action_space.sample())
            done = terminated or truncated
    save_collected(collector, root, dataset_id, ref_max_score=100.0)


# Kitchen hands back the same (constant) desired-goal dict every step, which Gymnasium's
# checker warns of as the recording steps it; the engine copies each observation it reads.
@pytest.mark.filterwarnings("ignore:.*share an object:UserWarning")
@pytest.mark.parametrize(
    ("env_id", "obs_dim"),
    # Kitchen: 59 robot and object features, then achieved and desired goals of its 7 tasks
    # (17 features each)
    [("AdroitHandPen-v1", 45), ("PointMaze_UMaze-v3", 8), ("FrankaKitchen-v1", 59 + 2 * 17)],
    ids=["adroit-pen", "pointmaze-dict", "kitchen-nested-dict"],
)
def test_a_gymnasium_robotics_dataset_trains_and_scores(
    tmp_path: Path, env_id: str, obs_dim: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset_id = "test/robotics/random-v0"
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where a maze env writes its model
    monkeypatch.setattr(mujoco_utils, "mujoco", mujoco_utils.mujoco)  # restored at the end
    fix_joint_type_checks()  # for the recording's own gym.make (Kitchen)
    _record(tmp_path, dataset_id, env_id, episodes=3, steps=20)
    mujoco_utils.mujoco = mujoco  # as in a fresh process: iwbc's engine must fix it itself
    for left in temp.iterdir():  # by the recording's own gym.make
        left.unlink()
    ds = load_dataset(dataset_id, root=tmp_path)
    assert ds.observation_dim == obs_dim and ds.num_steps == 60
    out = tmp_path / "out"
    argv = ["run", dataset_id, "--root", str(tmp_path), "--methods", "bc", "--seeds", "1"]
    argv += ["--bc-steps", "5", "--bc-batch-size", "4", "--hidden", "8,8", "--eval-episodes", "2"]
    argv += ["--out", str(out), "--work-dir", str(tmp_path / "runs"), "--quiet"]
    assert main(argv) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["evaluation_engines"] == ["gymnasium"]
    returns = np.array(scores["methods"]["bc"]["returns"])
    assert returns.shape == (1, 2) and np.isfinite(returns).all()
    assert list(temp.iterdir()) == []  # Gymnasium-Robotics' maze leaves its model file there


def test_kitchens_joint_accessors_work_on_this_mujoco(monkeypatch: pytest.MonkeyPatch) -> None:
    """MuJoCo 3.12+ enums compare unequal to NumPy ints (enum on the left), which breaks
    Gymnasium-Robotics 1.4.2's joint accessors on every hinge; after the fix they read and
    write hinge and slide joints beside a free joint, as Gymnasium-Robotics PR #330's do."""
    model = mujoco.MjModel.from_xml_string(
        """<mujoco><worldbody>
        <body name="arm"><joint name="robot0:hinge" type="hinge"/><geom size=".1"/>
          <body pos="0 0 .3"><joint name="robot0:slide" type="slide"/><geom size=".1"/></body>
        </body>
        <body name="kettle" pos="1 0 0"><freejoint name="kettle"/><geom size=".1"/></body>
        </worldbody></mujoco>"""
    )
    data = mujoco.MjData(model)
    monkeypatch.setattr(mujoco_utils, "mujoco", mujoco)
    if not enum_equals_numpy_int():  # the bug, as this MuJoCo has it
        with pytest.raises(AssertionError):
            mujoco_utils.get_joint_qpos(model, data, "robot0:hinge")
    fix_joint_type_checks()
    fix_joint_type_checks()  # idempotent
    mujoco_utils.set_joint_qpos(model, data, "robot0:hinge", 0.5)
    mujoco_utils.set_joint_qvel(model, data, "robot0:slide", -0.25)
    mujoco_utils.set_joint_qpos(model, data, "kettle", [1, 2, 3, 1, 0, 0, 0])
    np.testing.assert_array_equal(data.qpos, [0.5, 0, 1, 2, 3, 1, 0, 0, 0])
    np.testing.assert_array_equal(data.qvel, [0, -0.25, 0, 0, 0, 0, 0, 0])
    qpos, qvel = mujoco_utils.robot_get_obs(model, data, ["robot0:hinge", "robot0:slide"])
    np.testing.assert_array_equal(qpos, [0.5, 0.0])
    np.testing.assert_array_equal(qvel, [0.0, -0.25])
    assert mujoco_utils.mujoco.mjtObj is mujoco.mjtObj  # everything else is MuJoCo's own


def test_a_robotics_datasets_fingerprint_does_not_depend_on_what_was_imported(
    tmp_path: Path,
) -> None:
    """Whether an env's time limit is its id's default is asked of Gymnasium's registry, which
    holds Gymnasium-Robotics' ids only once that package is imported: a fresh process loading
    without the env check (which builds the env) must fingerprint the data as this one does,
    or its runs would train again and read as made on other data."""
    dataset_id = "test/robotics/random-v0"
    _record(tmp_path, dataset_id, "AdroitHandPen-v1", episodes=1, steps=200)  # its own limit
    here = load_dataset(dataset_id, root=tmp_path)
    code = (
        "from iwbc.data import load_dataset; "
        f"ds = load_dataset({dataset_id!r}, root={str(tmp_path)!r}, check_env=False); "
        "print(ds.training_fingerprint, ds.env_label)"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split(maxsplit=1)
    assert fresh == [here.training_fingerprint, f"{here.env_label}\n"]
    assert here.env_label == "AdroitHandPen-v1 (reward_type='dense')"  # its default time limit


def test_a_bare_robotics_id_is_known_without_importing_its_package_first(
    make_minari_dataset: Callable[..., object], minari_root: Path
) -> None:
    """``iwbc run --env AdroitHandPen-v1`` (a dataset recording no env) and evaluation on a bare
    id work in a fresh process, where nothing has imported Gymnasium-Robotics, which registers
    its ids only then; a mistyped ``--env`` stays a one-line error."""
    pen = gym.make("AdroitHandPen-v1")
    dataset_id = "test/pen/no-env-v0"
    spaces = {"observation_space": pen.observation_space, "action_space": pen.action_space}
    make_minari_dataset(dataset_id, env=None, **spaces)
    code = (
        "from iwbc.data import load_dataset; from iwbc.envs.evaluate import check_evaluable; "
        "from iwbc.envs.rollout import resolve_engine; "
        f"ds = load_dataset({dataset_id!r}, root={str(minari_root)!r}, env='AdroitHandPen-v1'); "
        f"print(ds.env_label, check_evaluable(ds.env, 'auto', {dataset_id!r}), "
        "resolve_engine('FrankaKitchen-v1'))"
    )
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout == "AdroitHandPen-v1 (reward_type='dense') gymnasium gymnasium\n"
    # A mistyped id is still one line: not the notice Gymnasium-Robotics prints as it loads.
    argv = ["run", dataset_id, "--root", str(minari_root), "--env", "Hoper-v5"]
    typo = subprocess.run([sys.executable, "-m", "iwbc", *argv], capture_output=True, text=True)
    assert typo.returncode == 2
    assert typo.stderr.startswith("iwbc: error: --env Hoper-v5: not a registered Gymnasium env")
    assert typo.stderr.count("\n") == 1, typo.stderr
