"""Policy networks.

The Gaussian policy is the one of the iw-SFT authors' control code (``GaussPolicyMLP``): an MLP
with ReLU hidden layers whose output goes through tanh to give the mean, and a state-independent
log-std parameter clipped to [-5, 2]. Evaluation acts with the mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

LOG_2PI = float(jnp.log(2.0 * jnp.pi))


class GaussianPolicy(nn.Module):
    """π(a|s) = N(tanh(MLP(s)), diag(exp(2·clip(log_std))))."""

    action_dim: int
    hidden_dims: Sequence[int] = (256, 256, 256)
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Return (mean, log_std), both shaped like the actions."""
        x = observations
        for width in self.hidden_dims:
            x = nn.relu(nn.Dense(width)(x))
        mean = jnp.tanh(nn.Dense(self.action_dim)(x))
        raw_log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        log_std = jnp.clip(raw_log_std, self.log_std_min, self.log_std_max)
        return mean, jnp.broadcast_to(log_std, mean.shape)


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
