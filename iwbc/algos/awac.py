"""AWAC (Nair et al. 2020): advantage-weighted actor-critic.

The critics are learned by TD with actions sampled from the current policy, and the policy by
regressing onto the data's actions weighted by exp(A(s, a) / λ), A = Q(s, a) − Q(s, a'),
a' ~ π(s). Hyperparameters are CORL's ``awac.py`` defaults for D4RL locomotion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from iwbc.algos.common import (
    MLP,
    DoubleCritic,
    TransitionBatch,
    check_config,
    optimizer_step,
    soft_update,
    stack_seeds,
)
from iwbc.policies import gaussian_log_prob


@dataclasses.dataclass(frozen=True)
class AWACConfig:
    """CORL ``awac.py`` defaults for D4RL locomotion."""

    # Gradient updates of a full run (CORL: num_train_ops = 1M).
    steps: int = 1_000_000
    batch_size: int = 256
    learning_rate: float = 3e-4
    # CORL's AWAC uses 3 hidden layers of 256 for the actor and both critics.
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    discount: float = 0.99
    # Polyak rate of the target critics.
    tau: float = 5e-3
    # Temperature of the advantage weights exp(A / λ), clipped at exp_adv_max.
    awac_lambda: float = 1.0
    exp_adv_max: float = 100.0
    # Gaussian actor (mean not squashed, samples clipped to [-1, 1]); log-std clip.
    log_std_min: float = -20.0
    log_std_max: float = 2.0
    # States normalized with the dataset's mean and std, rewards left as they are (both
    # applied to the data by iwbc.algos.common.prepare_data).
    normalize_states: bool = True

    def __post_init__(self) -> None:
        check_config(self)


class GaussianActor(nn.Module):
    """π(a|s) = N(MLP(s), diag(exp(2·clip(log_std)))), state-independent log-std (CORL AWAC)."""

    action_dim: int
    hidden_dims: Sequence[int]
    log_std_min: float
    log_std_max: float

    @nn.compact
    def __call__(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Return (mean, log_std), both shaped like the actions."""
        mean = MLP(self.hidden_dims, self.action_dim)(observations)
        raw = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        log_std = jnp.clip(raw, self.log_std_min, self.log_std_max)
        return mean, jnp.broadcast_to(log_std, mean.shape)


def sampled_action(mean: jax.Array, log_std: jax.Array, noise: jax.Array) -> jax.Array:
    """a = clip(μ + σ·ε, −1, 1), ε ~ N(0, 1)."""
    return jnp.clip(mean + jnp.exp(log_std) * noise, -1.0, 1.0)


class AWACAgent(flax.struct.PyTreeNode):
    """Actor, twin critics and their targets, optimizer states, state statistics of one seed."""

    step: jax.Array
    rng: jax.Array
    actor_params: Any
    critic_params: Any
    target_critic_params: Any
    actor_opt_state: Any
    critic_opt_state: Any
    obs_mean: jax.Array
    obs_std: jax.Array
    action_dim: int = flax.struct.field(pytree_node=False)
    config: AWACConfig = flax.struct.field(pytree_node=False)

    @property
    def actor(self) -> GaussianActor:
        return _actor(self.action_dim, self.config)

    @property
    def critic(self) -> DoubleCritic:
        return DoubleCritic(self.config.hidden_dims)

    def critic_loss(
        self, critic_params: Any, batch: TransitionBatch, noise: jax.Array
    ) -> tuple[jax.Array, dict]:
        """Sum over both critics of the MSE to r + γ·(1 − done)·min Q'(s', a'), a' ~ π(s')."""
        mean, log_std = self.actor.apply(self.actor_params, batch.next_observations)
        next_actions = sampled_action(mean, log_std, noise)
        next_q = jnp.min(
            self.critic.apply(self.target_critic_params, batch.next_observations, next_actions),
            axis=0,
        )
        target = batch.rewards + self.config.discount * (1.0 - batch.dones) * next_q
        q = self.critic.apply(critic_params, batch.observations, batch.actions)
        loss = jnp.sum(jnp.mean((q - jax.lax.stop_gradient(target)) ** 2, axis=1))
        return loss, {"critic_loss": loss, "q_mean": jnp.mean(q)}

    def actor_loss(
        self, actor_params: Any, batch: TransitionBatch, noise: jax.Array
    ) -> tuple[jax.Array, dict]:
        """−mean(min(exp(A / λ), 100)·log π(a|s)), A = min Q(s, a) − min Q(s, a'), a' ~ π(s)."""
        config = self.config
        mean, log_std = self.actor.apply(actor_params, batch.observations)
        policy_actions = sampled_action(mean, log_std, noise)
        v = jnp.min(self.critic.apply(self.critic_params, batch.observations, policy_actions), 0)
        q = jnp.min(self.critic.apply(self.critic_params, batch.observations, batch.actions), 0)
        weights = jax.lax.stop_gradient(
            jnp.minimum(jnp.exp((q - v) / config.awac_lambda), config.exp_adv_max)
        )
        loss = -jnp.mean(weights * gaussian_log_prob(mean, log_std, batch.actions))
        return loss, {"actor_loss": loss, "weight_mean": jnp.mean(weights)}

    def update(self, batch: TransitionBatch) -> tuple[AWACAgent, dict]:
        """A critic step, an actor step with the updated critics, then the target update."""
        config = self.config
        optimizer = optax.adam(config.learning_rate)
        rng, critic_key, actor_key = jax.random.split(self.rng, 3)
        critic_noise = jax.random.normal(critic_key, batch.actions.shape)
        critic_grads, critic_info = jax.grad(self.critic_loss, has_aux=True)(
            self.critic_params, batch, critic_noise
        )
        critic_params, critic_opt_state = optimizer_step(
            optimizer, critic_grads, self.critic_opt_state, self.critic_params
        )
        agent = self.replace(critic_params=critic_params, critic_opt_state=critic_opt_state)

        actor_noise = jax.random.normal(actor_key, batch.actions.shape)
        actor_grads, actor_info = jax.grad(agent.actor_loss, has_aux=True)(
            self.actor_params, batch, actor_noise
        )
        actor_params, actor_opt_state = optimizer_step(
            optimizer, actor_grads, self.actor_opt_state, self.actor_params
        )
        agent = agent.replace(
            step=self.step + 1,
            rng=rng,
            actor_params=actor_params,
            actor_opt_state=actor_opt_state,
            target_critic_params=soft_update(self.target_critic_params, critic_params, config.tau),
        )
        return agent, {"loss": actor_info["actor_loss"], **critic_info, **actor_info}

    def act(self, observations: jax.Array) -> jax.Array:
        """The Gaussian's mean, clipped to [-1, 1], for raw (unnormalized) observations."""
        mean, _ = self.actor.apply(self.actor_params, (observations - self.obs_mean) / self.obs_std)
        return jnp.clip(mean, -1.0, 1.0)

    @classmethod
    def create(
        cls,
        seeds: Sequence[int],
        observation_dim: int,
        action_dim: int,
        obs_mean: np.ndarray | None = None,
        obs_std: np.ndarray | None = None,
        config: AWACConfig | None = None,
    ) -> AWACAgent:
        """Fresh agents for ``seeds``, stacked on a leading axis; the target starts as a copy."""
        config = AWACConfig() if config is None else config
        mean = np.zeros(observation_dim, np.float32) if obs_mean is None else obs_mean
        std = np.ones(observation_dim, np.float32) if obs_std is None else obs_std
        actor = _actor(action_dim, config)
        critic = DoubleCritic(config.hidden_dims)
        optimizer = optax.adam(config.learning_rate)
        dummy_obs = jnp.zeros((1, observation_dim))
        dummy_act = jnp.zeros((1, action_dim))

        def create_one(key: jax.Array, obs_mean: jax.Array, obs_std: jax.Array) -> AWACAgent:
            rng, actor_key, critic_key = jax.random.split(key, 3)
            actor_params = actor.init(actor_key, dummy_obs)
            critic_params = critic.init(critic_key, dummy_obs, dummy_act)
            return cls(
                step=jnp.zeros((), jnp.int32),
                rng=rng,
                actor_params=actor_params,
                critic_params=critic_params,
                target_critic_params=critic_params,
                actor_opt_state=optimizer.init(actor_params),
                critic_opt_state=optimizer.init(critic_params),
                obs_mean=obs_mean,
                obs_std=obs_std,
                action_dim=action_dim,
                config=config,
            )

        cache_key = (cls, observation_dim, action_dim, config)
        return stack_seeds(create_one, seeds, mean, std, cache_key=cache_key)


def _actor(action_dim: int, config: AWACConfig) -> GaussianActor:
    return GaussianActor(action_dim, config.hidden_dims, config.log_std_min, config.log_std_max)
