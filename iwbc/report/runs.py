"""A suite's runs, read back from its records: the grid every table, statistic and figure uses.

``iwbc bench`` writes one JSON record per (dataset, method, seed) under
``<results>/<suite>/records/<dataset id, "/" → "__">/<method>/seed-<seed>.json``. Reports are
built from these files alone, so they can be regenerated at any time, and a run that failed or
never ran stays visible in the grid instead of silently shrinking a mean. Likewise a finished
run made under another configuration than the suite file's current one (an edited budget) is
*stale*: kept, but flagged wherever its score is shown. Runs of one dataset made on different
content (a tier regenerated between two sweeps of part of the grid) are flagged too: their
methods were not compared on the same data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from iwbc.agents.registry import METHODS
from iwbc.bench.records import (
    critic_q_bounds,
    critic_q_end,
    final_weight_ess,
    read_record,
    record_action_box,
    record_fingerprint,
    records_dir,
)
from iwbc.data.scores import normalized_score
from iwbc.envs.action_box import box_text, rescaled
from iwbc.errors import UserError

# Rows of a paper-style table: each environment's tiers in this order, unknown tiers after.
TIER_ORDER = ("random", "medium", "medium-replay", "medium-expert", "expert")


class Layout(Protocol):
    """What a suite says about its grid (``iwbc.bench.suites.Suite`` has these)."""

    datasets: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]


@runtime_checkable
class ConfiguredLayout(Layout, Protocol):
    """A layout that also knows each method's current configuration on each of its datasets
    (a ``Suite`` does)."""

    def method_fingerprint(self, method: str, dataset: str | None = None) -> str: ...


@dataclass(frozen=True)
class Run:
    """One record: a (dataset, method, seed) that finished (``ok``) or failed."""

    dataset: str
    method: str
    seed: int
    status: str
    error: str | None
    env: str  # env_id with its recorded arguments; env_id alone in records before the label
    steps: np.ndarray  # updates at each evaluation of the learning curve
    curve: np.ndarray  # normalized score at each evaluation (mean over its episodes)
    final: float  # normalized score of the final policy; NaN for a failed run
    best: float  # max of the curve; NaN for a failed run
    final_episodes: int
    ref_min_score: float
    ref_max_score: float
    wall_seconds: float
    config: dict[str, Any]
    environment: dict[str, Any]
    finished_at: str
    fingerprint: str  # of the configuration it ran under (iwbc.bench.records)
    data_fingerprint: str | None = None  # of the data's content; None in records before it
    engine: str | None = None  # that evaluated it (``auto`` resolved); None in records before it
    # Source commits of the processes that made its evaluations (None: made before the key);
    # empty in records before it.
    evaluated_at: tuple[str | None, ...] = ()
    # iw-BC's effective sample fraction of its importance weights over the last training chunk;
    # NaN for methods without importance weights and records before the key.
    weight_ess: float = math.nan
    # The critic's mean Q on its training batches at the evaluation before the last and at the
    # last (iwbc.bench.records.critic_q_end); NaN for methods without a critic.
    critic_q: tuple[float, float] = (math.nan, math.nan)
    # The range that critic could reach by TD on its data (iwbc.core.sampling.value_bounds);
    # NaN for methods without a critic and records before the key.
    q_bounds: tuple[float, float] = (math.nan, math.nan)
    # Where the reference scores came from (iwbc.data.scores' sources) and the share of the
    # data's steps whose action was clipped into the box; None and NaN in records before them.
    ref_source: str | None = None
    clipped_actions: float = math.nan
    # The env's action box as tables print it, and whether it was mapped into [-1, 1]
    # (iwbc.envs.action_box); None and False in records before the key.
    action_box: str | None = None
    action_box_rescaled: bool = False
    # The curve with its final point scored on the intermediate evaluations' episodes alone
    # (the final evaluation's first ones, on the same reset seeds), so that every point scores
    # the same episodes; None where they already do (or the record does not say).
    trend_curve: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def like_for_like_curve(self) -> np.ndarray:
        """The learning curve on one set of episodes: what a trend over it may compare."""
        return self.curve if self.trend_curve is None else self.trend_curve


@dataclass(frozen=True)
class SuiteRuns:
    """All records of a suite on the grid datasets × methods × seeds (rows in table order)."""

    suite: str
    datasets: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    runs: dict[tuple[str, str, int], Run]
    # (dataset, method) -> fingerprint of its configuration in the suite file now; empty
    # without one.
    current: dict[tuple[str, str], str] = field(default_factory=dict)
    # How commands written into the report name the suite: its name, or the path of the file
    # it was given as (a suite outside the shipped ones is found only by its path).
    command_suite: str = ""

    @property
    def suite_argument(self) -> str:
        return self.command_suite or self.suite

    def is_stale(self, run: Run) -> bool:
        """Whether a finished run was made under another configuration than the current one."""
        now = self.current.get((run.dataset, run.method))
        return run.ok and now is not None and run.fingerprint != now

    def stale_in(self, dataset: str, method: str) -> int:
        """How many of a cell's finished runs are stale."""
        return sum(self.is_stale(run) for run in self.ok_runs(dataset, method))

    @property
    def stale(self) -> list[Run]:
        """Finished runs made under another configuration than the suite's current one."""
        return [run for key in self.grid() if (run := self.runs.get(key)) and self.is_stale(run)]

    def _mixed(self, field: str) -> dict[str, list[str]]:
        """Datasets whose finished runs state more than one value of ``field``, with those
        values in order of first appearance (records before the field state none)."""
        values = {
            dataset: list(
                dict.fromkeys(
                    value
                    for method in self.methods
                    for run in self.ok_runs(dataset, method)
                    if (value := getattr(run, field))
                )
            )
            for dataset in self.datasets
        }
        return {dataset: found for dataset, found in values.items() if len(found) > 1}

    @property
    def mixed_data(self) -> dict[str, list[str]]:
        """Datasets whose finished runs were made on more than one content of their data, with
        those contents' fingerprints."""
        return self._mixed("data_fingerprint")

    @property
    def mixed_engines(self) -> dict[str, list[str]]:
        """Datasets whose finished runs were evaluated on more than one engine."""
        return self._mixed("engine")

    @property
    def reused_evaluations(self) -> list[Run]:
        """Finished runs with evaluations made at another source commit than the one that
        wrote the record (cached evaluations are keyed by configuration and data, not code)."""
        return [
            run
            for run in (self.runs.get(key) for key in self.grid())
            if run is not None
            and run.ok
            and any(commit != run.environment.get("iwbc_commit") for commit in run.evaluated_at)
        ]

    def ok_runs(self, dataset: str, method: str) -> list[Run]:
        """The finished runs of one cell, in seed order."""
        cell = (self.runs.get((dataset, method, seed)) for seed in self.seeds)
        return [run for run in cell if run is not None and run.ok]

    def final_scores(self, dataset: str, method: str) -> np.ndarray:
        """Final normalized scores of a cell's finished runs, in seed order."""
        return np.array([run.final for run in self.ok_runs(dataset, method)], dtype=float)

    def best_scores(self, dataset: str, method: str) -> np.ndarray:
        """Best-during-training normalized scores of a cell's finished runs, in seed order."""
        return np.array([run.best for run in self.ok_runs(dataset, method)], dtype=float)

    @property
    def failed(self) -> list[Run]:
        """Runs recorded as failed, in grid order."""
        return [run for key in self.grid() if (run := self.runs.get(key)) and not run.ok]

    @property
    def missing(self) -> list[tuple[str, str, int]]:
        """Grid points with no record at all (not run yet, or the sweep was stopped)."""
        return [key for key in self.grid() if key not in self.runs]

    def grid(self) -> list[tuple[str, str, int]]:
        return [(d, m, s) for d in self.datasets for m in self.methods for s in self.seeds]


def split_dataset_id(dataset: str) -> tuple[str, str]:
    """``iwbc/hopper/medium-replay-v0`` → (``iwbc/hopper``, ``medium-replay``): env and tier."""
    group, _, name = dataset.rpartition("/")
    tier = re.sub(r"-v\d+$", "", name)
    return group, tier


def order_datasets(datasets: Sequence[str]) -> tuple[str, ...]:
    """Group datasets by environment (in order of first appearance), tiers in TIER_ORDER."""
    groups: dict[str, list[str]] = {}
    for dataset in dict.fromkeys(datasets):
        groups.setdefault(split_dataset_id(dataset)[0], []).append(dataset)

    def tier_rank(dataset: str) -> int:
        tier = split_dataset_id(dataset)[1]
        return TIER_ORDER.index(tier) if tier in TIER_ORDER else len(TIER_ORDER)

    return tuple(d for group in groups.values() for d in sorted(group, key=tier_rank))


def _number(value: object) -> float:
    return math.nan if value is None else float(value)


def _action_box(box: dict[str, list[float]] | None) -> dict[str, Any]:
    """Run's action-box fields from a record's ``action_box`` (absent in older records)."""
    if box is None:
        return {}
    low, high = record_action_box(box)
    return {"action_box": box_text(low, high), "action_box_rescaled": rescaled(low, high)}


def parse_record(record: dict[str, Any], path: Path) -> Run:
    """Read a record that passed ``read_record``'s checks (its keys, and that it is the run its
    path names), checking that a finished run has a usable curve and final score."""
    dataset, method, seed = str(record["dataset"]), str(record["method"]), int(record["seed"])
    common = {
        "dataset": dataset,
        "method": method,
        "seed": seed,
        "status": str(record["status"]),
        "env": str(record.get("env") or record["env_id"] or ""),
        "ref_min_score": _number(record["ref_min_score"]),
        "ref_max_score": _number(record["ref_max_score"]),
        "wall_seconds": _number(record["wall_seconds"]),
        "config": dict(record["config"] or {}),
        "environment": dict(record["environment"] or {}),
        "finished_at": str(record["finished_at"] or ""),
        "fingerprint": record_fingerprint(record),
        "data_fingerprint": record.get("data_fingerprint"),
        "engine": record.get("engine"),
        "evaluated_at": tuple(record.get("evaluated_at_commits") or ()),
    }
    if record["status"] == "failed":
        error = " ".join(str(record["error"] or "no error message recorded").split())
        empty = np.zeros(0)
        return Run(
            **common,
            error=error,
            steps=empty,
            curve=empty,
            final=math.nan,
            best=math.nan,
            final_episodes=0,
        )
    try:
        curve, final = record["curve"], record["final"]
        normalized = np.asarray(curve["normalized"], dtype=float)
        run = Run(
            **common,
            weight_ess=_number(final_weight_ess(record)),
            critic_q=critic_q_end(record) or (math.nan, math.nan),
            q_bounds=critic_q_bounds(record) or (math.nan, math.nan),
            ref_source=record.get("ref_source"),
            clipped_actions=_number(record.get("clipped_actions")),
            **_action_box(record.get("action_box")),
            error=None,
            steps=np.asarray(curve["steps"], dtype=float),
            curve=normalized,
            final=float(final["normalized"]),
            best=float(record["best"]["normalized"]),
            final_episodes=len(final.get("episode_returns") or ()),
            trend_curve=_trend_curve(record, normalized),
        )
    except (TypeError, KeyError, ValueError, AttributeError) as error:
        raise UserError(
            f"record {path} has a malformed curve, final, best or action_box ({error!r}); delete "
            "it and "
            "rerun `iwbc bench`"
        ) from error
    if run.steps.shape != run.curve.shape or not np.isfinite(run.final):
        raise UserError(
            f"record {path}: the curve's steps and scores differ in length or the final score "
            "is not finite; delete it and rerun `iwbc bench`"
        )
    return run


def _trend_curve(record: dict[str, Any], curve: np.ndarray) -> np.ndarray | None:
    """``Run.trend_curve`` of a finished record whose normalized curve is ``curve``: the final
    point rescored on the first ``eval_episodes`` of the final evaluation's episodes; None where
    the final evaluation ran no more episodes than the others (or the record does not say)."""
    per_point = (record["config"] or {}).get("evaluation", {}).get("eval_episodes")
    returns = np.asarray(record["final"].get("episode_returns") or (), dtype=float)
    if not isinstance(per_point, int) or not 0 < per_point < returns.size or curve.size < 2:
        return None
    last = normalized_score(
        returns[:per_point].mean(), record["ref_min_score"], record["ref_max_score"]
    )
    return np.append(curve[:-1], last)


def load_runs(
    suite: str, results_dir: str | Path = "results", layout: Layout | None = None
) -> SuiteRuns:
    """Read every record of ``suite``; the grid is the suite's (if given) plus whatever ran.

    Without a layout, datasets are ordered by ``order_datasets`` over their sorted ids and
    methods in registry order, so a report made from records alone is still deterministic. A
    layout that knows the methods' configurations (a suite) marks the stale runs.
    """
    root = records_dir(suite, results_dir)
    paths = sorted(root.glob("*/*/seed-*.json"))
    if not paths:
        raise UserError(
            f"no records for suite '{suite}' under {root}; run `iwbc bench --suite {suite}` first"
        )
    runs: dict[tuple[str, str, int], Run] = {}
    for path in paths:
        record = read_record(path)
        if record["suite"] != suite:
            raise UserError(f"record {path} belongs to suite {record['suite']!r}, not '{suite}'")
        run = parse_record(record, path)
        runs[(run.dataset, run.method, run.seed)] = run
    datasets = tuple(layout.datasets) if layout else ()
    methods = tuple(layout.methods) if layout else ()
    seeds = tuple(layout.seeds) if layout else ()
    known = {m: i for i, m in enumerate(METHODS)}
    extra_methods = sorted(
        {m for _, m, _ in runs} - set(methods), key=lambda m: (known.get(m, len(known)), m)
    )
    grid_datasets = order_datasets([*datasets, *sorted({d for d, _, _ in runs})])
    return SuiteRuns(
        suite=suite,
        datasets=grid_datasets,
        methods=(*methods, *extra_methods),
        seeds=tuple(sorted({*seeds, *(s for _, _, s in runs)})),
        runs=runs,
        current={(d, m): layout.method_fingerprint(m, d) for d in grid_datasets for m in methods}
        if isinstance(layout, ConfiguredLayout)
        else {},
    )
