"""Figures: an experiment's return distribution beside its methods' final scores, and a suite's
learning curves, aggregate scores with CIs and performance profiles (Figure API, no pyplot)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from iwbc.report.runs import Run, SuiteRuns
from iwbc.report.tables import MethodScores

if TYPE_CHECKING:  # importing rliable costs seconds that `iwbc run` does not need
    from iwbc.report.stats import SuiteStats


def returns_figure(
    dataset_scores: np.ndarray,
    scores: Sequence[MethodScores],
    path: str | Path,
    *,
    percentiles: Sequence[float] = (90.0, 95.0, 98.0),
    title: str = "",
) -> Path:
    """Left: normalized returns of the dataset's episodes, with the filtering percentiles.
    Right: each method's final normalized score, mean ± std over seeds, one dot per seed."""
    fig = Figure(figsize=(11, 4), layout="tight")
    left, right = fig.subplots(1, 2, width_ratios=(1, 1.4))
    left.hist(dataset_scores, bins=40, range=_histogram_range(dataset_scores), color="0.6")
    for p in percentiles:
        cut = np.percentile(dataset_scores, p)
        left.axvline(cut, color="tab:red", lw=1, ls="--")
        left.annotate(f"p{p:g}", (cut, left.get_ylim()[1] * 0.9), rotation=90, fontsize=8)
    left.set_xlabel("normalized return of dataset episode")
    left.set_ylabel("episodes")
    left.set_title("dataset")

    names = [s.method for s in scores]
    x = np.arange(len(scores))
    means = [s.seed_scores.mean() for s in scores]
    stds = [s.seed_scores.std() for s in scores]
    right.bar(x, means, yerr=stds, capsize=4, color="tab:blue", alpha=0.6)
    for i, s in enumerate(scores):
        jitter = np.linspace(-0.15, 0.15, len(s.seed_scores))
        right.scatter(i + jitter, s.seed_scores, s=12, color="k", zorder=3)
    right.set_xticks(x, names, rotation=20)
    right.set_ylabel("normalized score (0 random, 100 expert)")
    right.axhline(100, color="0.5", lw=0.8, ls=":")
    right.set_title("final evaluation, mean ± std over seeds")
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _histogram_range(values: np.ndarray) -> tuple[float, float] | None:
    """The data's own range, or one unit around it where the values are equal up to rounding:
    numpy cannot cut a span of a few ulps into 40 bins (it widens exactly equal values by ±0.5
    itself, and this does the same for nearly equal ones)."""
    low, high = float(np.min(values)), float(np.max(values))
    if high - low > 1e-6 * max(1.0, abs(low), abs(high)):
        return None
    return low - 0.5, high + 0.5


def _colors(methods: Sequence[str]) -> dict[str, tuple]:
    """A fixed color per method position, so every figure of a suite agrees."""
    palette = matplotlib.colormaps["tab10"]
    return {m: palette(i % 10) for i, m in enumerate(methods)}


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """PNG and SVG beside each other; SVG ids and metadata fixed so reruns give the same file."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    with matplotlib.rc_context({"svg.hashsalt": "iwbc", "svg.fonttype": "none"}):
        fig.savefig(paths[0], dpi=120, metadata={"Software": None})
        fig.savefig(paths[1], metadata={"Date": None, "Creator": None})
    return paths


def _curve(runs: Sequence[Run]) -> tuple[np.ndarray, np.ndarray]:
    """The updates every seed evaluated at, and the seeds' scores there [seeds, points]."""
    steps = functools.reduce(np.intersect1d, [run.steps for run in runs])
    values = [run.curve[np.isin(run.steps, steps)] for run in runs]
    return steps, np.stack(values)


def learning_curves_figure(runs: SuiteRuns, stem: Path) -> list[Path]:
    """One panel per dataset: each method's normalized score vs updates, mean ± std over seeds.
    The last point of a curve is its final evaluation, on the suite's final episodes (more than
    the intermediate ones), and the y label says so.

    Updates span orders of magnitude between BC fine-tunes and offline RL, so the x axis turns
    symlog when the methods' last evaluations differ by more than 20x.
    """
    colors = _colors(runs.methods)
    cols = min(3, len(runs.datasets))
    rows = -(-len(runs.datasets) // cols)
    fig = Figure(
        figsize=(1 + 5 * cols, 3.6 * rows + 0.4 * -(-len(runs.methods) // (3 * cols)) + 0.4),
        layout="constrained",
    )
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    drawn = set()
    for ax, dataset in zip(axes, runs.datasets, strict=False):
        ends = []
        for method in runs.methods:
            done = [run for run in runs.ok_runs(dataset, method) if run.steps.size]
            steps, values = _curve(done) if done else (np.zeros(0), None)
            if not steps.size:
                continue
            drawn.add(method)
            mean, std = values.mean(axis=0), values.std(axis=0)
            ax.plot(steps, mean, color=colors[method], marker="o", ms=3, lw=1.5)
            ax.fill_between(steps, mean - std, mean + std, color=colors[method], alpha=0.2, lw=0)
            ends.append(steps.max())
        if ends and max(ends) > 20 * min(ends):
            positive = [s for run in runs.runs.values() for s in run.steps if s > 0]
            ax.set_xscale("symlog", linthresh=min(positive))
        ax.set_title(dataset, fontsize=10)
        ax.set_xlabel("updates (fine-tunes: after BC pre-training)")
        ax.set_ylabel("normalized score (last point: final evaluation)")
        ax.axhline(100, color="0.5", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
    for ax in axes[len(runs.datasets) :]:
        ax.set_axis_off()
    handles = [
        Line2D([], [], color=colors[m], marker="o", ms=3, label=m)
        for m in runs.methods
        if m in drawn
    ]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3 * cols))
    fig.suptitle(f"suite {runs.suite}: learning curves, mean ± std over seeds")
    return save_figure(fig, stem)


def aggregates_figure(stats: SuiteStats, runs: SuiteRuns, stem: Path) -> list[Path]:
    """One panel per aggregate metric: a bar per method with its 95% bootstrap CI."""
    methods = list(stats.scores)
    colors = _colors(runs.methods)
    fig = Figure(
        figsize=(3.2 * len(stats.metrics), 0.45 * len(methods) + 1.6), layout="constrained"
    )
    axes = fig.subplots(1, len(stats.metrics), sharey=True)
    y = np.arange(len(methods))
    for i, (ax, metric) in enumerate(zip(axes, stats.metrics, strict=True)):
        point = np.array([stats.estimates[m][i] for m in methods])
        low = np.array([stats.intervals[m][0][i] for m in methods])
        high = np.array([stats.intervals[m][1][i] for m in methods])
        ax.barh(y, point, color=[colors[m] for m in methods], alpha=0.7)
        shown = np.array([stats.has_interval(m) for m in methods], bool)  # else no CI to draw
        ax.errorbar(
            point[shown],
            y[shown],
            xerr=[(point - low)[shown], (high - point)[shown]],
            fmt="none",
            ecolor="k",
            capsize=3,
        )
        ax.set_title(f"{metric} (lower is better)" if metric == "optimality gap" else metric)
        ax.set_xlabel("normalized score")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, methods)
    axes[0].invert_yaxis()
    fig.suptitle(
        f"suite {runs.suite}: final scores over all runs, 95% stratified bootstrap CIs "
        f"({stats.reps} resamples)"
    )
    return save_figure(fig, stem)


def profiles_figure(stats: SuiteStats, runs: SuiteRuns, stem: Path) -> list[Path]:
    """Performance profiles: fraction of runs above each normalized score, with 95% CIs."""
    colors = _colors(runs.methods)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for method, profile in stats.profiles.items():
        low, high = stats.profile_intervals[method]
        ax.plot(stats.taus, profile, color=colors[method], label=method, lw=1.5)
        if stats.has_interval(method):  # else no CI to draw
            ax.fill_between(stats.taus, low, high, color=colors[method], alpha=0.2, lw=0)
    ax.set_xlabel("normalized score τ")
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"suite {runs.suite}: performance profiles (final scores, 95% CIs)")
    return save_figure(fig, stem)
