"""A sweep: a suite expanded into work units, the unfinished ones run, progress shown.

A run is finished when its record says ``ok`` for the suite's current configuration of that
method, made on the dataset's current content; finished runs are skipped, so re-invoking a
killed sweep continues where it stopped (unfinished units resume from their checkpoints and
cached evaluations). Failed runs are recorded and retried on the next invocation; the sweep
itself goes on past them.

Sweeps of one suite may run at once on one work directory: a unit another process is running
(its lock is held) is skipped, then collected at the end by waiting for that lock; if the other
process stopped without finishing it, this one runs it then.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import jax
from tqdm.auto import tqdm

from iwbc.bench.cpu_cost import slow_stages
from iwbc.bench.executors import EXECUTORS, run_local, run_ray
from iwbc.bench.records import is_finished, read_record, record_path
from iwbc.bench.suites import Suite
from iwbc.bench.units import (
    UnitContext,
    UnitOutcome,
    WorkUnit,
    context_dataset,
    evaluation_engine,
    execute_unit,
)
from iwbc.data import OfflineDataset, list_datasets
from iwbc.data.minari_tiers import derive_missing_scores
from iwbc.data.scripted import generate_mixed_dataset, recorded_mixture
from iwbc.errors import UserError
from iwbc.files import file_lock
from iwbc.machine import running_commit


@dataclasses.dataclass(frozen=True)
class SweepSummary:
    """Run counts of one invocation; ``errors`` has one line per failed unit.

    ``skipped`` runs were finished without this invocation: before it, or by another process
    during it (``elsewhere`` of them).
    """

    total: int
    skipped: int
    ok: int
    failed: int
    errors: tuple[str, ...] = ()
    elsewhere: int = 0


@dataclasses.dataclass
class _Tally:
    """The counts of a sweep in progress, and its progress bar."""

    bar: tqdm
    progress: bool
    ok: int = 0
    failed: int = 0
    elsewhere: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)

    def say(self, line: str) -> None:
        if self.progress:
            self.bar.write(line)

    def add(self, outcome: UnitOutcome) -> None:
        runs = len(outcome.unit.pending)
        if outcome.elsewhere == "finished":
            self.elsewhere += runs
            self.say(f"{outcome.unit.dataset} {outcome.unit.method}: run by another process")
        elif outcome.ok:
            self.ok += runs
        else:
            self.failed += runs
            self.errors.append(f"{outcome.unit.dataset} {outcome.unit.method}: {outcome.error}")
            self.say(f"failed: {self.errors[-1]}")
        self.bar.update(runs)
        self.bar.set_postfix_str(f"{self.failed} failed" if self.failed else "")


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
    data_fingerprint: Callable[[str], str] | None = None,
    engine: Callable[[str], str] | None = None,
) -> tuple[list[WorkUnit], int, int]:
    """(units with unfinished runs, runs in the selection, runs already finished).

    ``data_fingerprint(dataset)`` gives a dataset's current content fingerprint; it is asked
    only for datasets with runs finished under the current configuration, and those made on
    other content are planned again. A dataset it cannot load (a UserError) keeps its records
    as they are: its pending runs fail on loading it all the same. ``engine(dataset)``, asked
    then too, gives the engine evaluating it here; runs evaluated on another are planned again.
    """
    datasets, methods = select(suite, only_datasets, only_methods)
    units, total, finished = [], 0, 0
    for dataset in datasets:
        records = {
            (method, seed): read_record(record_path(records_dir, dataset, method, seed))
            for method in methods
            for seed in suite.seeds
        }
        configs = {method: suite.method_config(method, dataset) for method in methods}
        current = evaluated_on = None
        if data_fingerprint is not None and any(
            is_finished(record, configs[method]) for (method, _), record in records.items()
        ):
            with contextlib.suppress(UserError):
                current = data_fingerprint(dataset)
                evaluated_on = None if engine is None else engine(dataset)
        for method in methods:
            pending = tuple(
                seed
                for seed in suite.seeds
                if not is_finished(records[method, seed], configs[method], current, evaluated_on)
            )
            total += len(suite.seeds)
            finished += len(suite.seeds) - len(pending)
            if pending:
                units.append(WorkUnit(dataset, method, suite.seeds, pending, current, evaluated_on))
    return units, total, finished


def prepare_datasets(
    suite: Suite,
    datasets: Sequence[str],
    data_root: str | None,
    lock: Path,
    scores_note: Callable[[str], object] | None = None,
) -> None:
    """Make the suite's scripted datasets that are missing from the data root and, with
    ``scores_note``, the reference scores of Minari namespaces that lack them
    (``derive_missing_scores``, which tells it; not for a dataset the suite gives scores),
    before any worker needs them, holding ``lock``
    (so neither parallel workers nor a concurrent sweep race to write one); a scripted one
    already there must be the one the suite asks for."""
    wanted = [spec for spec in suite.scripted if spec.dataset in datasets]
    with file_lock(lock):
        if scores_note is not None:
            for dataset in datasets:
                if suite.given_scores(dataset) is None:
                    derive_missing_scores(dataset, data_root, scores_note)
        local = set(list_datasets(data_root))
        for spec in wanted:
            if spec.dataset not in local:
                generate_mixed_dataset(
                    spec.dataset, num_episodes=spec.episodes, seed=spec.seed, root=data_root
                )
                continue
            episodes, seed = recorded_mixture(spec.dataset, data_root)
            # A mixture written before episodes recorded their seeds is judged by its size.
            if episodes != spec.episodes or seed not in (None, spec.seed):
                where = "" if data_root is None else f" --root {data_root}"
                raise UserError(
                    f"dataset {spec.dataset} holds {episodes} episodes from seed {seed}, but "
                    f"suite {suite.name}'s [scripted] asks for {spec.episodes} from seed "
                    f"{spec.seed}; remake it with `iwbc data scripted --dataset {spec.dataset} "
                    f"--episodes {spec.episodes} --seed {spec.seed}{where} --overwrite`, or set "
                    "[scripted] to what it holds"
                )


def _current_content(context: UnitContext, progress: bool, dataset: str) -> str:
    """The dataset's content fingerprint, saying so first: loading a large tier takes seconds
    before the sweep's progress bar appears."""
    if progress:
        tqdm.write(f"{dataset}: checking its finished runs against its data")
    return context_dataset(context, dataset).content_fingerprint


def _noting_cpu_costs(
    units: Sequence[WorkUnit], context: UnitContext, note: Callable[[str], object]
) -> Iterator[WorkUnit]:
    """``units`` in order; before a dataset's first one, its pending stages that take a CPU
    hours (:mod:`iwbc.bench.cpu_cost`), with the suite keys that make them minutes. Said as the
    dataset's turn comes: its dataset is the one its units then train on (loaded once)."""
    by_dataset: dict[str, list[str]] = {}
    for unit in units:
        by_dataset.setdefault(unit.dataset, []).append(unit.method)
    for unit in units:
        methods = by_dataset.pop(unit.dataset, None)
        if methods is not None:
            try:
                dataset = context_dataset(context, unit.dataset)
            except Exception:  # the unit itself records why the dataset cannot load
                pass
            else:
                longest = int(dataset.episodes.lengths.max())
                slow = slow_stages(context.suite, unit.dataset, methods, len(unit.seeds), longest)
                for line in slow.notes(
                    "window = 1 and batch_size = 256 under the suite's [bc_family.pretrain] and "
                    "[bc_family.finetune] train on 256 one-step windows (CORL's BC batch), "
                    "minutes a method",
                    "a smaller steps under the suite's [offline_rl] sets fewer",
                ):
                    note(f"{unit.dataset}: {line}")
        yield unit


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
    note: Callable[[str], object] | None = None,
) -> SweepSummary:
    """Run every unfinished run of ``suite`` and write its records under ``records_dir``.

    ``progress`` shows runs done / total with an ETA; ``train_progress`` also each training's
    steps (local executor). ``dataset`` is an already loaded dataset that units on it use
    instead of loading it. ``note`` hears, when the local executor trains on a CPU, which of a
    dataset's pending stages take hours there, before its first unit starts.
    """
    if executor not in EXECUTORS:
        raise UserError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    # Looked up now, not at the first record: a sweep runs the code it loaded, even if the
    # checkout moves on during the sweep's minutes or hours.
    running_commit()
    root = None if data_root is None else str(Path(data_root).expanduser().resolve())
    work = Path(work_dir).resolve()
    # A dataset passed in was loaded with the scores its caller chose (`iwbc run --ref-min`).
    scores_note = None if dataset is not None else (note or (lambda line: None))
    prepare_datasets(
        suite, select(suite, only_datasets)[0], root, work / "datasets.lock", scores_note
    )
    context = UnitContext(
        suite=suite,
        records_dir=Path(records_dir).resolve(),
        work_dir=work,
        data_root=root,
        progress=train_progress,
        dataset=dataset,
    )
    units, total, finished = plan(
        suite,
        records_dir,
        only_datasets=only_datasets,
        only_methods=only_methods,
        data_fingerprint=functools.partial(_current_content, context, progress),
        engine=lambda name: evaluation_engine(suite, context_dataset(context, name)),
    )
    bar = tqdm(total=total, initial=finished, desc=suite.name, unit="run", disable=not progress)
    if executor == "ray":
        outcomes = run_ray(units, context, num_cpus=num_cpus, address=address)
    else:
        noted = units
        if note is not None and jax.default_backend() == "cpu":
            noted = _noting_cpu_costs(units, context, note)
        outcomes = run_local(noted, context, report=bar.set_postfix_str)
    tally = _Tally(bar, progress)
    with bar:
        running = []
        for outcome in outcomes:
            if outcome.elsewhere == "running":
                running.append(outcome.unit)
                tally.say(
                    f"{outcome.unit.dataset} {outcome.unit.method}: another process is running "
                    "it; skipped, its result is collected at the end"
                )
            else:
                tally.add(outcome)
        for unit in running:
            tally.say(f"{unit.dataset} {unit.method}: waiting for the other process")
            tally.add(execute_unit(unit, context, bar.set_postfix_str, wait=True))
    return SweepSummary(
        total,
        finished + tally.elsewhere,
        tally.ok,
        tally.failed,
        tuple(tally.errors),
        tally.elsewhere,
    )
