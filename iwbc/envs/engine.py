"""The contract every evaluation engine keeps (batch, MJX, Gymnasium), and its argument checks.

An engine is ``num_envs`` envs of one task without auto-reset: ``reset`` and ``step`` act on
the envs ``ids`` (default all) and return every env's row, the others unchanged. The checks
live here once so that the three engines refuse a bad call with the same message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np


class StepResult(NamedTuple):
    """What ``step`` returns, each with a leading env axis."""

    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


class Engine(Protocol):
    """Vectorized envs without auto-reset; what ``rollout.make_engine`` returns."""

    env_id: str
    num_envs: int
    obs_dim: int
    act_dim: int
    max_episode_steps: int | None
    action_low: np.ndarray
    action_high: np.ndarray

    def reset(
        self, seeds: Sequence[int] | np.ndarray, ids: np.ndarray | None = None
    ) -> np.ndarray: ...

    def step(self, actions: np.ndarray, ids: np.ndarray | None = None) -> StepResult: ...

    def close(self) -> None: ...


def check_num_envs(num_envs: int) -> None:
    """ValueError unless an engine is asked for at least one env."""
    if num_envs < 1:
        raise ValueError(f"num_envs must be at least 1, got {num_envs}")


def resolve_ids(ids: np.ndarray | list[int] | None, num_envs: int) -> np.ndarray:
    """Env ids as an int64 array (all envs for None), checked against num_envs."""
    if ids is None:
        return np.arange(num_envs)
    out = np.asarray(ids, dtype=np.int64).reshape(-1)
    if out.size and (out.min() < 0 or out.max() >= num_envs):
        raise ValueError(f"env ids must lie in [0, {num_envs}), got {out.tolist()}")
    return out


def reset_targets(
    seeds: Sequence[int] | np.ndarray, ids: np.ndarray | None, num_envs: int
) -> tuple[np.ndarray, list[int]]:
    """``reset``'s (ids, seeds): the env ids resolved and one int seed per id, checked."""
    ids = resolve_ids(ids, num_envs)
    seeds = [int(s) for s in np.asarray(seeds).reshape(-1)]
    if len(seeds) != ids.size:
        raise ValueError(f"got {len(seeds)} seeds for {ids.size} envs")
    return ids, seeds


def checked_actions(actions: np.ndarray, num_envs: int, act_dim: int) -> np.ndarray:
    """``step``'s actions as an array of shape [num_envs, act_dim]; ValueError otherwise."""
    actions = np.asarray(actions)
    if actions.shape != (num_envs, act_dim):
        raise ValueError(f"actions must have shape {(num_envs, act_dim)}, got {actions.shape}")
    return actions
