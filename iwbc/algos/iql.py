"""IQL (Kostrikov et al. 2021): in-sample Q-learning with an expectile value, then AWR.

V(s) is fitted as an upper expectile of the target Q over the dataset's actions, Q(s, a) to
r + γ·V(s'), and the policy by advantage-weighted regression, so no out-of-data action is ever
queried. Hyperparameters are CORL's D4RL locomotion defaults.
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
    DoubleCritic,
    TransitionBatch,
    ValueNet,
    check_config,
    optimizer_step,
    soft_update,
    stack_seeds,
)
from iwbc.policies import GaussianPolicy, policy_log_prob, policy_mean_action


@dataclasses.dataclass(frozen=True)
class IQLConfig:
    """CORL ``iql.py`` defaults for D4RL locomotion."""

    # Gradient updates of a full run (CORL: max_timesteps = 1M). The actor's learning rate
    # follows a cosine from actor_lr to 0 over them (CORL: CosineAnnealingLR).
    steps: int = 1_000_000
    batch_size: int = 256
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    value_lr: float = 3e-4
    hidden_dims: tuple[int, ...] = (256, 256)
    discount: float = 0.99
    # Polyak rate of the target critics.
    tau: float = 5e-3
    # Expectile of the value loss (0.5 would be the mean; 0.7 for locomotion).
    expectile: float = 0.7
    # Inverse temperature of the advantage weights exp(β·A), clipped at exp_adv_max.
    beta: float = 3.0
    exp_adv_max: float = 100.0
    # Gaussian policy's log-std clip (CORL: LOG_STD_MIN = -20, LOG_STD_MAX = 2).
    log_std_min: float = -20.0
    log_std_max: float = 2.0
    # States normalized; rewards scaled by 1000 / (max return − min return). Both are applied
    # to the data by iwbc.algos.common.prepare_data.
    normalize_states: bool = True
    normalize_rewards: bool = True

    def __post_init__(self) -> None:
        check_config(self)


def expectile_loss(diff: jax.Array, expectile: float) -> jax.Array:
    """mean(|τ − 1[u < 0]|·u²): the asymmetric L2 whose minimizer is the τ-expectile."""
    weight = jnp.where(diff < 0, 1.0 - expectile, expectile)
    return jnp.mean(weight * diff**2)


def advantage_weights(advantages: jax.Array, beta: float, max_weight: float) -> jax.Array:
    """min(exp(β·A), max_weight), the AWR weights of the actor loss."""
    return jnp.minimum(jnp.exp(beta * advantages), max_weight)


class IQLAgent(flax.struct.PyTreeNode):
    """Actor, twin critics and their targets, value net, optimizer states, state statistics."""

    step: jax.Array
    rng: jax.Array
    actor_params: Any
    critic_params: Any
    target_critic_params: Any
    value_params: Any
    actor_opt_state: Any
    critic_opt_state: Any
    value_opt_state: Any
    obs_mean: jax.Array
    obs_std: jax.Array
    action_dim: int = flax.struct.field(pytree_node=False)
    config: IQLConfig = flax.struct.field(pytree_node=False)

    @property
    def actor(self) -> GaussianPolicy:
        return _actor(self.action_dim, self.config)

    @property
    def critic(self) -> DoubleCritic:
        return DoubleCritic(self.config.hidden_dims)

    @property
    def value(self) -> ValueNet:
        return ValueNet(self.config.hidden_dims)

    def value_loss(self, value_params: Any, batch: TransitionBatch) -> tuple[jax.Array, dict]:
        """Expectile regression of V(s) on min of the target critics at the data's (s, a)."""
        target_q = jnp.min(
            self.critic.apply(self.target_critic_params, batch.observations, batch.actions), axis=0
        )
        v = self.value.apply(value_params, batch.observations)
        loss = expectile_loss(jax.lax.stop_gradient(target_q) - v, self.config.expectile)
        return loss, {"value_loss": loss, "v_mean": jnp.mean(v), "adv": target_q - v}

    def critic_loss(
        self, critic_params: Any, batch: TransitionBatch, next_v: jax.Array
    ) -> tuple[jax.Array, dict]:
        """Mean over both critics of the MSE to r + γ·(1 − done)·V(s')."""
        target = batch.rewards + self.config.discount * (1.0 - batch.dones) * next_v
        q = self.critic.apply(critic_params, batch.observations, batch.actions)
        loss = jnp.mean((q - jax.lax.stop_gradient(target)) ** 2)
        return loss, {"critic_loss": loss, "q_mean": jnp.mean(q)}

    def actor_loss(
        self, actor_params: Any, batch: TransitionBatch, advantages: jax.Array
    ) -> tuple[jax.Array, dict]:
        """Advantage-weighted regression: −mean(min(exp(β·A), 100)·log π(a|s))."""
        config = self.config
        weights = advantage_weights(
            jax.lax.stop_gradient(advantages), config.beta, config.exp_adv_max
        )
        log_probs = policy_log_prob(self.actor, actor_params, batch.observations, batch.actions)
        loss = -jnp.mean(weights * log_probs)
        return loss, {"actor_loss": loss, "weight_mean": jnp.mean(weights)}

    def update(self, batch: TransitionBatch) -> tuple[IQLAgent, dict]:
        """V, Q and π steps from the same pre-update networks (as CORL), then the target update."""
        config = self.config
        next_v = self.value.apply(self.value_params, batch.next_observations)
        value_grads, value_info = jax.grad(self.value_loss, has_aux=True)(self.value_params, batch)
        advantages = value_info.pop("adv")
        critic_grads, critic_info = jax.grad(self.critic_loss, has_aux=True)(
            self.critic_params, batch, next_v
        )
        actor_grads, actor_info = jax.grad(self.actor_loss, has_aux=True)(
            self.actor_params, batch, advantages
        )
        value_params, value_opt_state = optimizer_step(
            optax.adam(config.value_lr), value_grads, self.value_opt_state, self.value_params
        )
        critic_params, critic_opt_state = optimizer_step(
            optax.adam(config.critic_lr), critic_grads, self.critic_opt_state, self.critic_params
        )
        actor_params, actor_opt_state = optimizer_step(
            _actor_optimizer(config), actor_grads, self.actor_opt_state, self.actor_params
        )
        agent = self.replace(
            step=self.step + 1,
            actor_params=actor_params,
            critic_params=critic_params,
            target_critic_params=soft_update(self.target_critic_params, critic_params, config.tau),
            value_params=value_params,
            actor_opt_state=actor_opt_state,
            critic_opt_state=critic_opt_state,
            value_opt_state=value_opt_state,
        )
        return agent, {"loss": actor_info["actor_loss"], **value_info, **critic_info, **actor_info}

    def act(self, observations: jax.Array) -> jax.Array:
        """The Gaussian's mean for raw (unnormalized) observations."""
        normalized = (observations - self.obs_mean) / self.obs_std
        return policy_mean_action(self.actor, self.actor_params, normalized)

    @classmethod
    def create(
        cls,
        seeds: Sequence[int],
        observation_dim: int,
        action_dim: int,
        obs_mean: np.ndarray | None = None,
        obs_std: np.ndarray | None = None,
        config: IQLConfig | None = None,
    ) -> IQLAgent:
        """Fresh agents for ``seeds``, stacked on a leading axis; the target starts as a copy."""
        config = IQLConfig() if config is None else config
        mean = np.zeros(observation_dim, np.float32) if obs_mean is None else obs_mean
        std = np.ones(observation_dim, np.float32) if obs_std is None else obs_std
        actor = _actor(action_dim, config)
        critic = DoubleCritic(config.hidden_dims)
        value = ValueNet(config.hidden_dims)
        dummy_obs = jnp.zeros((1, observation_dim))
        dummy_act = jnp.zeros((1, action_dim))

        def create_one(key: jax.Array, obs_mean: jax.Array, obs_std: jax.Array) -> IQLAgent:
            rng, actor_key, critic_key, value_key = jax.random.split(key, 4)
            actor_params = actor.init(actor_key, dummy_obs)
            critic_params = critic.init(critic_key, dummy_obs, dummy_act)
            value_params = value.init(value_key, dummy_obs)
            return cls(
                step=jnp.zeros((), jnp.int32),
                rng=rng,
                actor_params=actor_params,
                critic_params=critic_params,
                target_critic_params=critic_params,
                value_params=value_params,
                actor_opt_state=_actor_optimizer(config).init(actor_params),
                critic_opt_state=optax.adam(config.critic_lr).init(critic_params),
                value_opt_state=optax.adam(config.value_lr).init(value_params),
                obs_mean=obs_mean,
                obs_std=obs_std,
                action_dim=action_dim,
                config=config,
            )

        cache_key = (cls, observation_dim, action_dim, config)
        return stack_seeds(create_one, seeds, mean, std, cache_key=cache_key)


def _actor(action_dim: int, config: IQLConfig) -> GaussianPolicy:
    return GaussianPolicy(
        action_dim=action_dim,
        hidden_dims=config.hidden_dims,
        log_std_min=config.log_std_min,
        log_std_max=config.log_std_max,
        # The agent standardizes its transitions itself (prepare_data) and acts through act().
        standardize=False,
    )


def _actor_optimizer(config: IQLConfig) -> optax.GradientTransformation:
    return optax.adam(optax.cosine_decay_schedule(config.actor_lr, config.steps))
