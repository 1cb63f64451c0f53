"""Every network of the package, one class per concept, with options for the papers' variants.

- :class:`MLP`: ReLU hidden layers, linear output; ``layer_init`` starts its layers as Flax's
  or PyTorch's default, ``init_scheme`` as one of CORL ``cql.py``'s two initializations.
- :class:`EnsembleCritic`: ``ensemble_size`` independent Q(s, a) MLPs, returning [n, ...]
  (the twin critics of TD3+BC, IQL, CQL, AWAC and SAC).
- :class:`ValueNet`: V(s) (IQL).
- :class:`DeterministicActor`: tanh(MLP(s)) (TD3+BC).
- :class:`GaussianPolicy`: Gaussian with a state-independent log-std: the BC family's policy
  (the iw-SFT authors' ``GaussPolicyMLP``) and CORL IQL's, both with a tanh mean, and CORL
  AWAC's (``tanh_mean=False``).
- :class:`TanhGaussianActor`: tanh-squashed Gaussian whose log-std comes from the same MLP as
  the mean: SAC's tanh-squashed log-std (the behaviour policies), or CORL CQL's learned
  multiplier and offset.

Below them, the densities and the helpers for a :class:`GaussianPolicy`'s parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.typing import Initializer

LOG_2 = float(np.log(2.0))
LOG_2PI = float(jnp.log(2.0 * jnp.pi))
# The variable collection holding the observation statistics of a standardizing policy.
NORMALIZER = "normalizer"

# How a layer that a recipe leaves at its framework's default starts:
# "flax": Flax's nn.Dense default, LeCun-normal kernels and zero biases (iwbc's default).
# "torch": PyTorch's nn.Linear default, kernels and biases uniform in ±1/√fan_in (a third of
#   LeCun's kernel variance), as in CORL's agents and the iw-SFT authors' code.
LayerInit = Literal["flax", "torch"]
# Which layers of an MLP are not at the default (biases of such layers start at zero):
# "default": none; every layer as ``LayerInit`` says (BC, TD3+BC, IQL, AWAC, SAC).
# "corl_cql_orthogonal": CORL cql.py's orthogonal_init=True, orthogonal kernels with gain √2 in
#   the hidden layers and 1e-2 in the output layer (CQL's critics).
# "corl_cql_xavier": CORL cql.py's orthogonal_init=False, default hidden layers and a
#   Xavier-uniform output layer with gain 1e-2 (CQL's actor).
InitScheme = Literal["default", "corl_cql_orthogonal", "corl_cql_xavier"]
# How a TanhGaussianActor turns the MLP's raw log-std output into log σ:
# "sac_tanh": squashed by tanh into [log_std_min, log_std_max] (SAC as D4RL trained its
#   behaviour policies).
# "corl_cql_affine": clip(m·raw + b, log_std_min, log_std_max) with learned scalars m (init 1)
#   and b (init −1) that start the policy narrow (CORL cql.py's TanhGaussianPolicy).
LogStdScheme = Literal["sac_tanh", "corl_cql_affine"]


def one_at_a_time(initializer: Initializer) -> Initializer:
    """``initializer``, drawn one matrix at a time under vmap (over seeds, over the ensemble).

    Orthogonal init runs LAPACK QRs. On CPU, jaxlib 0.10.2 splits a batched QR over the
    intra-op thread pool and waits for it from a thread of that same pool, so two batched QRs
    at once can deadlock a 2-core machine for good (seen creating 3 or more seeds). An
    unbatched QR runs inline.
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        return jax.custom_batching.sequential_vmap(lambda k: initializer(k, shape, dtype))(key)

    return init


def torch_linear_default(fan_in: int) -> Initializer:
    """PyTorch's ``nn.Linear`` default for a layer with ``fan_in`` inputs, kernel or bias:
    uniform in ±1/√fan_in (``kaiming_uniform_(a=√5)`` works out to that bound)."""
    bound = 1.0 / np.sqrt(fan_in)

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _layer_initializers(
    init_scheme: InitScheme, layer_init: LayerInit, fan_in: int, output: bool
) -> tuple[Initializer, Initializer]:
    """The (kernel, bias) initializers of one Dense layer (see :data:`InitScheme`)."""
    init = nn.initializers
    if init_scheme not in get_args(InitScheme):
        raise ValueError(f"unknown init_scheme {init_scheme!r}; expected {get_args(InitScheme)}")
    if layer_init not in get_args(LayerInit):
        raise ValueError(f"unknown layer_init {layer_init!r}; expected {get_args(LayerInit)}")
    if init_scheme == "corl_cql_orthogonal":
        gain = 1e-2 if output else np.sqrt(2.0)
        return one_at_a_time(init.orthogonal(gain)), init.zeros
    if init_scheme == "corl_cql_xavier" and output:
        # Xavier-uniform with gain g is variance scaling g² over the mean fan, uniform.
        return init.variance_scaling(1e-4, "fan_avg", "uniform"), init.zeros
    if layer_init == "torch":
        return torch_linear_default(fan_in), torch_linear_default(fan_in)
    return init.lecun_normal(), init.zeros


def _dense_layers(
    x: jax.Array,
    hidden_dims: Sequence[int],
    output_dim: int,
    init_scheme: InitScheme = "default",
    layer_init: LayerInit = "flax",
) -> jax.Array:
    """ReLU hidden layers and a linear output, made in the calling module's own scope.

    Call it inside an ``nn.compact`` method: the layers are that module's ``Dense_0`` …
    ``Dense_n``, with no submodule level (the parameter tree of :class:`GaussianPolicy`).
    """
    widths = (*hidden_dims, output_dim)
    for i, width in enumerate(widths):
        output = i == len(widths) - 1
        kernel, bias = _layer_initializers(init_scheme, layer_init, x.shape[-1], output)
        x = nn.Dense(width, kernel_init=kernel, bias_init=bias)(x)
        if not output:
            x = nn.relu(x)
    return x


class MLP(nn.Module):
    """ReLU hidden layers, linear output, initialized by ``init_scheme`` and ``layer_init``."""

    hidden_dims: Sequence[int]
    output_dim: int
    init_scheme: InitScheme = "default"
    layer_init: LayerInit = "flax"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return _dense_layers(
            x, self.hidden_dims, self.output_dim, self.init_scheme, self.layer_init
        )


class EnsembleCritic(nn.Module):
    """``ensemble_size`` independent Q(s, a) MLPs; returns [n, ...] for any leading batch shape,
    so the min over the ensemble is one reduction."""

    hidden_dims: Sequence[int] = (256, 256)
    ensemble_size: int = 2
    init_scheme: InitScheme = "default"
    layer_init: LayerInit = "flax"

    @nn.compact
    def __call__(self, observations: jax.Array, actions: jax.Array) -> jax.Array:
        inputs = jnp.concatenate([observations, actions], axis=-1)
        ensemble = nn.vmap(
            MLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.ensemble_size,
        )
        return ensemble(self.hidden_dims, 1, self.init_scheme, self.layer_init)(inputs)[..., 0]


class ValueNet(nn.Module):
    """V(s)."""

    hidden_dims: Sequence[int] = (256, 256)
    layer_init: LayerInit = "flax"

    @nn.compact
    def __call__(self, observations: jax.Array) -> jax.Array:
        return MLP(self.hidden_dims, 1, layer_init=self.layer_init)(observations)[..., 0]


class DeterministicActor(nn.Module):
    """a = tanh(MLP(s)), actions in [-1, 1] (max_action = 1 for the MuJoCo tasks)."""

    action_dim: int
    hidden_dims: Sequence[int] = (256, 256)
    layer_init: LayerInit = "flax"

    @nn.compact
    def __call__(self, observations: jax.Array) -> jax.Array:
        mlp = MLP(self.hidden_dims, self.action_dim, layer_init=self.layer_init)
        return jnp.tanh(mlp(observations))


class GaussianPolicy(nn.Module):
    """π(a|s) = N(μ(z), diag(exp(2·clip(log_std)))), a state-independent log-std parameter.

    μ = tanh(MLP(z)) with ``tanh_mean`` (the default): the iw-SFT authors' control code
    (``GaussPolicyMLP``, log-std clipped to [-5, 2]), the policy of the BC family, and CORL
    IQL's. μ = MLP(z), unbounded, with ``tanh_mean=False``: CORL AWAC's actor, whose samples
    are clipped to the action box instead. Evaluation acts with the mean.

    With ``standardize`` (the default) the policy first maps observations to z = (s − mean) /
    std with the training dataset's statistics, held in a ``normalizer`` variable collection
    beside ``params``: the statistics then travel with the parameters into every checkpoint,
    snapshot and evaluation engine, and a policy cannot be evaluated on inputs other than those
    it was trained on. The authors' control code feeds raw observations; ``standardize=False``
    reproduces it (no ``normalizer``), and the offline-RL agents, which standardize their
    transitions themselves, use it too.
    """

    action_dim: int
    hidden_dims: Sequence[int] = (256, 256, 256)
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    standardize: bool = True
    tanh_mean: bool = True
    layer_init: LayerInit = "flax"

    @nn.compact
    def __call__(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Return (mean, log_std), both shaped like the actions."""
        x = observations
        if self.standardize:
            dim = observations.shape[-1]
            mean = self.variable(NORMALIZER, "mean", jnp.zeros, (dim,), jnp.float32).value
            std = self.variable(NORMALIZER, "std", jnp.ones, (dim,), jnp.float32).value
            # Statistics of the data, not parameters: no gradient reaches them.
            x = (x - jax.lax.stop_gradient(mean)) / jax.lax.stop_gradient(std)
        mean = _dense_layers(x, self.hidden_dims, self.action_dim, layer_init=self.layer_init)
        if self.tanh_mean:
            mean = jnp.tanh(mean)
        raw_log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        log_std = jnp.clip(raw_log_std, self.log_std_min, self.log_std_max)
        return mean, jnp.broadcast_to(log_std, mean.shape)


class TanhGaussianActor(nn.Module):
    """π(a|s) = tanh(N(μ(s), σ(s)²)): one MLP gives μ and a raw log σ, which ``log_std_scheme``
    maps into [log_std_min, log_std_max] (see :data:`LogStdScheme`).

    The defaults are SAC's (2 x 256, ``"sac_tanh"`` into [-5, 2]); CORL CQL's actor is
    ``log_std_scheme="corl_cql_affine"``, ``log_std_min=-20``, ``init_scheme="corl_cql_xavier"``.
    """

    action_dim: int
    hidden_dims: Sequence[int] = (256, 256)
    log_std_scheme: LogStdScheme = "sac_tanh"
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    init_scheme: InitScheme = "default"
    layer_init: LayerInit = "flax"

    @nn.compact
    def __call__(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Return (mean, log_std) of the Gaussian before the tanh."""
        mlp = MLP(self.hidden_dims, 2 * self.action_dim, self.init_scheme, self.layer_init)
        out = mlp(observations)
        mean, raw_log_std = jnp.split(out, 2, axis=-1)
        low, high = self.log_std_min, self.log_std_max
        if self.log_std_scheme == "sac_tanh":
            log_std = low + 0.5 * (high - low) * (jnp.tanh(raw_log_std) + 1.0)
        elif self.log_std_scheme == "corl_cql_affine":
            multiplier = self.param("log_std_multiplier", nn.initializers.constant(1.0), ())
            offset = self.param("log_std_offset", nn.initializers.constant(-1.0), ())
            log_std = jnp.clip(multiplier * raw_log_std + offset, low, high)
        else:
            expected = get_args(LogStdScheme)
            raise ValueError(f"unknown log_std_scheme {self.log_std_scheme!r}; expected {expected}")
        return mean, log_std


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, actions: jax.Array) -> jax.Array:
    """Log-density of a diagonal Gaussian, summed over the action dimensions."""
    z = (actions - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * LOG_2PI, axis=-1)


def tanh_gaussian_sample(
    mean: jax.Array, log_std: jax.Array, noise: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Reparameterized a = tanh(μ + σ·ε) and its log-density, summed over action dimensions.

    log(1 − tanh(u)²) is written 2·(log 2 − u − softplus(−2u)), finite where tanh saturates.
    """
    pre_tanh = mean + jnp.exp(log_std) * noise
    gaussian = jnp.sum(-0.5 * noise**2 - log_std - 0.5 * LOG_2PI, axis=-1)
    squash = jnp.sum(2.0 * (LOG_2 - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh)), axis=-1)
    return jnp.tanh(pre_tanh), gaussian - squash


def policy_log_prob(
    policy: GaussianPolicy, params: dict, observations: jax.Array, actions: jax.Array
) -> jax.Array:
    """log π(a|s) for any leading batch shape."""
    mean, log_std = policy.apply(params, observations)
    return gaussian_log_prob(mean, log_std, actions)


def policy_mean_action(policy: GaussianPolicy, params: dict, observations: jax.Array) -> jax.Array:
    """The deterministic action used at evaluation: the Gaussian's mean."""
    mean, _ = policy.apply(params, observations)
    return mean


def with_statistics(params: Any, mean: np.ndarray, std: np.ndarray) -> Any:
    """``params`` (any leading seed axes) with the observation statistics set in ``normalizer``."""
    if NORMALIZER not in params:
        raise ValueError(
            "these policy parameters have no normalizer: build the policy with "
            "standardize=True to give it observation statistics"
        )
    shape = np.shape(params[NORMALIZER]["mean"])
    stats = {
        "mean": jnp.broadcast_to(jnp.asarray(mean, jnp.float32), shape),
        "std": jnp.broadcast_to(jnp.asarray(std, jnp.float32), shape),
    }
    return {**params, NORMALIZER: stats}
