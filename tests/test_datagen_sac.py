"""SAC for the behaviour policies: losses against float64 NumPy, the buffer, and that it learns."""

from __future__ import annotations

from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_algos_td3_bc import ACT_DIM, BATCH, OBS_DIM, np_mlp, random_batch

from iwbc.agents.networks import tanh_gaussian_sample
from iwbc.core.agent import DataSpec
from iwbc.core.sampling import TransitionBatch
from iwbc.core.trainer import create_agent, run_updates
from iwbc.datagen.behaviour import BehaviourConfig, train_behaviour
from iwbc.datagen.sac import (
    ReplayBuffer,
    SACAgent,
    SACConfig,
    buffer_append,
    upgrade_state_dict,
)
from iwbc.envs import rollout_returns

# The SAC actor's log-std range: tanh squashes the raw output into it.
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
CONFIG = SACConfig(hidden_dims=(8, 8), batch_size=BATCH)
SPEC = DataSpec(jnp.zeros(OBS_DIM), jnp.ones(OBS_DIM), ACT_DIM)


def np_actor(params: Any, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = np_mlp(params["params"]["MLP_0"], obs)
    mean, raw = out[:, :ACT_DIM], out[:, ACT_DIM:]
    log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (np.tanh(raw) + 1.0)
    return mean, log_std


def np_sample(mean: np.ndarray, log_std: np.ndarray, noise: np.ndarray):
    """tanh(u), u ~ N(mean, std²): log-density by the textbook change of variables."""
    u = mean + np.exp(log_std) * noise
    gaussian = -0.5 * ((u - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * np.log(2 * np.pi)
    return np.tanh(u), np.sum(gaussian - np.log(1.0 - np.tanh(u) ** 2), axis=-1)


def np_critic(params: Any, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    stacked = params["params"]["VmapMLP_0"]
    inputs = np.concatenate([obs, actions], axis=-1)
    return np.stack(
        [np_mlp(jax.tree.map(lambda x, k=k: x[k], stacked), inputs)[:, 0] for k in range(2)]
    )


@pytest.fixture(scope="module")
def agent() -> SACAgent:
    """A fresh agent whose target critic differs from its critic and whose α is not 1."""
    base = create_agent(SACAgent, CONFIG, SPEC, 0)
    other = create_agent(SACAgent, CONFIG, SPEC, 1)
    return base.replace(
        target_critic_params=other.critic.params,
        log_temperature=base.log_temperature.replace(params=jnp.asarray(-0.7)),
    )


@pytest.fixture(scope="module")
def batch() -> TransitionBatch:
    return random_batch(3, np.s_[::4])


def test_tanh_gaussian_log_prob_matches_the_change_of_variables() -> None:
    rng = np.random.default_rng(0)
    mean, noise = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    log_std = rng.uniform(-2, 0.5, size=(5, 3))
    actions, log_prob = tanh_gaussian_sample(jnp.asarray(mean), jnp.asarray(log_std), noise)
    want_actions, want_log_prob = np_sample(mean, log_std, noise)
    np.testing.assert_allclose(actions, want_actions, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_prob, want_log_prob, rtol=1e-4, atol=1e-4)


def test_critic_loss_matches_numpy(agent: SACAgent, batch: TransitionBatch) -> None:
    noise = np.random.default_rng(4).normal(size=(BATCH, ACT_DIM))
    loss, _ = agent.critic_loss(agent.critic.params, batch, jnp.asarray(noise, jnp.float32))
    b = jax.tree.map(lambda x: np.asarray(x, np.float64), batch)
    next_actions, next_log_prob = np_sample(
        *np_actor(agent.actor.params, b.next_observations), noise
    )
    next_q = np_critic(agent.target_critic_params, b.next_observations, next_actions)
    alpha = np.exp(-0.7)
    target = b.rewards + 0.99 * (1 - b.dones) * (next_q.min(axis=0) - alpha * next_log_prob)
    q = np_critic(agent.critic.params, b.observations, b.actions)
    want = np.sum(np.mean((q - target) ** 2, axis=1))
    np.testing.assert_allclose(float(loss), want, rtol=1e-4)


def test_actor_and_temperature_losses_match_numpy(agent: SACAgent, batch: TransitionBatch) -> None:
    noise = np.random.default_rng(5).normal(size=(BATCH, ACT_DIM))
    loss, info = agent.actor_loss(
        agent.actor.params, agent.critic.params, batch, jnp.asarray(noise, jnp.float32)
    )
    obs = np.asarray(batch.observations, np.float64)
    actions, log_prob = np_sample(*np_actor(agent.actor.params, obs), noise)
    q = np_critic(agent.critic.params, obs, actions).min(axis=0)
    alpha = np.exp(-0.7)
    np.testing.assert_allclose(float(loss), np.mean(alpha * log_prob - q), rtol=1e-4)
    temperature = agent.temperature_loss(agent.log_temperature.params, info["log_prob"])
    want = -np.mean(-0.7 * (log_prob - ACT_DIM))  # target entropy −|A|
    np.testing.assert_allclose(float(temperature), want, rtol=1e-4)


def test_buffer_appends_in_order_and_updates_sample_only_filled_rows() -> None:
    buffer = ReplayBuffer.create(10, OBS_DIM, ACT_DIM)

    def rows(start: int, count: int) -> TransitionBatch:
        values = np.arange(start, start + count, dtype=np.float32)
        return TransitionBatch(
            observations=jnp.tile(values[:, None], (1, OBS_DIM)),
            actions=jnp.zeros((count, ACT_DIM)),
            rewards=jnp.asarray(values),
            next_observations=jnp.tile(values[:, None], (1, OBS_DIM)),
            dones=jnp.zeros(count),
        )

    buffer = buffer_append(buffer, rows(0, 3))
    buffer = buffer_append(buffer, rows(3, 4))
    assert int(buffer.size) == 7
    np.testing.assert_array_equal(buffer.data.rewards, [0, 1, 2, 3, 4, 5, 6, 0, 0, 0])
    # NaN rewards past the filled rows: a single draw from there would poison the losses.
    poisoned = jnp.where(jnp.arange(10) < 7, buffer.data.rewards, jnp.nan)
    buffer = buffer.replace(data=buffer.data.replace(rewards=poisoned))
    agent = create_agent(SACAgent, SACConfig(hidden_dims=(8,), batch_size=8), SPEC, 0)
    agent, info = run_updates(agent, buffer, agent.step, 50)
    assert int(agent.step) == 50
    assert all(np.isfinite(np.asarray(v)).all() for v in info.values())
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(agent.critic.params))


def test_sac_learns_inverted_double_pendulum() -> None:
    # 5k env steps of a small SAC: the deterministic policy must balance far longer than random.
    env_id = "InvertedDoublePendulum-v5"
    config = BehaviourConfig(
        env_steps=5_000,
        start_steps=1_000,
        update_every=500,
        eval_every=1_000,
        checkpoint_every=5_000,
        eval_episodes=5,
        sac=SACConfig(hidden_dims=(64, 64), batch_size=128),
    )
    run = train_behaviour(env_id, 0, config, progress=False)
    rng = np.random.default_rng(0)
    random = rollout_returns(
        env_id, lambda obs: rng.uniform(-1, 1, (obs.shape[0], 1)), np.arange(20), engine="batch"
    )
    final = run.evaluations[-1][1]
    assert final > 3.0 * random.returns.mean(), (final, random.returns.mean())
    assert [s for s, _ in run.evaluations] == [1000, 2000, 3000, 4000, 5000]


def test_a_checkpoint_of_the_earlier_layout_resumes_unchanged(agent: SACAgent) -> None:
    """A behaviour run's checkpoint written before each network became a ``Trained`` (flat
    ``actor_params``, ``actor_opt_state``, ...) restores to the same agent."""
    state = flax.serialization.to_state_dict(agent)
    earlier = {
        "step": state["step"],
        "rng": state["rng"],
        "actor_params": state["actor"]["params"],
        "critic_params": state["critic"]["params"],
        "target_critic_params": state["target_critic_params"],
        "log_temperature": state["log_temperature"]["params"],
        "actor_opt_state": state["actor"]["opt_state"],
        "critic_opt_state": state["critic"]["opt_state"],
        "temperature_opt_state": state["log_temperature"]["opt_state"],
    }
    template = create_agent(SACAgent, CONFIG, SPEC, 5)
    restored = flax.serialization.from_state_dict(template, upgrade_state_dict(earlier))
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(agent), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert upgrade_state_dict(state) is state
