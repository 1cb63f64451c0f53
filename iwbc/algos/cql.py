"""CQL (Kumar et al. 2020): SAC whose critics are pushed down off the data and up on it.

Each critic minimizes its TD error plus α_cql·(logsumexp_a Q(s, a) − Q(s, a_data)), the
logsumexp (CQL(H)) estimated by importance sampling over ``cql_n_actions`` uniform actions and
as many current-policy actions at s and at s'. The actor is SAC's tanh-Gaussian with automatic
entropy tuning (target entropy −|A|). Hyperparameters and details are CORL's ``cql.py`` defaults
for D4RL locomotion: 3 x 256 networks, orthogonal critic init, actor lr 3e-5, α_cql 10, every
loss from the pre-update networks, targets updated every step. CORL options that are off for
locomotion are left out (BC warm-start, max-target and entropy backups, diff clipping).
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
from flax.typing import Initializer

from iwbc.algos.common import (
    TransitionBatch,
    check_config,
    optimizer_step,
    soft_update,
    stack_seeds,
    tanh_gaussian_sample,
)

LOG_HALF = float(np.log(0.5))
# CORL clamps the Lagrange multiplier exp(log α') to [0, 1e6].
ALPHA_PRIME_MAX = 1e6


@dataclasses.dataclass(frozen=True)
class CQLConfig:
    """CORL ``cql.py`` defaults for D4RL locomotion."""

    # Gradient updates of a full run (CORL: max_timesteps = 1M).
    steps: int = 1_000_000
    batch_size: int = 256
    # CORL's policy_lr, also the entropy temperature's.
    actor_lr: float = 3e-5
    # CORL's qf_lr, also the Lagrange multiplier's.
    critic_lr: float = 3e-4
    # CORL: 3 hidden layers of 256 for the actor and for both critics (q_n_hidden_layers = 3).
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    discount: float = 0.99
    # Polyak rate of the target critics, updated every step.
    tau: float = 5e-3
    # Actions per state in each of the three sets of the logsumexp (uniform, π(s), π(s')).
    cql_n_actions: int = 10
    # Importance-weight the sampled Q-values by their proposal densities (CQL(H)).
    cql_importance_sample: bool = True
    # Weight of the regularizer, and the temperature of its logsumexp.
    cql_alpha: float = 10.0
    cql_temp: float = 1.0
    # Lagrange variant: the weight becomes α'·cql_alpha, α' tuned so the gap stays at the target.
    cql_lagrange: bool = False
    cql_target_action_gap: float = -1.0
    # Orthogonal init (gain √2, output 1e-2) of the critics; CORL's actor keeps the default.
    orthogonal_init: bool = True
    # States normalized with the dataset's mean and std, rewards left as they are (both
    # applied to the data by iwbc.algos.common.prepare_data).
    normalize_states: bool = True

    def __post_init__(self) -> None:
        check_config(self)


def one_at_a_time(initializer: Initializer) -> Initializer:
    """``initializer``, drawn one matrix at a time under vmap (over seeds, over the twins).

    Orthogonal init runs LAPACK QRs. On CPU, jaxlib 0.10.2 splits a batched QR over the
    intra-op thread pool and waits for it from a thread of that same pool, so two batched QRs
    at once can deadlock a 2-core machine for good (seen creating 3 or more seeds). An
    unbatched QR runs inline.
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        return jax.custom_batching.sequential_vmap(lambda k: initializer(k, shape, dtype))(key)

    return init


class CQLMLP(nn.Module):
    """ReLU MLP with CORL's CQL init: zero biases and an output layer scaled by 1e-2.

    Orthogonal (gain √2 hidden, 1e-2 output) when ``orthogonal``; otherwise Flax's default
    hidden layers and a Xavier-uniform output with gain 1e-2.
    """

    hidden_dims: Sequence[int]
    output_dim: int
    orthogonal: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        init = nn.initializers
        hidden_init = (
            one_at_a_time(init.orthogonal(np.sqrt(2.0))) if self.orthogonal else init.lecun_normal()
        )
        for width in self.hidden_dims:
            x = nn.relu(nn.Dense(width, kernel_init=hidden_init)(x))
        output_init = (
            one_at_a_time(init.orthogonal(1e-2))
            if self.orthogonal
            else init.variance_scaling(1e-4, "fan_avg", "uniform")
        )
        return nn.Dense(self.output_dim, kernel_init=output_init)(x)


class TwinCritic(nn.Module):
    """Two independent Q(s, a) networks; returns [2, ...] for any leading batch shape."""

    hidden_dims: Sequence[int]
    orthogonal: bool

    @nn.compact
    def __call__(self, observations: jax.Array, actions: jax.Array) -> jax.Array:
        inputs = jnp.concatenate([observations, actions], axis=-1)
        ensemble = nn.vmap(
            CQLMLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=2,
        )
        return ensemble(self.hidden_dims, 1, self.orthogonal)(inputs)[..., 0]


class TanhGaussianActor(nn.Module):
    """π(a|s) = tanh(N(μ(s), σ(s)²)), log σ = clip(m·raw(s) + b, −20, 2), m and b learned.

    CORL's parametrization: one MLP gives μ and raw log σ; the scalars m (init 1) and b (init
    −1) start the policy narrow.
    """

    action_dim: int
    hidden_dims: Sequence[int]
    log_std_min: float = -20.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Return (mean, log_std) of the Gaussian before the tanh."""
        out = CQLMLP(self.hidden_dims, 2 * self.action_dim, orthogonal=False)(observations)
        mean, raw_log_std = jnp.split(out, 2, axis=-1)
        multiplier = self.param("log_std_multiplier", nn.initializers.constant(1.0), ())
        offset = self.param("log_std_offset", nn.initializers.constant(-1.0), ())
        log_std = jnp.clip(multiplier * raw_log_std + offset, self.log_std_min, self.log_std_max)
        return mean, log_std


class CQLNoise(flax.struct.PyTreeNode):
    """The random draws of one update, drawn up front so the losses are deterministic functions.

    ``actor`` [B, A] and ``target`` [B, A] are N(0, 1) draws for a ~ π(s) in the actor loss and
    a' ~ π(s') in the TD target; ``uniform`` [B, N, A] are U(−1, 1) actions and ``current`` and
    ``next`` [B, N, A] N(0, 1) draws for the regularizer's actions from π(s) and π(s').
    """

    actor: jax.Array
    target: jax.Array
    uniform: jax.Array
    current: jax.Array
    next: jax.Array

    @classmethod
    def sample(cls, key: jax.Array, batch_size: int, n_actions: int, action_dim: int) -> CQLNoise:
        keys = jax.random.split(key, 5)
        single, repeated = (batch_size, action_dim), (batch_size, n_actions, action_dim)
        return cls(
            actor=jax.random.normal(keys[0], single),
            target=jax.random.normal(keys[1], single),
            uniform=jax.random.uniform(keys[2], repeated, minval=-1.0, maxval=1.0),
            current=jax.random.normal(keys[3], repeated),
            next=jax.random.normal(keys[4], repeated),
        )


def cql_logsumexp(
    q_uniform: jax.Array,
    q_current: jax.Array,
    q_next: jax.Array,
    q_data: jax.Array,
    log_pi_current: jax.Array,
    log_pi_next: jax.Array,
    *,
    action_dim: int,
    temperature: float,
    importance_sample: bool,
) -> jax.Array:
    """τ·logsumexp(Q/τ) over the sampled actions (last axis): the CQL(H) push-down term.

    With importance sampling each Q-value is divided by its proposal's density (U(−1, 1)^A, or
    π's own): the set is [Q_unif − log 0.5^A, Q_next − log π, Q_cur − log π]. Without, it is
    the plain Q-values with the data's Q(s, a) among them.
    """
    if importance_sample:
        uniform_log_density = action_dim * LOG_HALF
        terms = [q_uniform - uniform_log_density, q_next - log_pi_next, q_current - log_pi_current]
    else:
        terms = [q_uniform, q_data[..., None], q_next, q_current]
    stacked = jnp.concatenate(terms, axis=-1)
    return temperature * jax.nn.logsumexp(stacked / temperature, axis=-1)


def entropy_temperature_loss(
    log_alpha: jax.Array, log_pi: jax.Array, target_entropy: float
) -> jax.Array:
    """−mean(log α·(log π + H̄)): raises α while the policy's entropy is below H̄."""
    return -jnp.mean(log_alpha * jax.lax.stop_gradient(log_pi + target_entropy))


def lagrange_loss(
    log_alpha_prime: jax.Array, gaps: jax.Array, cql_alpha: float, target_gap: float
) -> jax.Array:
    """−½·Σ_critics α'·cql_alpha·(gap − target): raises α' while a critic's gap exceeds it."""
    alpha_prime = _alpha_prime(log_alpha_prime)
    return -0.5 * jnp.sum(alpha_prime * cql_alpha * (jax.lax.stop_gradient(gaps) - target_gap))


class CQLAgent(flax.struct.PyTreeNode):
    """Actor, twin critics and their targets, log α, log α', optimizer states, state statistics.

    ``log_alpha_prime`` (the Lagrange multiplier) only moves when ``config.cql_lagrange``.
    """

    step: jax.Array
    rng: jax.Array
    actor_params: Any
    critic_params: Any
    target_critic_params: Any
    log_alpha: jax.Array
    log_alpha_prime: jax.Array
    actor_opt_state: Any
    critic_opt_state: Any
    alpha_opt_state: Any
    alpha_prime_opt_state: Any
    obs_mean: jax.Array
    obs_std: jax.Array
    action_dim: int = flax.struct.field(pytree_node=False)
    config: CQLConfig = flax.struct.field(pytree_node=False)

    @property
    def actor(self) -> TanhGaussianActor:
        return TanhGaussianActor(self.action_dim, self.config.hidden_dims)

    @property
    def critic(self) -> TwinCritic:
        return TwinCritic(self.config.hidden_dims, self.config.orthogonal_init)

    @property
    def target_entropy(self) -> float:
        return -float(self.action_dim)

    def critic_loss(
        self, critic_params: Any, batch: TransitionBatch, noise: CQLNoise
    ) -> tuple[jax.Array, dict]:
        """Σ_critics MSE to r + γ·(1 − done)·min Q'(s', a'), a' ~ π(s'), plus the CQL term.

        The CQL term of a critic is w·mean(logsumexp − Q(s, a_data)) with w = cql_alpha, or
        α'·cql_alpha·(gap − target gap) in the Lagrange variant.
        """
        config = self.config
        mean, log_std = self.actor.apply(self.actor_params, batch.observations)
        next_mean, next_log_std = self.actor.apply(self.actor_params, batch.next_observations)
        next_actions, _ = tanh_gaussian_sample(next_mean, next_log_std, noise.target)
        next_q = jnp.min(
            self.critic.apply(self.target_critic_params, batch.next_observations, next_actions),
            axis=0,
        )
        target = jax.lax.stop_gradient(
            batch.rewards + config.discount * (1.0 - batch.dones) * next_q
        )
        q = self.critic.apply(critic_params, batch.observations, batch.actions)
        td_loss = jnp.sum(jnp.mean((q - target) ** 2, axis=1))

        current_actions, log_pi_current = tanh_gaussian_sample(
            mean[:, None], log_std[:, None], noise.current
        )
        next_policy_actions, log_pi_next = tanh_gaussian_sample(
            next_mean[:, None], next_log_std[:, None], noise.next
        )
        sampled = jax.lax.stop_gradient(
            jnp.concatenate([noise.uniform, current_actions, next_policy_actions], axis=1)
        )
        # All three sets are scored at s (CORL: π(s') actions too), one critic call for all.
        repeated_obs = jnp.broadcast_to(
            batch.observations[:, None], (*sampled.shape[:2], batch.observations.shape[-1])
        )
        q_uniform, q_current, q_next = jnp.split(
            self.critic.apply(critic_params, repeated_obs, sampled), 3, axis=-1
        )
        ood = cql_logsumexp(
            q_uniform,
            q_current,
            q_next,
            q,
            jax.lax.stop_gradient(log_pi_current),
            jax.lax.stop_gradient(log_pi_next),
            action_dim=self.action_dim,
            temperature=config.cql_temp,
            importance_sample=config.cql_importance_sample,
        )
        gaps = jnp.mean(ood - q, axis=1)
        if config.cql_lagrange:
            alpha_prime = _alpha_prime(self.log_alpha_prime)
            cql_loss = jnp.sum(
                alpha_prime * config.cql_alpha * (gaps - config.cql_target_action_gap)
            )
        else:
            cql_loss = config.cql_alpha * jnp.sum(gaps)
        loss = td_loss + cql_loss
        return loss, {
            "critic_loss": loss,
            "td_loss": td_loss,
            "cql_loss": cql_loss,
            "cql_gap": gaps,
            "q_mean": jnp.mean(q),
        }

    def actor_loss(
        self, actor_params: Any, batch: TransitionBatch, noise: jax.Array
    ) -> tuple[jax.Array, dict]:
        """SAC's mean(α·log π(ã|s) − min Q(s, ã)), ã = tanh(μ + σ·ε), α = exp(log α)."""
        mean, log_std = self.actor.apply(actor_params, batch.observations)
        actions, log_pi = tanh_gaussian_sample(mean, log_std, noise)
        q = jnp.min(self.critic.apply(self.critic_params, batch.observations, actions), axis=0)
        alpha = jnp.exp(self.log_alpha)
        loss = jnp.mean(alpha * log_pi - q)
        return loss, {"actor_loss": loss, "log_pi": log_pi, "alpha": alpha}

    def update(self, batch: TransitionBatch) -> tuple[CQLAgent, dict]:
        """Temperature, actor, critic (and α') steps, all from the pre-update networks as
        CORL, then the target update."""
        config = self.config
        rng, noise_key = jax.random.split(self.rng)
        noise = CQLNoise.sample(
            noise_key, batch.actions.shape[0], config.cql_n_actions, self.action_dim
        )
        actor_grads, actor_info = jax.grad(self.actor_loss, has_aux=True)(
            self.actor_params, batch, noise.actor
        )
        log_pi = actor_info.pop("log_pi")
        alpha_loss, alpha_grad = jax.value_and_grad(entropy_temperature_loss)(
            self.log_alpha, log_pi, self.target_entropy
        )
        critic_grads, critic_info = jax.grad(self.critic_loss, has_aux=True)(
            self.critic_params, batch, noise
        )
        gaps = critic_info.pop("cql_gap")
        actor_params, actor_opt_state = optimizer_step(
            optax.adam(config.actor_lr), actor_grads, self.actor_opt_state, self.actor_params
        )
        log_alpha, alpha_opt_state = optimizer_step(
            optax.adam(config.actor_lr), alpha_grad, self.alpha_opt_state, self.log_alpha
        )
        critic_params, critic_opt_state = optimizer_step(
            optax.adam(config.critic_lr), critic_grads, self.critic_opt_state, self.critic_params
        )
        log_alpha_prime, alpha_prime_opt_state = self.log_alpha_prime, self.alpha_prime_opt_state
        if config.cql_lagrange:
            alpha_prime_grad = jax.grad(lagrange_loss)(
                self.log_alpha_prime, gaps, config.cql_alpha, config.cql_target_action_gap
            )
            log_alpha_prime, alpha_prime_opt_state = optimizer_step(
                optax.adam(config.critic_lr),
                alpha_prime_grad,
                alpha_prime_opt_state,
                log_alpha_prime,
            )
        agent = self.replace(
            step=self.step + 1,
            rng=rng,
            actor_params=actor_params,
            critic_params=critic_params,
            target_critic_params=soft_update(self.target_critic_params, critic_params, config.tau),
            log_alpha=log_alpha,
            log_alpha_prime=log_alpha_prime,
            actor_opt_state=actor_opt_state,
            critic_opt_state=critic_opt_state,
            alpha_opt_state=alpha_opt_state,
            alpha_prime_opt_state=alpha_prime_opt_state,
        )
        metrics = {
            "loss": critic_info["critic_loss"],
            **critic_info,
            **actor_info,
            "alpha_loss": alpha_loss,
            "cql_gap": jnp.mean(gaps),
            "alpha_prime": _alpha_prime(self.log_alpha_prime),
            "entropy": -jnp.mean(log_pi),
        }
        return agent, metrics

    def act(self, observations: jax.Array) -> jax.Array:
        """tanh(μ(s)), the deterministic action, for raw (unnormalized) observations."""
        mean, _ = self.actor.apply(self.actor_params, (observations - self.obs_mean) / self.obs_std)
        return jnp.tanh(mean)

    @classmethod
    def create(
        cls,
        seeds: Sequence[int],
        observation_dim: int,
        action_dim: int,
        obs_mean: np.ndarray | None = None,
        obs_std: np.ndarray | None = None,
        config: CQLConfig | None = None,
    ) -> CQLAgent:
        """Fresh agents for ``seeds``, stacked on a leading axis; the target starts as a copy.

        log α starts at 0 (α = 1) and log α' at 1, as in CORL.
        """
        config = CQLConfig() if config is None else config
        mean = np.zeros(observation_dim, np.float32) if obs_mean is None else obs_mean
        std = np.ones(observation_dim, np.float32) if obs_std is None else obs_std
        actor = TanhGaussianActor(action_dim, config.hidden_dims)
        critic = TwinCritic(config.hidden_dims, config.orthogonal_init)
        dummy_obs = jnp.zeros((1, observation_dim))
        dummy_act = jnp.zeros((1, action_dim))

        def create_one(key: jax.Array, obs_mean: jax.Array, obs_std: jax.Array) -> CQLAgent:
            rng, actor_key, critic_key = jax.random.split(key, 3)
            actor_params = actor.init(actor_key, dummy_obs)
            critic_params = critic.init(critic_key, dummy_obs, dummy_act)
            log_alpha = jnp.zeros((), jnp.float32)
            log_alpha_prime = jnp.ones((), jnp.float32)
            return cls(
                step=jnp.zeros((), jnp.int32),
                rng=rng,
                actor_params=actor_params,
                critic_params=critic_params,
                target_critic_params=critic_params,
                log_alpha=log_alpha,
                log_alpha_prime=log_alpha_prime,
                actor_opt_state=optax.adam(config.actor_lr).init(actor_params),
                critic_opt_state=optax.adam(config.critic_lr).init(critic_params),
                alpha_opt_state=optax.adam(config.actor_lr).init(log_alpha),
                alpha_prime_opt_state=optax.adam(config.critic_lr).init(log_alpha_prime),
                obs_mean=obs_mean,
                obs_std=obs_std,
                action_dim=action_dim,
                config=config,
            )

        cache_key = (cls, observation_dim, action_dim, config)
        return stack_seeds(create_one, seeds, mean, std, cache_key=cache_key)


def _alpha_prime(log_alpha_prime: jax.Array) -> jax.Array:
    return jnp.clip(jnp.exp(log_alpha_prime), 0.0, ALPHA_PRIME_MAX)
