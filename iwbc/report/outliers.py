"""Seeds whose final score stands apart from the other seeds of their cell.

A mean ± std over five seeds reads the same whether every seed scored near it or four did and
one was stuck at its start, collapsed late in training, or found what the others missed. Such a
seed is named beside the table, with its best score during training (a collapse ends far below
its best; a stuck seed never rose), so the reader can look at its learning curve before drawing
a conclusion from the cell.

A seed is *apart* when its modified z-score (Iglewicz & Hoaglin 1993), 0.6745·|x − median| /
MAD over its cell's finished seeds, exceeds ``Z_LIMIT``, and it lies at least ``MIN_GAP``
normalized points from the median, so that a cell whose seeds agree to a fraction of a point
(MAD near 0) flags nothing a reader would care about. The median and MAD, not the mean and std,
so that the seed itself does not widen the yardstick it is measured by. Cells with fewer than
``MIN_SEEDS`` finished seeds are not tested.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iwbc.report.runs import SuiteRuns

Z_LIMIT = 3.5  # Iglewicz & Hoaglin's recommended cut-off for the modified z-score
MIN_GAP = 10.0  # normalized points
MIN_SEEDS = 3
_MAD_TO_SIGMA = 0.6745  # the standard normal's MAD: z = 0.6745·(x − median) / MAD


@dataclass(frozen=True)
class SeedApart:
    """One seed apart from its cell: its final and best scores, and the cell's median."""

    dataset: str
    method: str
    seed: int
    final: float
    best: float
    best_step: int  # the update of its best evaluation
    last_step: int  # the update of its final one
    cell_median: float
    cell_seeds: int


def modified_z_scores(values: np.ndarray) -> np.ndarray:
    """0.6745·(x − median) / MAD per value; ±inf where MAD is 0 and x is off the median."""
    values = np.asarray(values, dtype=float)
    deviation = values - np.median(values)
    mad = np.median(np.abs(deviation))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = _MAD_TO_SIGMA * deviation / mad
    return np.where(deviation == 0, 0.0, z)


def apart(finals: np.ndarray) -> np.ndarray:
    """Which of one cell's final scores stand apart from the others (all False below
    ``MIN_SEEDS``)."""
    finals = np.asarray(finals, dtype=float)
    if finals.size < MIN_SEEDS:
        return np.zeros(finals.shape, bool)
    gap = np.abs(finals - np.median(finals))
    return (np.abs(modified_z_scores(finals)) > Z_LIMIT) & (gap >= MIN_GAP)


def seeds_apart(runs: SuiteRuns) -> list[SeedApart]:
    """The seeds apart from their cell, in table order (dataset, method, seed)."""
    found = []
    for dataset in runs.datasets:
        for method in runs.methods:
            cell = runs.ok_runs(dataset, method)
            finals = np.array([run.final for run in cell])
            median = float(np.median(finals)) if cell else np.nan
            for run, is_apart in zip(cell, apart(finals), strict=True):
                if not is_apart:
                    continue
                seed = SeedApart(
                    dataset=dataset,
                    method=method,
                    seed=run.seed,
                    final=run.final,
                    best=run.best,
                    best_step=int(run.steps[np.argmax(run.curve)]),
                    last_step=int(run.steps[-1]),
                    cell_median=median,
                    cell_seeds=len(cell),
                )
                found.append(seed)
    return found
