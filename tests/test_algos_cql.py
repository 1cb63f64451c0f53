"""CQL: tanh-Gaussian density, critic (TD + CQL logsumexp), actor, temperature and Lagrange
losses against float64 NumPy on a fixed batch and fixed noise; update rules; that it learns."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_algos_td3_bc import (
    ACT_DIM,
    BATCH,
    OBS_DIM,
    bandit,
    learns_the_bandit,
    np_mlp,
    random_batch,
    row,
    stacked,
)

from iwbc.agents.cql import (
    CQLAgent,
    CQLConfig,
    CQLNoise,
    entropy_temperature_loss,
    lagrange_loss,
)
from iwbc.agents.networks import tanh_gaussian_sample
from iwbc.core.sampling import TransitionBatch, prepare_data

N_ACTIONS = 4
CONFIG = CQLConfig(hidden_dims=(8, 8), cql_n_actions=N_ACTIONS, cql_temp=0.7)


def as_numpy(tree: Any) -> Any:
    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


def np_actor(params: Any, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = params["params"]
    out = np_mlp(p["MLP_0"], obs)
    mean, raw = out[..., :ACT_DIM], out[..., ACT_DIM:]
    multiplier = float(p["log_std_multiplier"])
    log_std = np.clip(multiplier * raw + float(p["log_std_offset"]), -20.0, 2.0)
    return mean, log_std


def np_sample(mean: np.ndarray, log_std: np.ndarray, noise: np.ndarray):
    """tanh(u), u ~ N(μ, σ²), and log N(u) − Σ log(1 − tanh(u)²), written the direct way."""
    u = mean + np.exp(log_std) * noise
    gaussian = -0.5 * ((u - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * np.log(2 * np.pi)
    return np.tanh(u), np.sum(gaussian - np.log(1.0 - np.tanh(u) ** 2), axis=-1)


def np_q(params: Any, k: int, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    layers = jax.tree.map(lambda x: x[k], params["params"]["VmapMLP_0"])
    obs = np.broadcast_to(obs, (*actions.shape[:-1], obs.shape[-1]))
    return np_mlp(layers, np.concatenate([obs, actions], axis=-1))[..., 0]


def np_logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=-1, keepdims=True)
    return (top + np.log(np.sum(np.exp(x - top), axis=-1, keepdims=True)))[..., 0]


def scale_output_layer(params: Any, module: str, layers: int, factor: float) -> Any:
    """Undo the 1e-2 output init so that actions and Q-values are not all near zero."""
    params = jax.tree.map(lambda x: x, params)
    last = params["params"][module][f"Dense_{layers}"]
    last["kernel"] = last["kernel"] * factor
    last["bias"] = last["bias"] + 0.3
    return params


@pytest.fixture(scope="module")
def agent() -> CQLAgent:
    """Seed 0 with the target critics of seed 1, non-trivial outputs, log α and log α'."""
    both = stacked(CQLAgent, CONFIG, [0, 1])
    online, other = row(both, 0), row(both, 1)
    actor_params = scale_output_layer(online.actor.params, "MLP_0", 2, 100.0)
    actor_params["params"]["log_std_multiplier"] = jnp.asarray(0.8)
    return online.replace(
        actor=online.actor.replace(params=actor_params),
        critic=online.critic.replace(
            params=scale_output_layer(online.critic.params, "VmapMLP_0", 2, 100.0)
        ),
        target_critic_params=scale_output_layer(other.critic.params, "VmapMLP_0", 2, 100.0),
        log_alpha=online.log_alpha.replace(params=jnp.asarray(-0.4)),
        log_alpha_prime=online.log_alpha_prime.replace(params=jnp.asarray(0.6)),
    )


@pytest.fixture(scope="module")
def batch() -> TransitionBatch:
    return random_batch(11, np.s_[1::4], action_bound=0.9)


@pytest.fixture(scope="module")
def noise() -> CQLNoise:
    return CQLNoise.sample(jax.random.PRNGKey(12), BATCH, N_ACTIONS, ACT_DIM)


def test_critics_start_orthogonal_and_independent_across_seeds_and_twins() -> None:
    """CORL's critic init: orthogonal hidden kernels with gain √2, output gain 1e-2, zero bias."""
    agent = stacked(CQLAgent, CONFIG, [0, 1, 2])
    layers = agent.critic.params["params"]["VmapMLP_0"]
    first, hidden, output = (np.asarray(layers[f"Dense_{i}"]["kernel"]) for i in range(3))
    assert first.shape == (3, 2, OBS_DIM + ACT_DIM, 8)
    for seed, twin in np.ndindex(3, 2):
        w = first[seed, twin]
        np.testing.assert_allclose(w @ w.T, 2.0 * np.eye(OBS_DIM + ACT_DIM), atol=1e-5)
        w = hidden[seed, twin]
        np.testing.assert_allclose(w.T @ w, 2.0 * np.eye(8), atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(output[seed, twin]), 1e-2, rtol=1e-5)
    flat = hidden.reshape(6, -1)
    assert len({tuple(np.round(row, 6)) for row in flat}) == 6
    assert all(not np.any(layers[f"Dense_{i}"]["bias"]) for i in range(3))


def test_tanh_gaussian_log_density_matches_numpy_and_stays_finite_when_saturated() -> None:
    rng = np.random.default_rng(13)
    mean = rng.normal(scale=2.0, size=(6, ACT_DIM))
    mean[0] = [9.0, -9.0]  # tanh(u) rounds to ±1 in float32, where log(1 − tanh²) is −inf
    log_std = rng.uniform(-1.5, 0.5, (6, ACT_DIM))
    eps = rng.normal(size=(6, ACT_DIM))
    actions, log_prob = tanh_gaussian_sample(
        *(jnp.asarray(x, jnp.float32) for x in (mean, log_std, eps))
    )
    want_actions, want_log_prob = np_sample(mean, log_std, eps)
    np.testing.assert_allclose(actions, want_actions, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(log_prob, want_log_prob, rtol=1e-4)
    assert np.all(np.isfinite(log_prob)) and log_prob[0] > 15.0


def expected_critic_loss(agent: CQLAgent, batch: TransitionBatch, noise: CQLNoise) -> float:
    """The critic loss of CORL's ContinuousCQL._q_loss, in float64 NumPy."""
    config = agent.config
    b, z = as_numpy(batch), as_numpy(noise)
    mean, log_std = np_actor(agent.actor.params, b.observations)
    next_mean, next_log_std = np_actor(agent.actor.params, b.next_observations)
    next_actions, _ = np_sample(next_mean, next_log_std, z.target)
    next_q = np.minimum(
        np_q(agent.target_critic_params, 0, b.next_observations, next_actions),
        np_q(agent.target_critic_params, 1, b.next_observations, next_actions),
    )
    target = b.rewards + 0.99 * (1.0 - b.dones) * next_q
    current, log_pi_current = np_sample(mean[:, None], log_std[:, None], z.current)
    following, log_pi_next = np_sample(next_mean[:, None], next_log_std[:, None], z.next)
    obs = b.observations[:, None]
    loss = 0.0
    for k in (0, 1):
        q = np_q(agent.critic.params, k, b.observations, b.actions)
        q_uniform = np_q(agent.critic.params, k, obs, z.uniform)
        q_current = np_q(agent.critic.params, k, obs, current)
        q_next = np_q(agent.critic.params, k, obs, following)
        if config.cql_importance_sample:
            sampled = [
                q_uniform - ACT_DIM * np.log(0.5),
                q_next - log_pi_next,
                q_current - log_pi_current,
            ]
        else:
            sampled = [q_uniform, q[:, None], q_next, q_current]
        stacked = np.concatenate(sampled, axis=1)
        assert stacked.shape[1] in (3 * N_ACTIONS, 3 * N_ACTIONS + 1)
        gap = np.mean(config.cql_temp * np_logsumexp(stacked / config.cql_temp) - q)
        if config.cql_lagrange:
            alpha_prime = np.exp(float(agent.log_alpha_prime.params))
            penalty = alpha_prime * config.cql_alpha * (gap - config.cql_target_action_gap)
        else:
            penalty = config.cql_alpha * gap
        loss += np.mean((q - target) ** 2) + penalty
    return loss


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"cql_importance_sample": False},
        {"cql_lagrange": True, "cql_target_action_gap": 2.0},
    ],
    ids=["importance-sampled", "plain-logsumexp", "lagrange"],
)
def test_critic_loss_matches_numpy(
    agent: CQLAgent, batch: TransitionBatch, noise: CQLNoise, variant: dict
) -> None:
    agent = agent.replace(config=dataclasses.replace(CONFIG, **variant))
    loss, info = agent.critic_loss(agent.critic.params, batch, noise)
    np.testing.assert_allclose(loss, expected_critic_loss(agent, batch, noise), rtol=1e-4)
    np.testing.assert_allclose(info["critic_loss"], info["td_loss"] + info["cql_loss"], rtol=1e-6)
    assert info["cql_loss"] > 0.1 * info["td_loss"]  # the regularizer is not negligible here


def test_regularizer_pushes_sampled_q_down_and_data_q_up(
    agent: CQLAgent, batch: TransitionBatch, noise: CQLNoise
) -> None:
    """d(CQL term)/dQ(s, a_data) < 0: the gradient step raises the data's Q, and raises it
    against the Q of the sampled actions.

    The shared layers can carry every Q-value up together (they do with these draws), so the
    sampled actions' Q is compared per value with the data's, not to its own old value.
    """

    def cql_term(critic_params: Any) -> jax.Array:
        return agent.critic_loss(critic_params, batch, noise)[1]["cql_loss"]

    def q_data(critic_params: Any) -> jax.Array:
        return jnp.mean(
            agent.critic_network.apply(critic_params, batch.observations, batch.actions)
        )

    def q_uniform(critic_params: Any) -> jax.Array:
        obs = jnp.broadcast_to(batch.observations[:, None], (BATCH, N_ACTIONS, OBS_DIM))
        return jnp.mean(agent.critic_network.apply(critic_params, obs, noise.uniform))

    step = jax.tree.map(lambda g: -1e-3 * g, jax.grad(cql_term)(agent.critic.params))
    moved = jax.tree.map(jnp.add, agent.critic.params, step)
    data_rise = q_data(moved) - q_data(agent.critic.params)
    assert data_rise > 0.0
    assert q_uniform(moved) - q_uniform(agent.critic.params) < data_rise


def test_actor_and_temperature_losses_match_numpy(
    agent: CQLAgent, batch: TransitionBatch, noise: CQLNoise
) -> None:
    b, eps = as_numpy(batch), np.asarray(noise.actor, np.float64)
    mean, log_std = np_actor(agent.actor.params, b.observations)
    actions, log_pi = np_sample(mean, log_std, eps)
    q = np.minimum(
        np_q(agent.critic.params, 0, b.observations, actions),
        np_q(agent.critic.params, 1, b.observations, actions),
    )
    alpha = np.exp(-0.4)
    loss, info = agent.actor_loss(agent.actor.params, batch, noise.actor)
    np.testing.assert_allclose(loss, np.mean(alpha * log_pi - q), rtol=1e-4)
    np.testing.assert_allclose(info["log_pi"], log_pi, rtol=1e-4, atol=1e-5)
    # Target entropy −|A|; the gradient in log α is −mean(log π − |A|).
    value, grad = jax.value_and_grad(entropy_temperature_loss)(
        agent.log_alpha.params, info["log_pi"], agent.target_entropy
    )
    assert agent.target_entropy == -ACT_DIM
    np.testing.assert_allclose(value, 0.4 * np.mean(log_pi - ACT_DIM), rtol=1e-4)
    np.testing.assert_allclose(grad, -np.mean(log_pi - ACT_DIM), rtol=1e-4)


def test_lagrange_multiplier_loss_matches_numpy() -> None:
    gaps = np.array([3.0, 0.5])
    value, grad = jax.value_and_grad(lagrange_loss)(jnp.asarray(0.6), jnp.asarray(gaps), 10.0, 1.0)
    expected = -0.5 * np.sum(np.exp(0.6) * 10.0 * (gaps - 1.0))
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    # d/d log α' of α'·c equals the loss itself: raising α' lowers it while the mean gap > target.
    np.testing.assert_allclose(grad, expected, rtol=1e-5)
    assert grad < 0


def leaves_differ(a: Any, b: Any) -> bool:
    return any(
        not np.array_equal(x, y)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.mark.parametrize("lagrange", [False, True])
def test_update_moves_every_network_and_the_target_by_tau(
    agent: CQLAgent, batch: TransitionBatch, lagrange: bool
) -> None:
    agent = agent.replace(config=dataclasses.replace(CONFIG, cql_lagrange=lagrange))
    new, metrics = jax.jit(CQLAgent.update)(agent, batch)
    assert int(new.step) == int(agent.step) + 1
    for name in ("actor", "critic", "log_alpha"):
        assert leaves_differ(getattr(agent, name), getattr(new, name)), name
    assert leaves_differ(agent.log_alpha_prime.params, new.log_alpha_prime.params) == lagrange
    expected = jax.tree.map(
        lambda t, o: 0.995 * t + 0.005 * o, agent.target_critic_params, new.critic.params
    )
    for got, want in zip(
        jax.tree.leaves(new.target_critic_params), jax.tree.leaves(expected), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert all(np.isfinite(np.asarray(value)).all() for value in metrics.values())


def test_cql_finds_the_best_action_where_bc_averages() -> None:
    # A faster actor (and temperature) than CORL's 3e-5, so 400 updates suffice.
    config = CQLConfig(batch_size=128, hidden_dims=(64, 64), actor_lr=1e-3, cql_n_actions=4)
    errors, bc_error = learns_the_bandit(CQLAgent, config, 400)
    assert np.all(errors < 0.35 * bc_error), (errors, bc_error)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"next_obs": None}, "transitions have no next_obs"),
        ({"actions": np.zeros((9, ACT_DIM), np.float32)}, "actions has 9 rows but obs has 10"),
        ({"next_obs": np.zeros((10, OBS_DIM + 1))}, r"next_obs has shape \(10, 4\)"),
    ],
)
def test_bad_transitions_are_refused_in_one_line(change: dict, message: str) -> None:
    """CQL's training data is prepared (iwbc.agents.registry.training_data) by prepare_data."""
    data, _ = bandit(num=10)
    with pytest.raises(ValueError, match=message) as error:
        prepare_data(data._replace(**change), CQLConfig())
    assert "\n" not in str(error.value)
