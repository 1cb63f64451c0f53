"""Training data resident on the device and the batches drawn from it there.

Two kinds, one per family of agent (``Agent.data_kind``): flat transitions (s, a, r, s', done)
for the offline-RL agents, drawn uniformly; and episodes for the BC family, below.

The iw-SFT losses are per-trajectory, so batches are episodes (padded to the longest episode or to
the window, with a mask), drawn uniformly with replacement as in the authors' code. A filtered
dataset that lists a trajectory several times (the stratified union of percentiles) is sampled in
proportion to its copies.

``window`` bounds the cost of an update on CPU: each sampled episode contributes a random
contiguous window of that many steps instead of all of its steps. How episodes and windows are
drawn follows the loss's ``weighting`` (:mod:`iwbc.losses`):

- ``"episode"``: episodes uniformly, then a window that wraps around its episode: a start drawn
  uniformly among the episode's L steps and the next window steps modulo L (an episode no longer
  than the window is taken whole, the rest masked). Every step of the episode is then in exactly
  window of the L windows, so the window's mean estimates the episode's mean without bias. A
  crop that must fit inside the episode (starts 0 … L − window) would not: it covers step t with
  probability min(t + 1, window, L − t, L − window + 1) / (L − window + 1), so an episode's
  first and last steps would count less. The losses are per step (an MLP on s_t), so a wrapped
  window loses nothing by not being contiguous.
- ``"transition"``: a window start uniformly among all starts of all episodes, a start being any
  step from −(window − 1) to the episode's last (steps outside the episode are masked), so every
  transition of the dataset is covered by exactly ``window`` starts and is equally likely. With
  whole episodes, episodes are drawn uniformly and every step counts once.

On the device the episodes are flat (each distinct one's steps once, padded to a block size, not
to the longest episode): batches gather their steps from there, and a statistic of whole
trajectories, such as iw-BC's log q(τ)/|τ|, is computed for every episode at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from iwbc.data.episodes import EpisodeData, Transitions, episode_steps, first_steps
from iwbc.data.errors import DatasetError
from iwbc.data.statistics import normalization_stats
from iwbc.errors import UserError
from iwbc.losses import Weighting

# Flat steps are padded to a multiple of this, so whole-dataset passes run in fixed-size blocks.
FLAT_BLOCK = 4096


class DeviceEpisodes(flax.struct.PyTreeNode):
    """Training episodes as device arrays: each distinct episode's steps once, flat.

    ``flat_observations``/``flat_actions`` [P, ·] hold the steps of each distinct episode once,
    one after another, padded to a multiple of ``FLAT_BLOCK`` (two blocks at least), so that a
    statistic of whole trajectories is computed once per distinct one and in fixed-size blocks.
    The rows [E] are what batches are drawn from: a selection that lists an episode several
    times (the stratified union of percentiles lists the best ones up to three times) has a
    row per listing, all reading that episode's steps from ``starts``. ``flat_episode`` names
    each flat step's episode by the first row listing it (E on padding), and ``episode_source``
    [E] gives that first row for every row. ``max_length`` is how wide batches of whole
    episodes are, and what a window must reach to take whole episodes: the longest episode, or
    the whole dataset's longest for a selection of it (:meth:`from_steps`).
    """

    flat_observations: jax.Array
    flat_actions: jax.Array
    flat_episode: jax.Array
    starts: jax.Array
    lengths: jax.Array
    quality: jax.Array
    episode_source: jax.Array
    max_length: int = flax.struct.field(pytree_node=False)

    @classmethod
    def from_episodes(
        cls,
        episodes: EpisodeData,
        quality: np.ndarray | None = None,
        *,
        max_length: int | None = None,
    ) -> DeviceEpisodes:
        """Move host episodes' observations and actions to the default device (float32)."""
        return cls.from_steps(
            episodes.observations, episodes.actions, episodes.lengths, quality, max_length
        )

    @classmethod
    def from_padded(
        cls,
        observations: np.ndarray,
        actions: np.ndarray,
        mask: np.ndarray,
        quality: np.ndarray | None = None,
    ) -> DeviceEpisodes:
        """Episodes padded to a common length [E, T, ·], each valid on a prefix of ``mask``."""
        valid = np.asarray(mask) > 0
        lengths = valid.sum(axis=1)
        if not np.array_equal(valid, np.arange(valid.shape[1]) < lengths[:, None]):
            raise ValueError("mask must mark a prefix of each episode's steps (1s, then 0s)")
        return cls.from_steps(
            np.asarray(observations)[valid], np.asarray(actions)[valid], lengths, quality
        )

    @classmethod
    def from_steps(
        cls,
        observations: np.ndarray,
        actions: np.ndarray,
        lengths: np.ndarray | Sequence[int],
        quality: np.ndarray | None = None,
        max_length: int | None = None,
    ) -> DeviceEpisodes:
        """Episodes of ``lengths`` whose steps lie one after another in ``observations`` and
        ``actions`` [N, ·] (float32 on the default device).

        ``max_length`` defaults to the longest of them; training passes a selection the whole
        dataset's, so that every method of a table reads ``window`` alike (whole episodes once
        it reaches the dataset's longest), whichever episodes it keeps.
        """
        lengths = np.asarray(lengths, np.int64)
        num_episodes = len(lengths)
        if num_episodes == 0:
            raise ValueError("no episodes to train on: the selection is empty")
        if (lengths <= 0).any():
            raise ValueError(
                f"episode {int(np.argmax(lengths <= 0))} of the selection has no steps; every "
                "episode needs at least one"
            )
        longest = int(lengths.max())
        if max_length is not None and max_length < longest:
            raise ValueError(f"max_length {max_length} is below the longest episode's {longest}")
        first = first_steps(lengths)
        quality = np.ones(num_episodes, np.float32) if quality is None else quality
        for name, values in (("observations", observations), ("actions", actions)):
            bad = ~np.isfinite(np.asarray(values)).all(axis=-1)
            if bad.any():
                episode = int(np.searchsorted(first, np.argmax(bad), side="right") - 1)
                raise DatasetError(
                    f"{name} hold NaN or infinite values (first in episode {episode} of the "
                    "training selection); clean the dataset before training"
                )
        observations = np.asarray(observations, np.float32)
        actions = np.asarray(actions, np.float32)
        source = _distinct_episodes(observations, actions, first, lengths)
        distinct = np.flatnonzero(source == np.arange(num_episodes))
        # Where each distinct episode starts in the flat arrays, and so each row.
        flat_first = np.zeros(num_episodes, np.int64)
        flat_first[distinct] = first_steps(lengths[distinct])
        keep = episode_steps(first[distinct], lengths[distinct])
        steps = len(keep)
        # At least two blocks: XLA inlines a one-iteration lax.map into the training program,
        # which rounds differently from the loop, so iw-BC's numbers would otherwise depend on
        # whether the distinct trajectories fit in one block (measured: benchmarks/iw_refresh.py
        # on the quick HalfCheetah medium-replay tier, 4,000 steps).
        padded = max(2, -(-max(steps, 1) // FLAT_BLOCK)) * FLAT_BLOCK
        episode_of_step = np.full(padded, num_episodes, np.int32)
        episode_of_step[:steps] = np.repeat(distinct, lengths[distinct])
        return cls(
            flat_observations=jnp.asarray(_padded_rows(observations, keep, padded)),
            flat_actions=jnp.asarray(_padded_rows(actions, keep, padded)),
            flat_episode=jnp.asarray(episode_of_step),
            starts=jnp.asarray(flat_first[source], jnp.int32),
            lengths=jnp.asarray(lengths, jnp.int32),
            quality=jnp.asarray(quality, jnp.float32),
            episode_source=jnp.asarray(source, jnp.int32),
            max_length=longest if max_length is None else int(max_length),
        )

    @property
    def num_episodes(self) -> int:
        return self.lengths.shape[0]


def _distinct_episodes(
    observations: np.ndarray, actions: np.ndarray, first: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    """[E]: for each episode row, the first row holding the same steps (itself if none)."""
    seen: dict[bytes, int] = {}
    source = np.empty(len(lengths), np.int64)
    for row, (start, length) in enumerate(zip(first, lengths, strict=True)):
        steps = slice(start, start + length)
        digest = hashlib.blake2b(observations[steps].tobytes(), digest_size=16)
        digest.update(actions[steps].tobytes())
        source[row] = seen.setdefault(digest.digest(), row)
    return source


def _padded_rows(values: np.ndarray, rows: np.ndarray, size: int) -> np.ndarray:
    """``values[rows]`` then zero rows up to ``size``, taken straight into the result (a
    dataset's observations can be gigabytes)."""
    out = np.zeros((size, *values.shape[1:]), values.dtype)
    np.take(values, rows, axis=0, out=out[: len(rows)])
    return out


class EpisodeBatch(flax.struct.PyTreeNode):
    """A batch of episodes: observations/actions [B, L, ·], mask [B, L] (steps off the episode
    are zero), quality [B], and the row of ``DeviceEpisodes`` each one was drawn from,
    ``index`` [B]."""

    observations: jax.Array
    actions: jax.Array
    mask: jax.Array
    quality: jax.Array
    index: jax.Array


def sample_episodes(
    key: jax.Array,
    data: DeviceEpisodes,
    batch_size: int,
    window: int | None = None,
    weighting: Weighting = "episode",
) -> EpisodeBatch:
    """Draw ``batch_size`` episodes with replacement (optionally a window of each), as the
    ``weighting`` asks (see the module's docstring)."""
    index_key, start_key = jax.random.split(key)
    whole = window is None or window >= data.max_length
    if weighting == "transition" and not whole:
        return _transition_windows(index_key, data, batch_size, window)
    index = jax.random.randint(index_key, (batch_size,), 0, data.num_episodes)
    length = data.lengths[index]
    if whole:
        steps = jnp.broadcast_to(jnp.arange(data.max_length), (batch_size, data.max_length))
        return _gather(data, index, steps, steps < length[:, None])
    start = jnp.floor(jax.random.uniform(start_key, (batch_size,)) * length).astype(jnp.int32)
    start = jnp.where(length > window, start, 0)
    offsets = jnp.arange(window)
    steps = (start[:, None] + offsets) % length[:, None]
    return _gather(data, index, steps, offsets < length[:, None])


def _transition_windows(
    key: jax.Array, data: DeviceEpisodes, batch_size: int, window: int
) -> EpisodeBatch:
    """Windows whose starts are uniform over every episode's steps −(window − 1) … length − 1."""
    starts = data.lengths + (window - 1)
    cumulative = jnp.cumsum(starts)
    draw = jax.random.randint(key, (batch_size,), 0, cumulative[-1])
    index = jnp.searchsorted(cumulative, draw, side="right")
    first = draw - (cumulative[index] - starts[index]) - (window - 1)
    steps = first[:, None] + jnp.arange(window)
    valid = (steps >= 0) & (steps < data.lengths[index][:, None])
    return _gather(data, index, steps, valid)


def _gather(
    data: DeviceEpisodes, index: jax.Array, steps: jax.Array, valid: jax.Array
) -> EpisodeBatch:
    """Rows ``index`` [B] at their episodes' ``steps`` [B, L], zero where not ``valid``."""
    last = data.lengths[index][:, None] - 1
    at = data.starts[index][:, None] + jnp.clip(steps, 0, last)
    keep = valid[..., None]
    return EpisodeBatch(
        observations=jnp.where(keep, data.flat_observations[at], 0.0),
        actions=jnp.where(keep, data.flat_actions[at], 0.0),
        mask=valid.astype(jnp.float32),
        quality=data.quality[index],
        index=index,
    )


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


def return_spread(returns: np.ndarray, method: str = "<method>") -> float:
    """max − min of the episode returns, which CORL's reward scaling divides by; a one-line
    error naming the switch when it is 0 (checked before anything trains, too)."""
    spread = float(np.max(returns) - np.min(returns))
    if spread <= 0.0:
        raise UserError(
            "all episodes have the same return, so CORL's reward scaling (1000 / (max return − "
            f"min return)) is undefined; train without it: --set {method}.normalize_rewards=false "
            f"(normalize_rewards = false in a suite's [offline_rl.{method}])"
        )
    return spread


def locomotion_reward_scale(transitions: Transitions, max_episode_steps: int = 1000) -> float:
    """CORL's reward scaling for locomotion: rewards · 1000 / (max return − min return)."""
    ends = np.logical_or(transitions.terminals, transitions.timeouts)
    return returns_reward_scale(episode_returns(transitions.rewards, ends), max_episode_steps)


def returns_reward_scale(returns: np.ndarray, max_episode_steps: int = 1000) -> float:
    """:func:`locomotion_reward_scale` from the episodes' undiscounted returns."""
    return max_episode_steps / return_spread(returns)


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


def value_bounds(rewards: np.ndarray, discount: float) -> tuple[float, float]:
    """The range of every value that TD targets built from these rewards can reach.

    Any discounted sum Σ γ^t r_t of rewards in [r_min, r_max], ended by a terminal or not,
    lies in [r_min / (1 − γ) if r_min < 0 else r_min, r_max / (1 − γ) if r_max > 0 else
    r_max] (infinite at γ = 1). A critic whose mean Q on its training batches leaves that range
    is not the fixed point of any policy's Bellman backup on the data: its value estimates
    have diverged (overestimation, as a rule), whatever its score curve shows.
    """
    rewards = np.asarray(rewards, np.float64)
    low, high = float(rewards.min()), float(rewards.max())
    horizon = np.inf if discount >= 1.0 else 1.0 / (1.0 - discount)
    return (low * horizon if low < 0 else low, high * horizon if high > 0 else high)
