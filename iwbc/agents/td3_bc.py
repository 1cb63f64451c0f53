"""TD3+BC (Fujimoto & Gu 2021): TD3 whose actor loss adds a behaviour-cloning term.

The actor maximizes λ·Q(s, π(s)) − (π(s) − a)² with λ = α / mean|Q|, so the BC term keeps the
policy on the data while the critic is learned as in TD3 (clipped double Q, target policy
smoothing, delayed actor and target updates). Hyperparameters are CORL's D4RL defaults.

The BC term is in the env's action units, as the paper states it and its code and CORL compute
it (actor tanh · max_action): iwbc's actions live in [-1, 1] (iwbc.envs.action_box), so on a
wider box, InvertedPendulum's [-3, 3], the difference is scaled back by the box's half-width
first. Left in [-1, 1] units the BC term would weigh 9x less against the Q term there than α
was tuned for.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.struct
import jax
import jax.numpy as jnp

from iwbc.agents.common import (
    NON_NEGATIVE,
    Adam,
    Interval,
    OfflineRLAgent,
    OfflineRLConfig,
    Trained,
    init_actor_critic,
    soft_update,
)
from iwbc.agents.networks import DeterministicActor, EnsembleCritic
from iwbc.core.agent import DataSpec
from iwbc.core.sampling import TransitionBatch


@dataclasses.dataclass(frozen=True)
class TD3BCConfig(OfflineRLConfig):
    """CORL ``td3_bc.py`` defaults for D4RL locomotion (rewards left as they are)."""

    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    # Target policy smoothing: noise N(0, policy_noise²) clipped to ±noise_clip.
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    # Actor and targets are updated every policy_freq critic updates.
    policy_freq: int = 2
    # Weight of the Q term relative to BC: λ = alpha / mean|Q|.
    alpha: float = 2.5

    bounds: ClassVar[dict[str, Interval]] = {
        "policy_noise": NON_NEGATIVE,
        "noise_clip": NON_NEGATIVE,
        "alpha": NON_NEGATIVE,
    }


def critic_target(
    rewards: jax.Array, dones: jax.Array, next_q: jax.Array, discount: float
) -> jax.Array:
    """r + γ·(1 − done)·min(Q1', Q2'); ``next_q`` is [2, B] from the target critics."""
    return rewards + discount * (1.0 - dones) * jnp.min(next_q, axis=0)


def smoothed_target_action(
    target_action: jax.Array, noise: jax.Array, policy_noise: float, noise_clip: float
) -> jax.Array:
    """Target policy smoothing: clip(π'(s') + clip(σ·ε, −c, c), −1, 1), ε ~ N(0, 1)."""
    return jnp.clip(
        target_action + jnp.clip(policy_noise * noise, -noise_clip, noise_clip), -1.0, 1.0
    )


def bc_actor_loss(
    q: jax.Array,
    policy_actions: jax.Array,
    actions: jax.Array,
    alpha: float,
    action_scale: tuple[float, ...] | None = None,
):
    """−λ·mean Q(s, π(s)) + mean (s·(π(s) − a))², λ = α / mean|Q| (λ is not differentiated),
    s the box's half-width per action dimension (None: 1, the actions are the env's)."""
    lam = alpha / jax.lax.stop_gradient(jnp.mean(jnp.abs(q)))
    difference = policy_actions - actions
    if action_scale is not None and any(scale != 1.0 for scale in action_scale):
        difference = difference * jnp.asarray(action_scale, difference.dtype)
    return -lam * jnp.mean(q) + jnp.mean(difference**2), lam


class TD3BCAgent(OfflineRLAgent):
    """Actor and critics with their targets and optimizer states, of one seed."""

    target_actor_params: Any
    config: TD3BCConfig = flax.struct.field(pytree_node=False)
    # The env's action box half-width per dimension (bc_actor_loss); static, so a checkpoint
    # holds the same arrays whatever the box.
    action_scale: tuple[float, ...] | None = flax.struct.field(pytree_node=False, default=None)

    @property
    def actor_network(self) -> DeterministicActor:
        return DeterministicActor(self.action_dim, self.config.hidden_dims)

    def critic_loss(
        self, critic_params: Any, batch: TransitionBatch, noise: jax.Array
    ) -> tuple[jax.Array, dict]:
        """Sum over both critics of the MSE to the smoothed, clipped double-Q TD target."""
        next_actions = smoothed_target_action(
            self.actor_network.apply(self.target_actor_params, batch.next_observations),
            noise,
            self.config.policy_noise,
            self.config.noise_clip,
        )
        next_q = self.critic_network.apply(
            self.target_critic_params, batch.next_observations, next_actions
        )
        target = critic_target(batch.rewards, batch.dones, next_q, self.config.discount)
        q = self.critic_network.apply(critic_params, batch.observations, batch.actions)
        loss = jnp.sum(jnp.mean((q - jax.lax.stop_gradient(target)) ** 2, axis=1))
        return loss, {"critic_loss": loss, "q_mean": jnp.mean(q)}

    def actor_loss(
        self, actor_params: Any, critic_params: Any, batch: TransitionBatch
    ) -> tuple[jax.Array, dict]:
        """The BC-regularized actor loss with the first critic's Q."""
        policy_actions = self.actor_network.apply(actor_params, batch.observations)
        q = self.critic_network.apply(critic_params, batch.observations, policy_actions)[0]
        loss, lam = bc_actor_loss(
            q, policy_actions, batch.actions, self.config.alpha, self.action_scale
        )
        return loss, {"actor_loss": loss, "lambda": lam}

    def update(self, batch: TransitionBatch) -> tuple[TD3BCAgent, dict]:
        """One critic step; every ``policy_freq``-th step also an actor step and target update."""
        config = self.config
        rng, noise_key = jax.random.split(self.rng)
        noise = jax.random.normal(noise_key, batch.actions.shape)
        critic_grads, critic_info = jax.grad(self.critic_loss, has_aux=True)(
            self.critic.params, batch, noise
        )
        critic = self.critic.apply_gradients(critic_grads)
        actor_grads, actor_info = jax.grad(self.actor_loss, has_aux=True)(
            self.actor.params, critic.params, batch
        )
        actor = self.actor.apply_gradients(actor_grads)
        # Under vmap a cond would run both branches anyway; a select keeps it one straight graph.
        delayed = (self.step + 1) % config.policy_freq == 0

        def when_delayed(new: Any, old: Any) -> Any:
            return jax.tree.map(lambda n, o: jnp.where(delayed, n, o), new, old)

        agent = self.replace(
            step=self.step + 1,
            rng=rng,
            critic=critic,
            actor=when_delayed(actor, self.actor),
            target_actor_params=when_delayed(
                soft_update(self.target_actor_params, actor.params, config.tau),
                self.target_actor_params,
            ),
            target_critic_params=when_delayed(
                soft_update(self.target_critic_params, critic.params, config.tau),
                self.target_critic_params,
            ),
        )
        return agent, {"loss": critic_info["critic_loss"], **critic_info, **actor_info}

    def _act(self, observations: jax.Array) -> jax.Array:
        """The deterministic action for raw (unnormalized) observations."""
        return self.actor_network.apply(self.actor.params, self.standardize(observations))

    @classmethod
    def create(
        cls, key: jax.Array, spec: DataSpec, config: TD3BCConfig, init: TD3BCAgent | None = None
    ) -> TD3BCAgent:
        """A fresh agent for one seed; targets start as copies."""
        actor = DeterministicActor(spec.action_dim, config.hidden_dims, config.layer_init)
        critic = EnsembleCritic(config.hidden_dims, layer_init=config.layer_init)
        rng, actor_params, critic_params, _ = init_actor_critic(key, spec, actor, critic)
        return cls.fresh(
            rng,
            spec,
            Trained.create(actor_params, Adam(config.actor_lr)),
            Trained.create(critic_params, Adam(config.critic_lr)),
            target_actor_params=actor_params,
            config=config,
            action_scale=spec.action_scale,
        )
