"""A sweep: a suite expanded into work units, the unfinished ones run, progress shown.

A run is finished when its record says ``ok`` for the suite's current configuration of that
method; finished runs are skipped, so re-invoking a killed sweep continues where it stopped
(unfinished units resume from their checkpoints and cached evaluations). Failed runs are
recorded and retried on the next invocation; the sweep itself goes on past them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from iwbc.benchmark.executors import EXECUTORS, run_local, run_ray
from iwbc.benchmark.records import is_finished, record_path
from iwbc.benchmark.suites import Suite
from iwbc.benchmark.units import UnitContext, UnitOutcome, WorkUnit
from iwbc.data import OfflineDataset, list_datasets
from iwbc.data.scripted import generate_mixed_dataset
from iwbc.errors import UserError


@dataclasses.dataclass(frozen=True)
class SweepSummary:
    """Run counts of one invocation; ``errors`` has one line per failed unit."""

    total: int
    skipped: int
    ok: int
    failed: int
    errors: tuple[str, ...] = ()


def select(
    suite: Suite,
    only_datasets: Sequence[str] | None = None,
    only_methods: Sequence[str] | None = None,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The suite's datasets and methods restricted to ``only_*``, with one-line errors."""
    chosen = []
    for kind, available, only in (
        ("dataset", suite.datasets, only_datasets),
        ("method", suite.methods, only_methods),
    ):
        if only is None:
            chosen.append(available)
            continue
        unknown = [name for name in only if name not in available]
        if unknown:
            raise UserError(
                f"{kind}(s) {', '.join(unknown)} not in suite {suite.name}; "
                f"it has: {', '.join(available)}"
            )
        chosen.append(tuple(name for name in available if name in only))
    return chosen[0], chosen[1]


def plan(
    suite: Suite,
    records_dir: str | Path,
    *,
    only_datasets: Sequence[str] | None = None,
    only_methods: Sequence[str] | None = None,
) -> tuple[list[WorkUnit], int, int]:
    """(units with unfinished runs, runs in the selection, runs already finished)."""
    datasets, methods = select(suite, only_datasets, only_methods)
    units, total, finished = [], 0, 0
    for dataset in datasets:
        for method in methods:
            config = suite.method_config(method)
            pending = tuple(
                seed
                for seed in suite.seeds
                if not is_finished(record_path(records_dir, dataset, method, seed), config)
            )
            total += len(suite.seeds)
            finished += len(suite.seeds) - len(pending)
            if pending:
                units.append(WorkUnit(dataset, method, suite.seeds, pending))
    return units, total, finished


def prepare_datasets(suite: Suite, datasets: Sequence[str], data_root: str | None) -> None:
    """Make the suite's scripted datasets that are missing from the data root, before any
    worker needs them (so parallel workers never race to write one)."""
    local = set(list_datasets(data_root))
    for spec in suite.scripted:
        if spec.dataset in datasets and spec.dataset not in local:
            generate_mixed_dataset(
                spec.dataset, num_episodes=spec.episodes, seed=spec.seed, root=data_root
            )


def run_suite(
    suite: Suite,
    records_dir: str | Path,
    *,
    work_dir: str | Path = "runs",
    data_root: str | Path | None = None,
    executor: str = "local",
    num_cpus: int | None = None,
    address: str | None = None,
    only_datasets: Sequence[str] | None = None,
    only_methods: Sequence[str] | None = None,
    progress: bool = True,
    train_progress: bool = False,
    dataset: OfflineDataset | None = None,
) -> SweepSummary:
    """Run every unfinished run of ``suite`` and write its records under ``records_dir``.

    ``progress`` shows runs done / total with an ETA; ``train_progress`` also each training's
    steps (local executor). ``dataset`` is an already loaded dataset that units on it use
    instead of loading it.
    """
    if executor not in EXECUTORS:
        raise UserError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    units, total, finished = plan(
        suite, records_dir, only_datasets=only_datasets, only_methods=only_methods
    )
    root = None if data_root is None else str(Path(data_root).expanduser().resolve())
    prepare_datasets(suite, sorted({u.dataset for u in units}), root)
    context = UnitContext(
        suite=suite,
        records_dir=Path(records_dir).resolve(),
        work_dir=Path(work_dir).resolve(),
        data_root=root,
        progress=train_progress,
        dataset=dataset,
    )
    bar = tqdm(total=total, initial=finished, desc=suite.name, unit="run", disable=not progress)
    if executor == "ray":
        outcomes = run_ray(units, context, num_cpus=num_cpus, address=address)
    else:
        outcomes = run_local(units, context, report=bar.set_postfix_str)
    ok = failed = 0
    errors = []
    with bar:
        for outcome in outcomes:
            runs = len(outcome.unit.pending)
            if outcome.ok:
                ok += runs
            else:
                failed += runs
                errors.append(_error_line(outcome))
                if progress:
                    bar.write(f"failed: {errors[-1]}")
            bar.update(runs)
            bar.set_postfix_str(f"{failed} failed" if failed else "")
    return SweepSummary(total, finished, ok, failed, tuple(errors))


def _error_line(outcome: UnitOutcome) -> str:
    return f"{outcome.unit.dataset} {outcome.unit.method}: {outcome.error}"
