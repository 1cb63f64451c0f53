"""Figures: the dataset's return distribution beside the methods' final scores."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from iwbc.report.tables import MethodScores


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
    left.hist(dataset_scores, bins=40, color="0.6")
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
