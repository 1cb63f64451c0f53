"""Losses, weights, EMA and schedule against an independent NumPy/SciPy computation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from iwbc import losses
from iwbc.agents.bc import BCAgent, BCConfig, bc_loss, make_optimizer
from iwbc.agents.networks import policy_log_prob
from iwbc.agents.td3_bc import TD3BCConfig
from iwbc.core.agent import DataSpec
from iwbc.core.sampling import DeviceEpisodes, EpisodeBatch
from iwbc.core.trainer import create_agents, run_chunk
from iwbc.errors import UserError

OBS_DIM, ACT_DIM, B, T = 5, 3, 6, 9
# The policy acts on raw observations, so the statistics of the spec are never read.
SPEC = DataSpec(jnp.zeros(OBS_DIM), jnp.ones(OBS_DIM), ACT_DIM)
NETWORK = {"hidden_dims": (16, 16, 16), "standardize": False}


def numpy_policy(params: dict, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Gaussian policy's forward pass written out in NumPy (float64), standardizing the
    observations first where the parameters carry statistics."""
    layers = params["params"]
    x = obs.astype(np.float64)
    if "normalizer" in params:
        stats = params["normalizer"]
        x = (x - np.asarray(stats["mean"], np.float64)) / np.asarray(stats["std"], np.float64)
    names = sorted((k for k in layers if k.startswith("Dense_")), key=lambda k: int(k[6:]))
    for name in names[:-1]:
        x = np.maximum(x @ np.asarray(layers[name]["kernel"]) + np.asarray(layers[name]["bias"]), 0)
    last = layers[names[-1]]
    mean = np.tanh(x @ np.asarray(last["kernel"]) + np.asarray(last["bias"]))
    log_std = np.clip(np.asarray(layers["log_std"], np.float64), -5.0, 2.0)
    return mean, np.broadcast_to(log_std, mean.shape)


def numpy_log_probs(params: dict, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    mean, log_std = numpy_policy(params, obs)
    return norm.logpdf(actions, loc=mean, scale=np.exp(log_std)).sum(axis=-1)


def perturbed(params: dict, scale: float, seed: int) -> dict:
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    noisy = [
        leaf + scale * jax.random.normal(k, leaf.shape)
        for leaf, k in zip(leaves, keys, strict=True)
    ]
    return jax.tree.unflatten(treedef, noisy)


@pytest.fixture(scope="module")
def setting() -> dict:
    rng = np.random.default_rng(0)
    agent = jax.tree.map(lambda x: x[0], create_agents(BCAgent, BCConfig(**NETWORK), SPEC, [0]))
    policy, params = agent.policy, agent.params
    params["params"]["log_std"] = jnp.array([-0.3, 0.1, 3.0])  # last one exercises the clip
    lengths = np.array([9, 1, 4, 7, 9, 2])
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.float32)
    return {
        "policy": policy,
        "params": params,
        "iw": perturbed(params, 0.05, 1),
        "ref": perturbed(params, 0.05, 2),
        "obs": rng.normal(size=(B, T, OBS_DIM)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(B, T, ACT_DIM)).astype(np.float32),
        "mask": mask,
        "lengths": lengths,
        "quality": rng.uniform(0, 1, size=B).astype(np.float32),
    }


def reference_trajectory_weights(lp_iw, lp_ref, lengths, temp, normalize, quality=None):
    weights = []
    for i, n in enumerate(lengths):
        log_ratio = temp * (lp_iw[i, :n].sum() - lp_ref[i, :n].sum()) / n
        w = min(max(np.exp(log_ratio), 0.0), 1000.0)
        weights.append(w * (1.0 if quality is None else quality[i]))
    weights = np.array(weights)
    return weights / weights.sum() if normalize else weights


def test_log_probs_match_scipy(setting: dict) -> None:
    ours = policy_log_prob(setting["policy"], setting["params"], setting["obs"], setting["actions"])
    ref = numpy_log_probs(setting["params"], setting["obs"], setting["actions"])
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-4, atol=1e-4)


def test_log_std_is_clipped_to_authors_bounds(setting: dict) -> None:
    _, log_std = setting["policy"].apply(setting["params"], setting["obs"][0])
    np.testing.assert_allclose(np.asarray(log_std[0]), [-0.3, 0.1, 2.0], rtol=1e-6)


def test_bc_loss_is_mean_over_episodes_of_per_step_mean(setting: dict) -> None:
    lp = numpy_log_probs(setting["params"], setting["obs"], setting["actions"])
    expected = -np.mean([lp[i, :n].mean() for i, n in enumerate(setting["lengths"])])
    ours = losses.bc_loss(jnp.asarray(lp, jnp.float32), setting["mask"])
    np.testing.assert_allclose(float(ours), expected, rtol=1e-5)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("temperature", [1.0, 10.0])
def test_trajectory_weights(setting: dict, normalize: bool, temperature: float) -> None:
    lp_iw = numpy_log_probs(setting["iw"], setting["obs"], setting["actions"])
    lp_ref = numpy_log_probs(setting["ref"], setting["obs"], setting["actions"])
    expected = reference_trajectory_weights(
        lp_iw, lp_ref, setting["lengths"], temperature, normalize
    )
    ours = losses.trajectory_weights(
        jnp.asarray(lp_iw),
        jnp.asarray(lp_ref),
        setting["mask"],
        temperature=temperature,
        normalize=normalize,
    )
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-4)


def test_trajectory_weights_are_clipped_at_1000() -> None:
    lp_iw = jnp.array([[5.0, 5.0], [0.0, 0.0], [-50.0, 0.0]])
    lp_ref = jnp.zeros((3, 2))
    mask = jnp.array([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    w = losses.trajectory_weights(lp_iw, lp_ref, mask, temperature=10.0, normalize=False)
    np.testing.assert_allclose(np.asarray(w), [1000.0, 1.0, 0.0], rtol=1e-6)


def test_effective_sample_fraction_is_kish_over_the_valid_units() -> None:
    """(Σw)² / (n Σw²) against a plain loop, under a mask, and at its bounds."""
    rng = np.random.default_rng(4)
    weights = rng.exponential(size=(5, 7)).astype(np.float32)
    mask = (rng.random((5, 7)) < 0.6).astype(np.float32)
    valid = [w for w, m in zip(weights.ravel(), mask.ravel(), strict=True) if m > 0]
    expected = sum(valid) ** 2 / (len(valid) * sum(w * w for w in valid))
    ours = losses.effective_sample_fraction(jnp.asarray(weights), jnp.asarray(mask))
    np.testing.assert_allclose(float(ours), expected, rtol=1e-5)
    assert float(losses.effective_sample_fraction(jnp.full(8, 0.125))) == pytest.approx(1.0)
    one = jnp.zeros(8).at[3].set(1.0)
    assert float(losses.effective_sample_fraction(one)) == pytest.approx(1 / 8)
    assert float(losses.effective_sample_fraction(jnp.zeros(8))) == 0.0


def test_quality_scored_weights_multiply_by_quality(setting: dict) -> None:
    lp_iw = numpy_log_probs(setting["iw"], setting["obs"], setting["actions"])
    lp_ref = numpy_log_probs(setting["ref"], setting["obs"], setting["actions"])
    expected = reference_trajectory_weights(
        lp_iw, lp_ref, setting["lengths"], 10.0, True, setting["quality"]
    )
    ours = losses.trajectory_weights(
        jnp.asarray(lp_iw),
        jnp.asarray(lp_ref),
        setting["mask"],
        temperature=10.0,
        normalize=True,
        quality=jnp.asarray(setting["quality"]),
    )
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-4)


@pytest.mark.parametrize("normalize", [True, False])
def test_step_weights_and_loss(setting: dict, normalize: bool) -> None:
    lp = numpy_log_probs(setting["params"], setting["obs"], setting["actions"])
    lp_iw = numpy_log_probs(setting["iw"], setting["obs"], setting["actions"])
    lp_ref = numpy_log_probs(setting["ref"], setting["obs"], setting["actions"])
    w = np.zeros((B, T))
    for i, n in enumerate(setting["lengths"]):
        w[i, :n] = np.clip(np.exp(10.0 * (lp_iw[i, :n] - lp_ref[i, :n])), 0.0, 2.0)
    if normalize:
        w = w / w.sum()
    expected_loss = -np.mean(
        [(w[i, :n] * lp[i, :n]).sum() / n for i, n in enumerate(setting["lengths"])]
    )
    ours_w = losses.step_weights(
        jnp.asarray(lp_iw),
        jnp.asarray(lp_ref),
        setting["mask"],
        temperature=10.0,
        normalize=normalize,
    )
    np.testing.assert_allclose(np.asarray(ours_w), w, rtol=1e-4, atol=1e-12)
    ours_loss = losses.weighted_step_loss(jnp.asarray(lp, jnp.float32), setting["mask"], ours_w)
    np.testing.assert_allclose(float(ours_loss), expected_loss, rtol=1e-4)


def _batch(setting: dict) -> EpisodeBatch:
    return EpisodeBatch(
        observations=jnp.asarray(setting["obs"]),
        actions=jnp.asarray(setting["actions"]),
        mask=jnp.asarray(setting["mask"]),
        quality=jnp.asarray(setting["quality"]),
        index=jnp.arange(B),
    )


@pytest.mark.parametrize("weighting", ["episode", "transition"])
@pytest.mark.parametrize("loss", ["bc", "iw_trajectory", "iw_quality", "iw_step"])
def test_bc_family_loss_matches_numpy(setting: dict, loss: str, weighting: str) -> None:
    """Episode weighting averages each episode's steps, then episodes; transition weighting
    averages all valid steps of the batch (each times its episode's or its own weight)."""
    config = BCConfig.iw_finetune(loss=loss, weighting=weighting, **NETWORK)
    value, _ = bc_loss(setting["policy"], config)(
        setting["params"], _batch(setting), setting["iw"], setting["ref"]
    )
    lp = numpy_log_probs(setting["params"], setting["obs"], setting["actions"])
    lp_iw = numpy_log_probs(setting["iw"], setting["obs"], setting["actions"])
    lp_ref = numpy_log_probs(setting["ref"], setting["obs"], setting["actions"])
    lengths = setting["lengths"]
    if loss == "bc":
        per_step = [lp[i, :n] for i, n in enumerate(lengths)]
    elif loss == "iw_step":
        w = [
            np.clip(np.exp(10 * (lp_iw[i, :n] - lp_ref[i, :n])), 0, 2)
            for i, n in enumerate(lengths)
        ]
        total = sum(x.sum() for x in w)
        per_step = [w[i] / total * lp[i, :n] for i, n in enumerate(lengths)]
    else:
        quality = setting["quality"] if loss == "iw_quality" else None
        w = reference_trajectory_weights(lp_iw, lp_ref, lengths, 10.0, True, quality)
        per_step = [w[i] * lp[i, :n] for i, n in enumerate(lengths)]
    if weighting == "episode":
        expected = -np.mean([steps.mean() for steps in per_step])
    else:
        expected = -np.concatenate(per_step).mean()
    np.testing.assert_allclose(float(value), expected, rtol=1e-4)


def test_update_moves_ema_before_the_loss(setting: dict) -> None:
    """Each step first sets q_iw ← 0.9 q_iw + 0.1 θ (θ before the step), as the authors do."""
    config = BCConfig.iw_finetune(**NETWORK)
    data = DeviceEpisodes.from_padded(setting["obs"], setting["actions"], setting["mask"])
    stacked = jax.tree.map(lambda x: x[None], setting["params"])
    # A fine-tune from an agent holding θ: params = q_ref = θ; then q_iw set apart from θ.
    start = create_agents(BCAgent, BCConfig(**NETWORK), SPEC, [0]).replace(params=stacked)
    state = create_agents(BCAgent, config, SPEC, [0], init=start)
    state = state.replace(iw_params=jax.tree.map(lambda x: x[None], setting["iw"]))
    new_state, _ = run_chunk(state, data, jnp.asarray(0), 1)
    ema = jax.tree.map(lambda q, p: 0.9 * q + 0.1 * p, setting["iw"], setting["params"])
    for got, want in zip(jax.tree.leaves(new_state.iw_params), jax.tree.leaves(ema), strict=True):
        np.testing.assert_allclose(np.asarray(got[0]), np.asarray(want), rtol=1e-6, atol=1e-8)
    for got, want in zip(
        jax.tree.leaves(new_state.ref_params), jax.tree.leaves(stacked), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert int(new_state.step[0]) == 1


def test_weights_carry_no_gradient(setting: dict) -> None:
    """∇ of the iw loss equals ∇ of Σ const_w · mean log π: the weights are stop-gradient."""
    policy, mask = setting["policy"], setting["mask"]
    obs, actions = setting["obs"], setting["actions"]

    def iw_loss(params: dict) -> jax.Array:
        lp = policy_log_prob(policy, params, obs, actions)
        w = losses.trajectory_weights(lp, lp * 0.5, mask, temperature=2.0, normalize=True)
        return losses.weighted_trajectory_loss(lp, mask, w)

    lp0 = policy_log_prob(policy, setting["params"], obs, actions)
    w0 = losses.trajectory_weights(lp0, lp0 * 0.5, mask, temperature=2.0, normalize=True)

    def fixed_weight_loss(params: dict) -> jax.Array:
        lp = policy_log_prob(policy, params, obs, actions)
        return -jnp.mean(w0 * losses.episode_mean(lp, mask))

    for a, b in zip(
        jax.tree.leaves(jax.grad(iw_loss)(setting["params"])),
        jax.tree.leaves(jax.grad(fixed_weight_loss)(setting["params"])),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


def test_schedule_is_authors_warmup_cosine() -> None:
    """optax's schedule equals the authors' WarmupCosineLR at every step."""
    config = BCConfig.iw_finetune()
    schedule_lr = []
    optimizer = make_optimizer(config)
    params = {"x": jnp.zeros(())}
    state = optimizer.init(params)
    for _ in range(config.steps):
        updates, state = optimizer.update({"x": jnp.ones(())}, state, params)
        schedule_lr.append(-float(updates["x"]))  # Adam's first moments of a constant grad: ≈ lr
    k = np.arange(config.steps)
    warm = 4e-5 * k / 300
    progress = (k - 300) / (2000 - 300)
    cosine = 4e-5 * 0.5 * (1 + np.cos(np.pi * progress))
    expected = np.where(k < 300, warm, cosine)
    np.testing.assert_allclose(schedule_lr, expected, rtol=1e-4, atol=1e-10)


def test_bad_bc_config_is_refused() -> None:
    with pytest.raises(UserError, match="unknown loss"):
        BCConfig(loss="awr")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="warmup_steps"):
        BCConfig(steps=10, warmup_steps=10)
    with pytest.raises(UserError, match="unknown weighting 'steps'; choose one of transition"):
        BCConfig(weighting="steps")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="refresh_every"):
        BCConfig(refresh_every=0)
    for bad in (float("nan"), float("inf"), 0.0, -1.0):
        with pytest.raises(UserError, match="temperature must be a positive finite number"):
            BCConfig(temperature=bad)
        with pytest.raises(UserError, match="learning_rate must be a positive finite number"):
            BCConfig(learning_rate=bad)
    # The network is part of the config now.
    for dims in ((), (16, 0), (16, True)):
        with pytest.raises(UserError, match="hidden_dims must be"):
            BCConfig(hidden_dims=dims)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("steps", True, r"steps and batch_size must be positive integers, got True and 128"),
        ("steps", 50.0, r"steps and batch_size must be positive integers, got 50.0 and 128"),
        ("steps", np.int64(50), r"steps and batch_size must be positive integers, got np.int64"),
        ("batch_size", 64.0, r"steps and batch_size must be positive integers, got 10000 and 64.0"),
        ("window", 2.5, r"window must be a positive number of steps or None, got 2.5"),
        (
            "warmup_steps",
            1.5,
            r"warmup_steps must be in \[0, steps=10000\) \(an integer\), got 1.5",
        ),
        ("refresh_every", True, r"refresh_every must be a positive step count, got True"),
        ("hidden_dims", [32, np.int64(32)], r"hidden_dims must be a non-empty list of integers"),
    ],
)
def test_bc_config_counts_must_be_python_integers(field: str, value: object, message: str) -> None:
    """A float, a bool or a NumPy integer would train the wrong number of steps, fail deep in
    JAX's static shapes, or break a checkpoint's JSON: refused in one line, as baselines do."""
    with pytest.raises(UserError, match=f"^{message}"):
        BCConfig(**{field: value})


def test_a_list_of_hidden_dims_is_kept_as_a_hashable_tuple() -> None:
    """Configs are static arguments of every compiled update, so they must hash."""
    for config in (BCConfig(hidden_dims=[32, 32]), TD3BCConfig(hidden_dims=[32, 32])):
        assert config.hidden_dims == (32, 32)
        hash(config)
    with pytest.raises(UserError, match=r"^TD3BCConfig.steps must be an integer ≥ 1, got 50.0$"):
        TD3BCConfig(steps=50.0)


def test_batch_type_is_a_pytree() -> None:
    batch = EpisodeBatch(
        observations=jnp.zeros((2, 3, 4)),
        actions=jnp.zeros((2, 3, 1)),
        mask=jnp.ones((2, 3)),
        quality=jnp.ones(2),
        index=jnp.arange(2),
    )
    assert len(jax.tree.leaves(batch)) == 5
