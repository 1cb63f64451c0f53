"""One work unit of a sweep: a (dataset, method) pair, all its seeds vmapped in one process.

The unit trains to successive ``until`` targets on one checkpoint and evaluates the policy at
each, caching every evaluation on disk, so a killed unit resumes from its last checkpoint and
never evaluates a point twice. It then writes one record per seed. Work is kept under
``<work_dir>/<dataset>/<method>-<hash>/``, the hash covering everything that defines the run,
so an edited suite trains afresh instead of resuming a stale checkpoint.

The BC pre-training is shared: ``bc`` and every method that fine-tunes from it train one
checkpoint under ``<work_dir>/<dataset>/pretrain-<hash>/``, which saves the parameters at each
evaluation step before moving past it. Whoever trains it (and two workers may race on it; every
file is written atomically under a unique temporary name), ``bc``'s curve reads those snapshots.
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
from typing import Any

import flax.serialization
import numpy as np

from iwbc.algos.run import evaluate_agent, train_algorithm
from iwbc.benchmark.records import SCHEMA, record_path
from iwbc.benchmark.suites import Suite
from iwbc.data import OfflineDataset, load_dataset, normalized_score
from iwbc.data.errors import one_line
from iwbc.errors import UserError
from iwbc.evaluate import evaluate_policies
from iwbc.files import write_atomic, write_json_atomic
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
    """What a unit did: its records (one per pending seed) and its error, if it failed."""

    unit: WorkUnit
    records: tuple[Path, ...]
    error: str | None = None

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


def execute_unit(
    unit: WorkUnit,
    context: UnitContext,
    report: Callable[[str], None] | None = None,
) -> UnitOutcome:
    """Run ``unit``; any exception becomes a failed record per pending seed, not a crash.

    The full traceback is kept beside the unit's checkpoints for whoever debugs it.
    """
    started = time.perf_counter()
    try:
        dataset = _dataset(context, unit.dataset)
        return UnitOutcome(unit, run_unit(unit, context, dataset, report=report))
    except Exception as error:
        directory = unit_directory(context, unit)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "traceback.txt").write_text(traceback.format_exc())
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
        curve.append(_cached_evaluation(directory, step, episodes, params_at, evaluate))
    wall = time.perf_counter() - started
    return tuple(
        _write_success(unit, context, dataset, seed, targets, curve, trained_on, wall)
        for seed in unit.pending
    )


def _cached_evaluation(
    directory: Path, step: int, episodes: int, params_at: ParamsAt, evaluate: Evaluate
) -> np.ndarray:
    """Returns [seeds, episodes] at ``step``, evaluated once and then read from disk."""
    cache = directory / f"eval-{step}-{episodes}ep.npy"
    if cache.exists():
        return np.load(cache)
    returns = np.asarray(evaluate(params_at(step), episodes))
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
) -> Callable[[int], Any]:
    """train_until(step) -> state: the stage continued on its checkpoint up to ``step``."""

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
            description=unit.method,
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

    A snapshot at each target is written before the checkpoint moves past it, so a worker
    that finds the checkpoint already further on (another unit trained it) reads the snapshot.
    """

    def params_at(step: int) -> Any:
        for target in targets:
            path = directory / f"params-{target}.msgpack"
            if not path.exists():
                state = train_until(target)
                reached = int(np.asarray(state.step)[0])
                if reached == target:
                    write_atomic(path, flax.serialization.to_bytes(state.params))
                elif not path.exists():
                    raise UserError(
                        f"shared checkpoint in {directory} is at step {reached} without a "
                        f"snapshot at step {target}; delete {directory} to rerun"
                    )
            if target == step:
                return flax.serialization.from_bytes(template(), path.read_bytes())
        raise ValueError(f"step {step} is not one of the evaluation steps {tuple(targets)}")

    return params_at


@functools.lru_cache(maxsize=1)
def _load(dataset_id: str, root: str | None) -> OfflineDataset:
    """The last dataset loaded in this process: units come grouped by dataset."""
    return load_dataset(dataset_id, root=root)


def _dataset(context: UnitContext, dataset_id: str) -> OfflineDataset:
    if context.dataset is not None and context.dataset.id == dataset_id:
        return context.dataset
    return _load(dataset_id, context.data_root)


def _record(unit: WorkUnit, context: UnitContext, seed: int, wall: float) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "suite": context.suite.name,
        "dataset": unit.dataset,
        "env_id": None,
        "method": unit.method,
        "seed": seed,
        "status": "ok",
        "error": None,
        "config": context.suite.method_config(unit.method),
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
