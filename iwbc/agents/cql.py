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
from typing import Any, ClassVar

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from iwbc.agents.common import (
    NON_NEGATIVE,
    POSITIVE,
    Adam,
    Interval,
    OfflineRLAgent,
    OfflineRLConfig,
    Trained,
    after_update,
    init_actor_critic,
    later_option,
)
from iwbc.agents.networks import EnsembleCritic, TanhGaussianActor, tanh_gaussian_sample
from iwbc.core.agent import DataSpec
from iwbc.core.sampling import TransitionBatch

LOG_HALF = float(np.log(0.5))
# CORL clamps the Lagrange multiplier exp(log α') to [0, 1e6].
ALPHA_PRIME_MAX = 1e6


@dataclasses.dataclass(frozen=True)
class CQLConfig(OfflineRLConfig):
    """CORL ``cql.py`` defaults for D4RL locomotion (rewards left as they are, except where
    ``normalize_rewards`` is set: CORL's Hopper medium config)."""

    # CORL: 3 hidden layers of 256 for the actor and for both critics (q_n_hidden_layers = 3).
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    # CORL's policy_lr, also the entropy temperature's.
    actor_lr: float = 3e-5
    # CORL's qf_lr, also the Lagrange multiplier's.
    critic_lr: float = 3e-4
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
    # CORL's normalize_reward: rewards scaled by 1000 / (max return − min return), as IQL's
    # (iwbc.core.sampling.prepare_data); off in CORL's D4RL configs but Hopper medium's.
    normalize_rewards: bool = later_option(False)

    bounds: ClassVar[dict[str, Interval]] = {"cql_alpha": NON_NEGATIVE, "cql_temp": POSITIVE}


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


class CQLAgent(OfflineRLAgent):
    """Actor, twin critics and their targets, log α, log α', optimizer states, state statistics.

    ``log_alpha_prime`` (the Lagrange multiplier) only moves when ``config.cql_lagrange``.
    """

    log_alpha: Trained
    log_alpha_prime: Trained
    config: CQLConfig = flax.struct.field(pytree_node=False)

    @property
    def actor_network(self) -> TanhGaussianActor:
        return _actor(self.action_dim, self.config)

    @property
    def critic_network(self) -> EnsembleCritic:
        return _critic(self.config)

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
        mean, log_std = self.actor_network.apply(self.actor.params, batch.observations)
        next_mean, next_log_std = self.actor_network.apply(
            self.actor.params, batch.next_observations
        )
        next_actions, _ = tanh_gaussian_sample(next_mean, next_log_std, noise.target)
        next_q = jnp.min(
            self.critic_network.apply(
                self.target_critic_params, batch.next_observations, next_actions
            ),
            axis=0,
        )
        target = jax.lax.stop_gradient(
            batch.rewards + config.discount * (1.0 - batch.dones) * next_q
        )
        q = self.critic_network.apply(critic_params, batch.observations, batch.actions)
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
            self.critic_network.apply(critic_params, repeated_obs, sampled), 3, axis=-1
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
            alpha_prime = _alpha_prime(self.log_alpha_prime.params)
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
        mean, log_std = self.actor_network.apply(actor_params, batch.observations)
        actions, log_pi = tanh_gaussian_sample(mean, log_std, noise)
        q = jnp.min(
            self.critic_network.apply(self.critic.params, batch.observations, actions), axis=0
        )
        alpha = jnp.exp(self.log_alpha.params)
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
            self.actor.params, batch, noise.actor
        )
        log_pi = actor_info.pop("log_pi")
        alpha_loss, alpha_grad = jax.value_and_grad(entropy_temperature_loss)(
            self.log_alpha.params, log_pi, self.target_entropy
        )
        critic_grads, critic_info = jax.grad(self.critic_loss, has_aux=True)(
            self.critic.params, batch, noise
        )
        gaps = critic_info.pop("cql_gap")
        critic = self.critic.apply_gradients(critic_grads)
        log_alpha_prime = self.log_alpha_prime
        if config.cql_lagrange:
            alpha_prime_grad = jax.grad(lagrange_loss)(
                self.log_alpha_prime.params, gaps, config.cql_alpha, config.cql_target_action_gap
            )
            log_alpha_prime = log_alpha_prime.apply_gradients(alpha_prime_grad)
        agent = after_update(
            self,
            rng,
            actor_grads,
            critic,
            config.tau,
            log_alpha=self.log_alpha.apply_gradients(alpha_grad),
            log_alpha_prime=log_alpha_prime,
        )
        metrics = {
            "loss": critic_info["critic_loss"],
            **critic_info,
            **actor_info,
            "alpha_loss": alpha_loss,
            "cql_gap": jnp.mean(gaps),
            "alpha_prime": _alpha_prime(self.log_alpha_prime.params),
            "entropy": -jnp.mean(log_pi),
        }
        return agent, metrics

    def _act(self, observations: jax.Array) -> jax.Array:
        """tanh(μ(s)), the deterministic action, for raw (unnormalized) observations."""
        mean, _ = self.actor_network.apply(self.actor.params, self.standardize(observations))
        return jnp.tanh(mean)

    @classmethod
    def create(
        cls, key: jax.Array, spec: DataSpec, config: CQLConfig, init: CQLAgent | None = None
    ) -> CQLAgent:
        """A fresh agent for one seed; the target starts as a copy. log α starts at 0 (α = 1)
        and log α' at 1, as in CORL; α learns at the actor's rate, α' at the critic's."""
        rng, actor_params, critic_params, _ = init_actor_critic(
            key, spec, _actor(spec.action_dim, config), _critic(config)
        )
        return cls.fresh(
            rng,
            spec,
            Trained.create(actor_params, Adam(config.actor_lr)),
            Trained.create(critic_params, Adam(config.critic_lr)),
            log_alpha=Trained.create(jnp.zeros((), jnp.float32), Adam(config.actor_lr)),
            log_alpha_prime=Trained.create(jnp.ones((), jnp.float32), Adam(config.critic_lr)),
            config=config,
        )


def _alpha_prime(log_alpha_prime: jax.Array) -> jax.Array:
    return jnp.clip(jnp.exp(log_alpha_prime), 0.0, ALPHA_PRIME_MAX)


def _actor(action_dim: int, config: CQLConfig) -> TanhGaussianActor:
    """CORL's actor: log σ = clip(m·raw + b, −20, 2), Xavier output layer with gain 1e-2, the
    hidden layers at ``layer_init``."""
    return TanhGaussianActor(
        action_dim,
        config.hidden_dims,
        log_std_scheme="corl_cql_affine",
        log_std_min=-20.0,
        log_std_max=2.0,
        init_scheme="corl_cql_xavier",
        layer_init=config.layer_init,
    )


def _critic(config: CQLConfig) -> EnsembleCritic:
    """CORL's twin critics: orthogonal with ``orthogonal_init``, else the Xavier output layer."""
    init_scheme = "corl_cql_orthogonal" if config.orthogonal_init else "corl_cql_xavier"
    return EnsembleCritic(
        config.hidden_dims, ensemble_size=2, init_scheme=init_scheme, layer_init=config.layer_init
    )
