"""Observation standardization of the BC family: the statistics, where they live, and that they
change nothing else (the switch off reproduces the raw-observation pipeline to the bit)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import bc_configs

from iwbc.agents.bc import BCAgent, BCConfig
from iwbc.agents.networks import GaussianPolicy, policy_mean_action
from iwbc.agents.registry import train_methods
from iwbc.agents.td3_bc import TD3BCConfig
from iwbc.bench.suites import PipelineConfig
from iwbc.core.agent import DataSpec
from iwbc.core.sampling import prepare_data
from iwbc.core.trainer import create_agents
from iwbc.data import DatasetError, stack_episodes
from iwbc.data.statistics import normalization_stats
from iwbc.envs.evaluate import evaluate_actor, evaluate_agent
from iwbc.errors import UserError

OBS_SCALE = np.array([0.1, 1.0, 10.0, 0.5, 3.0])
OBS_SHIFT = np.array([0.0, 1.0, -2.0, 0.0, 5.0])


def numpy_mean_action(layers: dict, obs: np.ndarray) -> np.ndarray:
    """The Gaussian policy's mean action on ``obs`` as it is (no standardization), written out
    in NumPy (float64) from the network's ``params`` collection."""
    x = obs.astype(np.float64)
    names = sorted((k for k in layers if k.startswith("Dense_")), key=lambda k: int(k[6:]))
    for name in names[:-1]:
        x = np.maximum(x @ np.asarray(layers[name]["kernel"]) + np.asarray(layers[name]["bias"]), 0)
    last = layers[names[-1]]
    return np.tanh(x @ np.asarray(last["kernel"]) + np.asarray(last["bias"]))


def data_spec(mean: np.ndarray, std: np.ndarray, action_dim: int) -> DataSpec:
    return DataSpec(jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32), action_dim)


def episodes():
    """Episodes of varied lengths and observation scales (the pinned run's data)."""
    rng = np.random.default_rng(7)
    lengths = [30, 12, 25, 30, 8, 19, 30, 22]
    weights = rng.normal(size=(5, 2))
    obs, act, rew, term, trunc = [], [], [], [], []
    for i, n in enumerate(lengths):
        o = rng.normal(size=(n + 1, 5)) * OBS_SCALE + OBS_SHIFT
        obs.append(o)
        act.append((np.tanh(o[:n] @ weights * 0.1) + 0.1 * rng.normal(size=(n, 2))).astype("f4"))
        rew.append(rng.normal(size=n) + i * 0.3)
        ends = np.zeros(n, bool)
        ends[-1] = True
        term.append(ends)
        trunc.append(np.zeros(n, bool))
    return stack_episodes(obs, act, rew, term, trunc)


def test_statistics_are_mean_and_std_plus_epsilon() -> None:
    x = np.random.default_rng(0).normal(size=(500, 3)) * [1.0, 5.0, 0.01] + [2.0, -1.0, 0.0]
    mean, std = normalization_stats(x)
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std, x.std(axis=0) + 1e-3, rtol=1e-6)
    assert mean.dtype == std.dtype == np.float32


def test_a_constant_feature_is_centred_not_blown_up() -> None:
    x = np.random.default_rng(0).normal(size=(100, 3))
    x[:, 1] = 4.0
    mean, std = normalization_stats(x)
    assert mean[1] == 4.0 and std[1] == pytest.approx(1.001)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_nan_feature_is_a_one_line_error_naming_it(bad: float) -> None:
    x = np.zeros((10, 4))
    x[6, 2] = bad
    with pytest.raises(
        DatasetError,
        match=r"observation feature 2 is NaN or infinite \(first at "
        r"step 6 of 10\); clean the dataset",
    ):
        normalization_stats(x)


def test_standardizing_policy_is_the_raw_network_on_standardized_inputs() -> None:
    stats = normalization_stats(np.random.default_rng(1).normal(size=(50, 5)) * OBS_SCALE)
    config = BCConfig(hidden_dims=(8, 8))
    agent = BCAgent.create(jax.random.PRNGKey(0), data_spec(*stats, 2), config)
    obs = np.random.default_rng(2).normal(size=(7, 5)) * OBS_SCALE
    ours = np.asarray(agent.act(jnp.asarray(obs, jnp.float32)))
    expected = numpy_mean_action(agent.params["params"], (obs - stats[0]) / stats[1])
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_statistics_live_in_standardizing_agents_only_and_fine_tunes_keep_the_inputs() -> None:
    """A standardizing agent holds the data's statistics in its policy's ``normalizer``, a raw
    one holds none; a fine-tune that would read its start's network with other inputs than it
    was trained on is a one-line error, either way round."""
    mean, std = np.linspace(-1.0, 1.0, 9).astype(np.float32), np.full(9, 2.0, np.float32)
    spec = data_spec(mean, std, 1)
    standardized = create_agents(BCAgent, BCConfig(hidden_dims=(4,)), spec, [0, 1])
    raw_config = BCConfig(hidden_dims=(4,), standardize=False)
    raw = create_agents(BCAgent, raw_config, spec, [0, 1])
    np.testing.assert_array_equal(standardized.params["normalizer"]["mean"], [mean, mean])
    np.testing.assert_array_equal(standardized.params["normalizer"]["std"], [std, std])
    assert "normalizer" not in raw.params
    finetune = BCConfig.iw_finetune(hidden_dims=(4,))
    for init, config in (
        (standardized, BCConfig.iw_finetune(hidden_dims=(4,), standardize=False)),
        (raw, finetune),
    ):
        with pytest.raises(UserError, match="a fine-tune must standardize observations as the"):
            create_agents(BCAgent, config, spec, [0, 1], init)
    # The same inputs on both sides: the fine-tune starts from its init, which is also q_ref.
    tuned = create_agents(BCAgent, finetune, spec, [0, 1], standardized)
    jax.tree.map(np.testing.assert_array_equal, tuned.params, standardized.params)
    jax.tree.map(np.testing.assert_array_equal, tuned.ref_params, standardized.params)


@pytest.fixture(scope="module")
def trained() -> dict:
    pipeline = PipelineConfig(
        pretrain=BCConfig(steps=20, batch_size=4, window=6),
        finetune=BCConfig.iw_finetune(steps=10, batch_size=4, warmup_steps=2, window=6),
        hidden_dims=(16, 16),
        chunk_size=10,
    )
    # One method of each kind (the variants of each share its data path): trained on all the
    # data, on a subset of the episodes, fine-tuned from BC, and a baseline on transitions.
    methods = ["bc", "filtered_bc", "iw_bc"]
    configs = bc_configs(pipeline, methods)
    configs["td3_bc"] = TD3BCConfig(steps=20, batch_size=16, hidden_dims=(16, 16))
    return train_methods(
        episodes(), [*methods, "td3_bc"], [0, 1], configs, chunk_size=10, progress=False
    )


def test_each_kind_of_method_carries_the_dataset_statistics_unchanged_by_training(trained) -> None:
    """One set of statistics per dataset, the baselines' (prepare_data) included, bit for bit."""
    data = episodes()
    _, mean, std = prepare_data(data.to_transitions(), TD3BCConfig())
    for name, result in trained.items():
        agent = result.agent
        np.testing.assert_array_equal(agent.step, [result.history[-1]["step"]] * 2)
        if name == "td3_bc":
            np.testing.assert_array_equal(agent.obs_mean, [mean, mean])
            np.testing.assert_array_equal(agent.obs_std, [std, std])
            continue
        assert agent.config.standardize
        for seed in range(2):
            np.testing.assert_array_equal(
                np.asarray(agent.params["normalizer"]["mean"][seed]), mean
            )
            np.testing.assert_array_equal(np.asarray(agent.params["normalizer"]["std"][seed]), std)


# Figures of the pipeline before standardization and the two weightings existed (commit 19350d3,
# `iwbc.methods.train_methods` on `episodes()`; now `iwbc.agents.registry.train_methods`): Σ|θ| over
# the parameters and the last chunk's per-seed loss. The switch off (raw observations, episode
# weighting) must reproduce them. Whole episodes only: windows under episode weighting have
# since wrapped around their episode (every step equally likely; iwbc.core.sampling), where that
# commit's windows had to fit inside it and saw an episode's first and last steps less often.
PINNED = {
    "bc": (433.82580592540216, [2.2878572940826416, 1.9555127620697021]),
    "filtered_bc": (433.5127552827689, [1.897555947303772, 1.8255102634429932]),
    "top10_bc": (434.07282609588583, [2.331909656524658, 1.8845841884613037]),
    "iw_bc_step": (433.6426370270419, [0.015769142657518387, 0.01521244365721941]),
    "iw_bc": (433.51285297250797, [0.474388986825943, 0.4563775956630707]),
    "iw_bc_quality": (433.544210513297, [0.4717797338962555, 0.4587266445159912]),
}


def test_raw_observations_with_episode_weighting_reproduce_the_pinned_run() -> None:
    def stage(**options):
        return {**options, "weighting": "episode", "window": None}

    pipeline = PipelineConfig(
        pretrain=BCConfig(**stage(steps=30, batch_size=4)),
        finetune=BCConfig.iw_finetune(
            **stage(steps=20, batch_size=4, warmup_steps=5, learning_rate=1e-3)
        ),
        hidden_dims=(32, 32),
        chunk_size=10,
        standardize_observations=False,
    )
    methods = ["bc", "filtered_bc", "top10_bc", "iw_bc_step", "iw_bc", "iw_bc_quality"]
    configs = bc_configs(pipeline, methods)
    results = train_methods(episodes(), methods, [0, 1], configs, chunk_size=10, progress=False)
    for name, result in results.items():
        params = result.agent.params
        assert "normalizer" not in params
        total = sum(np.abs(np.asarray(x, np.float64)).sum() for x in jax.tree.leaves(params))
        pinned_total, pinned_loss = PINNED[name]
        np.testing.assert_allclose(total, pinned_total, rtol=1e-7)
        np.testing.assert_allclose(result.history[-1]["loss"], pinned_loss, rtol=1e-6)


def test_every_engine_applies_the_statistics_alike() -> None:
    """Two training seeds of a standardizing agent score alike on the batch and Gymnasium
    engines (through evaluate_actor, which the baselines use too), and as the raw network
    scores on observations standardized before it sees them. MJX acts through the same
    seed-batched actor: test_envs_mjx's rollout check compares it with the batch engine
    episode by episode under a standardizing policy (one MJX compile serves both checks)."""
    env = "InvertedDoublePendulum-v5"
    mean, std = np.linspace(-0.5, 0.5, 9).astype(np.float32), np.linspace(0.2, 3.0, 9).astype("f4")
    agent = create_agents(BCAgent, BCConfig(hidden_dims=(8,)), data_spec(mean, std, 1), [0, 1])
    on_batch = evaluate_agent(agent, env, num_episodes=4, engine="batch")
    on_gymnasium = evaluate_agent(agent, env, num_episodes=4, engine="gymnasium")
    np.testing.assert_allclose(on_gymnasium, on_batch, rtol=1e-2, atol=1e-2)
    raw_policy = GaussianPolicy(action_dim=1, hidden_dims=(8,), standardize=False)

    def standardized_first(params, observations):
        return policy_mean_action(raw_policy, params, (observations - mean) / std)

    by_hand = evaluate_actor(
        standardized_first,
        {"params": agent.params["params"]},
        env,
        observation_dim=9,
        action_dim=1,
        num_episodes=4,
        engine="batch",
    )
    np.testing.assert_allclose(on_batch, by_hand, rtol=1e-5)
    normalizer = {
        "mean": jnp.zeros_like(agent.params["normalizer"]["mean"]),
        "std": jnp.ones_like(agent.params["normalizer"]["std"]),
    }
    identity = agent.replace(params={**agent.params, "normalizer": normalizer})
    unstandardized = evaluate_agent(identity, env, num_episodes=4, engine="batch")
    assert not np.allclose(unstandardized, on_batch)
