"""D4RL-style normalised scores, on the 0-100 scale papers report."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iwbc.data.episodes import OfflineDataset
from iwbc.data.errors import DatasetError
from iwbc.errors import UserError


def normalized_score(
    returns: float | Sequence[float] | np.ndarray, ref_min: float, ref_max: float
) -> np.ndarray:
    """100 * (R - ref_min) / (ref_max - ref_min): 0 = random policy, 100 = expert reference.

    Equals 100 * minari.get_normalized_score; returned as float64 with the shape of `returns`.
    A ref_max below ref_min, which Minari accepts, would score every policy backwards: refused,
    as it is in a dataset's metadata.
    """
    if not (np.isfinite(ref_min) and np.isfinite(ref_max)) or ref_max <= ref_min:
        raise UserError(
            f"ref_min and ref_max must be finite with ref_min < ref_max, got ref_min={ref_min}, "
            f"ref_max={ref_max}"
        )
    values = np.asarray(returns, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        scores = 100.0 * (values - ref_min) / (ref_max - ref_min)
    overflowed = np.isfinite(values) & ~np.isfinite(scores)
    if overflowed.any():
        # e.g. ±1e308 (their difference is inf) or a span of 1e-306: the scores would be inf or
        # NaN, which no record or table can hold; say so before anything trains on them.
        first = np.flatnonzero(overflowed.reshape(-1))[0]
        raise UserError(
            f"normalized scores overflow with ref_min={ref_min:g} and ref_max={ref_max:g} (a "
            f"return of {values.reshape(-1)[first]:g} scores {scores.reshape(-1)[first]:g}); "
            "reference scores must be returns on the task's scale (--ref-min/--ref-max or the "
            "dataset's ref_min_score/ref_max_score)"
        )
    return scores


def dataset_normalized_score(
    dataset: OfflineDataset,
    returns: float | Sequence[float] | np.ndarray,
    *,
    ref_min: float | None = None,
    ref_max: float | None = None,
) -> np.ndarray:
    """Normalised score against the dataset's reference scores unless overrides are given."""
    low = dataset.ref_min_score if ref_min is None else ref_min
    high = dataset.ref_max_score if ref_max is None else ref_max
    if low is None or high is None:
        low, high = require_reference_scores(dataset)
    return normalized_score(returns, low, high)


def require_reference_scores(dataset: OfflineDataset) -> tuple[float, float]:
    """The dataset's (ref_min_score, ref_max_score); a one-line error naming the ways to give
    them when its metadata lacks them (every score iwbc reports is normalized)."""
    if dataset.ref_min_score is None or dataset.ref_max_score is None:
        raise DatasetError(
            f"dataset {dataset.id} has no ref_min_score/ref_max_score in its metadata; pass "
            "--ref-min and --ref-max to `iwbc run` (ref_min = and ref_max = under "
            f'[reference_scores."{dataset.id}"] in a suite for `iwbc bench`; ref_min=/ref_max= '
            "from Python), or for Minari's mujoco/<task> datasets with an expert-v0 tier run "
            "`iwbc data minari-tiers mujoco/<task>` once"
        )
    return dataset.ref_min_score, dataset.ref_max_score
