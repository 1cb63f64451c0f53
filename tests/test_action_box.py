"""Actions in [-1, 1] for every policy: datasets mapped out of their env's box on loading,
policies mapped back into it on evaluation, as Gymnasium's RescaleAction does."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import jax.numpy as jnp
import minari
import numpy as np
import pytest
from conftest import save_collected
from gymnasium.wrappers import RescaleAction
from minari.data_collector import EpisodeBuffer

from iwbc.agents.bc import BCConfig
from iwbc.agents.registry import train_methods
from iwbc.bench.records import load_records
from iwbc.cli import main
from iwbc.data import DatasetError, load_dataset
from iwbc.envs.action_box import from_unit, rescaled, to_unit
from iwbc.envs.evaluate import EVAL_SEED_BASE, SeedBatchedActor, evaluate_actor

PENDULUM = "InvertedPendulum-v5"  # action box [-3, 3]


def test_the_map_is_rescale_actions_and_its_inverse() -> None:
    env = gym.make("Pusher-v5")  # [-2, 2] on 7 dimensions
    low, high = env.action_space.low, env.action_space.high
    wrapped = RescaleAction(env, np.float32(-1.0), np.float32(1.0))
    unit = np.random.default_rng(0).uniform(-1, 1, (20, 7))
    np.testing.assert_allclose(
        from_unit(unit, low, high), [wrapped.action(u) for u in unit], rtol=1e-6
    )
    np.testing.assert_allclose(to_unit(from_unit(unit, low, high), low, high), unit, atol=1e-6)
    assert rescaled(low, high) and rescaled([-0.4], [0.4])
    assert not rescaled([-1.0, -1.0], [1.0, 1.0]) and not rescaled([-np.inf], [np.inf])


def test_evaluation_maps_the_policys_actions_into_the_box() -> None:
    """A constant unit action u scores what the env's action 3u scores."""
    returns = evaluate_actor(
        lambda params, obs: jnp.full((obs.shape[0], 1), 0.2) + 0 * params,
        jnp.zeros((1,)),
        PENDULUM,
        observation_dim=4,
        action_dim=1,
        num_episodes=2,
    )
    env = gym.make(PENDULUM)
    expected = []
    for seed in EVAL_SEED_BASE + np.arange(2):
        env.reset(seed=int(seed))
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(np.array([0.6], np.float32))
            total, done = total + reward, terminated or truncated
        expected.append(total)
    np.testing.assert_allclose(returns[0], expected)


def _write(root: Path, dataset_id: str, actions: np.ndarray, obs: np.ndarray, space) -> None:
    buffers = [
        EpisodeBuffer(
            id=i,
            seed=i,
            observations=obs[i],
            actions=actions[i],
            rewards=np.ones(len(actions[i])),
            terminations=np.eye(len(actions[i]), dtype=bool)[-1],
            truncations=np.zeros(len(actions[i]), bool),
        )
        for i in range(len(actions))
    ]
    with warnings.catch_warnings(), pytest.MonkeyPatch.context() as patch:
        warnings.simplefilter("ignore")
        patch.setenv("MINARI_DATASETS_PATH", str(root))
        minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            env=PENDULUM,
            action_space=space,
            ref_min_score=0.0,
            ref_max_score=1000.0,
            algorithm_name="test",
            author="iwbc tests",
            author_email="tests@example.invalid",
            code_permalink="https://example.invalid/iwbc",
            description="actions beyond [-1, 1]",
        )


def test_bc_learns_actions_beyond_one(tmp_path: Path) -> None:
    """An expert using the box's full range ([-3, 3]): BC's actions on evaluation reach it (a
    tanh policy on raw actions would stop at ±1)."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(8, 51, 4)).astype(np.float32)
    actions = np.clip(2.5 * obs[:, :-1, 1:2], -3, 3).astype(np.float32)
    _write(tmp_path, "test/pendulum/wide-v0", actions, obs, gym.make(PENDULUM).action_space)
    ds = load_dataset("test/pendulum/wide-v0", root=tmp_path)
    assert np.abs(ds.episodes.actions).max() <= 1.0
    config = BCConfig(steps=1500, batch_size=256, window=1, hidden_dims=(64, 64))
    trained = train_methods(ds.episodes, ["bc"], [0], {"bc": config}, progress=False)["bc"]
    act_fn, params = trained.agent.acting()
    actor = SeedBatchedActor(act_fn, 1, ((-3.0,), (3.0,)))
    predicted = np.asarray(actor(params, jnp.asarray(obs[:, :-1].reshape(-1, 4))))
    target = actions.reshape(-1, 1)
    assert np.abs(predicted - target).mean() < 0.15
    assert predicted.max() > 2.5 and predicted.min() < -2.5


def test_iwbc_runs_table_says_the_box_was_mapped(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(4, 11, 4)).astype(np.float32)
    actions = np.clip(2.5 * obs[:, :-1, 1:2], -3, 3).astype(np.float32)
    _write(tmp_path, "test/pendulum/table-v0", actions, obs, gym.make(PENDULUM).action_space)
    argv = ["run", "test/pendulum/table-v0", "--root", str(tmp_path), "--methods", "bc"]
    argv += ["--seeds", "1", "--bc-steps", "5", "--bc-batch-size", "4", "--window", "1"]
    argv += ["--hidden", "8,8", "--eval-episodes", "1", "--quiet"]
    argv += ["--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "runs")]
    assert main(argv) == 0
    table = (tmp_path / "out" / "table.md").read_text()
    assert (
        "- action box [-3, 3] on every dimension: mapped into [-1, 1] for every policy and back "
        "on evaluation; TD3+BC's BC term is in the box's units" in table
    )


def test_data_info_names_a_mapped_box(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(3)
    obs = rng.normal(size=(2, 6, 4)).astype(np.float32)
    actions = np.clip(2.5 * obs[:, :-1, 1:2], -3, 3).astype(np.float32)
    _write(tmp_path, "test/pendulum/info-v0", actions, obs, gym.make(PENDULUM).action_space)
    assert main(["data", "info", "test/pendulum/info-v0", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        "  action box [-3, 3] on every dimension (mapped into [-1, 1] to train, back to act)\n"
        in out
    )


def test_bench_records_and_report_state_the_mapped_box(tmp_path: Path) -> None:
    """A sweep's records keep the env's action box and its report's provenance table names it
    where it was mapped ([-1, 1] tasks' reports have no such column)."""
    rng = np.random.default_rng(2)
    obs = rng.normal(size=(4, 11, 4)).astype(np.float32)
    actions = np.clip(2.5 * obs[:, :-1, 1:2], -3, 3).astype(np.float32)
    _write(tmp_path, "test/pendulum/bench-v0", actions, obs, gym.make(PENDULUM).action_space)
    (tmp_path / "boxed.toml").write_text(
        'datasets = ["test/pendulum/bench-v0"]\nmethods = ["bc"]\nseeds = [0]\n'
        "eval_episodes = 1\nfinal_eval_episodes = 1\n"
        "[bc_family]\nhidden_dims = [8, 8]\n"
        "[bc_family.pretrain]\nsteps = 5\nbatch_size = 4\nwindow = 1\n"
    )
    results = tmp_path / "results"
    argv = ["bench", "--suite", str(tmp_path / "boxed.toml"), "--root", str(tmp_path)]
    assert main([*argv, "--results", str(results), "--work-dir", str(tmp_path / "runs")]) == 0
    (record,) = load_records("boxed", results)
    assert record["action_box"] == {"low": [-3.0], "high": [3.0]}
    assert main(["report", "--suite", str(tmp_path / "boxed.toml"), "--results", str(results)]) == 0
    table = (results / "boxed" / "table.md").read_text()
    assert "| action box (mapped into [-1, 1] to train, back to act) |" in table
    assert "| [-3, 3] on every dimension |" in table
    # The provenance names the command that wrote the records, suite file and folder included.
    assert f"written by `iwbc bench --suite {tmp_path / 'boxed.toml'} --results {results}`" in table


def test_a_dataset_on_another_box_than_its_env_is_refused(tmp_path: Path) -> None:
    obs = np.zeros((1, 4, 4), np.float32)
    narrow = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    _write(tmp_path, "test/pendulum/narrow-v0", np.zeros((1, 3, 1), np.float32), obs, narrow)
    with pytest.raises(DatasetError, match=r"has action bounds \[-1, 1\] but its env "):
        load_dataset("test/pendulum/narrow-v0", root=tmp_path)


def _collect_through_clip_action(root: Path, dataset_id: str, scale: float) -> np.ndarray:
    """Six InvertedPendulum episodes recorded around Gymnasium's ClipAction, which unbounds the
    box to (-inf, inf): uniform actions in [-scale, scale]; returns them as recorded."""
    collector = minari.DataCollector(gym.wrappers.ClipAction(gym.make(PENDULUM)))
    rng, actions = np.random.default_rng(4), []
    for seed in range(6):
        collector.reset(seed=seed)
        done = False
        while not done:
            actions.append(rng.uniform(-scale, scale, 1).astype(np.float32))
            _, _, terminated, truncated, _ = collector.step(actions[-1])
            done = terminated or truncated
    save_collected(collector, root, dataset_id, ref_max_score=1000.0)
    return np.array(actions)


def test_an_unbounded_box_keeps_unit_actions_and_refuses_larger_ones(tmp_path: Path) -> None:
    """No box to map from: actions in [-1, 1] train as recorded, the records hold the unbounded
    sides as null (JSON has no infinity) and the report reads them back; actions beyond
    [-1, 1], which no policy here can take, are a one-line error naming the fix."""
    recorded = _collect_through_clip_action(tmp_path, "test/pendulum/unbounded-v0", 1.0)
    ds = load_dataset("test/pendulum/unbounded-v0", root=tmp_path)
    assert np.isinf(ds.action_low).all() and not rescaled(ds.action_low, ds.action_high)
    np.testing.assert_array_equal(ds.episodes.actions, recorded)
    (tmp_path / "unbounded.toml").write_text(
        'datasets = ["test/pendulum/unbounded-v0"]\nmethods = ["bc"]\nseeds = [0]\n'
        "eval_episodes = 1\nfinal_eval_episodes = 1\n"
        "[bc_family]\nhidden_dims = [8, 8]\n"
        "[bc_family.pretrain]\nsteps = 5\nbatch_size = 4\nwindow = 1\n"
    )
    suite, results = str(tmp_path / "unbounded.toml"), tmp_path / "results"
    argv = ["bench", "--suite", suite, "--root", str(tmp_path), "--results", str(results)]
    assert main([*argv, "--work-dir", str(tmp_path / "runs")]) == 0
    (record,) = load_records("unbounded", results)
    assert record["status"] == "ok" and record["engine"] == "gymnasium"
    assert record["action_box"] == {"low": [None], "high": [None]}
    assert main(["report", "--suite", suite, "--results", str(results)]) == 0
    assert "action box" not in (results / "unbounded" / "table.md").read_text()

    wide = _collect_through_clip_action(tmp_path, "test/pendulum/wide-unbounded-v0", 2.0)
    with pytest.raises(DatasetError, match="unbounded action box") as error:
        load_dataset("test/pendulum/wide-unbounded-v0", root=tmp_path)
    message = str(error.value)
    assert f"actions up to {np.abs(wide).max():.3g} in size (first in episode " in message
    assert "put minari.DataCollector inside ClipAction" in message and "\n" not in message
