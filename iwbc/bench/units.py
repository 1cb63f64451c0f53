"""One work unit of a sweep: a (dataset, method) pair, all its seeds vmapped in one process.

The unit trains its agent in memory from one evaluation step to the next, checkpointing after
every chunk, and evaluates it at each, caching every evaluation on disk, so a killed unit
resumes from its last checkpoint and never evaluates a point twice. It then writes one record
per seed. Work is kept under ``<work_dir>/<dataset>/<method>-<hash>/``, the hash covering
everything that defines the run, so an edited suite trains afresh instead of resuming a stale
checkpoint.

The BC pre-training is shared: ``bc`` and every method that starts from it train one
checkpoint under ``<work_dir>/<dataset>/bc-stage-<hash>/``, which saves the agent at each
evaluation step before moving past it. Whoever trains it (one worker at a time, under the
stage's lock; every file is written atomically), ``bc``'s curve reads those snapshots.

A unit runs under an exclusive lock file in its work directory, so two sweeps of one suite
sharing a work directory (two ``iwbc bench`` at once, or Ray workers) never train it twice.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
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
import jax
import numpy as np

from iwbc.agents.common import stated_fields
from iwbc.agents.registry import (
    METHODS,
    STARTS,
    critic_value_bounds,
    training_data,
    training_episodes,
)
from iwbc.bench.records import (
    SCHEMA,
    action_box_json,
    bounds_json,
    config_fingerprint,
    is_finished,
    read_record,
    record_path,
)
from iwbc.bench.suites import Suite
from iwbc.core.sampling import return_spread
from iwbc.core.trainer import Training, agents_structure, checkpoint_history, create_agents
from iwbc.data import OfflineDataset, load_dataset, normalized_score
from iwbc.data.errors import one_line
from iwbc.data.scores import require_reference_scores
from iwbc.envs.evaluate import check_evaluable, evaluate_agent
from iwbc.envs.rollout import resolve_engine
from iwbc.errors import TrainingDiverged, UserError
from iwbc.files import file_lock, write_atomic, write_json_atomic
from iwbc.machine import machine_record, running_commit

# Packages whose versions a record states; Gymnasium-Robotics' because its envs' rewards have
# changed within one env version (Adroit's Door, Hammer and Relocate in 1.2.1).
VERSIONED = (
    "iwbc",
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "mujoco",
    "gymnasium",
    "gymnasium-robotics",
    "minari",
    "numpy",
)

AgentAt = Callable[[int], Any]
Evaluate = Callable[[Any, int], np.ndarray]


@dataclasses.dataclass(frozen=True)
class WorkUnit:
    """(dataset, method) trained for all ``seeds``; records are written for ``pending`` ones.

    ``data_fingerprint`` and ``engine`` are the dataset's content fingerprint and the engine
    evaluating it when planning read them (it had finished records to check), so seeds finished
    meanwhile are checked against the same data and engine.
    """

    dataset: str
    method: str
    seeds: tuple[int, ...]
    pending: tuple[int, ...]
    data_fingerprint: str | None = None
    engine: str | None = None


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


def _keyed_directory(context: UnitContext, unit: WorkUnit, *extra: Any) -> Path:
    config = context.suite.method_config(unit.method, unit.dataset)
    key = fingerprint(unit.dataset, unit.method, config, unit.seeds, *extra)
    return context.work_dir / dataset_slug(unit.dataset) / f"{unit.method}-{key}"


def unit_directory(context: UnitContext, unit: WorkUnit) -> Path:
    """The unit's lock and failure traceback: known before its dataset is loaded."""
    return _keyed_directory(context, unit)


def evaluation_engine(suite: Suite, dataset: OfflineDataset) -> str:
    """The engine that evaluates ``dataset``'s runs here: the suite's, with ``auto`` resolved
    (MJX on a GPU with MJX installed, the CPU batch engine or Gymnasium elsewhere)."""
    return resolve_engine(dataset.env, suite.engine)


def cache_directory(context: UnitContext, unit: WorkUnit, dataset: OfflineDataset) -> Path:
    """The unit's checkpoints and evaluations, keyed by the dataset's content as well: a
    dataset regenerated, or read from another root under the same id, trains anew; new
    reference scores do not (they only rescale the cached returns). ``auto`` resolved to MJX
    keys its own: MJX's returns are close to, not equal to, the CPU engines' (README,
    *Evaluation*); the CPU resolutions keep the keys they always had."""
    engine = evaluation_engine(context.suite, dataset)
    on_mjx = ("mjx",) if context.suite.engine == "auto" and engine == "mjx" else ()
    return _keyed_by_data(lambda data: _keyed_directory(context, unit, data, *on_mjx), dataset)


def _keyed_by_data(directory_for: Callable[[str], Path], dataset: OfflineDataset) -> Path:
    """``directory_for(dataset.training_fingerprint)``. Caches made before that key dropped the
    reference scores sit under the content fingerprint's: such a directory is moved to the new
    key on first use, so upgrading loses no checkpoint or evaluation (hours at paper budgets)."""
    directory = directory_for(dataset.training_fingerprint)
    legacy = directory_for(dataset.content_fingerprint)
    if not directory.exists() and legacy.exists():
        try:
            legacy.rename(directory)
        except OSError as error:
            # Another process moved it, or made the new one, first: use the new one.
            if error.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST):
                raise
    return directory


def unit_lock(context: UnitContext, unit: WorkUnit) -> Path:
    """The lock file held while ``unit`` runs. It sits in ``unit_directory``, keyed before the
    dataset is read, not beside the checkpoints (``cache_directory``, keyed by its content as
    well): two sweeps must agree on the lock before either has loaded the data."""
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
        config = context.suite.method_config(unit.method, unit.dataset)
        pending = tuple(
            seed
            for seed in unit.pending
            if not is_finished(
                read_record(record_path(context.records_dir, unit.dataset, unit.method, seed)),
                config,
                unit.data_fingerprint,
                unit.engine,
            )
        )
        if not pending:
            return UnitOutcome(unit, (), elsewhere="finished")
        return _execute(dataclasses.replace(unit, pending=pending), context, report)


def _execute(
    unit: WorkUnit, context: UnitContext, report: Callable[[str], None] | None
) -> UnitOutcome:
    """Run ``unit``, keeping the full traceback of a failure beside its checkpoints, then drop
    the programs it compiled.

    XLA:CPU maps about six memory regions per compiled program, held as long as JAX's caches
    hold the program: a sweep in one process (or one Ray worker) gained ~450 maps a unit, so a
    few hundred units reach Linux's limit of 65,530 (``vm.max_map_count``) and die of a
    segfault. The next unit has other shapes or another method, so it would compile its own
    programs anyway.
    """
    started = time.perf_counter()
    try:
        dataset = context_dataset(context, unit.dataset)
        return UnitOutcome(unit, run_unit(unit, context, dataset, report=report))
    except Exception as error:
        directory = unit_directory(context, unit)
        directory.mkdir(parents=True, exist_ok=True)
        # Atomic, so that a full disk is an error naming the file, not a half traceback.
        write_atomic(directory / "traceback.txt", traceback.format_exc().encode())
        message = f"{type(error).__name__}: {one_line(error)} (traceback: {directory})"
        return record_failure(unit, context, message, time.perf_counter() - started)
    finally:
        jax.clear_caches()


def record_failure(unit: WorkUnit, context: UnitContext, message: str, wall: float) -> UnitOutcome:
    """Write a failed record with the one-line ``message`` for each pending seed."""
    paths = tuple(_write_failure(unit, context, seed, message, wall) for seed in unit.pending)
    return UnitOutcome(unit, paths, message)


def check_trainable(suite: Suite, method: str, dataset: OfflineDataset) -> None:
    """A one-line error for data that ``method``'s training would reject, found from the
    episodes alone so that it costs nothing and comes before any method trains."""
    if getattr(suite.agent_config(method, dataset.id), "normalize_rewards", False):
        return_spread(dataset.episodes.returns, method)


def run_unit(
    unit: WorkUnit,
    context: UnitContext,
    dataset: OfflineDataset,
    *,
    report: Callable[[str], None] | None = None,
) -> tuple[Path, ...]:
    """Train and evaluate ``unit`` along its curve; write and return its pending records.

    Their wall time is summed over the invocations that made the curve: each adds its own to
    the unit's cache after every evaluation, so a killed and resumed run, or one whose
    evaluations all come from the cache, states what it cost, not what the last call did.
    """
    started = time.perf_counter()
    suite = context.suite
    # Before training: an env no engine here runs, or no reference scores to normalize with,
    # would otherwise fail the unit only at its first evaluation.
    engine = check_evaluable(dataset.env, suite.engine, dataset.id)
    require_reference_scores(dataset)
    check_trainable(suite, unit.method, dataset)
    directory = cache_directory(context, unit, dataset)
    directory.mkdir(parents=True, exist_ok=True)
    spent = _wall_seconds(directory)
    agent_at = _agent_at(unit.method, unit, context, dataset, directory)

    def evaluate(agent: Any, episodes: int) -> np.ndarray:
        return evaluate_agent(agent, dataset.env, num_episodes=episodes, engine=engine)

    method = METHODS[unit.method]
    trained_on = training_episodes(method, dataset.episodes, suite.pipeline.selection)
    targets = suite.eval_targets(unit.method, unit.dataset)
    curve, made_at = [], {}
    for step in targets:
        episodes = suite.final_eval_episodes if step == targets[-1] else suite.eval_episodes
        if report is not None:
            report(f"{unit.dataset} {unit.method} to step {step}/{targets[-1]}")
        curve.append(cached_evaluation(directory, unit.method, step, episodes, agent_at, evaluate))
        made_at[evaluation_commit(directory, step, episodes)] = None
        wall = _add_wall_seconds(directory, spent, started)
    stage = _stage_directory(unit.method, unit, context, dataset, directory)
    history = checkpoint_history(stage / "checkpoint.msgpack")
    q_bounds = critic_value_bounds(
        method, dataset.episodes, suite.agent_config(unit.method, dataset.id)
    )
    return tuple(
        _write_success(
            unit,
            context,
            dataset,
            seed,
            targets,
            curve,
            trained_on,
            wall,
            history=_seed_history(history, unit.seeds.index(seed)),
            engine=engine,
            evaluated_at=list(made_at),
            q_bounds=q_bounds,
        )
        for seed in unit.pending
    )


def cached_evaluation(
    directory: Path,
    method: str,
    step: int,
    episodes: int,
    agent_at: AgentAt,
    evaluate: Evaluate,
) -> np.ndarray:
    """Returns [seeds, episodes] at ``step``, evaluated once and then read from disk.

    A non-finite return (a policy or simulation that blew up) is a failure naming ``method``
    and the update, never cached nor scored.
    """
    cache = _evaluation_file(directory, step, episodes)
    cached = _read_evaluation(cache, episodes)
    fresh = cached is None
    returns = np.asarray(evaluate(agent_at(step), episodes)) if fresh else cached
    finite = np.isfinite(returns).all(axis=1)
    if not finite.all():
        seeds = ", ".join(map(str, np.flatnonzero(~finite)))
        raise TrainingDiverged(
            f"{method} diverged: its policy after update {step} scored a non-finite return "
            f"(seed index {seeds}); lower the learning rate and rerun"
        )
    if fresh:
        # The commit first: returns cached without it would be taken as made before the key.
        write_json_atomic(cache.with_suffix(".json"), {"iwbc_commit": running_commit()})
        buffer = io.BytesIO()
        np.save(buffer, returns)
        write_atomic(cache, buffer.getvalue())
    return returns


def _read_evaluation(cache: Path, episodes: int) -> np.ndarray | None:
    """The cached returns [seeds, episodes], or None when there are none to trust: no file, or
    one unreadable or of another shape (damaged on disk). The evaluation is deterministic, so
    making it again gives what the file held."""
    try:
        returns = np.load(cache, allow_pickle=False)
    except (OSError, ValueError, EOFError):  # FileNotFoundError is an OSError
        return None
    if returns.ndim != 2 or returns.shape[1] != episodes or returns.dtype.kind != "f":
        return None
    return returns


def _evaluation_file(directory: Path, step: int, episodes: int) -> Path:
    return directory / f"eval-{step}-{episodes}ep.npy"


def evaluation_commit(directory: Path, step: int, episodes: int) -> str | None:
    """The source commit of the process that made a cached evaluation (None: unknown).

    Checkpoints and evaluations are keyed by configuration and data, not by code, so a run
    resumed, or its record rebuilt, after a code change reuses them: the record says so.
    """
    path = _evaluation_file(directory, step, episodes).with_suffix(".json")
    try:
        return json.loads(path.read_text())["iwbc_commit"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


WALL_FILE = "wall_seconds.json"


def _wall_seconds(directory: Path) -> float:
    """Seconds earlier invocations spent on the unit cached in ``directory`` (0 if none, or if
    the file is unreadable: a time is not worth failing a run for)."""
    try:
        return float(json.loads((directory / WALL_FILE).read_text())["wall_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _add_wall_seconds(directory: Path, before: float, started: float) -> float:
    """``before`` plus this invocation's seconds since ``started``, saved in ``directory``."""
    total = before + time.perf_counter() - started
    write_json_atomic(directory / WALL_FILE, {"wall_seconds": total})
    return total


def _stage_directory(
    name: str, unit: WorkUnit, context: UnitContext, dataset: OfflineDataset, unit_dir: Path
) -> Path:
    """Where method ``name`` checkpoints for ``unit``: the unit's directory, or the stage shared
    by the methods that start from it (keyed by everything that defines that training)."""
    if name not in STARTS:
        return unit_dir

    def directory_for(data: str) -> Path:
        key = fingerprint(
            dataset.id,
            name,
            stated_fields(context.suite.agent_config(name, dataset.id)),
            unit.seeds,
            context.suite.eval_targets(name, dataset.id),
            data,
        )
        return context.work_dir / dataset_slug(dataset.id) / f"{name}-stage-{key}"

    return _keyed_by_data(directory_for, dataset)


def _seed_history(history: list[dict] | None, index: int) -> dict[str, list] | None:
    """One seed's per-chunk training metrics (update reached, then each metric's chunk mean
    to 6 significant digits), from a Training history; None without one."""
    if not history:
        return None
    names = [name for name in history[0] if name != "step"]
    return {
        "steps": [int(record["step"]) for record in history],
        **{name: [float(f"{record[name][index]:.6g}") for record in history] for name in names},
    }


def _agent_at(
    name: str,
    unit: WorkUnit,
    context: UnitContext,
    dataset: OfflineDataset,
    unit_dir: Path,
) -> AgentAt:
    """agent_at(step): method ``name``'s seed-stacked agent after ``step`` updates.

    Trained lazily (a unit whose evaluations are all cached trains nothing), in memory from
    one curve point to the next, checkpointed after every chunk. A method others start from
    (:data:`iwbc.agents.registry.STARTS`, i.e. BC) trains once per dataset in a shared directory
    and saves the agent at each of its evaluation steps, under the stage's lock, before moving
    past it: its own unit evaluates those snapshots and its dependents start from the last.
    """
    suite = context.suite
    method = METHODS[name]
    config = suite.agent_config(name, dataset.id)
    targets = suite.eval_targets(name, dataset.id)
    shared = name in STARTS
    directory = _stage_directory(name, unit, context, dataset, unit_dir)
    description = method.stage_name + ("" if unit.method == name else f" (for {unit.method})")

    @functools.cache
    def training() -> Training:
        prepared = training_data(method, dataset, config, suite.pipeline.selection)
        init = None
        if method.start is not None:
            start_targets = suite.eval_targets(method.start, dataset.id)
            init = _agent_at(method.start, unit, context, dataset, unit_dir)(start_targets[-1])
        directory.mkdir(parents=True, exist_ok=True)
        return Training(
            create_agents(method.agent, config, prepared.spec, list(unit.seeds), init),
            prepared.data,
            checkpoint=directory / "checkpoint.msgpack",
            chunk_size=suite.chunk_size(name),
            description=description,
            progress=context.progress,
        )

    if not shared:
        return lambda step: training().to(step)

    # A start stage trains from nothing and prepares nothing (BC), so its snapshots read back
    # into the structure of its creation: a dependent resuming from them builds no BC run.
    structure = functools.cache(
        lambda: agents_structure(
            method.agent, config, dataset.observation_dim, dataset.action_dim, unit.seeds
        )
    )

    def snapshot_at(step: int) -> Any:
        for target in targets:
            path = directory / f"agent-{target}.msgpack"
            if not path.exists():
                directory.mkdir(parents=True, exist_ok=True)
                with file_lock(directory / "stage.lock"):
                    if not path.exists():
                        write_atomic(path, flax.serialization.to_bytes(training().to(target)))
            if target == step:
                return _read_snapshot(path, structure)
        raise ValueError(f"step {step} is not one of the evaluation steps {tuple(targets)}")

    return snapshot_at


def _read_snapshot(path: Path, structure: Callable[[], Any]) -> Any:
    """The agents saved at ``path``; a one-line error naming it and the fix when it cannot be
    read back (damaged on disk): the stage's checkpoint may already be past its update."""
    try:
        return flax.serialization.from_bytes(structure(), path.read_bytes())
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"snapshot {path} is unreadable ({type(error).__name__}); delete it and the "
            "checkpoint.msgpack beside it, and rerun: that stage trains again"
        ) from None


@functools.lru_cache(maxsize=1)
def _load(dataset_id: str, root: str | None, scores: tuple[float, float] | None) -> OfflineDataset:
    """The last dataset loaded in this process (units come grouped by dataset), with the
    reference scores its suite gives it, if any."""
    dataset = load_dataset(dataset_id, root=root, reference_scores=scores)
    if scores is None:
        return dataset
    return dataclasses.replace(
        dataset, ref_source=f'the suite\'s [reference_scores."{dataset_id}"]'
    )


def context_dataset(context: UnitContext, dataset_id: str) -> OfflineDataset:
    """The dataset units of ``context`` train on: the one it was given, else loaded."""
    if context.dataset is not None and context.dataset.id == dataset_id:
        return context.dataset
    return _load(dataset_id, context.data_root, context.suite.given_scores(dataset_id))


def _record(
    unit: WorkUnit, context: UnitContext, seed: int, wall: float, data: str | None
) -> dict[str, Any]:
    config = context.suite.method_config(unit.method, unit.dataset)
    return {
        "schema": SCHEMA,
        "suite": context.suite.name,
        "dataset": unit.dataset,
        "env_id": None,
        # env_id with what the recorded env sets otherwise (e.g. Ant-v5 without contact forces).
        "env": None,
        "method": unit.method,
        "seed": seed,
        "status": "ok",
        "error": None,
        "config": config,
        "fingerprint": config_fingerprint(config),
        "data_fingerprint": data,
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
    record = _record(unit, context, seed, wall, unit.data_fingerprint)
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
    *,
    history: dict[str, list] | None,
    engine: str,
    evaluated_at: list[str | None],
    q_bounds: tuple[float, float] | None,
) -> Path:
    """The seed's record: its mean return at each evaluation step, normalized, its training
    (episodes trained on, per-chunk metrics, the range its critic's values can reach by TD on
    the data), the engine that evaluated it and the source commits of the processes that made
    its evaluations."""
    index = unit.seeds.index(seed)
    per_episode = [np.asarray(returns[index], np.float64) for returns in curve]
    means = [float(r.mean()) for r in per_episode]
    low, high = require_reference_scores(dataset)
    normalized = normalized_score(means, low, high).tolist()
    best = int(np.argmax(normalized))
    record = _record(unit, context, seed, wall, dataset.content_fingerprint)
    record.update(
        env_id=dataset.env_id,
        env=dataset.env_label,
        curve={"steps": list(steps), "returns": means, "normalized": normalized},
        final={
            "return": means[-1],
            "normalized": normalized[-1],
            "episode_returns": per_episode[-1].tolist(),
        },
        best={
            "normalized": normalized[best],
            "return": means[best],
            "step": steps[best],
        },
        ref_min_score=low,
        ref_max_score=high,
        # Where those scores came from, and the share of steps whose action lay outside the
        # box (clipped on loading): what a table quoting the run must say of its data.
        ref_source=dataset.ref_source,
        clipped_actions=dataset.clipped_actions,
        # The env's action box: one other than [-1, 1] was mapped into [-1, 1] for training
        # and back on evaluation (iwbc.envs.action_box).
        action_box=action_box_json(dataset.action_low, dataset.action_high),
        trained_on_episodes=trained_on,
        engine=engine,
        evaluated_at_commits=evaluated_at,
        # Per-chunk means of the losses and diagnostics (iw-BC's weight_ess among them).
        training=history,
    )
    if q_bounds is not None:
        record["q_bounds"] = bounds_json(q_bounds)
    path = record_path(context.records_dir, unit.dataset, unit.method, seed)
    return write_json_atomic(path, record)
