"""iw-BC's trajectory weights under windows: from whole trajectories, as the method defines them.

With windows the batch holds a few steps of each episode, so w(τ) = clip(exp(temp · (log q_iw(τ)
− log q_ref(τ)) / |τ|)) cannot come from the batch. The trainer keeps log q(τ)/|τ| of every
training episode in tables (q_ref's once, q_iw's refreshed every ``refresh_every`` steps); these
tests compare the weights and the loss of a windowed update with a NumPy computation over whole
episodes, and with the weights a whole-episode batch gives.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_losses import numpy_log_probs, perturbed, reference_trajectory_weights

from iwbc import losses
from iwbc.policies import GaussianPolicy, policy_log_prob
from iwbc.sampling import DeviceEpisodes, sample_episodes
from iwbc.train import (
    StageConfig,
    episode_log_probs,
    init_policy_params,
    init_train_state,
    make_update,
    with_trajectory_tables,
)

OBS_DIM, ACT_DIM = 4, 2
LENGTHS = np.array([30, 4, 17, 30, 9, 23, 1, 12])
POLICY = GaussianPolicy(action_dim=ACT_DIM, hidden_dims=(16, 16))
STATS = (np.array([0.5, -1.0, 2.0, 0.0], np.float32), np.array([1.0, 3.0, 0.5, 2.0], np.float32))


@pytest.fixture(scope="module")
def setting() -> dict:
    rng = np.random.default_rng(3)
    horizon = int(LENGTHS.max())
    mask = (np.arange(horizon)[None, :] < LENGTHS[:, None]).astype(np.float32)
    obs = rng.normal(size=(len(LENGTHS), horizon, OBS_DIM)).astype(np.float32) * mask[..., None]
    actions = rng.uniform(-0.9, 0.9, size=(len(LENGTHS), horizon, ACT_DIM)).astype(np.float32)
    actions *= mask[..., None]
    quality = rng.uniform(0.1, 1.0, size=len(LENGTHS)).astype(np.float32)
    params = init_policy_params(POLICY, OBS_DIM, [0], STATS)
    return {
        "data": DeviceEpisodes.from_numpy(obs, actions, mask, quality),
        "obs": obs,
        "actions": actions,
        "mask": mask,
        "quality": quality,
        "params": params,
        "ref": stacked_variant(one(params), 1),
        "iw": stacked_variant(one(params), 2),
    }


def stacked_variant(params: dict, seed: int) -> dict:
    """Other network weights, the same observation statistics (one set per dataset)."""
    variant = {**params, "params": perturbed(params["params"], 0.05, seed)}
    return jax.tree.map(lambda x: x[None], variant)


def start(setting: dict, config: StageConfig):
    state = init_train_state(config, setting["params"], [0], ref_params=setting["ref"])
    state = state.replace(iw_params=setting["iw"])
    return with_trajectory_tables(POLICY, config, state, setting["data"])


def one(params: dict) -> dict:
    """Seed 0 of seed-stacked parameters, as NumPy arrays."""
    return jax.tree.map(lambda x: np.asarray(x[0]), params)


def whole_episode_means(params: dict, setting: dict) -> np.ndarray:
    log_probs = numpy_log_probs(one(params), setting["obs"], setting["actions"])
    return np.array([log_probs[i, :n].mean() for i, n in enumerate(LENGTHS)])


def test_episode_tables_are_whole_trajectory_means(setting: dict) -> None:
    table = jax.vmap(episode_log_probs, in_axes=(None, 0, None))(
        POLICY, setting["params"], setting["data"]
    )
    np.testing.assert_allclose(
        np.asarray(table[0]), whole_episode_means(setting["params"], setting), rtol=1e-5
    )


@pytest.mark.parametrize("loss", ["iw_trajectory", "iw_quality"])
@pytest.mark.parametrize("weighting", ["episode", "transition"])
def test_windowed_update_uses_whole_trajectory_weights(
    setting: dict, loss: str, weighting: str
) -> None:
    """One windowed update: its loss equals the NumPy loss with weights from whole episodes."""
    config = StageConfig.iw_finetune(
        loss=loss, batch_size=16, window=3, weighting=weighting, refresh_every=1
    )
    state = start(setting, config)
    update = jax.vmap(make_update(POLICY, config), in_axes=(0, None, None))
    new_state, metrics = update(state, setting["data"], 0)

    key = jax.random.split(state.rng[0])[1]
    batch = sample_episodes(key, setting["data"], 16, 3, weighting)
    index = np.asarray(batch.index)
    iw_after_ema = {
        **setting["iw"],
        "params": jax.tree.map(
            lambda q, p: 0.9 * q + 0.1 * p, setting["iw"]["params"], setting["params"]["params"]
        ),
    }
    ratio = whole_episode_means(iw_after_ema, setting) - whole_episode_means(
        setting["ref"], setting
    )
    quality = setting["quality"][index] if loss == "iw_quality" else None
    raw = np.clip(np.exp(10.0 * ratio[index]), 0.0, 1000.0) * (1.0 if quality is None else quality)
    weights = raw / raw.sum()
    log_probs = numpy_log_probs(
        one(setting["params"]), np.asarray(batch.observations), np.asarray(batch.actions)
    )
    mask = np.asarray(batch.mask)
    if weighting == "episode":
        per_row = (log_probs * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1)
        expected = -np.mean(weights * per_row)
    else:
        expected = -(weights[:, None] * log_probs * mask).sum() / mask.sum()
    np.testing.assert_allclose(float(metrics["loss"][0]), expected, rtol=1e-4)
    np.testing.assert_allclose(
        np.asarray(new_state.iw_log_q[0]), whole_episode_means(iw_after_ema, setting), rtol=1e-5
    )


def test_windowed_and_whole_episode_batches_give_the_same_weights(setting: dict) -> None:
    """The same episodes weigh the same whether the batch holds windows or whole episodes."""
    config = StageConfig.iw_finetune(window=5, refresh_every=1)
    state = start(setting, config)
    ratio = np.asarray(state.iw_log_q[0] - state.ref_log_q[0])
    from_tables = losses.weights_from_log_ratios(
        jnp.asarray(ratio), temperature=10.0, normalize=True
    )
    whole = losses.trajectory_weights(
        policy_log_prob(POLICY, one(setting["iw"]), setting["obs"], setting["actions"]),
        policy_log_prob(POLICY, one(setting["ref"]), setting["obs"], setting["actions"]),
        jnp.asarray(setting["mask"]),
        temperature=10.0,
        normalize=True,
    )
    np.testing.assert_allclose(np.asarray(from_tables), np.asarray(whole), rtol=1e-4)
    expected = reference_trajectory_weights(
        *(
            numpy_log_probs(one(setting[k]), setting["obs"], setting["actions"])
            for k in ("iw", "ref")
        ),
        LENGTHS,
        10.0,
        True,
    )
    np.testing.assert_allclose(np.asarray(from_tables), expected, rtol=1e-4)


def test_tables_refresh_every_k_steps_and_hold_between(setting: dict) -> None:
    config = StageConfig.iw_finetune(batch_size=8, window=4, refresh_every=2)
    state = start(setting, config)
    update = jax.jit(jax.vmap(make_update(POLICY, config), in_axes=(0, None, None)))
    ref_table = np.asarray(state.ref_log_q)
    for step in range(4):
        before = np.asarray(state.iw_log_q)
        state, _ = update(state, setting["data"], step)
        exact = whole_episode_means(state.iw_params, setting)
        if step % 2 == 0:
            np.testing.assert_allclose(np.asarray(state.iw_log_q[0]), exact, rtol=1e-5)
        else:
            np.testing.assert_array_equal(np.asarray(state.iw_log_q), before)
        # q_ref is frozen: its table never moves.
        np.testing.assert_array_equal(np.asarray(state.ref_log_q), ref_table)
