"""IQL (Kostrikov et al. 2021): in-sample Q-learning with an expectile value, then AWR.

V(s) is fitted as an upper expectile of the target Q over the dataset's actions, Q(s, a) to
r + γ·V(s'), and the policy by advantage-weighted regression, so no out-of-data action is ever
queried. Hyperparameters are CORL's D4RL locomotion defaults.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import flax.struct
import jax
import jax.numpy as jnp

from iwbc.agents.common import (
    NON_NEGATIVE,
    POSITIVE,
    Adam,
    Interval,
    OfflineRLAgent,
    OfflineRLConfig,
    Trained,
    gaussian_actor,
    init_actor_critic,
    later_option,
    soft_update,
)
from iwbc.agents.networks import (
    DeterministicActor,
    EnsembleCritic,
    GaussianPolicy,
    ValueNet,
    policy_log_prob,
    policy_mean_action,
)
from iwbc.core.agent import DataSpec
from iwbc.core.sampling import TransitionBatch


@dataclasses.dataclass(frozen=True)
class IQLConfig(OfflineRLConfig):
    """CORL ``iql.py`` defaults for D4RL locomotion, but rewards scaled on every dataset, as
    the IQL paper and JAX-CORL do (CORL's configs scale them only on Hopper medium and
    medium-replay). The actor's learning rate follows a cosine from actor_lr to 0 over
    ``steps`` (CORL: CosineAnnealingLR)."""

    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    value_lr: float = 3e-4
    # Expectile of the value loss (0.5 would be the mean; 0.7 for locomotion).
    expectile: float = 0.7
    # Inverse temperature of the advantage weights exp(β·A), clipped at exp_adv_max.
    beta: float = 3.0
    exp_adv_max: float = 100.0
    # Gaussian policy's log-std clip (CORL: LOG_STD_MIN = -20, LOG_STD_MAX = 2).
    log_std_min: float = -20.0
    log_std_max: float = 2.0
    # Rewards scaled by 1000 / (max return − min return) (iwbc.core.sampling.prepare_data).
    normalize_rewards: bool = True
    # CORL's iql_deterministic (its Hopper medium and medium-replay configs): the actor is
    # a = tanh(MLP(s)), fitted by the advantage-weighted squared error Σ_j (a_j − π(s)_j)²
    # instead of the weighted log-likelihood.
    deterministic_actor: bool = later_option(False)

    bounds: ClassVar[dict[str, Interval]] = {
        "expectile": Interval(0.0, 1.0, closed_low=False),
        "beta": NON_NEGATIVE,
        "exp_adv_max": POSITIVE,
    }


def expectile_loss(diff: jax.Array, expectile: float) -> jax.Array:
    """mean(|τ − 1[u < 0]|·u²): the asymmetric L2 whose minimizer is the τ-expectile."""
    weight = jnp.where(diff < 0, 1.0 - expectile, expectile)
    return jnp.mean(weight * diff**2)


def advantage_weights(advantages: jax.Array, beta: float, max_weight: float) -> jax.Array:
    """min(exp(β·A), max_weight), the AWR weights of the actor loss."""
    return jnp.minimum(jnp.exp(beta * advantages), max_weight)


class IQLAgent(OfflineRLAgent):
    """Actor, twin critics and their target, value net and their optimizer states."""

    value: Trained
    config: IQLConfig = flax.struct.field(pytree_node=False)

    @property
    def actor_network(self) -> GaussianPolicy | DeterministicActor:
        return _actor(self.action_dim, self.config)

    @property
    def value_network(self) -> ValueNet:
        return ValueNet(self.config.hidden_dims)

    def value_loss(self, value_params: Any, batch: TransitionBatch) -> tuple[jax.Array, dict]:
        """Expectile regression of V(s) on min of the target critics at the data's (s, a)."""
        target_q = jnp.min(
            self.critic_network.apply(self.target_critic_params, batch.observations, batch.actions),
            axis=0,
        )
        v = self.value_network.apply(value_params, batch.observations)
        loss = expectile_loss(jax.lax.stop_gradient(target_q) - v, self.config.expectile)
        return loss, {"value_loss": loss, "v_mean": jnp.mean(v), "adv": target_q - v}

    def critic_loss(
        self, critic_params: Any, batch: TransitionBatch, next_v: jax.Array
    ) -> tuple[jax.Array, dict]:
        """Mean over both critics of the MSE to r + γ·(1 − done)·V(s')."""
        target = batch.rewards + self.config.discount * (1.0 - batch.dones) * next_v
        q = self.critic_network.apply(critic_params, batch.observations, batch.actions)
        loss = jnp.mean((q - jax.lax.stop_gradient(target)) ** 2)
        return loss, {"critic_loss": loss, "q_mean": jnp.mean(q)}

    def actor_loss(
        self, actor_params: Any, batch: TransitionBatch, advantages: jax.Array
    ) -> tuple[jax.Array, dict]:
        """Advantage-weighted regression: mean(min(exp(β·A), 100)·ℓ(s, a)), ℓ = −log π(a|s),
        or Σ_j (a_j − π(s)_j)² for a deterministic actor (CORL's, as its ``_update_policy``)."""
        config = self.config
        weights = advantage_weights(
            jax.lax.stop_gradient(advantages), config.beta, config.exp_adv_max
        )
        if config.deterministic_actor:
            actions = self.actor_network.apply(actor_params, batch.observations)
            regression = jnp.sum((actions - batch.actions) ** 2, axis=-1)
        else:
            regression = -policy_log_prob(
                self.actor_network, actor_params, batch.observations, batch.actions
            )
        loss = jnp.mean(weights * regression)
        return loss, {"actor_loss": loss, "weight_mean": jnp.mean(weights)}

    def update(self, batch: TransitionBatch) -> tuple[IQLAgent, dict]:
        """V, Q and π steps from the same pre-update networks (as CORL), then the target update."""
        next_v = self.value_network.apply(self.value.params, batch.next_observations)
        value_grads, value_info = jax.grad(self.value_loss, has_aux=True)(self.value.params, batch)
        advantages = value_info.pop("adv")
        critic_grads, critic_info = jax.grad(self.critic_loss, has_aux=True)(
            self.critic.params, batch, next_v
        )
        actor_grads, actor_info = jax.grad(self.actor_loss, has_aux=True)(
            self.actor.params, batch, advantages
        )
        value = self.value.apply_gradients(value_grads)
        critic = self.critic.apply_gradients(critic_grads)
        actor = self.actor.apply_gradients(actor_grads)
        agent = self.replace(
            step=self.step + 1,
            actor=actor,
            critic=critic,
            target_critic_params=soft_update(
                self.target_critic_params, critic.params, self.config.tau
            ),
            value=value,
        )
        return agent, {"loss": actor_info["actor_loss"], **value_info, **critic_info, **actor_info}

    def _act(self, observations: jax.Array) -> jax.Array:
        """The Gaussian's mean (or the deterministic actor's action) for raw observations."""
        observations = self.standardize(observations)
        if self.config.deterministic_actor:
            return self.actor_network.apply(self.actor.params, observations)
        return policy_mean_action(self.actor_network, self.actor.params, observations)

    @classmethod
    def create(
        cls, key: jax.Array, spec: DataSpec, config: IQLConfig, init: IQLAgent | None = None
    ) -> IQLAgent:
        """A fresh agent for one seed; the target starts as a copy. The actor's learning rate
        decays to 0 over the run (cosine, as CORL)."""
        actor = _actor(spec.action_dim, config)
        critic = EnsembleCritic(config.hidden_dims, layer_init=config.layer_init)
        rng, actor_params, critic_params, (value_key,) = init_actor_critic(
            key, spec, actor, critic, extra_keys=1
        )
        value = ValueNet(config.hidden_dims, config.layer_init)
        value_params = value.init(value_key, spec.example_observations)
        return cls.fresh(
            rng,
            spec,
            Trained.create(actor_params, Adam(config.actor_lr, "cosine", config.steps)),
            Trained.create(critic_params, Adam(config.critic_lr)),
            value=Trained.create(value_params, Adam(config.value_lr)),
            config=config,
        )


def _actor(action_dim: int, config: IQLConfig) -> GaussianPolicy | DeterministicActor:
    """CORL IQL's actor: a Gaussian with a tanh mean, or its deterministic tanh MLP."""
    if config.deterministic_actor:
        return DeterministicActor(action_dim, config.hidden_dims, config.layer_init)
    return gaussian_actor(action_dim, config, tanh_mean=True)
