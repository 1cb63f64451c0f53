"""IQL: expectile value, Q and advantage-weighted actor losses against NumPy, and that it learns."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_algos_td3_bc import (
    BATCH,
    learns_the_bandit,
    np_actor,
    np_critic,
    np_mlp,
    random_batch,
    row,
    stacked,
    with_targets_of_seed_1,
)

from iwbc.agents.iql import IQLAgent, IQLConfig, expectile_loss
from iwbc.core.sampling import TransitionBatch

CONFIG = IQLConfig(hidden_dims=(8, 8))


def np_value(params: Any, obs: np.ndarray) -> np.ndarray:
    return np_mlp(params["params"]["MLP_0"], obs)[:, 0]


def np_log_prob(params: Any, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Gaussian log-density with tanh mean and clipped state-independent log-std."""
    layers = {k: v for k, v in params["params"].items() if k.startswith("Dense_")}
    mean = np.tanh(np_mlp(layers, obs))
    log_std = np.clip(np.asarray(params["params"]["log_std"], np.float64), -20.0, 2.0)
    z = (actions - mean) / np.exp(log_std)
    return np.sum(-0.5 * z**2 - log_std - 0.5 * np.log(2 * np.pi), axis=-1)


@pytest.fixture(scope="module")
def agent() -> IQLAgent:
    return with_targets_of_seed_1(IQLAgent, CONFIG, [-0.3, 0.4])


@pytest.fixture(scope="module")
def batch() -> TransitionBatch:
    return random_batch(5, np.s_[1::4])


def as_numpy(batch: TransitionBatch) -> TransitionBatch:
    return jax.tree.map(lambda x: np.asarray(x, np.float64), batch)


def test_expectile_loss_weights_negative_errors_by_one_minus_tau() -> None:
    diff = np.array([-2.0, -0.5, 0.0, 1.0, 3.0])
    expected = np.mean(np.array([0.3, 0.3, 0.7, 0.7, 0.7]) * diff**2)
    np.testing.assert_allclose(expectile_loss(jnp.asarray(diff), 0.7), expected, rtol=1e-6)


def test_value_loss_matches_numpy(agent: IQLAgent, batch: TransitionBatch) -> None:
    b = as_numpy(batch)
    target_q = np.minimum(
        np_critic(agent.target_critic_params, b.observations, b.actions, 0),
        np_critic(agent.target_critic_params, b.observations, b.actions, 1),
    )
    u = target_q - np_value(agent.value.params, b.observations)
    assert np.any(u < 0) and np.any(u > 0)
    expected = np.mean(np.abs(0.7 - (u < 0)) * u**2)
    loss, info = agent.value_loss(agent.value.params, batch)
    np.testing.assert_allclose(loss, expected, rtol=1e-4)
    np.testing.assert_allclose(info["adv"], u, rtol=1e-4, atol=1e-6)


def test_critic_loss_masks_the_bootstrap_at_terminals(
    agent: IQLAgent, batch: TransitionBatch
) -> None:
    b = as_numpy(batch)
    next_v = np_value(agent.value.params, b.next_observations)
    target = b.rewards + 0.99 * (1.0 - b.dones) * next_v
    expected = np.mean(
        [
            np.mean((np_critic(agent.critic.params, b.observations, b.actions, k) - target) ** 2)
            for k in (0, 1)
        ]
    )
    loss, _ = agent.critic_loss(agent.critic.params, batch, jnp.asarray(next_v, jnp.float32))
    np.testing.assert_allclose(loss, expected, rtol=1e-4)


def test_actor_loss_is_clipped_advantage_weighted_log_likelihood(
    agent: IQLAgent, batch: TransitionBatch
) -> None:
    b = as_numpy(batch)
    # Large advantages so that exp(3·A) exceeds the clip of 100 for some rows.
    advantages = np.linspace(-2.0, 3.0, BATCH)
    weights = np.minimum(np.exp(3.0 * advantages), 100.0)
    assert np.sum(weights == 100.0) > 1
    expected = -np.mean(weights * np_log_prob(agent.actor.params, b.observations, b.actions))
    loss, info = agent.actor_loss(agent.actor.params, batch, jnp.asarray(advantages, jnp.float32))
    np.testing.assert_allclose(loss, expected, rtol=1e-4)
    np.testing.assert_allclose(info["weight_mean"], weights.mean(), rtol=1e-5)


def test_deterministic_actor_loss_is_advantage_weighted_squared_error(
    batch: TransitionBatch,
) -> None:
    """CORL's iql_deterministic: a = tanh(MLP(s)), loss mean(min(exp(β·A), 100)·|a − π(s)|²),
    and the agent acts with that actor on standardized observations."""
    config = IQLConfig(hidden_dims=(8, 8), deterministic_actor=True)
    agent = row(stacked(IQLAgent, config, [0]), 0)
    agent = agent.replace(obs_mean=jnp.full_like(agent.obs_mean, 0.5), obs_std=agent.obs_std * 2)
    assert "log_std" not in agent.actor.params["params"]
    b = as_numpy(batch)
    advantages = np.linspace(-2.0, 3.0, BATCH)
    weights = np.minimum(np.exp(3.0 * advantages), 100.0)
    errors = np.sum((b.actions - np_actor(agent.actor.params, b.observations)) ** 2, axis=-1)
    loss, _ = agent.actor_loss(agent.actor.params, batch, jnp.asarray(advantages, jnp.float32))
    np.testing.assert_allclose(loss, np.mean(weights * errors), rtol=1e-4)
    acted = agent.act(batch.observations)
    expected = np_actor(agent.actor.params, (b.observations - 0.5) / np.asarray(agent.obs_std))
    np.testing.assert_allclose(acted, expected, rtol=1e-4, atol=1e-6)


def test_update_moves_every_network_and_the_target_by_tau(
    agent: IQLAgent, batch: TransitionBatch
) -> None:
    new, _ = jax.jit(IQLAgent.update)(agent, batch)
    for name in ("actor", "critic", "value"):
        before, after = jax.tree.leaves(getattr(agent, name)), jax.tree.leaves(getattr(new, name))
        assert any(not np.array_equal(x, y) for x, y in zip(before, after, strict=True)), name
    expected = jax.tree.map(
        lambda t, o: 0.995 * t + 0.005 * o, agent.target_critic_params, new.critic.params
    )
    for got, want in zip(
        jax.tree.leaves(new.target_critic_params), jax.tree.leaves(expected), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("deterministic", [False, True], ids=["gaussian", "deterministic"])
def test_iql_finds_the_best_action_where_bc_averages(deterministic: bool) -> None:
    config = IQLConfig(steps=800, hidden_dims=(64, 64), deterministic_actor=deterministic)
    errors, bc_error = learns_the_bandit(IQLAgent, config, 800)
    assert np.all(errors < 0.35 * bc_error), (errors, bc_error)
