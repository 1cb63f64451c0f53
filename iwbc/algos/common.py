"""Pieces the offline-RL agents share: transitions on device, networks, target updates, training.

Every agent is a ``flax.struct.PyTreeNode`` with a ``step`` and an ``rng`` leaf and an
``update(batch) -> (agent, metrics)`` method. :func:`train_agent` runs it with the engine of
:mod:`iwbc.train`: jit(vmap over seeds)(lax.scan over a chunk of updates), the transitions
resident on the device and every batch sampled there.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from iwbc.data.episodes import Transitions
from iwbc.data.statistics import normalization_stats
from iwbc.errors import UserError
from iwbc.policies import LOG_2PI
from iwbc.train import run_chunks

LOG_2 = float(np.log(2.0))


def check_config(config: Any) -> None:
    """Refuse, in one line, a config no run could use (a suite typo or a CLI value), before the
    run starts: counts below 1, non-finite numbers, learning rates ≤ 0, a discount outside
    [0, 1], a Polyak rate outside (0, 1], empty or non-positive hidden layers."""
    name = type(config).__name__
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name == "hidden_dims":
            if not value or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in value
            ):
                raise UserError(f"{name}.hidden_dims must be positive layer widths, got {value!r}")
        elif field.type == "int" and value < 1:
            raise UserError(f"{name}.{field.name} must be an integer ≥ 1, got {value!r}")
        elif field.type == "float" and not math.isfinite(value):
            raise UserError(f"{name}.{field.name} must be a finite number, got {value!r}")
        elif field.name.endswith(("_lr", "learning_rate")) and value <= 0:
            raise UserError(f"{name}.{field.name} must be > 0, got {value!r}")
    if not 0.0 <= config.discount <= 1.0:
        raise UserError(f"{name}.discount must be in [0, 1], got {config.discount!r}")
    if not 0.0 < config.tau <= 1.0:
        raise UserError(f"{name}.tau must be in (0, 1], got {config.tau!r}")


class TransitionBatch(flax.struct.PyTreeNode):
    """(s, a, r, s', done) arrays; ``dones`` is 1 on true terminations only (no bootstrap)."""

    observations: jax.Array
    actions: jax.Array
    rewards: jax.Array
    next_observations: jax.Array
    dones: jax.Array


def _check_transitions(transitions: Transitions) -> int:
    """Validate shapes, with one-line errors naming the problem; returns the number of steps."""
    for name in ("obs", "actions", "rewards", "next_obs", "terminals"):
        if getattr(transitions, name, None) is None:
            raise ValueError(f"transitions have no {name}; TD methods need (s, a, r, s', done)")
    obs, next_obs = np.shape(transitions.obs), np.shape(transitions.next_obs)
    if len(obs) != 2 or len(np.shape(transitions.actions)) != 2:
        raise ValueError(
            f"obs and actions must be 2-D [N, dim], got {obs} and {np.shape(transitions.actions)}"
        )
    if next_obs != obs:
        raise ValueError(f"next_obs has shape {next_obs} but obs has shape {obs}")
    count = obs[0]
    for name in ("actions", "rewards", "terminals"):
        length = np.shape(getattr(transitions, name))[0]
        if length != count:
            raise ValueError(f"{name} has {length} rows but obs has {count}")
    for name in ("rewards", "terminals"):
        if np.ndim(getattr(transitions, name)) != 1:
            raise ValueError(f"{name} must be 1-D [N], got {np.shape(getattr(transitions, name))}")
    if count == 0:
        raise UserError("no transitions to train on: the dataset is empty")
    return count


def episode_returns(rewards: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Undiscounted returns of the episodes of flat transitions, split after each ``ends`` step."""
    rewards = np.asarray(rewards, np.float64)
    ends = np.asarray(ends, bool).copy()
    ends[-1] = True
    episode = np.concatenate([[0], np.cumsum(ends)[:-1]])
    return np.bincount(episode, weights=rewards)


def locomotion_reward_scale(transitions: Transitions, max_episode_steps: int = 1000) -> float:
    """CORL's reward scaling for locomotion: rewards · 1000 / (max return − min return)."""
    ends = np.logical_or(transitions.terminals, transitions.timeouts)
    returns = episode_returns(transitions.rewards, ends)
    spread = float(returns.max() - returns.min())
    if spread <= 0.0:
        raise UserError("all episodes have the same return; reward scaling is undefined")
    return max_episode_steps / spread


def device_transitions(
    transitions: Transitions,
    *,
    obs_mean: np.ndarray | None = None,
    obs_std: np.ndarray | None = None,
    reward_scale: float = 1.0,
) -> TransitionBatch:
    """The whole dataset on the device (float32), states normalized if stats are given."""
    _check_transitions(transitions)
    obs = np.asarray(transitions.obs, np.float32)
    next_obs = np.asarray(transitions.next_obs, np.float32)
    if obs_mean is not None and obs_std is not None:
        obs = (obs - obs_mean) / obs_std
        next_obs = (next_obs - obs_mean) / obs_std
    return TransitionBatch(
        observations=jnp.asarray(obs),
        actions=jnp.asarray(transitions.actions, jnp.float32),
        rewards=jnp.asarray(np.asarray(transitions.rewards) * reward_scale, jnp.float32),
        next_observations=jnp.asarray(next_obs),
        dones=jnp.asarray(transitions.terminals, jnp.float32),
    )


def sample_transitions(key: jax.Array, data: TransitionBatch, batch_size: int) -> TransitionBatch:
    """``batch_size`` transitions drawn uniformly with replacement, on the device."""
    index = jax.random.randint(key, (batch_size,), 0, data.rewards.shape[0])
    return jax.tree.map(lambda x: x[index], data)


class MLP(nn.Module):
    """ReLU hidden layers, linear output."""

    hidden_dims: Sequence[int]
    output_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden_dims:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.output_dim)(x)


class DoubleCritic(nn.Module):
    """Two independent Q(s, a) networks; returns [2, ...] so the min is one reduction."""

    hidden_dims: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, observations: jax.Array, actions: jax.Array) -> jax.Array:
        inputs = jnp.concatenate([observations, actions], axis=-1)
        ensemble = nn.vmap(
            MLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=2,
        )
        return ensemble(self.hidden_dims, 1)(inputs)[..., 0]


class ValueNet(nn.Module):
    """V(s)."""

    hidden_dims: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, observations: jax.Array) -> jax.Array:
        return MLP(self.hidden_dims, 1)(observations)[..., 0]


class DeterministicActor(nn.Module):
    """a = tanh(MLP(s)), actions in [-1, 1] (max_action = 1 for the MuJoCo tasks)."""

    action_dim: int
    hidden_dims: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, observations: jax.Array) -> jax.Array:
        return jnp.tanh(MLP(self.hidden_dims, self.action_dim)(observations))


def tanh_gaussian_sample(
    mean: jax.Array, log_std: jax.Array, noise: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Reparameterized a = tanh(μ + σ·ε) and its log-density, summed over action dimensions.

    log(1 − tanh(u)²) is written 2·(log 2 − u − softplus(−2u)), finite where tanh saturates.
    """
    pre_tanh = mean + jnp.exp(log_std) * noise
    gaussian = jnp.sum(-0.5 * noise**2 - log_std - 0.5 * LOG_2PI, axis=-1)
    squash = jnp.sum(2.0 * (LOG_2 - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh)), axis=-1)
    return jnp.tanh(pre_tanh), gaussian - squash


def optimizer_step(
    optimizer: optax.GradientTransformation, grads: Any, opt_state: Any, params: Any
) -> tuple[Any, Any]:
    """One optimizer update of ``params``; returns the new parameters and optimizer state."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def soft_update(target: Any, online: Any, tau: float) -> Any:
    """Polyak averaging: target ← τ·online + (1 − τ)·target."""
    return jax.tree.map(lambda t, o: tau * o + (1.0 - tau) * t, target, online)


# Compiled seed-stacked initializers, by everything an agent's ``create_one`` closes over: a run
# that resumes from a checkpoint (each curve point of a benchmark unit) calls ``create`` again,
# and compiling the initializer anew took about as long as compiling a training chunk
# (results/perf/run_path.md).
_INITIALIZERS: dict[Hashable, Callable] = {}


def stack_seeds(
    create_one: Callable[[jax.Array, jax.Array, jax.Array], Any],
    seeds: Sequence[int],
    obs_mean: np.ndarray,
    obs_std: np.ndarray,
    *,
    cache_key: Hashable,
) -> Any:
    """One agent per seed, stacked on a leading axis (the static config is shared).

    ``create_one(key, obs_mean, obs_std)`` builds one agent; the state statistics are inputs of
    the compiled initializer, and everything else ``create_one`` uses must be determined by
    ``cache_key`` (agent class, dimensions, config), under which it is compiled once per process.
    Jitted: initializing the networks op by op takes seconds, compiled it takes a fraction.
    """
    keys = jnp.stack([jax.random.PRNGKey(seed) for seed in seeds])
    initialize = _INITIALIZERS.get(cache_key)
    if initialize is None:
        initialize = jax.jit(jax.vmap(create_one, in_axes=(0, None, None)))
        _INITIALIZERS[cache_key] = initialize
    return initialize(keys, jnp.asarray(obs_mean, jnp.float32), jnp.asarray(obs_std, jnp.float32))


@functools.cache
def make_agent_chunk(update: Callable, batch_size: int, length: int) -> Callable:
    """``length`` updates of every seed in one compiled call: jit(vmap(scan(sample, update)))."""

    def step(agent: Any, data: TransitionBatch) -> tuple[Any, dict]:
        rng, key = jax.random.split(agent.rng)
        batch = sample_transitions(key, data, batch_size)
        return update(agent.replace(rng=rng), batch)

    def chunk(agent: Any, data: TransitionBatch, start: jax.Array) -> tuple[Any, dict]:
        """``start`` (the first update's index, see :func:`iwbc.train.run_chunks`) is unused."""
        return jax.lax.scan(lambda carry, _: step(carry, data), agent, None, length=length)

    return jax.jit(jax.vmap(chunk, in_axes=(0, None, None)))


def train_agent(
    agent: Any,
    data: TransitionBatch,
    steps: int,
    *,
    chunk_size: int = 1000,
    checkpoint: str | Path | None = None,
    description: str | None = None,
    progress: bool = True,
) -> tuple[Any, list[dict]]:
    """Train seed-stacked ``agent`` to ``steps`` updates with the chunked, resumable loop."""
    update = type(agent).update
    batch_size = agent.config.batch_size
    return run_chunks(
        lambda length: make_agent_chunk(update, batch_size, length),
        agent,
        data,
        steps,
        chunk_size=chunk_size,
        checkpoint=checkpoint,
        description=description or type(agent).__name__,
        progress=progress,
    )


def prepare_data(
    transitions: Transitions, config: Any
) -> tuple[TransitionBatch, np.ndarray, np.ndarray]:
    """Transitions on the device as ``config`` asks (state normalization, reward scaling).

    Returns the data and the state statistics the agent's ``create`` needs to act on raw
    observations (mean 0 and std 1 when states are not normalized).
    """
    _check_transitions(transitions)
    dim = np.shape(transitions.obs)[1]
    if config.normalize_states:
        mean, std = normalization_stats(transitions.obs)
    else:
        mean, std = np.zeros(dim, np.float32), np.ones(dim, np.float32)
    scale = (
        locomotion_reward_scale(transitions) if getattr(config, "normalize_rewards", False) else 1.0
    )
    data = device_transitions(transitions, obs_mean=mean, obs_std=std, reward_scale=scale)
    return data, mean, std
