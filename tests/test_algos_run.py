"""The uniform entry point: train any baseline by name, resume to a later step, evaluate seeds."""

from __future__ import annotations

import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iwbc.algos import ALGORITHMS
from iwbc.algos.iql import IQLConfig
from iwbc.algos.run import algorithm_actor, evaluate_agent, train_algorithm
from iwbc.algos.td3_bc import TD3BCAgent, TD3BCConfig
from iwbc.data import Transitions, load_dataset
from iwbc.data.scripted import generate_mixed_dataset
from iwbc.envs import rollout_returns
from iwbc.evaluate import evaluation_seeds

SEEDS = (0, 1)
CONFIG = TD3BCConfig(steps=1000, batch_size=64, hidden_dims=(32, 32))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    """A 10-episode scripted InvertedDoublePendulum dataset in a temporary Minari root."""
    root = tmp_path_factory.mktemp("minari")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dataset_id = generate_mixed_dataset("test/idp/run-v0", num_episodes=10, root=root)
    return load_dataset(dataset_id, root=root)


@pytest.fixture(scope="module")
def transitions(dataset) -> Transitions:
    return dataset.episodes.to_transitions()


def test_every_baseline_is_registered_with_its_config() -> None:
    assert set(ALGORITHMS) == {"td3_bc", "iql", "cql", "awac"}
    for agent_cls, config_cls in ALGORITHMS.values():
        assert hasattr(agent_cls, "update") and hasattr(agent_cls, "act")
        assert config_cls().steps == 1_000_000


def test_resuming_from_the_checkpoint_equals_a_straight_run(
    transitions: Transitions, tmp_path: Path
) -> None:
    run = dict(config=CONFIG, progress=False, chunk_size=100)
    straight, straight_history = train_algorithm("td3_bc", transitions, SEEDS, until=300, **run)
    path = tmp_path / "td3_bc.msgpack"
    first, _ = train_algorithm("td3_bc", transitions, SEEDS, until=200, checkpoint=path, **run)
    resumed, history = train_algorithm(
        "td3_bc", transitions, SEEDS, until=300, checkpoint=path, **run
    )
    assert isinstance(resumed, TD3BCAgent)
    np.testing.assert_array_equal(first.step, [200, 200])
    np.testing.assert_array_equal(resumed.step, [300, 300])
    assert [record["step"] for record in history] == [100, 200, 300]
    for got, want in zip(jax.tree.leaves(resumed), jax.tree.leaves(straight), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(history[-1]["loss"], straight_history[-1]["loss"])
    # The run moved: the resumed half is not a copy of the first.
    assert not np.array_equal(
        jax.tree.leaves(first.actor_params)[0], jax.tree.leaves(resumed.actor_params)[0]
    )
    with pytest.raises(ValueError, match="at update 300, past until=200"):
        train_algorithm("td3_bc", transitions, SEEDS, until=200, checkpoint=path, **run)


def test_each_seed_is_evaluated_as_its_own_rollout(dataset, transitions: Transitions) -> None:
    agent, _ = train_algorithm(
        "td3_bc", transitions, SEEDS, config=CONFIG, until=100, progress=False
    )
    scores = evaluate_agent(agent, dataset.env_id, num_episodes=2)
    assert scores.shape == (len(SEEDS), 2)
    act = algorithm_actor(agent)
    for i in range(len(SEEDS)):
        alone = jax.tree.map(lambda x, i=i: x[i], agent)
        expected = rollout_returns(
            dataset.env_id,
            lambda obs, alone=alone: np.asarray(act(alone, jnp.asarray(obs, jnp.float32))),
            evaluation_seeds(2),
        ).returns
        np.testing.assert_allclose(scores[i], expected, rtol=1e-5)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("sac", {}, "unknown offline-RL algorithm 'sac'; choose one of td3_bc, iql, cql, awac"),
        ("td3_bc", {"config": IQLConfig()}, "td3_bc needs a TD3BCConfig, got a IQLConfig"),
        ("td3_bc", {"config": CONFIG, "until": 2000}, r"until must be in \[1, config.steps=1000\]"),
        ("td3_bc", {"until": 0}, r"until must be in \[1,"),
    ],
)
def test_bad_requests_are_refused_in_one_line(
    transitions: Transitions, name: str, kwargs: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as error:
        train_algorithm(name, transitions, SEEDS, progress=False, **kwargs)
    assert "\n" not in str(error.value)


def test_transitions_without_next_observations_are_refused(transitions: Transitions) -> None:
    with pytest.raises(ValueError, match="transitions have no next_obs"):
        train_algorithm("iql", transitions._replace(next_obs=None), SEEDS, progress=False)
