"""One work unit of a sweep: a (dataset, method) pair, all its seeds vmapped in one process.

The unit trains to successive ``until`` targets on one checkpoint and evaluates the policy at
each, caching every evaluation on disk, so a killed unit resumes from its last checkpoint and
never evaluates a point twice. It then writes one record per seed. Work is kept under
``<work_dir>/<dataset>/<method>-<hash>/``, the hash covering everything that defines the run,
so an edited suite trains afresh instead of resuming a stale checkpoint.

The BC pre-training is shared: ``bc`` and every method that fine-tunes from it train one
checkpoint under ``<work_dir>/<dataset>/pretrain-<hash>/``, which saves the parameters at each
evaluation step before moving past it. Whoever trains it (one worker at a time, under the
stage's lock; every file is written atomically), ``bc``'s curve reads those snapshots.

A unit runs under an exclusive lock file in its work directory, so two sweeps of one suite
sharing a work directory (two ``iwbc bench`` at once, or Ray workers) never train it twice.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import io
import json
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import flax.serialization
import numpy as np

from iwbc.algos.run import evaluate_agent, train_algorithm
from iwbc.benchmark.records import SCHEMA, config_fingerprint, is_finished, record_path
from iwbc.benchmark.suites import Suite
from iwbc.data import OfflineDataset, load_dataset, normalized_score
from iwbc.data.errors import one_line
from iwbc.errors import TrainingDiverged, UserError
from iwbc.evaluate import evaluate_policies
from iwbc.files import file_lock, write_atomic, write_json_atomic
from iwbc.machine import machine_record
from iwbc.methods import METHODS, select_episodes
from iwbc.policies import GaussianPolicy
from iwbc.train import init_policy_params, init_train_state, train_stage

# Packages whose versions a record states.
VERSIONED = ("iwbc", "jax", "jaxlib", "flax", "optax", "mujoco", "gymnasium", "minari", "numpy")

ParamsAt = Callable[[int], Any]
Evaluate = Callable[[Any, int], np.ndarray]


@dataclasses.dataclass(frozen=True)
class WorkUnit:
    """(dataset, method) trained for all ``seeds``; records are written for ``pending`` ones."""

    dataset: str
    method: str
    seeds: tuple[int, ...]
    pending: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class UnitContext:
    """Everything a worker needs besides the unit; picklable, so Ray ships it to workers.

    ``dataset`` is an already loaded dataset to use for units on it (``iwbc run`` has one).
    """

    suite: Suite
    records_dir: Path
    work_dir: Path
    data_root: str | None = None
    progress: bool = False
    dataset: OfflineDataset | None = None


@dataclasses.dataclass(frozen=True)
class UnitOutcome:
    """What a unit did: its records (one per pending seed) and its error, if it failed.

    ``elsewhere`` says another process has the unit: ``"running"`` (it holds the unit's lock)
    or ``"finished"`` (it wrote the records after this sweep was planned). This process then
    did nothing and ``records`` is empty.
    """

    unit: WorkUnit
    records: tuple[Path, ...]
    error: str | None = None
    elsewhere: Literal["running", "finished"] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def fingerprint(*parts: Any) -> str:
    """A short hash of JSON-able ``parts``, naming a work directory."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def dataset_slug(dataset_id: str) -> str:
    return dataset_id.replace("/", "__")


def unit_directory(context: UnitContext, unit: WorkUnit) -> Path:
    """The unit's checkpoint and evaluation cache directory."""
    config = context.suite.method_config(unit.method)
    key = fingerprint(unit.dataset, unit.method, config, unit.seeds)
    return context.work_dir / dataset_slug(unit.dataset) / f"{unit.method}-{key}"


def unit_lock(context: UnitContext, unit: WorkUnit) -> Path:
    """The lock file held while ``unit`` runs, beside its checkpoints."""
    return unit_directory(context, unit) / "unit.lock"


def execute_unit(
    unit: WorkUnit,
    context: UnitContext,
    report: Callable[[str], None] | None = None,
    *,
    wait: bool = False,
) -> UnitOutcome:
    """Run ``unit`` under its lock; any exception becomes a failed record per pending seed.

    If another process holds the lock, returns at once (``elsewhere="running"``), or with
    ``wait`` blocks until it is released. With the lock held, the seeds finished meanwhile are
    dropped (all of them: ``elsewhere="finished"``), so concurrent sweeps train a unit once.
    """
    with file_lock(unit_lock(context, unit), wait=wait) as held:
        if not held:
            return UnitOutcome(unit, (), elsewhere="running")
        config = context.suite.method_config(unit.method)
        pending = tuple(
            seed
            for seed in unit.pending
            if not is_finished(
                record_path(context.records_dir, unit.dataset, unit.method, seed), config
            )
        )
        if not pending:
            return UnitOutcome(unit, (), elsewhere="finished")
        return _execute(dataclasses.replace(unit, pending=pending), context, report)


def _execute(
    unit: WorkUnit, context: UnitContext, report: Callable[[str], None] | None
) -> UnitOutcome:
    """Run ``unit``, keeping the full traceback of a failure beside its checkpoints."""
    started = time.perf_counter()
    try:
        dataset = _dataset(context, unit.dataset)
        return UnitOutcome(unit, run_unit(unit, context, dataset, report=report))
    except Exception as error:
        directory = unit_directory(context, unit)
        directory.mkdir(parents=True, exist_ok=True)
        # Atomic, so that a full disk is an error naming the file, not a half traceback.
        write_atomic(directory / "traceback.txt", traceback.format_exc().encode())
        message = f"{type(error).__name__}: {one_line(error)} (traceback: {directory})"
        return record_failure(unit, context, message, time.perf_counter() - started)


def record_failure(unit: WorkUnit, context: UnitContext, message: str, wall: float) -> UnitOutcome:
    """Write a failed record with the one-line ``message`` for each pending seed."""
    paths = tuple(_write_failure(unit, context, seed, message, wall) for seed in unit.pending)
    return UnitOutcome(unit, paths, message)


def run_unit(
    unit: WorkUnit,
    context: UnitContext,
    dataset: OfflineDataset,
    *,
    report: Callable[[str], None] | None = None,
) -> tuple[Path, ...]:
    """Train and evaluate ``unit`` along its curve; write and return its pending records."""
    started = time.perf_counter()
    suite = context.suite
    if dataset.env_id is None:
        raise UserError(f"dataset {dataset.id} records no environment, so it cannot be evaluated")
    directory = unit_directory(context, unit)
    directory.mkdir(parents=True, exist_ok=True)
    if suite.is_offline_rl(unit.method):
        params_at, evaluate, trained_on = _offline_rl(unit, context, dataset, directory)
    else:
        params_at, evaluate, trained_on = _bc_family(unit, context, dataset, directory)
    targets = suite.eval_targets(unit.method)
    curve = []
    for step in targets:
        episodes = suite.final_eval_episodes if step == targets[-1] else suite.eval_episodes
        if report is not None:
            report(f"{unit.dataset} {unit.method} step {step}/{targets[-1]}")
        curve.append(cached_evaluation(directory, unit.method, step, episodes, params_at, evaluate))
    wall = time.perf_counter() - started
    return tuple(
        _write_success(unit, context, dataset, seed, targets, curve, trained_on, wall)
        for seed in unit.pending
    )


def cached_evaluation(
    directory: Path,
    method: str,
    step: int,
    episodes: int,
    params_at: ParamsAt,
    evaluate: Evaluate,
) -> np.ndarray:
    """Returns [seeds, episodes] at ``step``, evaluated once and then read from disk.

    A non-finite return (a policy or simulation that blew up) is a failure naming ``method``
    and the update, never cached nor scored.
    """
    cache = directory / f"eval-{step}-{episodes}ep.npy"
    fresh = not cache.exists()
    returns = np.asarray(evaluate(params_at(step), episodes)) if fresh else np.load(cache)
    finite = np.isfinite(returns).all(axis=1)
    if not finite.all():
        seeds = ", ".join(map(str, np.flatnonzero(~finite)))
        raise TrainingDiverged(
            f"{method} diverged: its policy after update {step} scored a non-finite return "
            f"(seed index {seeds}); lower the learning rate and rerun"
        )
    if fresh:
        buffer = io.BytesIO()
        np.save(buffer, returns)
        write_atomic(cache, buffer.getvalue())
    return returns


def _offline_rl(
    unit: WorkUnit, context: UnitContext, dataset: OfflineDataset, directory: Path
) -> tuple[ParamsAt, Evaluate, int]:
    suite = context.suite
    transitions = dataset.episodes.to_transitions()

    def params_at(step: int) -> Any:
        agent, _ = train_algorithm(
            unit.method,
            transitions,
            unit.seeds,
            config=suite.algorithm_config(unit.method),
            until=step,
            checkpoint=directory / "checkpoint.msgpack",
            progress=context.progress,
            chunk_size=suite.rl_chunk_size,
        )
        return agent

    def evaluate(agent: Any, episodes: int) -> np.ndarray:
        return evaluate_agent(agent, dataset.env_id, num_episodes=episodes, engine=suite.engine)

    return params_at, evaluate, dataset.num_episodes


def _bc_family(
    unit: WorkUnit, context: UnitContext, dataset: OfflineDataset, directory: Path
) -> tuple[ParamsAt, Evaluate, int]:
    suite = context.suite
    pipeline = suite.pipeline
    method = METHODS[unit.method]
    stage = pipeline.stage(method)
    policy = pipeline.policy(dataset.action_dim)
    selected = functools.cache(
        lambda name: select_episodes(dataset.episodes, METHODS[name], pipeline)
    )
    fresh = functools.cache(
        lambda: init_policy_params(
            policy, dataset.observation_dim, unit.seeds, pipeline.statistics(dataset.episodes)
        )
    )
    pretrain_targets = suite.eval_targets("bc")
    pretrain_key = fingerprint(
        unit.dataset,
        dataclasses.asdict(pipeline.pretrain),
        pipeline.hidden_dims,
        unit.seeds,
        pretrain_targets,
        pipeline.standardize_observations,
    )
    pretrain_dir = context.work_dir / dataset_slug(unit.dataset) / f"pretrain-{pretrain_key}"
    pretrain = _stage_trainer(
        policy,
        pipeline.stage(METHODS["bc"]),
        fresh,
        None,
        unit,
        functools.partial(selected, "bc"),
        pretrain_dir,
        pipeline.chunk_size,
        context.progress,
        METHODS["bc"].stage_name + ("" if unit.method == "bc" else f" (for {unit.method})"),
    )
    pretrained = _snapshots(pretrain, pretrain_targets, fresh, pretrain_dir)

    def evaluate(params: Any, episodes: int) -> np.ndarray:
        return evaluate_policies(
            policy, params, dataset.env_id, num_episodes=episodes, engine=suite.engine
        )

    trained_on = selected(unit.method).num_episodes
    if unit.method == "bc":
        return pretrained, evaluate, trained_on
    if method.start == "bc":
        start = functools.cache(lambda: pretrained(pretrain_targets[-1]))
        ref: Callable[[], Any] | None = start
    else:
        start, ref = fresh, None
    train_until = _stage_trainer(
        policy,
        stage,
        start,
        ref,
        unit,
        functools.partial(selected, unit.method),
        directory,
        pipeline.chunk_size,
        context.progress,
        method.stage_name,
    )

    def params_at(step: int) -> Any:
        state = train_until(step)
        reached = int(np.asarray(state.step)[0])
        if reached != step:
            raise UserError(
                f"checkpoint in {directory} is at step {reached}, past {step}; delete it to rerun"
            )
        return state.params

    return params_at, evaluate, trained_on


def _stage_trainer(
    policy: GaussianPolicy,
    stage: Any,
    start: Callable[[], Any],
    ref: Callable[[], Any] | None,
    unit: WorkUnit,
    data: Callable[[], Any],
    directory: Path,
    chunk_size: int,
    progress: bool,
    description: str,
) -> Callable[[int], Any]:
    """train_until(step) -> state: the stage continued on its checkpoint up to ``step``;
    ``description`` names the method and stage on its progress bar and in a divergence."""

    def train_until(step: int) -> Any:
        state = init_train_state(
            stage, start(), unit.seeds, ref_params=None if ref is None else ref()
        )
        state, _ = train_stage(
            policy,
            stage,
            state,
            data(),
            until=step,
            chunk_size=chunk_size,
            checkpoint=directory / "checkpoint.msgpack",
            description=description,
            progress=progress,
        )
        return state

    return train_until


def _snapshots(
    train_until: Callable[[int], Any],
    targets: Sequence[int],
    template: Callable[[], Any],
    directory: Path,
) -> ParamsAt:
    """params_at(step) of a shared stage, from parameter snapshots saved at every target.

    A snapshot at each target is written before the checkpoint moves past it, under the
    stage's lock, so a worker that needs it while another trains it waits and reads it.
    """

    def params_at(step: int) -> Any:
        for target in targets:
            path = directory / f"params-{target}.msgpack"
            if not path.exists():
                with file_lock(directory / "stage.lock"):
                    if not path.exists():
                        _snapshot(train_until, target, path, directory)
            if target == step:
                return flax.serialization.from_bytes(template(), path.read_bytes())
        raise ValueError(f"step {step} is not one of the evaluation steps {tuple(targets)}")

    return params_at


def _snapshot(train_until: Callable[[int], Any], target: int, path: Path, directory: Path) -> None:
    """Train the shared stage to ``target`` and save its parameters there at ``path``."""
    state = train_until(target)
    reached = int(np.asarray(state.step)[0])
    if reached != target:
        raise UserError(
            f"shared checkpoint in {directory} is at step {reached} without a snapshot at "
            f"step {target}; delete {directory} to rerun"
        )
    write_atomic(path, flax.serialization.to_bytes(state.params))


@functools.lru_cache(maxsize=1)
def _load(dataset_id: str, root: str | None) -> OfflineDataset:
    """The last dataset loaded in this process: units come grouped by dataset."""
    return load_dataset(dataset_id, root=root)


def _dataset(context: UnitContext, dataset_id: str) -> OfflineDataset:
    if context.dataset is not None and context.dataset.id == dataset_id:
        return context.dataset
    return _load(dataset_id, context.data_root)


def _record(unit: WorkUnit, context: UnitContext, seed: int, wall: float) -> dict[str, Any]:
    config = context.suite.method_config(unit.method)
    return {
        "schema": SCHEMA,
        "suite": context.suite.name,
        "dataset": unit.dataset,
        "env_id": None,
        "method": unit.method,
        "seed": seed,
        "status": "ok",
        "error": None,
        "config": config,
        "fingerprint": config_fingerprint(config),
        "environment": machine_record(VERSIONED),
        "curve": None,
        "final": None,
        "best": None,
        "ref_min_score": None,
        "ref_max_score": None,
        "wall_seconds": wall,
        # The seeds vmapped in the same process: they share one wall time.
        "trained_with_seeds": list(unit.seeds),
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _write_failure(
    unit: WorkUnit, context: UnitContext, seed: int, error: str, wall: float
) -> Path:
    record = _record(unit, context, seed, wall)
    record.update(status="failed", error=error)
    path = record_path(context.records_dir, unit.dataset, unit.method, seed)
    return write_json_atomic(path, record)


def _write_success(
    unit: WorkUnit,
    context: UnitContext,
    dataset: OfflineDataset,
    seed: int,
    steps: Sequence[int],
    curve: Sequence[np.ndarray],
    trained_on: int,
    wall: float,
) -> Path:
    """The seed's record: its mean return at each step, normalized where the dataset can be."""
    index = unit.seeds.index(seed)
    per_episode = [np.asarray(returns[index], np.float64) for returns in curve]
    means = [float(r.mean()) for r in per_episode]
    low, high = dataset.ref_min_score, dataset.ref_max_score
    normalized = (
        None if low is None or high is None else normalized_score(means, low, high).tolist()
    )
    best = int(np.argmax(means if normalized is None else normalized))
    record = _record(unit, context, seed, wall)
    record.update(
        env_id=dataset.env_id,
        curve={"steps": list(steps), "returns": means, "normalized": normalized},
        final={
            "return": means[-1],
            "normalized": None if normalized is None else normalized[-1],
            "episode_returns": per_episode[-1].tolist(),
        },
        best={
            "normalized": None if normalized is None else normalized[best],
            "return": means[best],
            "step": steps[best],
        },
        ref_min_score=low,
        ref_max_score=high,
        trained_on_episodes=trained_on,
    )
    path = record_path(context.records_dir, unit.dataset, unit.method, seed)
    return write_json_atomic(path, record)
