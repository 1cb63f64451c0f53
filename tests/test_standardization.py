"""Observation standardization of the BC family: the statistics, where they live, and that they
change nothing else (the switch off reproduces the raw-observation pipeline to the bit)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_losses import numpy_policy

from iwbc.algos.common import prepare_data
from iwbc.algos.td3_bc import TD3BCConfig
from iwbc.data import DatasetError, stack_episodes
from iwbc.data.statistics import normalization_stats
from iwbc.evaluate import evaluate_policies
from iwbc.methods import PipelineConfig, train_methods
from iwbc.policies import GaussianPolicy, policy_mean_action
from iwbc.train import StageConfig, init_policy_params

OBS_SCALE = np.array([0.1, 1.0, 10.0, 0.5, 3.0])
OBS_SHIFT = np.array([0.0, 1.0, -2.0, 0.0, 5.0])


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
    policy = GaussianPolicy(action_dim=2, hidden_dims=(8, 8))
    stats = normalization_stats(np.random.default_rng(1).normal(size=(50, 5)) * OBS_SCALE)
    params = jax.tree.map(lambda x: x[0], init_policy_params(policy, 5, [0], stats))
    obs = np.random.default_rng(2).normal(size=(7, 5)) * OBS_SCALE
    ours = np.asarray(policy_mean_action(policy, params, jnp.asarray(obs, jnp.float32)))
    raw_network = {"params": params["params"]}
    expected, _ = numpy_policy(raw_network, (obs - stats[0]) / stats[1])
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_missing_or_unwanted_statistics_are_one_line_errors() -> None:
    policy = GaussianPolicy(action_dim=1)
    with pytest.raises(ValueError, match="needs the dataset's observation statistics"):
        init_policy_params(policy, 9, [0])
    raw_policy = GaussianPolicy(action_dim=1, hidden_dims=(4,), standardize=False)
    raw_params = init_policy_params(raw_policy, 9, [0])
    with pytest.raises(ValueError, match="carry no observation statistics") as error:
        evaluate_policies(
            GaussianPolicy(action_dim=1, hidden_dims=(4,)), raw_params, "InvertedDoublePendulum-v5"
        )
    assert "\n" not in str(error.value)
    stats = (np.zeros(9, np.float32), np.ones(9, np.float32))
    standardized = init_policy_params(GaussianPolicy(action_dim=1, hidden_dims=(4,)), 9, [0], stats)
    with pytest.raises(ValueError, match="but the policy does not standardize"):
        evaluate_policies(raw_policy, standardized, "InvertedDoublePendulum-v5")


@pytest.fixture(scope="module")
def trained() -> dict:
    config = PipelineConfig(
        pretrain=StageConfig(steps=20, batch_size=4, window=6),
        finetune=StageConfig.iw_finetune(steps=10, batch_size=4, warmup_steps=2, window=6),
        hidden_dims=(16, 16),
        chunk_size=10,
    )
    methods = ["bc", "filtered_bc", "top10_bc", "iw_bc", "iw_bc_step", "iw_bc_quality"]
    return train_methods(episodes(), 2, methods, [0, 1], config, progress=False)


def test_every_method_carries_the_dataset_statistics_unchanged_by_training(trained) -> None:
    """One set of statistics per dataset, the baselines' (prepare_data) included, bit for bit."""
    data = episodes()
    _, mean, std = prepare_data(data.to_transitions(), TD3BCConfig())
    for result in trained.values():
        assert result.policy.standardize
        for seed in range(2):
            np.testing.assert_array_equal(
                np.asarray(result.params["normalizer"]["mean"][seed]), mean
            )
            np.testing.assert_array_equal(np.asarray(result.params["normalizer"]["std"][seed]), std)


# Figures of the pipeline before standardization and the two weightings existed (commit 19350d3,
# `iwbc.methods.train_methods` on `episodes()`): Σ|θ| over the parameters and the last chunk's
# per-seed loss. The switch off (raw observations, episode weighting) must reproduce them.
PINNED = {
    "bc/wNone": (433.82580592540216, [2.2878572940826416, 1.9555127620697021]),
    "filtered_bc/wNone": (433.5127552827689, [1.897555947303772, 1.8255102634429932]),
    "top10_bc/wNone": (434.07282609588583, [2.331909656524658, 1.8845841884613037]),
    "iw_bc_step/wNone": (433.6426370270419, [0.015769142657518387, 0.01521244365721941]),
    "iw_bc/wNone": (433.51285297250797, [0.474388986825943, 0.4563775956630707]),
    "iw_bc_quality/wNone": (433.544210513297, [0.4717797338962555, 0.4587266445159912]),
    "bc/w6": (433.9376870140768, [2.303999423980713, 2.004040241241455]),
    "filtered_bc/w6": (433.4593011239558, [1.9049875736236572, 1.8415100574493408]),
    "top10_bc/w6": (434.10179008889827, [2.3160412311553955, 1.891196608543396]),
    "iw_bc_step/w6": (433.49125888020717, [0.0794743224978447, 0.076691634953022]),
}


@pytest.mark.parametrize("window", [None, 6])
def test_raw_observations_with_episode_weighting_reproduce_the_pinned_run(window) -> None:
    def stage(**options):
        return {**options, "weighting": "episode", "window": window}

    config = PipelineConfig(
        pretrain=StageConfig(**stage(steps=30, batch_size=4)),
        finetune=StageConfig.iw_finetune(
            **stage(steps=20, batch_size=4, warmup_steps=5, learning_rate=1e-3)
        ),
        hidden_dims=(32, 32),
        chunk_size=10,
        standardize_observations=False,
    )
    # With windows the trajectory weights now come from whole episodes (not from the window):
    # iw_bc and iw_bc_quality changed there on purpose and are pinned only for whole episodes.
    methods = ["bc", "filtered_bc", "top10_bc", "iw_bc_step"]
    methods += ["iw_bc", "iw_bc_quality"] if window is None else []
    results = train_methods(episodes(), 2, methods, [0, 1], config, progress=False)
    for name, result in results.items():
        assert "normalizer" not in result.params
        total = sum(np.abs(np.asarray(x, np.float64)).sum() for x in jax.tree.leaves(result.params))
        pinned_total, pinned_loss = PINNED[f"{name}/w{window}"]
        np.testing.assert_allclose(total, pinned_total, rtol=1e-7)
        np.testing.assert_allclose(result.history[-1]["loss"], pinned_loss, rtol=1e-6)


@pytest.mark.parametrize("engine", ["gymnasium", "mjx"])
def test_every_engine_applies_the_statistics_alike(engine: str) -> None:
    """Two training seeds of a standardizing policy score alike on every engine (on MJX in one
    compiled rollout, through evaluate_actor, which the baselines use too)."""
    if engine == "mjx":
        pytest.importorskip("mujoco.mjx")
    env = "InvertedDoublePendulum-v5"
    policy = GaussianPolicy(action_dim=1, hidden_dims=(8,))
    stats = (np.linspace(-0.5, 0.5, 9).astype(np.float32), np.linspace(0.2, 3.0, 9).astype("f4"))
    params = init_policy_params(policy, 9, [0, 1], stats)
    on_batch = evaluate_policies(policy, params, env, num_episodes=4, engine="batch")
    on_other = evaluate_policies(policy, params, env, num_episodes=4, engine=engine)
    np.testing.assert_allclose(on_other, on_batch, rtol=1e-2, atol=1e-2)
    identity = {**params, "normalizer": jax.tree.map(jnp.ones_like, params["normalizer"])}
    identity["normalizer"]["mean"] = jnp.zeros_like(identity["normalizer"]["mean"])
    unstandardized = evaluate_policies(policy, identity, env, num_episodes=4, engine="batch")
    assert not np.allclose(unstandardized, on_batch)
