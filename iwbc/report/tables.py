"""Score tables: mean ± std over training seeds of the final evaluation, as markdown and CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MethodScores:
    """Final-evaluation scores of one method on one dataset: one row per training seed."""

    dataset: str
    method: str
    returns: np.ndarray  # [seeds, episodes]
    normalized: np.ndarray  # [seeds, episodes]
    trained_on_episodes: int

    @property
    def seed_scores(self) -> np.ndarray:
        """Each seed's mean normalized score over its evaluation episodes."""
        return self.normalized.mean(axis=1)

    @property
    def seed_returns(self) -> np.ndarray:
        return self.returns.mean(axis=1)


def _mean_std(values: np.ndarray) -> str:
    return f"{values.mean():.1f} ± {values.std():.1f}"


HEADER = (
    "dataset",
    "method",
    "episodes trained on",
    "seeds",
    "normalized score (final)",
    "return (final)",
)


def _rows(scores: Sequence[MethodScores]) -> list[tuple[str, ...]]:
    return [
        (
            s.dataset,
            s.method,
            str(s.trained_on_episodes),
            str(s.normalized.shape[0]),
            _mean_std(s.seed_scores),
            _mean_std(s.seed_returns),
        )
        for s in scores
    ]


def markdown_table(scores: Sequence[MethodScores]) -> str:
    """Mean ± std across seeds of each seed's mean over the final evaluation episodes."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(scores)]
    return "\n".join(lines) + "\n"


def csv_table(scores: Sequence[MethodScores]) -> str:
    """One row per (dataset, method, seed), for rliable or a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["dataset", "method", "seed_index", "normalized_score", "return"])
    for s in scores:
        for seed, (score, ret) in enumerate(zip(s.seed_scores, s.seed_returns, strict=True)):
            writer.writerow([s.dataset, s.method, seed, f"{score:.4f}", f"{ret:.4f}"])
    return out.getvalue()
