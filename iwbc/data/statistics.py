"""Per-dimension observation statistics: the one standardization every method of a table shares.

CORL standardizes states for BC and every offline-RL baseline with the training dataset's mean
and std + 1e-3 (its 10%BC with those of its top-10% subset alone). Computing them here, once per
dataset, lets the BC family and the baselines see the same inputs (the BC start, q_ref, q_iw, the
fine-tuned policy and the curated methods included), as METHOD.md's protocol asks.
"""

from __future__ import annotations

import numpy as np

from iwbc.data.errors import DatasetError

# CORL's epsilon: std + 1e-3, so near-constant features stay finite.
STD_EPSILON = 1e-3


def normalization_stats(observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std + 1e-3 of ``observations`` [N, d] (float32 results).

    A feature that is constant in the data gets std 1 (+ 1e-3) instead of 1e-3: it carries no
    information to learn from, and dividing by 1e-3 would turn any other value met at evaluation
    into an input a thousand times out of range. A NaN or infinite value is a one-line error
    naming the feature, since it would silently make every parameter NaN.
    """
    values = np.asarray(observations, np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise DatasetError(
            f"observation statistics need a non-empty [N, dim] array, got shape {values.shape}"
        )
    finite = np.isfinite(values)
    if not finite.all():
        column = int(np.flatnonzero(~finite.all(axis=0))[0])
        row = int(np.flatnonzero(~finite[:, column])[0])
        raise DatasetError(
            f"observation feature {column} is NaN or infinite (first at step {row} of "
            f"{values.shape[0]}); clean the dataset before training"
        )
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    std = np.where(std > 0.0, std, 1.0) + STD_EPSILON
    return mean.astype(np.float32), std.astype(np.float32)
