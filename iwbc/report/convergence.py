"""Whether each method's learning curve had flattened by the end of its budget.

A table compares methods at their budgets: a method still improving when its training stopped
would score higher with more updates, so its cell understates it. A cell is *still rising* when
its score climbed over the last evaluation interval (seed mean at least ``MIN_GAIN`` normalized
points) on a trend that seed noise does not explain: the per-seed least-squares slopes over the
last ``POINTS`` evaluations are positive by a one-sided t-test over seeds at ``ALPHA``. (The
last interval alone is too noisy to test, intermediate evaluations using few episodes; the
trend alone would flag a curve that rose and then levelled off.) The final evaluation runs more
episodes than the intermediate ones, and its first ones are theirs (the same reset seeds): the
test scores the final policy on those alone (``Run.like_for_like_curve``), so that a gain is the
policy's, not the difference between two sets of start states. A cell whose runs were
evaluated fewer than ``POINTS`` times (a fine-tune scored only at its end) or that has fewer
than two finished seeds cannot be tested.

A flat score can hide a critic still learning: an offline-RL baseline's policy follows its Q,
and a Q still climbing towards its fixed point (or diverging) may move the score later, as AWAC
on Hopper medium-expert left a 10k-update plateau after 12k. So the report also gives each
critic's mean Q over the last evaluation interval, and names the cells where it still moved by
``CRITIC_MOVE`` or more (either way: seeds whose Q rises and seeds whose Q falls do not cancel),
and those where it ended outside the range any discounted return of its training rewards can
take (``value_bounds``): a critic there has diverged, however settled it looks, unless it lies
between 0 and a range that excludes 0 (as rewards all of one sign give: Pusher's and
Reacher's are all negative) and came closer to it over the interval. Such a critic is still
on its way from its initial values near 0, so it is still learning, not diverged.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import scipy.stats

from iwbc.report.runs import Run, SuiteRuns

POINTS = 3
MIN_GAIN = 1.0  # normalized points: a smaller last gain does not change a table's reading
ALPHA = 0.05
# A critic whose mean Q still moved this much (relative, either way, mean over seeds) over the
# last evaluation interval has value estimates far from settled: target networks move Q a fixed
# fraction of the way each interval, so a 5% step leaves several such steps to come.
CRITIC_MOVE = 0.05
# A Q within this fraction of its reachable range (``value_bounds``) of zero has its change
# measured against that fraction of the range instead of against itself.
NEAR_ZERO = 0.01


@dataclass(frozen=True)
class CurveEnd:
    """One cell's last ``POINTS`` evaluations, per seed."""

    dataset: str
    method: str
    steps: tuple[int, ...]  # updates at each of the evaluations, the final one last
    scores: np.ndarray  # [seeds, POINTS] normalized scores

    @property
    def slopes(self) -> np.ndarray:
        """Per seed, the least-squares slope of score over updates."""
        return np.polyfit(np.asarray(self.steps, float), self.scores.T, deg=1)[0]

    @property
    def trend(self) -> float:
        """The seed-mean slope times the updates spanned, in normalized points."""
        return float(self.slopes.mean() * (self.steps[-1] - self.steps[0]))

    @property
    def last_gain(self) -> float:
        """The seed mean of the final score minus the score one evaluation before."""
        return float(np.mean(self.scores[:, -1] - self.scores[:, -2]))

    @property
    def p_value(self) -> float:
        """One-sided t-test over seeds of "no trend" against "rising"."""
        slopes = self.slopes
        stderr = slopes.std(ddof=1) / np.sqrt(slopes.size)
        if stderr == 0:
            return 0.0 if slopes[0] > 0 else 1.0
        return float(scipy.stats.t.sf(slopes.mean() / stderr, df=slopes.size - 1))

    @property
    def still_rising(self) -> bool:
        return self.last_gain >= MIN_GAIN and self.p_value < ALPHA


def curve_end(runs: SuiteRuns, dataset: str, method: str) -> CurveEnd | None:
    """The cell's curve end over its finished runs evaluated at the last steps most of them
    share (a stale run may have others); None when fewer than two seeds have one."""
    curves = [run for run in runs.ok_runs(dataset, method) if run.steps.size >= POINTS]
    if not curves:
        return None
    steps, curves = _same_last_steps(curves, POINTS)
    if len(curves) < 2:
        return None
    scores = np.array([run.like_for_like_curve[-POINTS:] for run in curves])
    return CurveEnd(dataset, method, steps, scores)


def _same_last_steps(cell: list[Run], count: int) -> tuple[tuple[int, ...], list[Run]]:
    """The last ``count`` evaluation steps most of the cell's runs share (the first seed's on a
    tie), and the runs evaluated at those steps: a stale run, made under another budget, may
    have others, and must not decide which runs the test reads when it is seed 0."""
    last = [tuple(int(step) for step in run.steps[-count:]) for run in cell]
    steps = Counter(last).most_common(1)[0][0]  # ties: the first met, in seed order
    return steps, [run for run, ends in zip(cell, last, strict=True) if ends == steps]


def curve_ends(runs: SuiteRuns) -> dict[tuple[str, str], CurveEnd | None]:
    """Every (dataset, method) cell with finished runs, and its curve end if testable."""
    return {
        (dataset, method): curve_end(runs, dataset, method)
        for dataset in runs.datasets
        for method in runs.methods
        if runs.ok_runs(dataset, method)
    }


def still_rising(runs: SuiteRuns) -> list[CurveEnd]:
    """The cells whose learning curve was still rising at the end of training, in grid order."""
    return [end for end in curve_ends(runs).values() if end is not None and end.still_rising]


@dataclass(frozen=True)
class CriticEnd:
    """One cell's critic mean Q at its last two evaluations, per seed."""

    dataset: str
    method: str
    steps: tuple[int, int]
    q: np.ndarray  # [seeds, 2]
    # [seeds, 2]: per seed, the range its critic could reach by TD on its data (NaN: unknown).
    bounds: np.ndarray | None = None

    @property
    def changes(self) -> np.ndarray:
        """Per seed, the change of Q over the last evaluation interval relative to its Q there,
        or to ``NEAR_ZERO`` of the range TD can reach where Q lies closer than that to 0 (a
        critic of near-zero rewards would otherwise read as moving by thousands of percent)."""
        start, end = self.q[:, 0], self.q[:, 1]
        scale = np.abs(start)
        if self.bounds is not None:
            span = self.bounds[:, 1] - self.bounds[:, 0]
            scale = np.fmax(scale, np.where(np.isfinite(span), NEAR_ZERO * span, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(end == start, 0.0, (end - start) / scale)

    @property
    def moved(self) -> float:
        """The seed mean of the relative change's size: rises and falls both count."""
        return float(np.mean(np.abs(self.changes)))

    @property
    def still_learning(self) -> bool:
        """Q still moved by ``CRITIC_MOVE`` or more, or some seed's is still approaching the
        range TD on its data can reach from outside."""
        return self.moved >= CRITIC_MOVE or bool(self.approaching.any())

    @property
    def outside(self) -> np.ndarray:
        """Per seed, whether its final mean Q lies outside the range TD on its data can reach
        (False where the range is unknown)."""
        if self.bounds is None:
            return np.zeros(len(self.q), bool)
        final = self.q[:, 1]
        return (final < self.bounds[:, 0]) | (final > self.bounds[:, 1])

    @property
    def value_range(self) -> tuple[float, float] | None:
        """The range TD on the cell's data can reach (its seeds share the data), from the first
        seed whose record gives it; None when none does."""
        if self.bounds is None:
            return None
        known = [row for row in self.bounds if np.isfinite(row).any()]
        return (float(known[0][0]), float(known[0][1])) if known else None

    @property
    def approaching(self) -> np.ndarray:
        """Per seed, whether its final mean Q lies between 0, near which a critic starts, and
        a range TD on its data can reach that excludes 0, closer to that range than one
        evaluation before: on its way in. (A Q beyond the range, or one on the far side of 0
        by more than ``NEAR_ZERO`` of the range, has diverged, whichever way it last moved.)"""
        if self.bounds is None:
            return np.zeros(len(self.q), bool)
        low, high = self.bounds[:, 0], self.bounds[:, 1]
        margin = NEAR_ZERO * (high - low)
        start, end = self.q[:, 0], self.q[:, 1]
        with np.errstate(invalid="ignore"):  # unknown or unbounded ranges compare False
            rising_in = (low > 0) & (-margin <= end) & (end < low) & (end > start)
            falling_in = (high < 0) & (high < end) & (end <= margin) & (end < start)
        return rising_in | falling_in

    @property
    def diverging(self) -> np.ndarray:
        """Per seed, whether its critic ended outside that range and did not come closer."""
        return self.outside & ~self.approaching

    @property
    def diverged(self) -> bool:
        """Some seed's critic ended outside the range its data's returns allow, not on its way
        into it."""
        return bool(self.diverging.any())


def critic_ends(runs: SuiteRuns) -> list[CriticEnd]:
    """Every cell whose finished runs logged a critic, over those evaluated at the last two
    steps most of them share, in grid order."""
    ends = []
    for dataset in runs.datasets:
        for method in runs.methods:
            cell = [
                run
                for run in runs.ok_runs(dataset, method)
                if np.all(np.isfinite(run.critic_q)) and run.critic_q[0] != 0
            ]
            if not cell:
                continue
            steps, cell = _same_last_steps(cell, 2)
            q = np.array([run.critic_q for run in cell])
            bounds = np.array([run.q_bounds for run in cell], float)
            ends.append(CriticEnd(dataset, method, steps, q, bounds))
    return ends
