"""One experiment: a dataset × methods × seeds, trained, evaluated and reported.

Work is kept under a run directory named by a hash of everything that defines the experiment,
so a killed run resumes: training from its last chunk checkpoint, and methods already evaluated
are not evaluated again. A changed configuration gets a new directory instead of a stale resume.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from iwbc.data import OfflineDataset, dataset_normalized_score
from iwbc.evaluate import EVAL_SEED_BASE, evaluate_policies
from iwbc.machine import machine_record
from iwbc.methods import PipelineConfig, resolve_methods, train_methods
from iwbc.policies import GaussianPolicy
from iwbc.report.figures import returns_figure
from iwbc.report.tables import MethodScores, csv_table, markdown_table

VERSIONED = ("jax", "flax", "optax", "mujoco", "gymnasium", "minari", "numpy")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Methods, seeds and protocol of an experiment on one dataset."""

    methods: tuple[str, ...] = ("bc", "filtered_bc", "top10_bc", "iw_bc")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    pipeline: PipelineConfig = dataclasses.field(default_factory=PipelineConfig)
    eval_episodes: int = 100
    engine: str = "auto"

    def __post_init__(self) -> None:
        resolve_methods(self.methods)
        if not self.seeds:
            raise ValueError("at least one training seed is needed")

    def fingerprint(self, dataset_id: str) -> str:
        """A short hash naming the run directory of this configuration on this dataset."""
        text = json.dumps([dataset_id, dataclasses.asdict(self)], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _evaluate_method(
    dataset: OfflineDataset, config: ExperimentConfig, method: str, params: object, cache: Path
) -> np.ndarray:
    if cache.exists():
        return np.load(cache)
    policy = GaussianPolicy(action_dim=dataset.action_dim, hidden_dims=config.pipeline.hidden_dims)
    returns = evaluate_policies(
        policy, params, dataset.env_id, num_episodes=config.eval_episodes, engine=config.engine
    )
    tmp = cache.with_suffix(".tmp.npy")
    np.save(tmp, returns)
    tmp.replace(cache)
    return returns


def run_experiment(
    dataset: OfflineDataset,
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    work_dir: str | Path = "runs",
    command: str = "",
    progress: bool = True,
) -> list[MethodScores]:
    """Train, evaluate and write ``table.md``, ``table.csv``, ``scores.json``, ``returns.png``."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    run_dir = Path(work_dir) / f"{dataset.id.replace('/', '__')}-{config.fingerprint(dataset.id)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    trained = train_methods(
        dataset.episodes,
        dataset.action_dim,
        config.methods,
        config.seeds,
        config.pipeline,
        checkpoint_dir=run_dir,
        progress=progress,
    )
    train_seconds = time.perf_counter() - started
    scores = []
    for name, result in trained.items():
        returns = _evaluate_method(dataset, config, name, result.params, run_dir / f"{name}.npy")
        scores.append(
            MethodScores(
                dataset=dataset.id,
                method=name,
                returns=returns,
                normalized=dataset_normalized_score(dataset, returns),
                trained_on_episodes=result.num_episodes,
            )
        )
    wall = time.perf_counter() - started
    _write_results(dataset, config, scores, out_dir, command, train_seconds, wall)
    return scores


def _write_results(
    dataset: OfflineDataset,
    config: ExperimentConfig,
    scores: list[MethodScores],
    out_dir: Path,
    command: str,
    train_seconds: float,
    wall_seconds: float,
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    returns = dataset.episodes.returns
    p10, p50, p90 = np.percentile(returns, [10, 50, 90])
    env = machine_record(VERSIONED)
    pipeline = config.pipeline
    lines = [
        f"# {dataset.id}: final scores",
        "",
        f"Made by `{command}`." if command else "",
        "",
        markdown_table(scores),
        "Normalized score = 100·(R − ref_min)/(ref_max − ref_min) with the dataset's "
        f"ref_min_score = {dataset.ref_min_score:.2f} and ref_max_score = "
        f"{dataset.ref_max_score:.2f}. Each seed's score is its mean over {config.eval_episodes} "
        f"evaluation episodes (deterministic policy, fixed reset seeds {EVAL_SEED_BASE}…"
        f"{EVAL_SEED_BASE + config.eval_episodes - 1}, shared by all methods and seeds); the "
        f"table gives mean ± std over {len(config.seeds)} training seeds of the final policy "
        "(no best-over-training selection).",
        "",
        "## Data and protocol",
        f"- dataset: {dataset.num_episodes} episodes, {dataset.num_steps} steps, env "
        f"{dataset.env_id}; episode return p10 / p50 / p90 = {p10:.1f} / {p50:.1f} / {p90:.1f}",
        f"- BC pre-training: {pipeline.pretrain}",
        f"- fine-tunes (filtered BC, iw-BC): {pipeline.finetune}",
        f"- policy: Gaussian, tanh mean, hidden {pipeline.hidden_dims}; filtered BC percentiles "
        f"{pipeline.percentiles}; top fraction {pipeline.top_fraction}",
        f"- wall time of this invocation: {wall_seconds:.0f} s ({train_seconds:.0f} s training of "
        f"{len(config.seeds)} vmapped seeds; a resumed run reuses finished checkpoints and "
        "evaluations)",
        "- " + ", ".join(f"{k} {v}" for k, v in env.items()),
        "",
    ]
    (out_dir / "table.md").write_text("\n".join(lines))
    (out_dir / "table.csv").write_text(csv_table(scores))
    raw = {
        "dataset": dataset.id,
        "config": dataclasses.asdict(config),
        "environment": env,
        "wall_seconds": wall_seconds,
        "methods": {
            s.method: {"returns": s.returns.tolist(), "normalized": s.normalized.tolist()}
            for s in scores
        },
    }
    (out_dir / "scores.json").write_text(json.dumps(raw, indent=1, default=str))
    dataset_scores = dataset_normalized_score(dataset, returns)
    returns_figure(
        dataset_scores,
        scores,
        out_dir / "returns.png",
        percentiles=pipeline.percentiles,
        title=f"{dataset.id} ({len(config.seeds)} seeds, {config.eval_episodes} episodes each)",
    )


def method_names(names: Sequence[str] | str) -> tuple[str, ...]:
    """Parse a comma-separated method list (or pass a sequence through), validated."""
    parts = names.split(",") if isinstance(names, str) else list(names)
    cleaned = tuple(p.strip() for p in parts if p.strip())
    resolve_methods(cleaned)
    return cleaned
