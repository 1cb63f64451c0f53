"""The scripted InvertedDoublePendulum dataset: expert quality, determinism, Minari layout, and
the property the demo relies on (fitting the best trajectories beats fitting all of them)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pytest

from iwbc.data import scripted

NUM_EPISODES = 40
COPY_ID = "iwbc/inverted-double-pendulum/mixed-copy-v0"


def _episode_return(env: gym.Env, policy, seed: int) -> float:
    return float(sum(scripted.rollout(env, policy, seed).rewards))


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 40-episode dataset generated once, in a temporary MINARI_DATASETS_PATH."""
    root = tmp_path_factory.mktemp("minari")
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        patch.setenv("MINARI_DATASETS_PATH", str(root))
        scripted.generate_mixed_dataset(num_episodes=NUM_EPISODES, seed=0)
        yield root


@pytest.fixture(scope="module")
def episodes(dataset_root: Path) -> list:
    return list(minari.load_dataset(scripted.DEFAULT_DATASET_ID).iterate_episodes())


def test_expert_balances_and_acts_on_batches() -> None:
    assert scripted.lqr_gain().shape == (1, 6)
    env = gym.make(scripted.ENV_ID)
    returns = [_episode_return(env, scripted.expert_action, seed) for seed in range(3)]
    assert min(returns) > 9000
    obs = np.stack([env.reset(seed=s)[0] for s in range(5)])
    batched = scripted.expert_action(obs)
    assert batched.shape == (5, 1)
    np.testing.assert_allclose(batched[2], scripted.expert_action(obs[2]))
    np.testing.assert_allclose(scripted.scripted_policy(obs), batched)


def test_dataset_loads_with_reference_scores(dataset_root: Path) -> None:
    dataset = minari.load_dataset(scripted.DEFAULT_DATASET_ID)
    assert dataset.total_episodes == NUM_EPISODES
    assert dataset.spec.env_spec.id == scripted.ENV_ID
    metadata = dataset.storage.metadata
    assert metadata["ref_min_score"] < 200 < 9000 < metadata["ref_max_score"]
    assert metadata["algorithm_name"] == "iwbc"


def test_returns_are_spread(episodes: list) -> None:
    returns = np.array([ep.rewards.sum() for ep in episodes])
    p10, p90 = np.percentile(returns, [10, 90])
    assert p90 - p10 > 5000
    assert 0.05 <= np.mean(returns > 9000) <= 0.35


def test_regeneration_is_identical(episodes: list) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scripted.generate_mixed_dataset(COPY_ID, num_episodes=NUM_EPISODES, seed=0)
    copy = list(minari.load_dataset(COPY_ID).iterate_episodes())
    assert len(copy) == len(episodes)
    for a, b in zip(episodes, copy, strict=True):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.rewards, b.rewards)


def test_existing_id_needs_overwrite(tmp_path: Path) -> None:
    dataset_id = "iwbc/inverted-double-pendulum/tiny-v0"
    before = os.environ.get("MINARI_DATASETS_PATH")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scripted.generate_mixed_dataset(dataset_id, num_episodes=3, root=tmp_path)
        assert os.environ.get("MINARI_DATASETS_PATH") == before
        with pytest.raises(FileExistsError, match="overwrite=True"):
            scripted.generate_mixed_dataset(dataset_id, num_episodes=2, root=tmp_path)
        scripted.generate_mixed_dataset(dataset_id, num_episodes=2, root=tmp_path, overwrite=True)
    assert os.environ.get("MINARI_DATASETS_PATH") == before
    assert (tmp_path / dataset_id).is_dir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
        assert minari.load_dataset(dataset_id).total_episodes == 2


@pytest.mark.parametrize("per_episode", [False, True])
def test_top_trajectories_fit_beats_all_data_fit(episodes: list, per_episode: bool) -> None:
    """A least-squares linear policy on the top 10% episodes balances; one on all data does
    not, because the behaviour bias is systematic rather than zero-mean."""

    def fit(chosen: list) -> np.ndarray:
        x = np.concatenate([ep.observations[:-1] for ep in chosen])
        y = np.concatenate([ep.actions for ep in chosen])
        w = np.concatenate([np.full(len(ep.actions), 1.0 / len(ep.actions)) for ep in chosen])
        sw = np.sqrt(w if per_episode else np.ones_like(w))[:, None]
        return np.linalg.lstsq(x * sw, y * sw, rcond=None)[0]

    def evaluate(weights: np.ndarray) -> float:
        def policy(obs: np.ndarray) -> np.ndarray:
            return np.clip(obs @ weights, -1.0, 1.0)

        env = gym.make(scripted.ENV_ID)
        return float(np.mean([_episode_return(env, policy, 10_000 + s) for s in range(5)]))

    returns = np.array([ep.rewards.sum() for ep in episodes])
    top = [episodes[i] for i in np.argsort(-returns)[: len(episodes) // 10]]
    top_return, all_return = evaluate(fit(top)), evaluate(fit(episodes))
    assert top_return > 9000
    assert all_return < 0.2 * top_return
