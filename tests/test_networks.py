"""The networks: ensemble shapes, each init scheme, each actor option's log-std transform and
bounds against NumPy, and the BC policy's parameter tree (checkpoints and snapshots read it)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iwbc.agents.networks import (
    MLP,
    NORMALIZER,
    DeterministicActor,
    EnsembleCritic,
    GaussianPolicy,
    TanhGaussianActor,
    ValueNet,
)

OBS_DIM, ACT_DIM, BATCH, HIDDEN = 5, 3, 7, (16, 16)
KEY = jax.random.PRNGKey(0)


def observations(scale: float = 1.0, shape: tuple[int, ...] = (BATCH,)) -> jax.Array:
    rng = np.random.default_rng(1)
    return jnp.asarray(scale * rng.normal(size=(*shape, OBS_DIM)), jnp.float32)


def with_fixed_output(params: Any, path: tuple[str, ...], bias: np.ndarray) -> Any:
    """``params`` whose output layer (under ``path``) ignores its input and emits ``bias``."""
    params = jax.tree.map(lambda x: x, params)
    layers = params["params"]
    for name in path:
        layers = layers[name]
    last = layers[f"Dense_{len(HIDDEN)}"]
    last["kernel"] = jnp.zeros_like(last["kernel"])
    last["bias"] = jnp.asarray(bias, jnp.float32)
    return params


@pytest.mark.parametrize("ensemble_size", [1, 2, 5])
def test_ensemble_critic_returns_one_row_per_member(ensemble_size: int) -> None:
    critic = EnsembleCritic(HIDDEN, ensemble_size=ensemble_size)
    obs, actions = observations(), jnp.zeros((BATCH, ACT_DIM))
    params = critic.init(KEY, obs, actions)
    first = params["params"]["VmapMLP_0"]["Dense_0"]["kernel"]
    assert first.shape == (ensemble_size, OBS_DIM + ACT_DIM, HIDDEN[0])
    # Members are independent draws.
    assert len({float(w[0, 0]) for w in first}) == ensemble_size
    assert critic.apply(params, obs, actions).shape == (ensemble_size, BATCH)
    # Any leading batch shape: [n, B, N] for N actions per state.
    many_obs = jnp.broadcast_to(obs[:, None], (BATCH, 4, OBS_DIM))
    assert critic.apply(params, many_obs, jnp.zeros((BATCH, 4, ACT_DIM))).shape == (
        ensemble_size,
        BATCH,
        4,
    )


def test_value_and_deterministic_actor_shapes_and_bounds() -> None:
    obs = observations(scale=50.0)
    value = ValueNet(HIDDEN)
    assert value.apply(value.init(KEY, obs), obs).shape == (BATCH,)
    actor = DeterministicActor(ACT_DIM, HIDDEN)
    actions = actor.apply(actor.init(KEY, obs), obs)
    assert actions.shape == (BATCH, ACT_DIM) and np.all(np.abs(actions) <= 1.0)


def test_default_scheme_is_flax_default_dense() -> None:
    """The default scheme draws what a plain nn.Dense stack draws (TD3+BC, IQL, AWAC, SAC)."""

    class Plain(nn.Module):
        @nn.compact
        def __call__(self, x: jax.Array) -> jax.Array:
            for width in HIDDEN:
                x = nn.relu(nn.Dense(width)(x))
            return nn.Dense(2)(x)

    obs = observations()
    ours, plain = MLP(HIDDEN, 2).init(KEY, obs), Plain().init(KEY, obs)
    jax.tree.map(np.testing.assert_array_equal, ours, plain)


def test_corl_cql_orthogonal_scheme() -> None:
    """Orthogonal kernels with gain √2 in the hidden layers, 1e-2 at the output, zero biases."""
    obs = observations()
    layers = MLP(HIDDEN, 1, "corl_cql_orthogonal").init(KEY, obs)["params"]
    first, hidden, output = (np.asarray(layers[f"Dense_{i}"]["kernel"]) for i in range(3))
    np.testing.assert_allclose(first @ first.T, 2.0 * np.eye(OBS_DIM), atol=1e-5)
    np.testing.assert_allclose(hidden.T @ hidden, 2.0 * np.eye(HIDDEN[1]), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(output), 1e-2, rtol=1e-5)
    assert all(not np.any(layers[f"Dense_{i}"]["bias"]) for i in range(3))


def test_corl_cql_xavier_scheme() -> None:
    """Default hidden layers, a Xavier-uniform output with gain 1e-2 (bound 1e-2·√(6/fans))."""
    obs = observations()
    layers = MLP(HIDDEN, 4, "corl_cql_xavier").init(KEY, obs)["params"]
    default = MLP(HIDDEN, 4).init(KEY, obs)["params"]
    for i in range(2):
        np.testing.assert_array_equal(
            layers[f"Dense_{i}"]["kernel"], default[f"Dense_{i}"]["kernel"]
        )
    output = np.asarray(layers["Dense_2"]["kernel"])
    bound = 1e-2 * np.sqrt(6.0 / (HIDDEN[-1] + 4))
    assert np.all(np.abs(output) <= bound) and np.abs(output).max() > 0.5 * bound
    assert not np.any(layers["Dense_2"]["bias"])


def _torch_bound(fan_in: int) -> float:
    """PyTorch's nn.Linear.reset_parameters: kaiming_uniform_(a=√5) for the weight, bound
    gain·√(3/fan_in) with gain √(2/(1+a²)); the bias uniform in ±1/√fan_in."""
    gain = np.sqrt(2.0 / (1.0 + 5.0))
    return float(gain * np.sqrt(3.0 / fan_in))


def _assert_torch_uniform(values: np.ndarray, fan_in: int) -> None:
    bound = _torch_bound(fan_in)
    assert np.all(np.abs(values) <= bound)
    # Uniform in ±b: with hundreds of draws some near b, and variance b²/3 within 15%.
    if values.size >= 256:
        assert np.abs(values).max() > 0.95 * bound
        np.testing.assert_allclose(values.var(), bound**2 / 3.0, rtol=0.15)


def test_torch_layer_init_is_pytorchs_linear_default_in_every_network() -> None:
    """Kernels and biases of every layer uniform in ±1/√fan_in (the authors' GaussPolicyMLP
    and CORL's agents), where Flax's default draws LeCun-normal kernels and zero biases."""
    wide = (256, 256)
    obs, actions = observations(), jnp.zeros((BATCH, ACT_DIM))
    networks = {
        "policy": GaussianPolicy(ACT_DIM, wide, standardize=False, layer_init="torch").init(
            KEY, obs
        )["params"],
        "critic": EnsembleCritic(wide, ensemble_size=1, layer_init="torch").init(KEY, obs, actions)[
            "params"
        ]["VmapMLP_0"],
        "value": ValueNet(wide, "torch").init(KEY, obs)["params"]["MLP_0"],
        "actor": DeterministicActor(ACT_DIM, wide, "torch").init(KEY, obs)["params"]["MLP_0"],
    }
    for name, layers in networks.items():
        fan_in = OBS_DIM + (ACT_DIM if name == "critic" else 0)
        for i in range(len(wide) + 1):
            kernel = np.asarray(layers[f"Dense_{i}"]["kernel"]).reshape(-1)
            bias = np.asarray(layers[f"Dense_{i}"]["bias"]).reshape(-1)
            _assert_torch_uniform(kernel, fan_in if i == 0 else wide[i - 1])
            _assert_torch_uniform(bias, fan_in if i == 0 else wide[i - 1])
    assert not np.any(networks["policy"]["log_std"])
    # Flax's default is unchanged: LeCun-normal kernels (variance 1/fan_in), zero biases.
    flax = GaussianPolicy(ACT_DIM, wide, standardize=False).init(KEY, obs)["params"]
    np.testing.assert_allclose(np.var(flax["Dense_1"]["kernel"]), 1.0 / 256, rtol=0.1)
    assert not np.any(flax["Dense_1"]["bias"])


def test_torch_layer_init_keeps_corl_cqls_own_layers() -> None:
    """CQL's actor: PyTorch's default hidden layers, its Xavier output layer with zero bias;
    its orthogonal critic is the same whatever ``layer_init``."""
    obs = observations()
    layers = MLP(HIDDEN, 4, "corl_cql_xavier", "torch").init(KEY, obs)["params"]
    _assert_torch_uniform(np.asarray(layers["Dense_0"]["bias"]), OBS_DIM)
    _assert_torch_uniform(np.asarray(layers["Dense_1"]["kernel"]), HIDDEN[0])
    assert np.abs(layers["Dense_2"]["kernel"]).max() <= 1e-2 * np.sqrt(6.0 / (HIDDEN[-1] + 4))
    assert not np.any(layers["Dense_2"]["bias"])
    orthogonal = MLP(HIDDEN, 1, "corl_cql_orthogonal").init(KEY, obs)
    same = MLP(HIDDEN, 1, "corl_cql_orthogonal", "torch").init(KEY, obs)
    jax.tree.map(np.testing.assert_array_equal, orthogonal, same)


def test_unknown_schemes_are_refused() -> None:
    obs = observations()
    with pytest.raises(ValueError, match="init_scheme 'orthogonal'"):
        MLP(HIDDEN, 1, "orthogonal").init(KEY, obs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="layer_init 'pytorch'"):
        MLP(HIDDEN, 1, layer_init="pytorch").init(KEY, obs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="log_std_scheme 'clip'"):
        TanhGaussianActor(ACT_DIM, HIDDEN, log_std_scheme="clip").init(KEY, obs)  # type: ignore[arg-type]


def test_bc_policy_parameter_tree() -> None:
    """Checkpoints, snapshots and evaluate() read this tree: flat Dense layers, log_std, and
    the normalizer collection of a standardizing policy."""
    obs = observations()
    params = GaussianPolicy(ACT_DIM, HIDDEN).init(KEY, obs)
    assert set(params) == {"params", NORMALIZER}
    assert set(params["params"]) == {"Dense_0", "Dense_1", "Dense_2", "log_std"}
    assert set(params[NORMALIZER]) == {"mean", "std"}
    raw = GaussianPolicy(ACT_DIM, HIDDEN, standardize=False).init(KEY, obs)
    assert set(raw) == {"params"}
    jax.tree.map(np.testing.assert_array_equal, raw["params"], params["params"])


@pytest.mark.parametrize("tanh_mean", [True, False])
def test_gaussian_policy_mean_and_clipped_state_independent_log_std(tanh_mean: bool) -> None:
    policy = GaussianPolicy(
        ACT_DIM, HIDDEN, log_std_min=-20.0, log_std_max=2.0, standardize=False, tanh_mean=tanh_mean
    )
    obs = observations()
    raw_mean = np.array([3.0, -0.4, -7.5])
    params = with_fixed_output(policy.init(KEY, obs), (), raw_mean)
    params["params"]["log_std"] = jnp.array([-30.0, 0.5, 9.0])
    mean, log_std = policy.apply(params, obs)
    want_mean = np.tanh(raw_mean) if tanh_mean else raw_mean
    np.testing.assert_allclose(mean, np.broadcast_to(want_mean, (BATCH, ACT_DIM)), rtol=1e-6)
    np.testing.assert_array_equal(log_std, np.broadcast_to([-20.0, 0.5, 2.0], (BATCH, ACT_DIM)))


def test_untanhed_gaussian_mean_is_the_unbounded_mlp_output() -> None:
    """AWAC's actor: the mean is the MLP's linear output, so large inputs leave [-1, 1]."""
    obs = observations(scale=1e3)
    squashed = GaussianPolicy(ACT_DIM, HIDDEN, standardize=False)
    linear = GaussianPolicy(ACT_DIM, HIDDEN, standardize=False, tanh_mean=False)
    params = squashed.init(KEY, obs)
    mean, _ = linear.apply(params, obs)
    assert np.abs(mean).max() > 10.0
    np.testing.assert_allclose(np.tanh(mean), squashed.apply(params, obs)[0], rtol=1e-5)


def test_sac_tanh_log_std_matches_numpy_and_stays_inside_its_range() -> None:
    actor = TanhGaussianActor(ACT_DIM, HIDDEN)  # SAC's defaults: squashed into [-5, 2]
    assert (actor.log_std_scheme, actor.log_std_min, actor.log_std_max) == ("sac_tanh", -5.0, 2.0)
    obs = observations()
    params = actor.init(KEY, obs)
    assert set(params["params"]) == {"MLP_0"}
    raw = np.array([-40.0, -0.7, 0.0, 0.3, 1.9, 40.0])
    for start in (0, 3):
        raw_log_std = raw[start : start + ACT_DIM]
        bias = np.concatenate([[0.1, -0.2, 0.3], raw_log_std])
        mean, log_std = actor.apply(with_fixed_output(params, ("MLP_0",), bias), obs)
        want = -5.0 + 0.5 * (2.0 - -5.0) * (np.tanh(raw_log_std) + 1.0)
        np.testing.assert_allclose(log_std, np.broadcast_to(want, (BATCH, ACT_DIM)), rtol=1e-5)
        np.testing.assert_allclose(mean[0], [0.1, -0.2, 0.3], rtol=1e-6)
    # Any output lands in [min, max]: the ends are reached only where tanh saturates.
    _, log_std = actor.apply(params, observations(scale=1e4))
    assert np.all(log_std >= -5.0) and np.all(log_std <= 2.0)


def test_corl_cql_affine_log_std_matches_numpy_and_is_clipped() -> None:
    actor = TanhGaussianActor(
        ACT_DIM,
        HIDDEN,
        log_std_scheme="corl_cql_affine",
        log_std_min=-20.0,
        log_std_max=2.0,
        init_scheme="corl_cql_xavier",
    )
    obs = observations()
    params = actor.init(KEY, obs)
    assert float(params["params"]["log_std_multiplier"]) == 1.0
    assert float(params["params"]["log_std_offset"]) == -1.0
    # The small output layer starts σ near e^-1 everywhere.
    _, log_std = actor.apply(params, obs)
    np.testing.assert_allclose(log_std, -1.0, atol=0.05)
    raw = np.array([-30.0, 0.4, 5.0])
    params = with_fixed_output(params, ("MLP_0",), np.concatenate([np.zeros(ACT_DIM), raw]))
    params["params"]["log_std_multiplier"] = jnp.asarray(0.8)
    params["params"]["log_std_offset"] = jnp.asarray(-0.5)
    _, log_std = actor.apply(params, obs)
    want = np.clip(0.8 * raw - 0.5, -20.0, 2.0)
    assert want[0] == -20.0 and want[2] == 2.0  # both ends of the clip are exercised
    np.testing.assert_allclose(log_std, np.broadcast_to(want, (BATCH, ACT_DIM)), rtol=1e-5)
