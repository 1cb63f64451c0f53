"""Minari's D4RL datasets beyond locomotion record Gymnasium-Robotics' envs (Adroit hands, Point
and Ant mazes): data recorded on them by ``minari.DataCollector`` trains and is scored on the
Gymnasium engine, Dict observations flattened on both sides."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import gymnasium as gym
import gymnasium_robotics
import minari
import numpy as np
import pytest
from conftest import save_collected

from iwbc.cli import main
from iwbc.data import load_dataset

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


@pytest.mark.parametrize(
    ("env_id", "obs_dim"),
    [("AdroitHandPen-v1", 45), ("PointMaze_UMaze-v3", 8)],
    ids=["adroit-pen", "pointmaze-dict"],
)
def test_a_gymnasium_robotics_dataset_trains_and_scores(
    tmp_path: Path, env_id: str, obs_dim: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset_id = "test/robotics/random-v0"
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where a maze env writes its model
    _record(tmp_path, dataset_id, env_id, episodes=3, steps=20)
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
