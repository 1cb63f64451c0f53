"""Return-based trajectory selection for filtered and importance-weighted BC (pure numpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _validated_returns(returns: Sequence[float] | np.ndarray) -> np.ndarray:
    values = np.asarray(returns, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"returns must be a 1-D array of episode returns, got {values.shape}")
    if values.size == 0:
        raise ValueError("returns is empty; selection needs at least one episode")
    if not np.isfinite(values).all():
        raise ValueError(
            f"returns contain NaN/inf at episode(s) {np.flatnonzero(~np.isfinite(values))[:5]}; "
            "clean the dataset first"
        )
    return values


def top_fraction(returns: Sequence[float] | np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the best `fraction` of trajectories by return: CORL's %BC filter.

    Follows CORL's `any_percent_bc.keep_best_trajectories` (Tarasov et al., 2022): keep
    `max(1, int(fraction * E))` trajectories in descending return order. Ties keep the lower
    episode index first (stable sort), so results do not depend on the sort algorithm.
    """
    values = _validated_returns(returns)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    keep = max(1, int(fraction * values.size))
    return np.argsort(-values, kind="stable")[:keep]


def stratified_top(
    returns: Sequence[float] | np.ndarray, percentiles: Sequence[float] = (90, 95, 98)
) -> np.ndarray:
    """Filtered-BC selection of the iw-SFT authors: one copy per percentile a return clears.

    For each p, take {i : R_i >= np.percentile(R, p)} (ascending index order) and concatenate
    the sets, so with (90, 95, 98) a trajectory above the 98th percentile appears three times
    and the best data is up-weighted. Example: returns 0..99 give 10 + 5 + 2 = 17 indices.
    The authors filter one buffer in place, cut-off after cut-off (``main.py``'s
    ``filter_data_func``), so a percentile below an earlier one selects the earlier set again:
    each threshold is the highest so far, as there.
    """
    values = _validated_returns(returns)
    levels = np.asarray(percentiles, dtype=np.float64)
    if levels.ndim != 1 or levels.size == 0:
        raise ValueError(f"percentiles must be a non-empty 1-D sequence, got {percentiles!r}")
    if not ((levels >= 0) & (levels <= 100)).all():
        raise ValueError(f"percentiles must lie in [0, 100], got {percentiles!r}")
    thresholds = np.maximum.accumulate(np.percentile(values, levels))
    return np.concatenate([np.flatnonzero(values >= t) for t in thresholds])


def quality_scores(returns: Sequence[float] | np.ndarray) -> np.ndarray:
    """Min-max normalised returns in [0, 1], the per-trajectory quality weight of iw-BC.

    If every return is equal there is no quality signal, so all trajectories get weight 1
    (plain BC) rather than a division by zero.
    """
    values = _validated_returns(returns)
    low, high = values.min(), values.max()
    if high == low:
        return np.ones_like(values)
    return (values - low) / (high - low)
