"""iw-BC's trajectory weights under windows: from whole trajectories, as the method defines them.

With windows the batch holds a few steps of each episode, so w(τ) = clip(exp(temp · (log q_iw(τ)
− log q_ref(τ)) / |τ|)) cannot come from the batch. The agent keeps log q(τ)/|τ| of every
training episode in tables, filled by its ``prepare`` (which the trainer calls) and q_iw's
refreshed by its ``sample`` every ``refresh_every`` steps (q_ref's never: it is frozen); these
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
from iwbc.agents.bc import BCAgent, BCConfig, bc_policy, episode_log_probs
from iwbc.agents.networks import policy_log_prob
from iwbc.core.agent import DataSpec
from iwbc.core.sampling import DeviceEpisodes, sample_episodes
from iwbc.core.trainer import Training, create_agents, run_chunk

OBS_DIM, ACT_DIM = 4, 2
LENGTHS = np.array([30, 4, 17, 30, 9, 23, 1, 12])
HIDDEN = (16, 16)
POLICY = bc_policy(ACT_DIM, BCConfig(hidden_dims=HIDDEN))  # standardizes its observations
STATS = (np.array([0.5, -1.0, 2.0, 0.0], np.float32), np.array([1.0, 3.0, 0.5, 2.0], np.float32))
SPEC = DataSpec(jnp.asarray(STATS[0]), jnp.asarray(STATS[1]), ACT_DIM)


def iw_config(**overrides: object) -> BCConfig:
    return BCConfig.iw_finetune(hidden_dims=HIDDEN, **overrides)


@pytest.fixture(scope="module")
def setting() -> dict:
    rng = np.random.default_rng(3)
    horizon = int(LENGTHS.max())
    mask = (np.arange(horizon)[None, :] < LENGTHS[:, None]).astype(np.float32)
    obs = rng.normal(size=(len(LENGTHS), horizon, OBS_DIM)).astype(np.float32) * mask[..., None]
    actions = rng.uniform(-0.9, 0.9, size=(len(LENGTHS), horizon, ACT_DIM)).astype(np.float32)
    actions *= mask[..., None]
    quality = rng.uniform(0.1, 1.0, size=len(LENGTHS)).astype(np.float32)
    params = create_agents(BCAgent, BCConfig(hidden_dims=HIDDEN), SPEC, [0]).params
    return {
        "data": DeviceEpisodes.from_padded(obs, actions, mask, quality),
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


def start(setting: dict, config: BCConfig) -> BCAgent:
    """Seed 0's agent with θ, q_ref and q_iw all different, prepared by the trainer (which fills
    the whole-trajectory tables from them)."""
    agent = create_agents(BCAgent, config, SPEC, [0])
    agent = agent.replace(
        params=setting["params"], ref_params=setting["ref"], iw_params=setting["iw"]
    )
    return Training(agent, setting["data"], progress=False).agent


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


def test_a_trajectory_listed_several_times_gets_its_own_mean_in_every_row(setting: dict) -> None:
    """Copies (the stratified union's repeats) share one computation of their trajectory's mean:
    every row's value is the NumPy mean of its episode, and the same to the bit as the table of
    the data listing each episode once (where its steps sit elsewhere in the flat blocks)."""
    rows = np.array([5, 0, 5, 2, 0, 5, 7])
    obs, actions, mask = (setting[name][rows] for name in ("obs", "actions", "mask"))
    listed = DeviceEpisodes.from_padded(obs, actions, mask)
    assert np.unique(np.asarray(listed.episode_source)).size == 4
    tables = jax.vmap(episode_log_probs, in_axes=(None, 0, None))
    table = np.asarray(tables(POLICY, setting["params"], listed)[0])
    means = whole_episode_means(setting["params"], setting)
    np.testing.assert_allclose(table, means[rows], rtol=1e-5)
    once = np.asarray(tables(POLICY, setting["params"], setting["data"])[0])
    np.testing.assert_array_equal(table, once[rows])


@pytest.mark.parametrize("loss", ["iw_trajectory", "iw_quality"])
@pytest.mark.parametrize("weighting", ["episode", "transition"])
def test_windowed_update_uses_whole_trajectory_weights(
    setting: dict, loss: str, weighting: str
) -> None:
    """One windowed update: its loss equals the NumPy loss with weights from whole episodes."""
    config = iw_config(loss=loss, batch_size=16, window=3, weighting=weighting, refresh_every=1)
    state = start(setting, config)
    new_state, metrics = run_chunk(state, setting["data"], jnp.asarray(0), 1)

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
        units = weights  # each row's mean counts once
    else:
        expected = -(weights[:, None] * log_probs * mask).sum() / mask.sum()
        units = np.repeat(weights, mask.sum(axis=1).astype(int))  # each valid step counts once
    np.testing.assert_allclose(float(metrics["loss"][0, 0]), expected, rtol=1e-4)
    kish = units.sum() ** 2 / (units.size * (units**2).sum())
    np.testing.assert_allclose(float(metrics["weight_ess"][0, 0]), kish, rtol=1e-4)
    np.testing.assert_allclose(
        np.asarray(new_state.iw_log_q[0]), whole_episode_means(iw_after_ema, setting), rtol=1e-5
    )


def test_windowed_and_whole_episode_batches_give_the_same_weights(setting: dict) -> None:
    """The same episodes weigh the same whether the batch holds windows or whole episodes."""
    config = iw_config(window=5, refresh_every=1)
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


def test_a_window_as_long_as_the_longest_episode_trains_as_whole_episodes(setting: dict) -> None:
    """Such a window holds whole episodes, so the weights come from the batch, exact at every
    step, as without a window, not from a table refreshed every ``refresh_every`` steps."""
    states = [
        start(
            setting,
            iw_config(
                batch_size=8, window=window, refresh_every=10, learning_rate=3e-2, warmup_steps=None
            ),
        )
        for window in (int(LENGTHS.max()), None)
    ]
    for step in range(3):
        states = [run_chunk(s, setting["data"], jnp.asarray(step), 1)[0] for s in states]
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
        states[0].params,
        states[1].params,
    )


def test_tables_refresh_every_k_steps_and_hold_between(setting: dict) -> None:
    config = iw_config(batch_size=8, window=4, refresh_every=2)
    state = start(setting, config)
    ref_table = np.asarray(state.ref_log_q)
    np.testing.assert_allclose(
        ref_table[0], whole_episode_means(setting["ref"], setting), rtol=1e-5
    )
    for step in range(4):
        before = np.asarray(state.iw_log_q)
        state, _ = run_chunk(state, setting["data"], jnp.asarray(step), 1)
        exact = whole_episode_means(state.iw_params, setting)
        if step % 2 == 0:
            np.testing.assert_allclose(np.asarray(state.iw_log_q[0]), exact, rtol=1e-5)
        else:
            np.testing.assert_array_equal(np.asarray(state.iw_log_q), before)
        # q_ref is frozen: its table never moves.
        np.testing.assert_array_equal(np.asarray(state.ref_log_q), ref_table)
