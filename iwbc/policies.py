"""Policy networks.

The Gaussian policy is the one of the iw-SFT authors' control code (``GaussPolicyMLP``): an MLP
with ReLU hidden layers whose output goes through tanh to give the mean, and a state-independent
log-std parameter clipped to [-5, 2]. Evaluation acts with the mean.

With ``standardize`` (the default) the policy first maps observations to (s − mean) / std with the
training dataset's statistics, held in a ``normalizer`` variable collection beside ``params``: the
statistics then travel with the parameters into every checkpoint, snapshot and evaluation engine,
and a policy cannot be evaluated on inputs other than those it was trained on. The authors'
control code feeds raw observations; ``standardize=False`` reproduces it (no ``normalizer``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

LOG_2PI = float(jnp.log(2.0 * jnp.pi))
# The variable collection holding the observation statistics of a standardizing policy.
NORMALIZER = "normalizer"


class GaussianPolicy(nn.Module):
    """π(a|s) = N(tanh(MLP(z)), diag(exp(2·clip(log_std)))), z = (s − mean) / std or z = s."""

    action_dim: int
    hidden_dims: Sequence[int] = (256, 256, 256)
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    standardize: bool = True

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
        for width in self.hidden_dims:
            x = nn.relu(nn.Dense(width)(x))
        mean = jnp.tanh(nn.Dense(self.action_dim)(x))
        raw_log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        log_std = jnp.clip(raw_log_std, self.log_std_min, self.log_std_max)
        return mean, jnp.broadcast_to(log_std, mean.shape)


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


def check_policy_params(policy: GaussianPolicy, params: Any) -> None:
    """One-line error where parameters and policy disagree on observation standardization.

    Flax would otherwise ignore a ``normalizer`` the policy does not read (acting on raw
    observations with a network trained on standardized ones) or fail deep in ``apply``.
    """
    has_stats = NORMALIZER in params
    if policy.standardize and not has_stats:
        raise ValueError(
            "the policy standardizes observations but its parameters carry no observation "
            "statistics (no 'normalizer'): they were trained on raw observations, so evaluate "
            "them with GaussianPolicy(..., standardize=False), or retrain"
        )
    if has_stats and not policy.standardize:
        raise ValueError(
            "the parameters carry observation statistics ('normalizer') but the policy does not "
            "standardize: build it with GaussianPolicy(..., standardize=True)"
        )


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, actions: jax.Array) -> jax.Array:
    """Log-density of a diagonal Gaussian, summed over the action dimensions."""
    z = (actions - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * LOG_2PI, axis=-1)


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
