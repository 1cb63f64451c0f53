"""One experiment: a dataset × methods × seeds, trained, evaluated and reported (``iwbc run``).

It runs as a one-dataset benchmark suite through :mod:`iwbc.bench`, so the BC family and
the offline-RL baselines train on the same engine and are scored on the same evaluation
episodes, and a killed run resumes: finished runs are kept as records, unfinished ones continue
from their checkpoints. The records live in the work directory, keyed by a hash of the dataset
and the configuration, so a changed configuration starts afresh instead of resuming.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from iwbc.agents.bc import BCConfig
from iwbc.agents.common import stated_fields
from iwbc.agents.registry import BASELINES, METHODS
from iwbc.bench.cpu_cost import slow_stages
from iwbc.bench.records import (
    bounds_json,
    critic_q_bounds,
    critic_q_tail,
    final_weight_ess,
    read_record,
    record_path,
)
from iwbc.bench.runner import run_suite
from iwbc.bench.suites import (
    OfflineRLSettings,
    PipelineConfig,
    Suite,
    with_overrides,
)
from iwbc.bench.units import VERSIONED, check_trainable, dataset_slug
from iwbc.data import OfflineDataset, dataset_normalized_score
from iwbc.envs.action_box import box_text, rescaled
from iwbc.envs.evaluate import EVAL_SEED_BASE, check_evaluable
from iwbc.errors import UserError, write_error
from iwbc.files import json_text, staging_directory
from iwbc.machine import machine_record
from iwbc.report.convergence import CRITIC_MOVE, CriticEnd
from iwbc.report.figures import returns_figure
from iwbc.report.outliers import MIN_GAP, Z_LIMIT, apart
from iwbc.report.tables import MethodScores, csv_table, markdown_table, spread_cell


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Methods, seeds and protocol of an experiment on one dataset.

    ``algorithm_steps`` is the update budget of the offline-RL baselines (None: each one's
    default, CORL's 1M); their other hyperparameters are their CORL D4RL defaults.
    ``settings`` sets fields of single methods' configs last (``--set iql.expectile=0.9``).
    """

    methods: tuple[str, ...] = ("bc", "filtered_bc", "top10_bc", "iw_bc")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    pipeline: PipelineConfig = dataclasses.field(default_factory=PipelineConfig)
    eval_episodes: int = 100
    engine: str = "auto"
    algorithm_steps: int | None = None
    settings: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()

    def __post_init__(self) -> None:
        method_names(self.methods)
        if not self.seeds:
            raise UserError("at least one training seed is needed")
        if self.eval_episodes < 1:
            raise UserError(f"eval_episodes must be at least 1, got {self.eval_episodes}")
        if self.algorithm_steps is not None and self.algorithm_steps <= 0:
            raise UserError(f"algorithm_steps must be positive, got {self.algorithm_steps}")
        self.suite("")  # a bad --set fails here, before any data is loaded

    def fingerprint(self, dataset_id: str) -> str:
        """A short hash naming the records directory of this configuration on this dataset."""
        fields = stated_fields(self)
        # A suite's curve setting, which an experiment never uses: left out so that run
        # directories made before it existed keep their key.
        del fields["pipeline"]["eval_every"]
        text = json.dumps([dataset_id, fields], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def suite(self, dataset_id: str) -> Suite:
        """The one-dataset suite that runs this experiment: final evaluation only."""
        algorithms = ()
        if self.algorithm_steps is not None:
            algorithms = tuple(
                (name, METHODS[name].config(steps=self.algorithm_steps))
                for name in self.methods
                if name in BASELINES
            )
        suite = Suite(
            name="run",
            description=f"iwbc run {dataset_id}",
            datasets=(dataset_id,),
            methods=self.methods,
            seeds=self.seeds,
            eval_episodes=self.eval_episodes,
            final_eval_episodes=self.eval_episodes,
            eval_every=0,
            engine=self.engine,
            pipeline=dataclasses.replace(self.pipeline, eval_every=None),
            offline_rl=OfflineRLSettings(algorithms),
        )
        suite = with_overrides(suite, {m: dict(v) for m, v in self.settings})
        # The critics are read at chunk ends (``critic_q_tail``: the last at or before 90% of
        # the updates, and the end), so chunks of at most a tenth of the shortest baseline's
        # updates make that window its last tenth whatever its budget.
        steps = [suite.agent_config(m, dataset_id).steps for m in self.methods if m in BASELINES]
        if not steps:
            return suite
        chunk = min(suite.offline_rl.chunk_size, max(1, min(steps) // 10))
        return dataclasses.replace(
            suite, offline_rl=dataclasses.replace(suite.offline_rl, chunk_size=chunk)
        )


def cpu_cost_notes(config: ExperimentConfig, dataset_id: str, longest: int) -> list[str]:
    """What of the experiment takes hours on a CPU at its settings (:mod:`iwbc.bench.cpu_cost`),
    with the flags that make it minutes."""
    slow = slow_stages(
        config.suite(dataset_id), dataset_id, config.methods, len(config.seeds), longest
    )
    return slow.notes(
        "--window 1 --bc-batch-size 256 --finetune-batch-size 256 trains on 256 one-step windows "
        "(CORL's BC batch), minutes a method",
        "--algo-steps sets fewer",
    )


def run_experiment(
    dataset: OfflineDataset,
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    work_dir: str | Path = "runs",
    command: str = "",
    progress: bool = True,
    note: Callable[[str], object] | None = None,
) -> tuple[list[MethodScores], list[CriticEnd]]:
    """Train, evaluate and write ``table.md``, ``table.csv``, ``scores.json``, ``returns.png``;
    the scores, and the baselines' critics over the last tenth of their updates. On a CPU,
    ``note`` is given each of :func:`cpu_cost_notes` once the inputs are checked."""
    started = time.perf_counter()
    dataset_scores = dataset_normalized_score(dataset, dataset.episodes.returns)
    check_evaluable(dataset.env, config.engine, dataset.id)  # before anything trains
    suite = config.suite(dataset.id)
    for method in config.methods:
        check_trainable(suite, method, dataset)
    if note is not None and jax.default_backend() == "cpu":
        longest = int(dataset.episodes.lengths.max())
        for line in cpu_cost_notes(config, dataset.id, longest):
            note(line)
    # the content too: the same id under another root, or regenerated, is another experiment
    key = "-".join(
        (dataset_slug(dataset.id), config.fingerprint(dataset.id), dataset.content_fingerprint[:12])
    )
    records = Path(work_dir) / "records" / key
    summary = run_suite(
        suite,
        records,
        work_dir=work_dir,
        progress=progress,
        train_progress=progress,
        dataset=dataset,
    )
    if summary.failed:
        # A unit's error is one line with the path of its traceback, so it is reported as one.
        raise UserError(
            f"{summary.failed} of {summary.total} runs failed, e.g. {summary.errors[0]}; fix the "
            "cause and run the same command again (finished runs are kept)"
        )
    scores, critics, engines = [], [], set()
    for method in config.methods:
        runs = [read_record(record_path(records, dataset.id, method, s)) for s in config.seeds]
        engines |= {str(run.get("engine", "unrecorded")) for run in runs}
        critics += [end] if (end := _critic_tail(dataset.id, method, runs)) else []
        returns = np.array([run["final"]["episode_returns"] for run in runs])
        scores.append(
            MethodScores(
                dataset=dataset.id,
                method=method,
                returns=returns,
                normalized=dataset_normalized_score(dataset, returns),
                trained_on_episodes=runs[0]["trained_on_episodes"],
                weight_ess=tuple(ess for run in runs if (ess := final_weight_ess(run)) is not None),
            )
        )
    wall = time.perf_counter() - started
    _write_results(
        dataset,
        config,
        scores,
        critics,
        dataset_scores,
        sorted(engines),
        Path(out_dir),
        command,
        wall,
    )
    return scores, critics


def _counted(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _seed_range(episodes: int) -> str:
    last = EVAL_SEED_BASE + episodes - 1
    return f"reset seed {last}" if episodes == 1 else f"reset seeds {EVAL_SEED_BASE}…{last}"


def _critic_tail(dataset_id: str, method: str, runs: Sequence[Mapping]) -> CriticEnd | None:
    """The method's critic over the last tenth of its updates, when every seed logged one."""
    tails = [critic_q_tail(run) for run in runs]
    if any(tail is None for tail in tails):
        return None
    steps = tails[0][0]
    bounds = np.array([critic_q_bounds(run) or (np.nan, np.nan) for run in runs], float)
    return CriticEnd(dataset_id, method, steps, np.array([q for _, q in tails]), bounds)


def _write_results(
    dataset: OfflineDataset,
    config: ExperimentConfig,
    scores: list[MethodScores],
    critics: list[CriticEnd],
    dataset_scores: np.ndarray,
    engines: list[str],
    out_dir: Path,
    command: str,
    wall_seconds: float,
) -> None:
    """``engines``: the evaluation engines the records name (one, unless runs were resumed
    from records evaluated on another machine)."""
    returns = dataset.episodes.returns
    p10, p50, p90 = np.percentile(returns, [10, 50, 90])
    env = machine_record(VERSIONED)
    lines = [
        f"# {dataset.id}: final scores",
        "",
        f"Made by `{command}`." if command else "",
        "",
        markdown_table(scores),
        "Normalized score = 100·(R − ref_min)/(ref_max − ref_min) with ref_min = "
        f"{dataset.ref_min_score:.2f} and ref_max = {dataset.ref_max_score:.2f} (from "
        f"{dataset.ref_source or 'the caller'}). Each seed's score is its mean over "
        f"{_counted(config.eval_episodes, 'evaluation episode')} (deterministic policy, fixed "
        f"{_seed_range(config.eval_episodes)}, shared by all methods and seeds; "
        f"{' and '.join(engines)} engine{'s' if len(engines) > 1 else ''}); the "
        f"table gives mean ± std (ddof 0) over {_counted(len(config.seeds), 'training seed')} "
        "of the final policy (no best-over-training selection).",
        "",
        *_repeat_lines(scores),
        *_weight_lines(scores),
        *_critic_lines(critics),
        *_seeds_apart_lines(scores, config.seeds),
        "## Data and protocol",
        f"- dataset: {dataset.num_episodes} episodes, {dataset.num_steps} steps, env "
        f"{dataset.env_label}; episode return p10 / p50 / p90 = {p10:.1f} / {p50:.1f} / {p90:.1f}",
        *(
            [
                f"- actions of {dataset.clipped_actions:.1%} of the steps lay outside the action "
                "box and were clipped to it on loading (the env clamps them so)"
            ]
            if dataset.clipped_actions
            else []
        ),
        *(
            [
                f"- action box {box_text(dataset.action_low, dataset.action_high)}: mapped into "
                "[-1, 1] for every policy and back on evaluation; TD3+BC's BC term is in the "
                "box's units"
            ]
            if rescaled(dataset.action_low, dataset.action_high)
            else []
        ),
        *_method_lines(config.suite(dataset.id)),
        f"- wall time of this invocation: {wall_seconds:.0f} s ({len(config.seeds)} seeds "
        "vmapped per method; a resumed run reuses finished runs, checkpoints and evaluations)",
        "- " + ", ".join(f"{k} {v}" for k, v in env.items()),
        "",
    ]
    critic_of = {end.method: end for end in critics}
    raw = {
        "dataset": dataset.id,
        "config": dataclasses.asdict(config),
        "environment": env,
        "evaluation_engines": engines,
        "wall_seconds": wall_seconds,
        "reference_scores": {
            "ref_min": dataset.ref_min_score,
            "ref_max": dataset.ref_max_score,
            "source": dataset.ref_source,
        },
        "methods": {
            s.method: {
                "returns": s.returns.tolist(),
                "normalized": s.normalized.tolist(),
                **({"weight_ess": list(s.weight_ess)} if s.weight_ess else {}),
                **(
                    {
                        "critic_q_tail": {
                            "steps": list(end.steps),
                            "q_mean": end.q.tolist(),
                            "moved": end.moved,
                            # Per seed: the range TD on the data can reach, and whether the
                            # final mean Q lies outside it.
                            "q_bounds": [bounds_json(pair) for pair in end.bounds],
                            "outside_bounds": end.outside.tolist(),
                        }
                    }
                    if (end := critic_of.get(s.method))
                    else {}
                ),
            }
            for s in scores
        },
    }
    title = f"{dataset.id} ({len(config.seeds)} seeds, {config.eval_episodes} episodes each)"
    write_file_set(
        out_dir,
        {
            "table.md": lambda path: path.write_text("\n".join(lines)),
            "table.csv": lambda path: path.write_text(csv_table(scores)),
            "scores.json": lambda path: path.write_text(
                json_text(raw, out_dir / "scores.json", indent=1, default=str)
            ),
            "returns.png": lambda path: returns_figure(
                dataset_scores, scores, path, percentiles=config.pipeline.percentiles, title=title
            ),
        },
    )


def write_file_set(out_dir: Path, writers: Mapping[str, Callable[[Path], object]]) -> None:
    """Write the files of ``writers`` (name -> function writing that path) into ``out_dir`` as
    one set: each is written into a hidden staging directory first and only then are they
    renamed into place, so a failure while writing (a full disk) replaces none of a previous
    set and leaves no partial file. A failed write raises a one-line WriteError naming the
    file."""
    target, replaced = out_dir, []
    try:
        with staging_directory(out_dir) as staging:
            for name, write in writers.items():
                target = out_dir / name
                write(staging / name)
            for name in writers:
                target = out_dir / name
                os.replace(staging / name, target)
                replaced.append(name)
    except OSError as err:
        if err.errno is None:
            raise
        kept = f"only {', '.join(replaced)} replaced" if replaced else "none of the files replaced"
        raise write_error(
            target,
            err.errno,
            f"{kept}: free space or fix permissions and run again (finished runs are kept and "
            "not trained again)",
        ) from err


def method_names(names: Sequence[str] | str) -> tuple[str, ...]:
    """Parse a comma-separated method list (or pass a sequence through), validated against the
    BC family and the offline-RL baselines."""
    parts = names.split(",") if isinstance(names, str) else list(names)
    cleaned = tuple(p.strip() for p in parts if p.strip())
    known = tuple(METHODS)
    unknown = [name for name in cleaned if name not in known]
    if unknown:
        raise UserError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    if not cleaned:
        raise UserError(f"no methods given; choose from {', '.join(known)}")
    twice = sorted({name for name in cleaned if cleaned.count(name) > 1})
    if twice:
        raise UserError(f"method(s) {', '.join(twice)} listed twice; list each method once")
    return cleaned


def _seeds_apart_lines(scores: Sequence[MethodScores], seeds: Sequence[int]) -> list[str]:
    """The seeds whose final score stands apart from their method's others, if any
    (:mod:`iwbc.report.outliers`)."""
    named = [
        f"{s.method} seed {seed} {score:.1f} (median {np.median(s.seed_scores):.1f})"
        for s in scores
        for seed, score, is_apart in zip(seeds, s.seed_scores, apart(s.seed_scores), strict=True)
        if is_apart
    ]
    if not named:
        return []
    return [
        f"Seeds apart from their method's others: {', '.join(named)}. Each lies at least "
        f"{MIN_GAP:g} points from the median of its method's seeds and beyond a modified "
        f"z-score of {Z_LIMIT:g} (median / MAD); the mean ± std above includes it (per-seed "
        "scores and curves: scores.json and returns.png).",
        "",
    ]


def _repeat_lines(scores: Sequence[MethodScores]) -> list[str]:
    """A note for the curated methods' episode counts, which count the percentile union's
    repeats (the authors' buffer holds an episode once per percentile it clears)."""
    union = [s.method for s in scores if METHODS[s.method].selection == "stratified"]
    if not union:
        return []
    return [
        f"Episodes trained on ({', '.join(union)}): the union of the top episodes of each "
        "percentile, repeats counted, as the authors' buffer holds them (an episode above "
        "every percentile is there once per percentile).",
        "",
    ]


def _weight_lines(scores: Sequence[MethodScores]) -> list[str]:
    """iw-BC's weight concentration at the end of training, for the methods that have one."""
    weighted = [s for s in scores if s.weight_ess]
    if not weighted:
        return []
    cells = ", ".join(f"{s.method} {spread_cell(s.weight_ess)}" for s in weighted)
    return [
        f"Importance weights at the end of training: {cells}. Each is the effective sample "
        "fraction (Σw)² / (n Σw²) of a batch's n weighted units as the loss counts them (rows "
        "under episode weighting, valid steps under transition weighting) over the last "
        "training chunk, mean (min–max) over seeds: 1 = uniform weights (filtered BC), 1/n = "
        "one unit carries the batch.",
        "",
    ]


def _critic_lines(critics: Sequence[CriticEnd]) -> list[str]:
    """Whether each baseline's critic had settled: its mean Q over the last tenth of its
    updates, and the methods whose Q still moved by ``CRITIC_MOVE`` or more there."""
    if not critics:
        return []
    cells = "; ".join(
        f"{end.method} {' → '.join(f'{v:.4g}' for v in end.q.mean(axis=0))} over updates "
        f"{' → '.join(f'{step:,}' for step in end.steps)}, moved {end.moved:.1%}"
        for end in critics
    )
    learning = [end.method for end in critics if end.still_learning]
    verdict = (
        f"Still learning: {', '.join(learning)}. Their value estimates had not settled, so "
        "more updates (--algo-steps) may change their scores even where they look final."
        if learning
        else "None was still learning by that measure."
    )
    verdict += "".join(
        f" {end.method}'s critic ended outside [{low:.4g}, {high:.4g}], every value TD targets "
        f"of the data's rewards can reach, on {int(end.approaching.sum())} of {len(end.q)} "
        "seeds, but between it and 0 and closer to it than before: it is still on its way "
        "from its initial values, hence still learning, whatever it moved."
        for end in critics
        if end.approaching.any()
        for low, high in [end.value_range]
    )
    diverged = [end for end in critics if end.diverged]
    if diverged:
        verdict += " " + " ".join(
            f"{end.method}'s critic diverged: its final mean Q lies outside [{low:.4g}, "
            f"{high:.4g}], every value TD targets of the data's rewards can reach, on "
            f"{int(end.diverging.sum())} of {len(end.q)} seeds, so its score is of a policy "
            "following values no data supports."
            for end in diverged
            for low, high in [end.value_range]
        )
    return [
        f"Critics at the end of training (mean Q on the training batches, seed mean, at the "
        f"last chunk end at or before 90% of the updates and at the end; moved: per seed the "
        f"relative change's size, averaged over seeds): {cells}. A critic that moved by "
        f"{CRITIC_MOVE:.0%} or more is still learning. {verdict}",
        "",
    ]


def _method_lines(suite: Suite) -> list[str]:
    """What each method trained with (after ``--set``), as its records state it: observations,
    config and, for the curated methods, the selection."""
    starts = [METHODS[m].start for m in suite.methods if METHODS[m].start is not None]
    trained = list(dict.fromkeys([*starts, *suite.methods]))
    (dataset,) = suite.datasets
    described = {m: suite.method_config(m, dataset) for m in trained}
    preprocessing: dict[str, list[str]] = {}
    for method, record in described.items():
        preprocessing.setdefault(record["observations"], []).append(method)
    selection = {
        key: value
        for record in described.values()
        for key, value in record.items()
        if key in ("percentiles", "top_fraction")
    }
    return [
        "- observations: "
        + "; ".join(f"{', '.join(ms)} {text}" for text, ms in preprocessing.items()),
        *(f"- {method}: {_config_text(suite.agent_config(method, dataset))}" for method in trained),
        *([f"- curated selections: {selection}"] if selection else []),
    ]


def _config_text(config: Any) -> str:
    """``config`` as its dataclass repr, less a BC-family config's fields that its loss never
    reads (plain BC showing a temperature would say it has one); scores.json keeps them all."""
    inert = config.inert_fields if isinstance(config, BCConfig) else ()
    fields = (f for f in dataclasses.fields(config) if f.repr and f.name not in inert)
    shown = ", ".join(f"{f.name}={getattr(config, f.name)!r}" for f in fields)
    return f"{type(config).__name__}({shown})"
