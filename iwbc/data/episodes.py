"""Episodes as flat steps with their lengths, and the transitions TD-style methods read."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium
import numpy as np
from gymnasium.envs.registration import EnvSpec

from iwbc.data.errors import DatasetError
from iwbc.envs.action_box import rescaled, unit_scale
from iwbc.envs.robotics_compat import entry_point_package
from iwbc.envs.specs import RENDERING_ARGUMENTS
from iwbc.machine import available_memory


class Transitions(NamedTuple):
    """Flat (s, a, r, s') tuples over valid steps, episode-major, for TD-style methods.

    `terminals` marks true terminations (no bootstrap); `timeouts` marks truncations.
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray


class EpisodeData(NamedTuple):
    """Episodes as flat steps, one after another, and each episode's length.

    Flat, not padded to the longest episode: many short episodes beside one long one (a weak
    policy's Humanoid data) would take many times their steps padded. Episode ``i`` is steps
    ``starts[i]`` … ``starts[i] + lengths[i] − 1``. Shapes: observations/next_observations
    [N, d], actions [N, a], rewards, terminations and truncations [N] (all float32); lengths
    [E] int32; returns [E] float64 (undiscounted sums accumulated in float64 from the stored
    rewards).
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    lengths: np.ndarray
    returns: np.ndarray

    @property
    def num_episodes(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def max_length(self) -> int:
        return int(self.lengths.max(initial=0))

    @property
    def num_steps(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def starts(self) -> np.ndarray:
        """[E] int64: the flat index of each episode's first step."""
        return first_steps(self.lengths)

    @property
    def step_episodes(self) -> np.ndarray:
        """[N] int64: the episode of each flat step."""
        return np.repeat(np.arange(self.num_episodes), self.lengths)

    def subset(self, indices: Sequence[int] | np.ndarray) -> EpisodeData:
        """Episodes at `indices` (repeats allowed, so filtered BC can up-weight good episodes)."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or not (idx.size == 0 or np.issubdtype(idx.dtype, np.integer)):
            raise ValueError(
                f"subset indices must be a 1-D sequence of integers, got shape {idx.shape} "
                f"and dtype {idx.dtype}"
            )
        n = self.num_episodes
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(
                f"subset indices must lie in [0, {n}) for {n} episodes, got min {idx.min()} "
                f"and max {idx.max()}"
            )
        idx = idx.astype(np.intp)
        if np.array_equal(idx, np.arange(n)):
            return self
        steps = episode_steps(self.starts[idx], self.lengths[idx])
        return EpisodeData(
            *(field[steps] for field in self[:6]), self.lengths[idx], self.returns[idx]
        )

    def to_transitions(self) -> Transitions:
        """The steps as (s, a, r, s') tuples, in episode order (the arrays themselves, no copy
        but the timeouts).

        An episode whose last step is neither terminated nor truncated (its recording stopped)
        ends in a timeout: the flat steps carry no other episode boundary, and without it the
        episode would run into the next one where whole-episode returns are needed (CORL's
        reward scaling for IQL). Such an end is a truncation in Gymnasium's sense.
        """
        last = (self.starts + self.lengths - 1)[self.lengths > 0]
        unflagged = last[(self.terminations[last] == 0) & (self.truncations[last] == 0)]
        timeouts = self.truncations.copy()
        timeouts[unflagged] = 1
        return Transitions(
            obs=self.observations,
            actions=self.actions,
            rewards=self.rewards,
            next_obs=self.next_observations,
            terminals=self.terminations,
            timeouts=timeouts,
        )

    def update_digest(self, digest: Any) -> None:
        """Feed ``digest`` the episodes as iwbc stored them before it kept them flat: each
        field padded with zeros to the longest episode, then a mask, lengths and returns.

        Content fingerprints key every record and cached run; hashing that layout (built a
        bounded block of episodes at a time) keeps them, so runs already made still count.
        Where that layout passes ``PADDED_DIGEST_LIMIT`` bytes, the flat arrays are hashed
        instead (tagged as such): hashing its zeros would take minutes, and loading such a
        dataset padded needed twice that much free memory.
        """
        horizon = self.max_length
        # bytes a padded step took: the six step fields, and a float32 mask
        row = 4 + sum(values.dtype.itemsize * int(np.prod(values.shape[1:])) for values in self[:6])
        if self.num_episodes * horizon * row > PADDED_DIGEST_LIMIT:
            digest.update(b"flat episodes")
            for array in self:
                _hash_array(digest, array)
            return
        starts = self.starts
        for values in (*self[:6], np.ones(self.num_steps, np.float32)):
            tail = values.shape[1:]
            digest.update(repr((values.dtype.str, (self.num_episodes, horizon, *tail))).encode())
            row_bytes = horizon * values.dtype.itemsize * int(np.prod(tail, dtype=np.int64))
            block = max(1, _DIGEST_BLOCK_BYTES // max(row_bytes, 1))
            for first in range(0, self.num_episodes, block):
                rows = slice(first, first + block)
                digest.update(_padded(values, starts[rows], self.lengths[rows], horizon).data)
        for array in (self.lengths, self.returns):
            _hash_array(digest, array)


def _hash_array(digest: Any, array: np.ndarray) -> None:
    digest.update(repr((array.dtype.str, array.shape)).encode())
    digest.update(np.ascontiguousarray(array).data)


# Padded bytes built at a time for a fingerprint (the layout is never held whole).
_DIGEST_BLOCK_BYTES = 64 * 2**20
# Above this many bytes of padded layout, fingerprints hash the flat arrays (8 GiB: ~10 s of
# hashing at 0.9 GiB/s).
PADDED_DIGEST_LIMIT = 8 * 2**30


def first_steps(lengths: np.ndarray) -> np.ndarray:
    """[E] int64: where each of episodes of ``lengths`` starts when they lie one after another."""
    return np.cumsum(lengths, dtype=np.int64) - lengths


def episode_steps(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The flat indices of the steps of episodes of ``lengths`` starting at ``starts``, one
    after another."""
    return np.repeat(starts - first_steps(lengths), lengths) + np.arange(int(lengths.sum()))


def _padded(
    values: np.ndarray, starts: np.ndarray, lengths: np.ndarray, horizon: int
) -> np.ndarray:
    """[len(starts), horizon, ...]: those episodes' steps of ``values``, zero after each end."""
    out = np.zeros((len(starts), horizon, *values.shape[1:]), values.dtype)
    rows = np.repeat(np.arange(len(starts)), lengths)
    columns = episode_steps(np.zeros_like(lengths), lengths)
    out[rows, columns] = values[episode_steps(starts, lengths)]
    return out


def _check_size(steps: int, obs_dim: int, act_dim: int) -> None:
    """Refuse, in one line, episodes whose arrays would not fit in memory.

    The kernel would kill the process without a word, loading or training (which holds the
    arrays again, on the device), so twice their size must be free.
    """
    free = available_memory()
    # Float32 numbers a step holds: observation, next observation, action, reward, termination
    # and truncation.
    size = steps * (2 * obs_dim + act_dim + 3) * 4
    if free is None or 2 * size <= free:
        return
    gib = 2**30
    raise DatasetError(
        f"{steps:,} steps take {size / gib:.1f} GiB, and loading and training need about twice "
        f"that, with {free / gib:.1f} GiB of memory available: load it on a machine with more "
        "memory"
    )


def stack_episodes(
    observations: Sequence[np.ndarray],
    actions: Sequence[np.ndarray],
    rewards: Sequence[np.ndarray],
    terminations: Sequence[np.ndarray],
    truncations: Sequence[np.ndarray],
) -> EpisodeData:
    """Minari-style episodes (T_i+1 observations, T_i of everything else) as EpisodeData.

    One preallocation and one slice copy per episode, so a million steps take well under a
    second; the episode's final observation only appears as the last next_observation.
    """
    num = len(rewards)
    if num == 0:
        raise DatasetError("cannot build episode arrays from 0 episodes; supply at least one")
    if not len(observations) == len(actions) == len(terminations) == len(truncations) == num:
        raise DatasetError(
            "observations, actions, rewards, terminations and truncations must hold the same "
            "number of episodes"
        )
    lengths = np.fromiter((len(r) for r in rewards), dtype=np.int32, count=num)
    hollow = np.flatnonzero(lengths == 0)
    if hollow.size:
        more = f" (and {hollow.size - 1} more)" if hollow.size > 1 else ""
        raise DatasetError(
            f"episode {hollow[0]}{more} has no steps (a reset observation only); every "
            "episode needs at least one step: regenerate the dataset without it"
        )
    obs_dim = _feature_shape(observations[0], "observations")
    act_dim = _feature_shape(actions[0], "actions")
    steps = int(lengths.sum(dtype=np.int64))
    _check_size(steps, obs_dim, act_dim)

    obs = np.zeros((steps, obs_dim), np.float32)
    next_obs = np.zeros((steps, obs_dim), np.float32)
    acts = np.zeros((steps, act_dim), np.float32)
    rews = np.zeros(steps, np.float32)
    terms = np.zeros(steps, np.float32)
    truncs = np.zeros(steps, np.float32)
    returns = np.zeros(num, np.float64)
    start = 0
    for i in range(num):
        n = int(lengths[i])
        o = np.asarray(observations[i]).reshape(len(observations[i]), -1)
        a = np.asarray(actions[i]).reshape(len(actions[i]), -1)
        if o.shape != (n + 1, obs_dim) or a.shape != (n, act_dim):
            raise DatasetError(
                f"episode {i} has observations of shape {o.shape} and actions of shape "
                f"{a.shape}, expected ({n + 1}, {obs_dim}) and ({n}, {act_dim}) for {n} "
                "rewards; regenerate the dataset"
            )
        per_step = (
            ("rewards", rewards[i]),
            ("terminations", terminations[i]),
            ("truncations", truncations[i]),
        )
        wrong = [f"{name} of shape {np.shape(v)}" for name, v in per_step if np.shape(v) != (n,)]
        if wrong:
            raise DatasetError(
                f"episode {i} has {' and '.join(wrong)}, expected ({n},): one value a step for "
                f"its {n} steps; flatten them or regenerate the dataset"
            )
        for name, flags in (("terminates", terminations[i]), ("is truncated", truncations[i])):
            ended = np.flatnonzero(np.asarray(flags, bool)[:-1])
            if ended.size:
                # A TD target would stop (or bootstrap from a reset) at a step the data then
                # carries on from, and the episode's return would mix two episodes.
                raise DatasetError(
                    f"episode {i} {name} at step {ended[0]} of its {n} and goes on; an episode "
                    "ends at its first termination or truncation: split it there or "
                    "regenerate the dataset"
                )
        here = slice(start, start + n)
        _store(obs[here], o[:n], "observations", i)
        _store(next_obs[here], o[1:], "observations", i)
        _store(acts[here], a, "actions", i)
        _store(rews[here], rewards[i], "rewards", i)
        terms[here] = terminations[i]
        truncs[here] = truncations[i]
        # np.asarray first: np.sum hands a JAX array to its own sum, which drops float64.
        returns[i] = np.sum(np.asarray(rewards[i]), dtype=np.float64)
        start += n
    return EpisodeData(obs, acts, rews, next_obs, terms, truncs, lengths, returns)


def _store(target: np.ndarray, values: Any, name: str, episode: int) -> None:
    """``target[...] = values`` cast to float32; a finite value float32 cannot hold is a
    one-line error naming it, where the cast would make it an inf that the NaN/inf check
    later misnames (NaN and inf themselves pass through to that check)."""
    try:
        with np.errstate(over="raise"):
            target[...] = values
    except FloatingPointError:
        limit = float(np.finfo(np.float32).max)
        values = np.asarray(values, np.float64)
        big = values[np.isfinite(values) & (np.abs(values) > limit)]
        raise DatasetError(
            f"episode {episode} has {name} of {big[0]:.3g}, beyond the float32 range "
            f"(±{limit:.3g}) that training computes in; rescale or clean the dataset"
        ) from None


def _feature_shape(first: np.ndarray, name: str) -> int:
    arr = np.asarray(first)
    if arr.ndim == 0:
        raise DatasetError(f"{name} of episode 0 is a scalar; expected one row per step")
    return int(np.prod(arr.shape[1:], dtype=np.int64))


@dataclass(frozen=True, eq=False)
class OfflineDataset:
    """A loaded Minari dataset: identity, dimensions, reference scores and the episode arrays.

    `ref_min_score`/`ref_max_score` are None when the dataset's metadata has none, and
    `ref_source` says where they came from (tables print it); `env_spec` is the spec Minari
    recorded for evaluation (its ``eval_env_spec``, by default the env the data was recorded
    on; None if absent) so evaluation builds that environment.
    `episodes.actions` are in [-1, 1]: actions of a box [`action_low`, `action_high`] other than
    [-1, 1] are mapped into it on loading, and back on evaluation (:mod:`iwbc.envs.action_box`).
    """

    id: str
    env_id: str | None
    observation_dim: int
    action_dim: int
    ref_min_score: float | None
    ref_max_score: float | None
    episodes: EpisodeData
    action_low: np.ndarray
    action_high: np.ndarray
    env_spec: EnvSpec | None = None
    ref_source: str | None = None
    # Fraction of the steps whose recorded action lay outside the action box (clipped to it).
    clipped_actions: float = 0.0

    @property
    def env(self) -> EnvSpec | str | None:
        """What to evaluate on: the recorded EnvSpec (its arguments and time limit), else the
        env id."""
        return self.env_spec if self.env_spec is not None else self.env_id

    @property
    def action_scale(self) -> tuple[float, ...]:
        """Per action dimension, (high − low) / 2 where the box was mapped into [-1, 1], else 1
        (:func:`iwbc.envs.action_box.unit_scale`)."""
        return unit_scale(self.action_low, self.action_high)

    @functools.cached_property
    def content_fingerprint(self) -> str:
        """A hash of what training and scoring read: episode arrays, env, reference scores and
        an action box other than [-1, 1].

        Records are keyed by it, not by the id alone: a dataset regenerated, or read from
        another root under the same id, never counts another's runs as its own. The box counts
        since evaluation maps actions into it and TD3+BC's loss reads it (which runs made
        before it did must not be reused).
        """
        return self._fingerprint(references=True)

    @functools.cached_property
    def training_fingerprint(self) -> str:
        """:attr:`content_fingerprint` without the reference scores: what training and the
        raw returns of evaluation read. Caches of trained agents and evaluations are keyed by
        it, so new reference scores (``--ref-min``/``--ref-max``, a filled-in cache) rescore
        finished runs from their cached returns instead of training them again."""
        return self._fingerprint(references=False)

    def _fingerprint(self, *, references: bool) -> str:
        digest = hashlib.blake2b(digest_size=16)
        scores = (self.ref_min_score, self.ref_max_score) if references else ()
        digest.update(repr((self.env_id, *scores)).encode())
        arguments = _env_arguments(self.env_spec)
        if arguments:  # only then: fingerprints of default-env datasets stay what they were
            digest.update(repr(arguments).encode())
        if rescaled(self.action_low, self.action_high):  # likewise for [-1, 1] boxes
            box = (self.action_low.tolist(), self.action_high.tolist())
            digest.update(repr(("action box", box)).encode())
        self.episodes.update_digest(digest)
        return digest.hexdigest()

    @property
    def env_label(self) -> str:
        """The env id, with what the recorded env sets otherwise than its default."""
        return env_label(self.env_id, self.env_spec)

    @property
    def num_episodes(self) -> int:
        return self.episodes.num_episodes

    @property
    def num_steps(self) -> int:
        return self.episodes.num_steps

    @property
    def returns(self) -> np.ndarray:
        return self.episodes.returns


def env_label(env_id: str | None, env_spec: EnvSpec | None) -> str:
    """``env_id``, with what ``env_spec`` sets otherwise than the id's default, e.g.
    ``Ant-v5 (include_cfrc_ext_in_observation=False)``. Arguments of how the env renders
    (``render_mode=None``, which ``gym.make`` records) change no score and are left out."""
    arguments = _env_arguments(env_spec)
    if not arguments:
        return str(env_id)
    kwargs, wrappers, limit = arguments
    parts = [f"{name}={value!r}" for name, value in kwargs if name not in RENDERING_ARGUMENTS]
    if not parts and not wrappers and not limit:
        return str(env_id)
    parts += [f"wrapper {name}" for name in wrappers]
    parts += [f"max_episode_steps={steps}" for steps in limit]
    return f"{env_id} ({', '.join(parts)})"


def _env_arguments(env_spec: EnvSpec | None) -> tuple:
    """What sets a recorded env apart from its id's default: arguments, wrappers, another time
    limit (an env built otherwise scores differently). Empty for a default env."""
    if env_spec is None:
        return ()
    registered = _registration(env_spec)
    limit = None if registered is None else registered.max_episode_steps
    parts = (
        tuple(sorted(env_spec.kwargs.items())),
        tuple(w.name for w in env_spec.additional_wrappers),
        () if env_spec.max_episode_steps == limit else (env_spec.max_episode_steps,),
    )
    return parts if any(parts) else ()


def _registration(env_spec: EnvSpec) -> EnvSpec | None:
    """The registration of ``env_spec``'s id. The package its entry point names is imported
    first where the id is not yet registered, as Gymnasium-Robotics registers its envs (Adroit,
    mazes, Kitchen) on import: otherwise the answer, and with it a dataset's fingerprint,
    would depend on whether something had imported it earlier in the process."""
    registered = gymnasium.registry.get(env_spec.id)
    package = entry_point_package(env_spec)
    if registered is None and package is not None:
        with contextlib.suppress(Exception):  # a package missing here: the env's build says so
            importlib.import_module(package)
        registered = gymnasium.registry.get(env_spec.id)
    return registered
