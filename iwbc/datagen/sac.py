"""Soft actor-critic (Haarnoja et al. 2018, with automatic temperature) for behaviour policies.

SAC is online, so the environment runs on the host and only the learning is compiled: the
replay buffer lives on the device, and a chunk of updates is one jitted ``lax.scan`` that
samples its minibatches there (:func:`iwbc.core.trainer.run_updates`: SAC is an agent of
:mod:`iwbc.core.agent`'s interface whose training data is the buffer). This is D4RL's recipe
for its behaviour policies (SAC, two 256-unit hidden layers, learning rates 3e-4, γ = 0.99,
τ = 5e-3, target entropy −|A|).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from iwbc.agents.common import Adam, Trained, after_update, init_actor_critic
from iwbc.agents.networks import EnsembleCritic, TanhGaussianActor, tanh_gaussian_sample
from iwbc.core.agent import Agent, DataSpec
from iwbc.core.sampling import TransitionBatch


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """Hyperparameters of SAC v2 as D4RL trained its behaviour policies."""

    hidden_dims: tuple[int, ...] = (256, 256)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temperature_lr: float = 3e-4
    discount: float = 0.99
    tau: float = 5e-3
    batch_size: int = 256
    init_temperature: float = 1.0
    # None: −|A|, the usual heuristic.
    target_entropy: float | None = None


class ReplayBuffer(flax.struct.PyTreeNode):
    """A fixed-capacity transition store on the device, filled in order and never overwritten.

    Behaviour training keeps every transition (medium-replay is the buffer itself), so the
    capacity is the run's total number of env steps and there is no ring to wrap.
    """

    data: TransitionBatch
    size: jax.Array

    @classmethod
    def create(cls, capacity: int, observation_dim: int, action_dim: int) -> ReplayBuffer:
        def zeros(*shape: int) -> jax.Array:
            return jnp.zeros((capacity, *shape), jnp.float32)

        data = TransitionBatch(
            observations=zeros(observation_dim),
            actions=zeros(action_dim),
            rewards=zeros(),
            next_observations=zeros(observation_dim),
            dones=zeros(),
        )
        return cls(data=data, size=jnp.zeros((), jnp.int32))

    @property
    def capacity(self) -> int:
        return int(self.data.rewards.shape[0])


@functools.partial(jax.jit, donate_argnums=0)
def buffer_append(buffer: ReplayBuffer, transitions: TransitionBatch) -> ReplayBuffer:
    """The buffer with ``transitions`` (leading axis n) written at its end."""
    data = jax.tree.map(
        lambda store, new: jax.lax.dynamic_update_slice_in_dim(
            store, new.astype(store.dtype), buffer.size, axis=0
        ),
        buffer.data,
        transitions,
    )
    return buffer.replace(data=data, size=buffer.size + transitions.rewards.shape[0])


class SACAgent(Agent):
    """Actor, twin critics with a Polyak target, the log-temperature and their optimizers.

    Its training data is the replay buffer: ``sample`` draws uniformly from its filled part.
    """

    actor: Trained
    critic: Trained
    target_critic_params: Any
    log_temperature: Trained
    action_dim: int = flax.struct.field(pytree_node=False)
    config: SACConfig = flax.struct.field(pytree_node=False)

    @property
    def actor_network(self) -> TanhGaussianActor:
        return TanhGaussianActor(self.action_dim, self.config.hidden_dims)

    @property
    def critic_network(self) -> EnsembleCritic:
        return EnsembleCritic(self.config.hidden_dims)

    @property
    def target_entropy(self) -> float:
        target = self.config.target_entropy
        return -float(self.action_dim) if target is None else target

    def critic_loss(
        self, critic_params: Any, batch: TransitionBatch, next_noise: jax.Array
    ) -> tuple[jax.Array, dict]:
        """Σ over both critics of the MSE to r + γ(1 − d)(min Q'(s', a') − α log π(a'|s'))."""
        mean, log_std = self.actor_network.apply(self.actor.params, batch.next_observations)
        next_actions, next_log_prob = tanh_gaussian_sample(mean, log_std, next_noise)
        next_q = self.critic_network.apply(
            self.target_critic_params, batch.next_observations, next_actions
        )
        soft_value = jnp.min(next_q, axis=0) - jnp.exp(self.log_temperature.params) * next_log_prob
        target = batch.rewards + self.config.discount * (1.0 - batch.dones) * soft_value
        q = self.critic_network.apply(critic_params, batch.observations, batch.actions)
        loss = jnp.sum(jnp.mean((q - jax.lax.stop_gradient(target)) ** 2, axis=1))
        return loss, {"critic_loss": loss, "q_mean": jnp.mean(q)}

    def actor_loss(
        self, actor_params: Any, critic_params: Any, batch: TransitionBatch, noise: jax.Array
    ) -> tuple[jax.Array, dict]:
        """mean(α log π(a|s) − min Q(s, a)), a reparameterized from π."""
        mean, log_std = self.actor_network.apply(actor_params, batch.observations)
        actions, log_prob = tanh_gaussian_sample(mean, log_std, noise)
        q = jnp.min(self.critic_network.apply(critic_params, batch.observations, actions), axis=0)
        loss = jnp.mean(jnp.exp(self.log_temperature.params) * log_prob - q)
        return loss, {"actor_loss": loss, "entropy": -jnp.mean(log_prob), "log_prob": log_prob}

    def temperature_loss(self, log_temperature: jax.Array, log_prob: jax.Array) -> jax.Array:
        """−mean(log α · (log π + H̄)): raises α while the entropy is below its target."""
        return -jnp.mean(log_temperature * jax.lax.stop_gradient(log_prob + self.target_entropy))

    def update(self, batch: TransitionBatch) -> tuple[SACAgent, dict]:
        """One critic, actor and temperature step, then the target update."""
        config = self.config
        rng, next_key, key = jax.random.split(self.rng, 3)
        next_noise = jax.random.normal(next_key, batch.actions.shape)
        noise = jax.random.normal(key, batch.actions.shape)

        critic_grads, critic_info = jax.grad(self.critic_loss, has_aux=True)(
            self.critic.params, batch, next_noise
        )
        critic = self.critic.apply_gradients(critic_grads)
        actor_grads, actor_info = jax.grad(self.actor_loss, has_aux=True)(
            self.actor.params, critic.params, batch, noise
        )
        log_prob = actor_info.pop("log_prob")
        temperature_grad = jax.grad(self.temperature_loss)(self.log_temperature.params, log_prob)
        log_temperature = self.log_temperature.apply_gradients(temperature_grad)
        agent = after_update(
            self, rng, actor_grads, critic, config.tau, log_temperature=log_temperature
        )
        info = {**critic_info, **actor_info, "temperature": jnp.exp(log_temperature.params)}
        return agent, info

    def sample(
        self, key: jax.Array, buffer: ReplayBuffer, step: jax.Array
    ) -> tuple[SACAgent, TransitionBatch]:
        index = jax.random.randint(key, (self.config.batch_size,), 0, buffer.size)
        return self, jax.tree.map(lambda x: x[index], buffer.data)

    def _act(self, observations: jax.Array) -> jax.Array:
        """The deterministic action tanh(μ(s)) (SAC acts on raw observations)."""
        mean, _ = self.actor_network.apply(self.actor.params, observations)
        return jnp.tanh(mean)

    @property
    def observation_dim(self) -> int:
        return int(self.actor.params["params"]["MLP_0"]["Dense_0"]["kernel"].shape[-2])

    @classmethod
    def create(
        cls, key: jax.Array, spec: DataSpec, config: SACConfig, init: SACAgent | None = None
    ) -> SACAgent:
        """A fresh agent; the target critic starts as a copy of the critic."""
        log_temperature = jnp.log(jnp.asarray(config.init_temperature, jnp.float32))
        actor = TanhGaussianActor(spec.action_dim, config.hidden_dims)
        rng, actor_params, critic_params, _ = init_actor_critic(
            key, spec, actor, EnsembleCritic(config.hidden_dims)
        )
        return cls(
            step=jnp.zeros((), jnp.int32),
            rng=rng,
            actor=Trained.create(actor_params, Adam(config.actor_lr)),
            critic=Trained.create(critic_params, Adam(config.critic_lr)),
            target_critic_params=critic_params,
            log_temperature=Trained.create(log_temperature, Adam(config.temperature_lr)),
            action_dim=spec.action_dim,
            config=config,
        )


@functools.partial(jax.jit, static_argnames=("action_dim", "hidden_dims"))
def sample_actions(
    actor_params: Any, observations: jax.Array, key: jax.Array, action_dim: int, hidden_dims: tuple
) -> jax.Array:
    """Stochastic behaviour actions tanh(μ + σ·ε) for a batch of observations."""
    mean, log_std = TanhGaussianActor(action_dim, hidden_dims).apply(actor_params, observations)
    actions, _ = tanh_gaussian_sample(mean, log_std, jax.random.normal(key, mean.shape))
    return actions


@functools.partial(jax.jit, static_argnames=("action_dim", "hidden_dims"))
def mean_actions(
    actor_params: Any, observations: jax.Array, action_dim: int, hidden_dims: tuple
) -> jax.Array:
    """The deterministic action tanh(μ(s)), used to evaluate a behaviour policy."""
    mean, _ = TanhGaussianActor(action_dim, hidden_dims).apply(actor_params, observations)
    return jnp.tanh(mean)


def upgrade_state_dict(saved: dict) -> dict:
    """A SAC state dict in the current layout, from one written before each network became a
    ``Trained`` (``actor_params``, ``actor_opt_state``, ...): a behaviour run is hours of
    compute, and its checkpoint must resume across that change."""
    if "actor_params" not in saved:
        return saved
    upgraded = {k: v for k, v in saved.items() if not k.endswith(("_params", "_opt_state"))}
    for name in ("actor", "critic"):
        upgraded[name] = {
            "params": saved[f"{name}_params"],
            "opt_state": saved[f"{name}_opt_state"],
        }
    upgraded["target_critic_params"] = saved["target_critic_params"]
    upgraded["log_temperature"] = {
        "params": saved["log_temperature"],
        "opt_state": saved["temperature_opt_state"],
    }
    return upgraded
