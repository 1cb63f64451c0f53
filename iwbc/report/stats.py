"""Aggregate statistics of a suite with rliable: IQM, median, mean and optimality gap of the
final normalized scores over all (dataset × seed) runs of each method, with 95% stratified
bootstrap confidence intervals, and performance profiles (Agarwal et al. 2021).

A method's runs form a [runs, datasets] matrix, as rliable's stratified bootstrap needs: it
resamples runs within each dataset. A cell with fewer finished seeds than its neighbours limits
every dataset of that method to that many (the lowest seeds); a method with no finished run on
some dataset has no aggregate. Both are written out, never hidden.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from rliable import library as rly
from rliable import metrics

from iwbc.errors import UserError
from iwbc.report.runs import SuiteRuns

METRICS = ("IQM", "median", "mean", "optimality gap")
EXPERT = 100.0  # the optimality gap measures the shortfall from the expert's normalized score


@dataclass(frozen=True)
class SuiteStats:
    """Point estimates, CIs and profiles of every method with a complete score matrix."""

    scores: dict[str, np.ndarray]  # method -> [runs, datasets] final normalized scores
    metrics: tuple[str, ...]  # METRICS, the order of the estimates
    estimates: dict[str, np.ndarray]  # method -> [len(metrics)]
    intervals: dict[str, np.ndarray]  # method -> [2 (low, high), len(metrics)]
    taus: np.ndarray  # thresholds of the performance profiles
    profiles: dict[str, np.ndarray]  # method -> fraction of runs with score > tau
    profile_intervals: dict[str, np.ndarray]  # method -> [2, len(taus)]
    notes: tuple[str, ...]  # methods or runs left out of the aggregates, and why
    reps: int
    seed: int

    def has_interval(self, method: str) -> bool:
        """Whether ``method``'s aggregates have a bootstrap CI: the stratified bootstrap
        resamples runs within each dataset, so with one run per dataset every resample is the
        data itself and its zero-width "interval" says nothing of the uncertainty."""
        return self.scores[method].shape[0] > 1


def score_matrices(runs: SuiteRuns) -> tuple[dict[str, np.ndarray], list[str]]:
    """Each method's [runs, datasets] matrix of final scores, and what was left out of it."""
    matrices, notes = {}, []
    for method in runs.methods:
        cells = [runs.final_scores(d, method) for d in runs.datasets]
        sizes = [cell.size for cell in cells]
        if min(sizes) == 0:
            lacking = [d for d, n in zip(runs.datasets, sizes, strict=True) if n == 0]
            notes.append(f"{method}: no aggregate, no finished run on {', '.join(lacking)}")
            continue
        n = min(sizes)
        if max(sizes) > n:
            dropped = sum(sizes) - n * len(sizes)
            notes.append(
                f"{method}: {dropped} finished run(s) left out so that every dataset has the "
                f"same {n} run(s) (its first {n} finished seeds), as the stratified bootstrap "
                "needs"
            )
        matrices[method] = np.stack([cell[:n] for cell in cells], axis=1)
    return matrices, notes


def aggregate(scores: np.ndarray) -> np.ndarray:
    """IQM, median, mean and optimality gap (from 100) over all runs and datasets."""
    return np.array(
        [
            metrics.aggregate_iqm(scores),
            metrics.aggregate_median(scores),
            metrics.aggregate_mean(scores),
            metrics.aggregate_optimality_gap(scores, EXPERT),
        ]
    )


def fraction_above(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """The score distribution: fraction of all runs scoring above each tau (rliable's default
    profile, computed for all taus at once rather than one tau at a time)."""
    return (scores.reshape(-1, 1) > np.asarray(taus).reshape(1, -1)).mean(axis=0)


@contextlib.contextmanager
def _global_numpy_seed(seed: int) -> Iterator[None]:
    """rliable's bootstrap draws from NumPy's global RNG whatever ``random_state`` says, so the
    report seeds it for reproducible CIs and restores the caller's state after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def profile_taus(matrices: dict[str, np.ndarray], points: int = 51) -> np.ndarray:
    """Thresholds from 0 to 100, or past the best score rounded up to a multiple of 10."""
    top = max([EXPERT, *(float(m.max()) for m in matrices.values())])
    return np.linspace(0.0, 10.0 * np.ceil(top / 10.0), points)


def suite_stats(runs: SuiteRuns, *, reps: int = 2000, seed: int = 0) -> SuiteStats:
    """Aggregates with 95% stratified bootstrap CIs (``reps`` resamples) and profiles."""
    if reps < 1:
        raise UserError(f"bootstrap reps must be at least 1, got {reps}")
    matrices, notes = score_matrices(runs)
    taus = profile_taus(matrices)
    if matrices:
        with _global_numpy_seed(seed):
            estimates, intervals = rly.get_interval_estimates(matrices, aggregate, reps=reps)
            profiles, profile_intervals = rly.create_performance_profile(
                matrices, taus, custom_profile_func=fraction_above, reps=reps
            )
    else:
        estimates, intervals, profiles, profile_intervals = {}, {}, {}, {}
    return SuiteStats(
        scores=matrices,
        metrics=METRICS,
        estimates=estimates,
        intervals=intervals,
        taus=taus,
        profiles=profiles,
        profile_intervals=profile_intervals,
        notes=tuple(notes),
        reps=reps,
        seed=seed,
    )


def stats_markdown(stats: SuiteStats) -> str:
    """One row per method: each metric as ``estimate [low, high]`` (``[—]`` without a CI)."""
    header = ["method", "runs × datasets", *(f"{m} [95% CI]" for m in METRICS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, scores in stats.scores.items():
        point, (low, high) = stats.estimates[method], stats.intervals[method]
        cells = [
            f"{p:.1f} [{lo:.1f}, {hi:.1f}]" if stats.has_interval(method) else f"{p:.1f} [—]"
            for p, lo, hi in zip(point, low, high, strict=True)
        ]
        lines.append("| " + " | ".join([method, "{} × {}".format(*scores.shape), *cells]) + " |")
    single = [m for m in stats.scores if not stats.has_interval(m)]
    if single:
        lines += [
            "",
            f"{', '.join(single)}: one run per dataset, so no confidence interval (the "
            "stratified bootstrap resamples runs within a dataset); the estimate is one run's.",
        ]
    return "\n".join(lines) + "\n"


def stats_csv(stats: SuiteStats) -> str:
    """One row per (method, metric)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["method", "metric", "estimate", "ci_low", "ci_high", "runs", "datasets"])
    for method, scores in stats.scores.items():
        point, (low, high) = stats.estimates[method], stats.intervals[method]
        for i, metric in enumerate(METRICS):
            ci = [f"{low[i]:.4f}", f"{high[i]:.4f}"] if stats.has_interval(method) else ["", ""]
            writer.writerow([method, metric, f"{point[i]:.4f}", *ci, *scores.shape])
    return out.getvalue()


def profiles_csv(stats: SuiteStats) -> str:
    """One row per (method, tau): the fraction of runs scoring above tau, with its 95% CI."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["method", "tau", "fraction_above", "ci_low", "ci_high"])
    for method, profile in stats.profiles.items():
        low, high = stats.profile_intervals[method]
        for tau, fraction, lo, hi in zip(stats.taus, profile, low, high, strict=True):
            ci = [f"{lo:.4f}", f"{hi:.4f}"] if stats.has_interval(method) else ["", ""]
            writer.writerow([method, f"{tau:.4f}", f"{fraction:.4f}", *ci])
    return out.getvalue()
