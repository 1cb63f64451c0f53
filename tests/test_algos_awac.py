"""AWAC: critic TD target and advantage-weighted actor loss against NumPy, and that it learns."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_algos_td3_bc import (
    ACT_DIM,
    BATCH,
    learns_the_bandit,
    np_critic,
    np_mlp,
    random_batch,
    with_targets_of_seed_1,
)

from iwbc.agents.awac import AWACAgent, AWACConfig
from iwbc.core.sampling import TransitionBatch

CONFIG = AWACConfig(hidden_dims=(8, 8))


def np_policy(params: Any, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear (untanhed) mean and clipped state-independent log-std."""
    layers = {k: v for k, v in params["params"].items() if k.startswith("Dense_")}
    mean = np_mlp(layers, obs)
    log_std = np.clip(np.asarray(params["params"]["log_std"], np.float64), -20.0, 2.0)
    return mean, np.broadcast_to(log_std, mean.shape)


def np_min_q(params: Any, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    return np.minimum(np_critic(params, obs, actions, 0), np_critic(params, obs, actions, 1))


@pytest.fixture(scope="module")
def agent() -> AWACAgent:
    return with_targets_of_seed_1(AWACAgent, CONFIG, [-0.5, 0.3])


@pytest.fixture(scope="module")
def batch() -> TransitionBatch:
    return random_batch(7, np.s_[2::5])


def test_critic_loss_matches_numpy(agent: AWACAgent, batch: TransitionBatch) -> None:
    b = jax.tree.map(lambda x: np.asarray(x, np.float64), batch)
    noise = 2.0 * np.random.default_rng(8).normal(size=(BATCH, ACT_DIM))
    mean, log_std = np_policy(agent.actor.params, b.next_observations)
    next_actions = np.clip(mean + np.exp(log_std) * noise, -1.0, 1.0)
    assert np.any(np.abs(next_actions) == 1.0)
    target = b.rewards + 0.99 * (1.0 - b.dones) * np_min_q(
        agent.target_critic_params, b.next_observations, next_actions
    )
    expected = sum(
        np.mean((np_critic(agent.critic.params, b.observations, b.actions, k) - target) ** 2)
        for k in (0, 1)
    )
    loss, _ = agent.critic_loss(agent.critic.params, batch, jnp.asarray(noise, jnp.float32))
    np.testing.assert_allclose(loss, expected, rtol=1e-4)


def test_actor_loss_matches_numpy(agent: AWACAgent, batch: TransitionBatch) -> None:
    b = jax.tree.map(lambda x: np.asarray(x, np.float64), batch)
    noise = np.random.default_rng(9).normal(size=(BATCH, ACT_DIM))
    mean, log_std = np_policy(agent.actor.params, b.observations)
    policy_actions = np.clip(mean + np.exp(log_std) * noise, -1.0, 1.0)
    adv = np_min_q(agent.critic.params, b.observations, b.actions) - np_min_q(
        agent.critic.params, b.observations, policy_actions
    )
    weights = np.minimum(np.exp(adv / 1.0), 100.0)
    z = (b.actions - mean) / np.exp(log_std)
    log_prob = np.sum(-0.5 * z**2 - log_std - 0.5 * np.log(2 * np.pi), axis=-1)
    expected = -np.mean(weights * log_prob)
    loss, info = agent.actor_loss(agent.actor.params, batch, jnp.asarray(noise, jnp.float32))
    np.testing.assert_allclose(loss, expected, rtol=1e-4)
    np.testing.assert_allclose(info["weight_mean"], weights.mean(), rtol=1e-4)


def test_awac_finds_the_best_action_where_bc_averages() -> None:
    errors, bc_error = learns_the_bandit(AWACAgent, AWACConfig(hidden_dims=(64, 64)), 800)
    assert np.all(errors < 0.35 * bc_error), (errors, bc_error)
