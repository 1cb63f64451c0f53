"""Score tables: mean ± std over training seeds of the final evaluation, as markdown and CSV.

``markdown_table``/``csv_table`` serve one experiment (``iwbc run``); the ``suite_*`` tables serve
a benchmark suite (``iwbc report``): datasets × methods, with published numbers beside them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from iwbc.report.convergence import CriticEnd, critic_ends, curve_ends, still_rising
from iwbc.report.literature import PublishedSource
from iwbc.report.runs import SuiteRuns, split_dataset_id


@dataclass(frozen=True)
class MethodScores:
    """Final-evaluation scores of one method on one dataset: one row per training seed."""

    dataset: str
    method: str
    returns: np.ndarray  # [seeds, episodes]
    normalized: np.ndarray  # [seeds, episodes]
    trained_on_episodes: int
    # Per seed, the effective sample fraction of its importance weights over the last training
    # chunk (iw-BC methods); empty for methods without importance weights.
    weight_ess: tuple[float, ...] = ()

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


def footnote_mark(index: int) -> str:
    """The footnote mark of the ``index``-th literature column group: †, ‡, §, ¶, then ††..."""
    return "†‡§¶"[index % 4] * (index // 4 + 1)


RISING_MARK = "↑"
# On the score itself, not only in the critics section: a cell is what gets quoted, and a
# baseline whose value estimates had not settled is budget-limited whatever its score curve did.
UNSETTLED_MARK = "Q~"
# A critic that ended outside the range any discounted return of its training rewards can take
# has diverged: its policy follows value estimates no data supports, however settled they look.
DIVERGED_MARK = "Q!"


def score_cell(
    values: np.ndarray,
    expected: int,
    stale: int = 0,
    rising: bool = False,
    unsettled: bool = False,
    diverged: bool = False,
) -> str:
    """``mean ± std`` over seeds (std with ddof 0), ``(k/n)`` when only k of n seeds finished,
    ``—`` when none did; ``(s stale)`` when s of them ran under another configuration than the
    suite's current one; ``↑`` when its learning curve was still rising at the end of training,
    ``Q~`` when its critic's mean Q was still moving, ``Q!`` when some seed's critic ended
    outside the range its data's returns allow (``iwbc.report.convergence``)."""
    if values.size == 0:
        return "—"
    cell = _mean_std(values)
    if values.size < expected:
        cell = f"{cell} ({values.size}/{expected})"
    if stale:
        cell = f"{cell} ({stale} stale)"
    return cell + _marks(rising, unsettled, diverged)


def _marks(rising: bool, unsettled: bool, diverged: bool) -> str:
    marks = [(rising, RISING_MARK), (unsettled, UNSETTLED_MARK), (diverged, DIVERGED_MARK)]
    return "".join(f" {mark}" for flagged, mark in marks if flagged)


def unsettled_cells(runs: SuiteRuns) -> set[tuple[str, str]]:
    """(dataset, method) cells whose critic was still learning at the end of training."""
    return {(end.dataset, end.method) for end in critic_ends(runs) if end.still_learning}


def diverged_cells(runs: SuiteRuns) -> set[tuple[str, str]]:
    """(dataset, method) cells where some seed's critic ended outside its data's value range."""
    return {(end.dataset, end.method) for end in critic_ends(runs) if end.diverged}


def _average(runs: SuiteRuns, method: str, best: bool) -> float:
    """Mean over datasets of each dataset's mean over seeds; NaN unless every dataset has one."""
    scores = runs.best_scores if best else runs.final_scores
    means = [scores(d, method) for d in runs.datasets]
    return float(np.mean([m.mean() for m in means])) if all(m.size for m in means) else np.nan


def published_columns(
    runs: SuiteRuns, literature: Sequence[PublishedSource]
) -> list[tuple[PublishedSource, str]]:
    """(source, method) pairs with a published number on at least one of the suite's datasets:
    the literature columns of the table."""
    return [
        (source, method)
        for source in literature
        for method in runs.methods
        if any(np.isfinite(source.score(method, d)) for d in runs.datasets)
    ]


def _published_average(runs: SuiteRuns, source: PublishedSource, method: str) -> float:
    values = [source.score(method, d) for d in runs.datasets]
    return float(np.mean(values))  # NaN if any dataset lacks a published number


def _number(value: float) -> str:
    return "—" if np.isnan(value) else f"{value:.1f}"


def suite_markdown_table(
    runs: SuiteRuns, literature: Sequence[PublishedSource] = (), *, best: bool = False
) -> str:
    """Rows = datasets grouped by environment, columns = methods (``mean ± std`` over seeds),
    then an ``average`` row; with ``literature``, a column group of published numbers. Final
    scores still rising at the end of training are marked ``↑``, those whose critic was still
    learning ``Q~``, those whose critic diverged ``Q!``, and so is an average over any such
    cell."""
    published = [] if best else published_columns(runs, literature)
    rising = set() if best else {(i.dataset, i.method) for i in still_rising(runs)}
    unsettled = set() if best else unsettled_cells(runs)
    diverged = set() if best else diverged_cells(runs)
    header = ["env", "dataset", *runs.methods]
    groups = list(dict.fromkeys(source for source, _ in published))
    for index, source in enumerate(groups):
        header.append(f"{source.header(runs.datasets)} →")
        header += [f"{source.labels[m]}{footnote_mark(index)}" for s, m in published if s is source]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    scores = runs.best_scores if best else runs.final_scores
    previous_env = None
    for dataset in runs.datasets:
        env = split_dataset_id(dataset)[0].rpartition("/")[2]
        row = [env if env != previous_env else "", dataset]
        previous_env = env
        row += [
            score_cell(
                scores(dataset, m),
                len(runs.seeds),
                runs.stale_in(dataset, m),
                rising=(dataset, m) in rising,
                unsettled=(dataset, m) in unsettled,
                diverged=(dataset, m) in diverged,
            )
            for m in runs.methods
        ]
        for source in groups:
            row.append("")
            row += [_number(source.score(m, dataset)) for s, m in published if s is source]
        lines.append("| " + " | ".join(row) + " |")
    average = ["**average**", ""]
    for method in runs.methods:
        stale = any(runs.stale_in(d, method) for d in runs.datasets)
        short = any(scores(d, method).size < len(runs.seeds) for d in runs.datasets)
        value = _average(runs, method, best)
        marks = (" (stale)" if stale else "") + (
            " (incomplete)" if short and np.isfinite(value) else ""
        )
        if np.isfinite(value):
            marks += _marks(
                any((d, method) in rising for d in runs.datasets),
                any((d, method) in unsettled for d in runs.datasets),
                any((d, method) in diverged for d in runs.datasets),
            )
        average.append(_number(value) + marks)
    for source in groups:
        average.append("")
        average += [_number(_published_average(runs, s, m)) for s, m in published if s is source]
    lines.append("| " + " | ".join(average) + " |")
    return "\n".join(lines) + "\n"


def spread_cell(values: Sequence[float]) -> str:
    """``mean (min–max)`` to two decimals, as the effective sample fractions are shown."""
    return f"{np.mean(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def weight_ess_table(runs: SuiteRuns) -> str:
    """Rows = the datasets where some run logged importance weights, columns = the methods
    whose runs did: the effective sample fraction of their last training chunk, mean (min–max)
    over seeds; empty when no run logged one."""
    methods = [
        m
        for m in runs.methods
        if any(np.isfinite(r.weight_ess) for d in runs.datasets for r in runs.ok_runs(d, m))
    ]
    if not methods:
        return ""
    lines = ["| dataset | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for dataset in runs.datasets:
        cells = []
        for method in methods:
            values = np.array([r.weight_ess for r in runs.ok_runs(dataset, method)])
            values = values[np.isfinite(values)]
            cells.append(spread_cell(values) if values.size else "—")
        if any(cell != "—" for cell in cells):
            lines.append("| " + " | ".join([dataset, *cells]) + " |")
    return "\n".join(lines) + "\n"


def suite_csv_table(runs: SuiteRuns, literature: Sequence[PublishedSource] = ()) -> str:
    """Long format, one row per (table, dataset, method): ours final and best, and published.
    ``still_rising`` (final rows): 1 or 0 as ``iwbc.report.convergence`` finds the learning
    curve at the end of training, empty where it cannot be tested; ``critic_moved`` and
    ``critic_still_learning`` (final rows of methods with a critic): how far its mean Q moved
    over the last evaluation interval (mean relative change's size over seeds), and 1 or 0;
    ``critic_outside_bounds``: how many seeds' critics ended outside the range TD on their data
    can reach (empty where records do not say)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "table",
            "dataset",
            "method",
            "mean",
            "std",
            "seeds_ok",
            "seeds_expected",
            "source",
            "seeds_stale",
            "still_rising",
            "critic_moved",
            "critic_still_learning",
            "critic_outside_bounds",
        ]
    )
    ends = curve_ends(runs)
    critics = {(end.dataset, end.method): end for end in critic_ends(runs)}
    for table, scores in (("final", runs.final_scores), ("best", runs.best_scores)):
        for dataset in runs.datasets:
            for method in runs.methods:
                values = scores(dataset, method)
                mean, std = (
                    (f"{values.mean():.4f}", f"{values.std():.4f}") if values.size else ("", "")
                )
                expected, stale = len(runs.seeds), runs.stale_in(dataset, method)
                end = ends.get((dataset, method)) if table == "final" else None
                rising = "" if end is None else str(int(end.still_rising))
                critic = critics.get((dataset, method)) if table == "final" else None
                moved, learning, outside = (
                    ("", "", "")
                    if critic is None
                    else (
                        f"{critic.moved:.4f}",
                        str(int(critic.still_learning)),
                        _outside_count(critic),
                    )
                )
                row = [table, dataset, method, mean, std, values.size, expected, "ours"]
                writer.writerow([*row, stale, rising, moved, learning, outside])
        for method in runs.methods:
            average = _average(runs, method, table == "best")
            mean = "" if np.isnan(average) else f"{average:.4f}"
            stale = sum(runs.stale_in(d, method) for d in runs.datasets)
            row = [table, "average", method, mean, "", "", "", "ours", stale]
            writer.writerow([*row, "", "", "", ""])
    for source, method in published_columns(runs, literature):
        for dataset in (*runs.datasets, "average"):
            value = (
                _published_average(runs, source, method)
                if dataset == "average"
                else source.score(method, dataset)
            )
            mean = "" if np.isnan(value) else f"{value:.1f}"
            row = ["published", dataset, method, mean, "", "", "", source.citation]
            writer.writerow([*row, "", "", "", "", ""])
    return out.getvalue()


def _outside_count(critic: CriticEnd) -> str:
    """Seeds whose critic ended outside its data's value range; empty when no record says."""
    return "" if critic.value_range is None else str(int(critic.outside.sum()))
