"""Learning check on real locomotion: BC reaches the expert on Hopper expert data.

The fixture (tests/fixtures/minari, made by tests/fixtures/make_expert_fixture.py) holds 8
episodes of the project's own D4RL-strength SAC expert on Hopper-v5 (`--preset strong`,
stochastic actions) with the tier's reference scores (0 = uniform-random, 100 = the SAC expert
acting deterministically). BC trains with the BC stage of the `quick` suite (the CPU budget the
README quotes), and an independent minimal BC written here (plain JAX and
optax, nothing of iwbc's training code) sets the bar: a plumbing fault that makes iwbc's BC
weaker than a plain supervised learner on the same data fails this test. Hopper is the task
that catches unstandardized observations (velocities of order 10 beside angles of order 0.1):
BC on raw observations, as iwbc trained before standardization, stays far below the expert
here, while on HalfCheetah expert data it does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from iwbc.agents.registry import train_methods
from iwbc.bench.suites import load_suite
from iwbc.data import OfflineDataset, dataset_normalized_score, load_dataset
from iwbc.envs.evaluate import evaluate_actor, evaluate_agent

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "minari"
DATASET = "fixture/hopper/expert-v0"
SEEDS = (0, 1)
EVAL_EPISODES = 10


@pytest.fixture(scope="module")
def dataset():
    return load_dataset(DATASET, root=FIXTURES)


@pytest.fixture(scope="module")
def bc_budget():
    """The quick suite's BC config (its BC stage), as many steps as the minimal BC below gets."""
    return load_suite("quick").agent_config("bc")


def minimal_bc(observations: np.ndarray, actions: np.ndarray, steps: int, seed: int):
    """Deterministic BC from scratch: standardized states, 3 × 256 ReLU MLP → tanh, MSE loss,
    Adam 1e-3, 256 uniformly drawn transitions a step. Returns act(params, raw_obs) and params."""
    mean, std = observations.mean(axis=0), observations.std(axis=0) + 1e-3
    sizes = (observations.shape[1], 256, 256, 256, actions.shape[1])
    keys = jax.random.split(jax.random.PRNGKey(seed), len(sizes))
    params = [
        (jax.random.normal(k, (m, n)) * np.sqrt(2.0 / m), jnp.zeros(n))
        for k, m, n in zip(keys[:-1], sizes[:-1], sizes[1:], strict=True)
    ]

    def act(params, raw):
        x = (raw - mean) / std
        for w, b in params[:-1]:
            x = jax.nn.relu(x @ w + b)
        return jnp.tanh(x @ params[-1][0] + params[-1][1])

    obs, acts = jnp.asarray(observations), jnp.asarray(actions)
    optimizer = optax.adam(1e-3)

    def step(carry, key):
        params, opt_state = carry
        index = jax.random.randint(key, (256,), 0, obs.shape[0])
        grads = jax.grad(lambda p: jnp.mean((act(p, obs[index]) - acts[index]) ** 2))(params)
        updates, opt_state = optimizer.update(grads, opt_state)
        return (optax.apply_updates(params, updates), opt_state), None

    (params, _), _ = jax.jit(lambda p, ks: jax.lax.scan(step, (p, optimizer.init(p)), ks))(
        params, jax.random.split(keys[-1], steps)
    )
    return act, params


def minimal_bc_scores(
    dataset: OfflineDataset,
    steps: int,
    seeds: Sequence[int],
    num_episodes: int,
    engine: str = "auto",
) -> np.ndarray:
    """Normalized score per seed of ``minimal_bc`` on ``dataset``, all seeds in one rollout."""
    transitions = dataset.episodes.to_transitions()
    trained = [minimal_bc(transitions.obs, transitions.actions, steps, seed) for seed in seeds]
    act = trained[0][0]  # the same data statistics for every seed
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *(params for _, params in trained))
    returns = evaluate_actor(
        act,
        stacked,
        dataset.env_id,
        observation_dim=dataset.observation_dim,
        action_dim=dataset.action_dim,
        num_episodes=num_episodes,
        engine=engine,
    )
    return dataset_normalized_score(dataset, returns).mean(axis=1)


def test_bc_reaches_the_expert_at_the_cpu_budget(dataset, bc_budget) -> None:
    trained = train_methods(
        dataset.episodes,
        ["bc"],
        SEEDS,
        {"bc": bc_budget},
        chunk_size=bc_budget.steps,
        progress=False,
    )["bc"]
    assert trained.agent.config.standardize
    returns = evaluate_agent(trained.agent, dataset.env_id, num_episodes=EVAL_EPISODES)
    scores = dataset_normalized_score(dataset, returns).mean(axis=1)
    assert scores.min() >= 90.0, f"BC scores {scores} on {DATASET}"

    minimal = minimal_bc_scores(dataset, bc_budget.steps, SEEDS, EVAL_EPISODES)
    # The independent learner reaches the expert too, and iwbc's BC is not behind it.
    assert min(minimal) >= 90.0, f"minimal BC scores {minimal}"
    assert scores.mean() >= np.mean(minimal) - 5.0, (scores, minimal)
