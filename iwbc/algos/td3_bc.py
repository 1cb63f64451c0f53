"""TD3+BC (Fujimoto & Gu 2021): TD3 whose actor loss adds a behaviour-cloning term.

The actor maximizes λ·Q(s, π(s)) − (π(s) − a)² with λ = α / mean|Q|, so the BC term keeps the
policy on the data while the critic is learned as in TD3 (clipped double Q, target policy
smoothing, delayed actor and target updates). Hyperparameters are CORL's D4RL defaults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from iwbc.algos.common import (
    DeterministicActor,
    DoubleCritic,
    TransitionBatch,
    check_config,
    optimizer_step,
    soft_update,
    stack_seeds,
)


@dataclasses.dataclass(frozen=True)
class TD3BCConfig:
    """CORL ``td3_bc.py`` defaults for D4RL locomotion."""

    # Gradient updates of a full run (CORL: max_timesteps = 1M).
    steps: int = 1_000_000
    batch_size: int = 256
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    hidden_dims: tuple[int, ...] = (256, 256)
    discount: float = 0.99
    # Polyak rate of both target networks.
    tau: float = 5e-3
    # Target policy smoothing: noise N(0, policy_noise²) clipped to ±noise_clip.
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    # Actor and targets are updated every policy_freq critic updates.
    policy_freq: int = 2
    # Weight of the Q term relative to BC: λ = alpha / mean|Q|.
    alpha: float = 2.5
    # States normalized with the dataset's mean and std, rewards left as they are (both
    # applied to the data by iwbc.algos.common.prepare_data).
    normalize_states: bool = True

    def __post_init__(self) -> None:
        check_config(self)


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


def bc_actor_loss(q: jax.Array, policy_actions: jax.Array, actions: jax.Array, alpha: float):
    """−λ·mean Q(s, π(s)) + mean (π(s) − a)², λ = α / mean|Q| (λ is not differentiated)."""
    lam = alpha / jax.lax.stop_gradient(jnp.mean(jnp.abs(q)))
    return -lam * jnp.mean(q) + jnp.mean((policy_actions - actions) ** 2), lam


class TD3BCAgent(flax.struct.PyTreeNode):
    """Networks, targets, optimizer states and the dataset's state statistics of one seed."""

    step: jax.Array
    rng: jax.Array
    actor_params: Any
    critic_params: Any
    target_actor_params: Any
    target_critic_params: Any
    actor_opt_state: Any
    critic_opt_state: Any
    obs_mean: jax.Array
    obs_std: jax.Array
    action_dim: int = flax.struct.field(pytree_node=False)
    config: TD3BCConfig = flax.struct.field(pytree_node=False)

    @property
    def actor(self) -> DeterministicActor:
        return DeterministicActor(self.action_dim, self.config.hidden_dims)

    @property
    def critic(self) -> DoubleCritic:
        return DoubleCritic(self.config.hidden_dims)

    def critic_loss(
        self, critic_params: Any, batch: TransitionBatch, noise: jax.Array
    ) -> tuple[jax.Array, dict]:
        """Sum over both critics of the MSE to the smoothed, clipped double-Q TD target."""
        next_actions = smoothed_target_action(
            self.actor.apply(self.target_actor_params, batch.next_observations),
            noise,
            self.config.policy_noise,
            self.config.noise_clip,
        )
        next_q = self.critic.apply(self.target_critic_params, batch.next_observations, next_actions)
        target = critic_target(batch.rewards, batch.dones, next_q, self.config.discount)
        q = self.critic.apply(critic_params, batch.observations, batch.actions)
        loss = jnp.sum(jnp.mean((q - jax.lax.stop_gradient(target)) ** 2, axis=1))
        return loss, {"critic_loss": loss, "q_mean": jnp.mean(q)}

    def actor_loss(
        self, actor_params: Any, critic_params: Any, batch: TransitionBatch
    ) -> tuple[jax.Array, dict]:
        """The BC-regularized actor loss with the first critic's Q."""
        policy_actions = self.actor.apply(actor_params, batch.observations)
        q = self.critic.apply(critic_params, batch.observations, policy_actions)[0]
        loss, lam = bc_actor_loss(q, policy_actions, batch.actions, self.config.alpha)
        return loss, {"actor_loss": loss, "lambda": lam}

    def update(self, batch: TransitionBatch) -> tuple[TD3BCAgent, dict]:
        """One critic step; every ``policy_freq``-th step also an actor step and target update."""
        config = self.config
        rng, noise_key = jax.random.split(self.rng)
        noise = jax.random.normal(noise_key, batch.actions.shape)
        critic_grads, critic_info = jax.grad(self.critic_loss, has_aux=True)(
            self.critic_params, batch, noise
        )
        critic_params, critic_opt_state = optimizer_step(
            optax.adam(config.critic_lr), critic_grads, self.critic_opt_state, self.critic_params
        )

        actor_grads, actor_info = jax.grad(self.actor_loss, has_aux=True)(
            self.actor_params, critic_params, batch
        )
        actor_params, actor_opt_state = optimizer_step(
            optax.adam(config.actor_lr), actor_grads, self.actor_opt_state, self.actor_params
        )
        # Under vmap a cond would run both branches anyway; a select keeps it one straight graph.
        delayed = (self.step + 1) % config.policy_freq == 0

        def when_delayed(new: Any, old: Any) -> Any:
            return jax.tree.map(lambda n, o: jnp.where(delayed, n, o), new, old)

        agent = self.replace(
            step=self.step + 1,
            rng=rng,
            critic_params=critic_params,
            critic_opt_state=critic_opt_state,
            actor_params=when_delayed(actor_params, self.actor_params),
            actor_opt_state=when_delayed(actor_opt_state, self.actor_opt_state),
            target_actor_params=when_delayed(
                soft_update(self.target_actor_params, actor_params, config.tau),
                self.target_actor_params,
            ),
            target_critic_params=when_delayed(
                soft_update(self.target_critic_params, critic_params, config.tau),
                self.target_critic_params,
            ),
        )
        return agent, {"loss": critic_info["critic_loss"], **critic_info, **actor_info}

    def act(self, observations: jax.Array) -> jax.Array:
        """The deterministic action for raw (unnormalized) observations."""
        return self.actor.apply(self.actor_params, (observations - self.obs_mean) / self.obs_std)

    @classmethod
    def create(
        cls,
        seeds: Sequence[int],
        observation_dim: int,
        action_dim: int,
        obs_mean: np.ndarray | None = None,
        obs_std: np.ndarray | None = None,
        config: TD3BCConfig | None = None,
    ) -> TD3BCAgent:
        """Fresh agents for ``seeds``, stacked on a leading axis; targets start as copies."""
        config = TD3BCConfig() if config is None else config
        mean = np.zeros(observation_dim, np.float32) if obs_mean is None else obs_mean
        std = np.ones(observation_dim, np.float32) if obs_std is None else obs_std
        actor = DeterministicActor(action_dim, config.hidden_dims)
        critic = DoubleCritic(config.hidden_dims)
        dummy_obs = jnp.zeros((1, observation_dim))
        dummy_act = jnp.zeros((1, action_dim))

        def create_one(key: jax.Array, obs_mean: jax.Array, obs_std: jax.Array) -> TD3BCAgent:
            rng, actor_key, critic_key = jax.random.split(key, 3)
            actor_params = actor.init(actor_key, dummy_obs)
            critic_params = critic.init(critic_key, dummy_obs, dummy_act)
            return cls(
                step=jnp.zeros((), jnp.int32),
                rng=rng,
                actor_params=actor_params,
                critic_params=critic_params,
                target_actor_params=actor_params,
                target_critic_params=critic_params,
                actor_opt_state=optax.adam(config.actor_lr).init(actor_params),
                critic_opt_state=optax.adam(config.critic_lr).init(critic_params),
                obs_mean=obs_mean,
                obs_std=obs_std,
                action_dim=action_dim,
                config=config,
            )

        cache_key = (cls, observation_dim, action_dim, config)
        return stack_seeds(create_one, seeds, mean, std, cache_key=cache_key)
