"""Policies act in [-1, 1] on every action dimension, whatever the task's action box.

Every policy here ends in tanh (or is trained towards [-1, 1]), as the MuJoCo locomotion tasks'
boxes are [-1, 1]; a task with another box (InvertedPendulum [-3, 3], Pusher [-2, 2], Humanoid
[-0.4, 0.4]) would leave part of the box out of the policy's reach. So a dataset's actions are
mapped into [-1, 1] on loading and a policy's actions back into the env's box on evaluation:
the affine map of Gymnasium's ``RescaleAction(env, -1, 1)``, written out because the batch
and MJX engines are not Gymnasium envs and the data side needs its inverse. A [-1, 1] box, or
one with an infinite bound, is left as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def rescaled(low: Any, high: Any) -> bool:
    """Whether a box's actions are mapped: its bounds are finite and not already [-1, 1]."""
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    finite = bool(np.all(np.isfinite(low)) and np.all(np.isfinite(high)))
    return finite and not (np.all(low == -1.0) and np.all(high == 1.0))


def unit_scale(low: Any, high: Any) -> tuple[float, ...]:
    """Per dimension, what a difference of [-1, 1] actions is multiplied by to be one in the
    box's units: (high − low) / 2 where the box is mapped, 1 where it is not. A loss whose
    balance depends on the action's units (TD3+BC's BC term against its Q term) uses it to
    stay the loss its paper states in the env's units."""
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    if not rescaled(low, high):
        return (1.0,) * low.size
    return tuple(float(x) for x in (0.5 * (high - low)).ravel())


def box_text(low: Any, high: Any) -> str:
    """[low, high] for tables: once when every dimension has the same bounds."""
    bounds = list(zip(np.ravel(low).tolist(), np.ravel(high).tolist(), strict=True))
    if len(set(bounds)) == 1:
        return f"[{bounds[0][0]:g}, {bounds[0][1]:g}] on every dimension"
    return "; ".join(f"[{a:g}, {b:g}]" for a, b in bounds)


def to_unit(actions: Any, low: Any, high: Any) -> Any:
    """Actions in the box [low, high] as actions in [-1, 1] (numpy or jax arrays)."""
    return 2.0 * (actions - low) / (high - low) - 1.0


def from_unit(actions: Any, low: Any, high: Any) -> Any:
    """Actions in [-1, 1] as actions in the box [low, high] (numpy or jax arrays)."""
    return low + 0.5 * (actions + 1.0) * (high - low)
