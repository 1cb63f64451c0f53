"""AWAC (Nair et al. 2020): advantage-weighted actor-critic.

The critics are learned by TD with actions sampled from the current policy, and the policy by
regressing onto the data's actions weighted by exp(A(s, a) / λ), A = Q(s, a) − Q(s, a'),
a' ~ π(s). Hyperparameters are CORL's ``awac.py`` defaults for D4RL locomotion.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.struct
import jax
import jax.numpy as jnp

from iwbc.agents.common import (
    POSITIVE,
    Adam,
    Interval,
    OfflineRLAgent,
    OfflineRLConfig,
    Trained,
    after_update,
    gaussian_actor,
    init_actor_critic,
)
from iwbc.agents.networks import EnsembleCritic, GaussianPolicy, gaussian_log_prob
from iwbc.core.agent import DataSpec
from iwbc.core.sampling import TransitionBatch


@dataclasses.dataclass(frozen=True)
class AWACConfig(OfflineRLConfig):
    """CORL ``awac.py``'s code defaults, as JAX-CORL's (rewards left as they are). CORL's D4RL
    locomotion configs set ``awac_lambda`` to 1/3 instead: a suite sets it per method."""

    # CORL's AWAC uses 3 hidden layers of 256 for the actor and both critics.
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    learning_rate: float = 3e-4
    # Temperature of the advantage weights exp(A / λ), clipped at exp_adv_max.
    awac_lambda: float = 1.0
    exp_adv_max: float = 100.0
    # Gaussian actor (mean not squashed, samples clipped to [-1, 1]); log-std clip.
    log_std_min: float = -20.0
    log_std_max: float = 2.0

    bounds: ClassVar[dict[str, Interval]] = {"awac_lambda": POSITIVE, "exp_adv_max": POSITIVE}


def sampled_action(mean: jax.Array, log_std: jax.Array, noise: jax.Array) -> jax.Array:
    """a = clip(μ + σ·ε, −1, 1), ε ~ N(0, 1)."""
    return jnp.clip(mean + jnp.exp(log_std) * noise, -1.0, 1.0)


class AWACAgent(OfflineRLAgent):
    """Actor, twin critics and their targets, optimizer states, state statistics of one seed."""

    config: AWACConfig = flax.struct.field(pytree_node=False)

    @property
    def actor_network(self) -> GaussianPolicy:
        return gaussian_actor(self.action_dim, self.config, tanh_mean=False)

    def critic_loss(
        self, critic_params: Any, batch: TransitionBatch, noise: jax.Array
    ) -> tuple[jax.Array, dict]:
        """Sum over both critics of the MSE to r + γ·(1 − done)·min Q'(s', a'), a' ~ π(s')."""
        mean, log_std = self.actor_network.apply(self.actor.params, batch.next_observations)
        next_actions = sampled_action(mean, log_std, noise)
        next_q = jnp.min(
            self.critic_network.apply(
                self.target_critic_params, batch.next_observations, next_actions
            ),
            axis=0,
        )
        target = batch.rewards + self.config.discount * (1.0 - batch.dones) * next_q
        q = self.critic_network.apply(critic_params, batch.observations, batch.actions)
        loss = jnp.sum(jnp.mean((q - jax.lax.stop_gradient(target)) ** 2, axis=1))
        return loss, {"critic_loss": loss, "q_mean": jnp.mean(q)}

    def actor_loss(
        self, actor_params: Any, batch: TransitionBatch, noise: jax.Array
    ) -> tuple[jax.Array, dict]:
        """−mean(min(exp(A / λ), 100)·log π(a|s)), A = min Q(s, a) − min Q(s, a'), a' ~ π(s)."""
        config = self.config
        mean, log_std = self.actor_network.apply(actor_params, batch.observations)
        policy_actions = sampled_action(mean, log_std, noise)
        v = jnp.min(
            self.critic_network.apply(self.critic.params, batch.observations, policy_actions), 0
        )
        q = jnp.min(
            self.critic_network.apply(self.critic.params, batch.observations, batch.actions), 0
        )
        weights = jax.lax.stop_gradient(
            jnp.minimum(jnp.exp((q - v) / config.awac_lambda), config.exp_adv_max)
        )
        loss = -jnp.mean(weights * gaussian_log_prob(mean, log_std, batch.actions))
        return loss, {"actor_loss": loss, "weight_mean": jnp.mean(weights)}

    def update(self, batch: TransitionBatch) -> tuple[AWACAgent, dict]:
        """A critic step, an actor step with the updated critics, then the target update."""
        config = self.config
        rng, critic_key, actor_key = jax.random.split(self.rng, 3)
        critic_noise = jax.random.normal(critic_key, batch.actions.shape)
        critic_grads, critic_info = jax.grad(self.critic_loss, has_aux=True)(
            self.critic.params, batch, critic_noise
        )
        agent = self.replace(critic=self.critic.apply_gradients(critic_grads))
        actor_noise = jax.random.normal(actor_key, batch.actions.shape)
        actor_grads, actor_info = jax.grad(agent.actor_loss, has_aux=True)(
            self.actor.params, batch, actor_noise
        )
        agent = after_update(agent, rng, actor_grads, agent.critic, config.tau)
        return agent, {"loss": actor_info["actor_loss"], **critic_info, **actor_info}

    def _act(self, observations: jax.Array) -> jax.Array:
        """The Gaussian's mean, clipped to [-1, 1], for raw (unnormalized) observations."""
        mean, _ = self.actor_network.apply(self.actor.params, self.standardize(observations))
        return jnp.clip(mean, -1.0, 1.0)

    @classmethod
    def create(
        cls, key: jax.Array, spec: DataSpec, config: AWACConfig, init: AWACAgent | None = None
    ) -> AWACAgent:
        """A fresh agent for one seed; the target starts as a copy."""
        actor = gaussian_actor(spec.action_dim, config, tanh_mean=False)
        critic = EnsembleCritic(config.hidden_dims, layer_init=config.layer_init)
        rng, actor_params, critic_params, _ = init_actor_critic(key, spec, actor, critic)
        optimizer = Adam(config.learning_rate)
        return cls.fresh(
            rng,
            spec,
            Trained.create(actor_params, optimizer),
            Trained.create(critic_params, optimizer),
            config=config,
        )
