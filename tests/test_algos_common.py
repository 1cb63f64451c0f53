"""Offline-RL shared pieces: input validation, state/reward normalization, on-device sampling,
and how the trainer creates and feeds the baselines' agents."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iwbc.agents.common import soft_update
from iwbc.agents.cql import CQLConfig
from iwbc.agents.iql import IQLConfig
from iwbc.agents.registry import BASELINES, METHODS, critic_value_bounds
from iwbc.agents.td3_bc import TD3BCConfig
from iwbc.core.agent import DataSpec
from iwbc.core.sampling import (
    device_transitions,
    episode_returns,
    locomotion_reward_scale,
    prepare_data,
    sample_transitions,
    value_bounds,
)
from iwbc.core.trainer import _create, create_agents
from iwbc.data.episodes import Transitions, stack_episodes
from iwbc.data.statistics import normalization_stats


def transitions(n: int = 6, obs_dim: int = 3, act_dim: int = 2) -> Transitions:
    rng = np.random.default_rng(0)
    terminals = np.zeros(n, np.float32)
    terminals[2] = 1.0
    timeouts = np.zeros(n, np.float32)
    timeouts[4] = 1.0
    return Transitions(
        obs=rng.normal(size=(n, obs_dim)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
        rewards=np.arange(n, dtype=np.float32),
        next_obs=rng.normal(size=(n, obs_dim)).astype(np.float32),
        terminals=terminals,
        timeouts=timeouts,
    )


def test_episode_returns_and_reward_scale_split_at_terminals_and_timeouts() -> None:
    t = transitions()
    # Episodes: steps 0-2 (terminal), 3-4 (timeout), 5 (end of data).
    np.testing.assert_allclose(episode_returns(t.rewards, t.terminals + t.timeouts), [3, 7, 5])
    assert locomotion_reward_scale(t) == pytest.approx(1000 / (7 - 3))


@pytest.mark.parametrize(
    ("rewards", "discount", "expected"),
    [
        ([0.5, 3.0, 1.0], 0.99, (0.5, 300.0)),  # positive rewards: one step at least, r_max/(1-γ)
        ([-2.0, -1.0], 0.99, (-200.0, -1.0)),  # negative: the mirror image
        ([-1.0, 0.0, 2.0], 0.9, (-10.0, 20.0)),
        ([-1.0, 2.0], 1.0, (-np.inf, np.inf)),  # undiscounted: unbounded
    ],
)
def test_value_bounds_are_the_range_of_discounted_returns(rewards, discount, expected) -> None:
    assert value_bounds(np.array(rewards), discount) == pytest.approx(expected)


def test_every_discounted_return_of_the_data_lies_within_its_value_bounds() -> None:
    """Brute force: discounted sums of random reward sequences drawn from the data, ended by a
    terminal at random, never leave the bounds, and the longest reach close to them."""
    rng = np.random.default_rng(0)
    rewards, discount = rng.uniform(-0.5, 4.0, 200), 0.95
    low, high = value_bounds(rewards, discount)
    powers = discount ** np.arange(400)
    sums = [
        float(rng.choice(rewards, size=length) @ powers[:length])
        for length in rng.integers(1, 400, 2000)
    ]
    assert low <= min(sums) and max(sums) <= high
    best = float(np.full(400, rewards.max()) @ powers)
    assert best <= high and best == pytest.approx(high, rel=1e-8)


def test_a_critics_value_bounds_are_in_the_units_of_its_rewards() -> None:
    """IQL scales its rewards (CORL's normalize_reward), so its bounds scale alike; TD3+BC's
    do not; the BC family has no critic."""
    # Rewards 0..5 in episodes of returns 3 (terminated), 7 (truncated) and 5, as transitions().
    lengths, ends = (3, 2, 1), ((1, 0), (0, 1), (0, 0))
    rewards = np.split(np.arange(6, dtype=np.float32), [3, 5])
    episodes = stack_episodes(
        [np.zeros((n + 1, 3), np.float32) for n in lengths],
        [np.zeros((n, 2), np.float32) for n in lengths],
        rewards,
        [
            np.eye(n, dtype=np.float32)[-1] * term
            for n, (term, _) in zip(lengths, ends, strict=True)
        ],
        [np.eye(n, dtype=np.float32)[-1] * cut for n, (_, cut) in zip(lengths, ends, strict=True)],
    )
    scale = 1000 / (7 - 3)
    iql = critic_value_bounds(METHODS["iql"], episodes, IQLConfig())
    assert iql == pytest.approx((0.0, 5 * scale / (1 - 0.99)))
    td3_bc = critic_value_bounds(METHODS["td3_bc"], episodes, TD3BCConfig(discount=0.9))
    assert td3_bc == pytest.approx((0.0, 50.0))
    assert critic_value_bounds(METHODS["bc"], episodes, IQLConfig()) is None


@pytest.mark.parametrize(
    ("config", "scaled"),
    [
        (IQLConfig(), True),
        (IQLConfig(normalize_rewards=False), False),
        (CQLConfig(), False),
        (CQLConfig(normalize_rewards=True), True),
        (TD3BCConfig(), False),
    ],
)
def test_rewards_are_scaled_where_the_config_asks(config, scaled: bool) -> None:
    """CORL's normalize_reward: IQL's default (the IQL paper's), CQL's on Hopper medium."""
    t = transitions()
    data, _, _ = prepare_data(t, config)
    scale = 1000 / (7 - 3) if scaled else 1.0
    np.testing.assert_allclose(data.rewards, scale * t.rewards, rtol=1e-6)


def test_states_are_normalized_and_dones_are_terminals_only() -> None:
    t = transitions()
    mean, std = normalization_stats(t.obs)
    np.testing.assert_allclose(std, t.obs.std(axis=0) + 1e-3, rtol=1e-6)
    data = device_transitions(t, obs_mean=mean, obs_std=std, reward_scale=2.0)
    np.testing.assert_allclose(data.observations, (t.obs - mean) / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(data.next_observations, (t.next_obs - mean) / std, rtol=1e-5)
    np.testing.assert_allclose(data.rewards, 2.0 * t.rewards)
    np.testing.assert_array_equal(data.dones, t.terminals)


def test_sampled_batches_are_rows_of_the_dataset() -> None:
    data = device_transitions(transitions())
    batch = sample_transitions(jax.random.PRNGKey(0), data, 32)
    rows = np.asarray(batch.rewards).astype(int)
    np.testing.assert_array_equal(batch.observations, np.asarray(data.observations)[rows])
    np.testing.assert_array_equal(batch.next_observations, np.asarray(data.next_observations)[rows])
    assert len(set(rows.tolist())) > 1


def test_soft_update_is_polyak_averaging() -> None:
    out = soft_update({"w": np.array([1.0, 2.0])}, {"w": np.array([3.0, 6.0])}, 0.25)
    np.testing.assert_allclose(out["w"], [1.5, 3.0])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"next_obs": None}, "no next_obs"),
        ({"next_obs": np.zeros((6, 4))}, r"next_obs has shape \(6, 4\) but obs has shape \(6, 3\)"),
        ({"actions": np.zeros((5, 2))}, "actions has 5 rows but obs has 6"),
        ({"rewards": np.zeros((6, 1))}, r"rewards must be 1-D"),
        ({"terminals": np.zeros(7)}, "terminals has 7 rows"),
    ],
)
def test_bad_transitions_are_refused_in_one_line(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        device_transitions(transitions()._replace(**change))
    assert "\n" not in str(error.value)


def test_prepare_data_follows_the_config() -> None:
    t = transitions()
    data, mean, std = prepare_data(t, IQLConfig())
    np.testing.assert_allclose(mean, t.obs.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(data.rewards, t.rewards * 1000 / (7 - 3), rtol=1e-6)
    data, mean, std = prepare_data(t, TD3BCConfig(normalize_states=False))
    np.testing.assert_allclose(data.observations, t.obs)
    np.testing.assert_allclose(data.rewards, t.rewards)
    np.testing.assert_array_equal(std, np.ones(3))


@pytest.mark.parametrize("name", BASELINES)
def test_agents_are_created_by_one_compiled_initializer_whatever_the_statistics(name: str) -> None:
    """A resumed run creates its agent again: that must not compile the initializer again,
    and each agent must still carry the statistics it was created with."""
    method = METHODS[name]
    config = method.config(hidden_dims=(8, 8))
    zeros, ones = jnp.zeros(3, jnp.float32), jnp.ones(3, jnp.float32)
    first = create_agents(method.agent, config, DataSpec(zeros, ones, 2), [0, 1])
    compiled = _create._cache_size()
    mean, std = np.arange(3, dtype=np.float32), np.full(3, 2.0, np.float32)
    second = create_agents(
        method.agent, config, DataSpec(jnp.asarray(mean), jnp.asarray(std), 2), [0, 1]
    )
    assert _create._cache_size() == compiled
    np.testing.assert_array_equal(second.obs_mean, np.stack([mean, mean]))
    np.testing.assert_array_equal(second.obs_std, np.stack([std, std]))
    np.testing.assert_array_equal(first.obs_mean, np.zeros((2, 3)))
    jax.tree.map(np.testing.assert_array_equal, first.actor.params, second.actor.params)
    # Seeds differ: the stacked agents are not copies of one.
    assert any(not np.array_equal(x[0], x[1]) for x in jax.tree.leaves(first.actor.params))


def _dense_layers(params: dict) -> list[dict]:
    """Every Dense layer (its kernel and bias) in a parameter tree, ensembles included."""
    if "kernel" in params and "bias" in params:
        return [params]
    return [
        layer
        for value in params.values()
        if isinstance(value, dict)
        for layer in _dense_layers(value)
    ]


@pytest.mark.parametrize("name", ["bc", *BASELINES])
def test_layer_init_reaches_every_network_an_agent_creates(name: str) -> None:
    """``layer_init="torch"`` starts every layer the recipe leaves at the default as PyTorch's
    nn.Linear does (biases uniform in ±1/√fan_in, not zero); CQL's own output layers keep zero
    biases. The default draws are Flax's, zero biases throughout."""
    method = METHODS[name]
    spec = DataSpec(jnp.zeros(3), jnp.ones(3), 2)
    for layer_init in ("flax", "torch"):
        config = method.config(hidden_dims=(64, 64), layer_init=layer_init)
        agent = method.agent.create(jax.random.PRNGKey(0), spec, config)
        trees = {"actor": agent.params} if name == "bc" else {"actor": agent.actor.params}
        if name != "bc":
            trees["critic"] = agent.critic.params
        if name == "iql":
            trees["value"] = agent.value.params
        for network, tree in trees.items():
            layers = _dense_layers(dict(tree["params"]))
            assert len(layers) == 3, (network, len(layers))
            for i, layer in enumerate(layers):
                bias = np.asarray(layer["bias"])
                fan_in = np.shape(layer["kernel"])[-2]
                kept = name == "cql" and i == len(layers) - 1  # CORL's own output layers
                if layer_init == "flax" or kept or (name == "cql" and network == "critic"):
                    assert not np.any(bias), (network, i)
                else:
                    assert np.all(np.abs(bias) <= 1 / np.sqrt(fan_in)) and np.any(bias), (
                        network,
                        i,
                    )


def test_creating_agents_for_no_seeds_is_refused() -> None:
    spec = DataSpec(jnp.zeros(3), jnp.ones(3), 2)
    with pytest.raises(ValueError, match="no seeds given; pass at least one training seed"):
        create_agents(METHODS["td3_bc"].agent, TD3BCConfig(hidden_dims=(8,)), spec, [])


@pytest.mark.parametrize("name", BASELINES)
def test_baselines_sample_config_batch_size_rows_of_the_transitions(name: str) -> None:
    """The baselines' ``sample`` (the Agent default): uniform rows of the device transitions,
    as many as the config's batch size, and the agent itself unchanged."""
    method = METHODS[name]
    config = method.config(hidden_dims=(8,), batch_size=32)
    data = device_transitions(transitions())
    agent = method.agent.create(
        jax.random.PRNGKey(0), DataSpec(jnp.zeros(3), jnp.ones(3), 2), config
    )
    assert method.agent.data_kind == "transitions"
    same, batch = agent.sample(jax.random.PRNGKey(1), data, jnp.asarray(0))
    assert same is agent
    rows = np.asarray(batch.rewards).astype(int)
    assert rows.shape == (32,)
    np.testing.assert_array_equal(batch.actions, np.asarray(data.actions)[rows])
    np.testing.assert_array_equal(batch.dones, np.asarray(data.dones)[rows])
