"""D4RL's dataset tiers on Gymnasium v5 tasks, generated here from a SAC behaviour policy.

Per task, one SAC run gives every tier, as in D4RL: ``random`` (uniform actions), ``medium``
(the first evaluated checkpoint reaching ``medium_fraction`` of the expert's return, acting
stochastically), ``medium-replay`` (the run's replay stream up to that checkpoint), ``expert``
(the final policy, or the best evaluated one in short runs; stochastic) and ``medium-expert``
(medium and expert together).
ref_min_score / ref_max_score are the mean returns of 100 uniform-random and 100 expert
(deterministic) episodes on fixed seeds, stored in each dataset's metadata.

Work is resumable at every level: the SAC run checkpoints, and a manifest in the run directory
records each tier once its dataset is in place, so a killed generation redoes neither.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from minari.data_collector import EpisodeBuffer

from iwbc.data.minari_write import dataset_exists, write_dataset
from iwbc.datagen.behaviour import BehaviourConfig, BehaviourRun, train_behaviour
from iwbc.datagen.episodes import replay_episodes, rollout_episodes
from iwbc.datagen.sac import SACConfig, mean_actions, sample_actions
from iwbc.envs import get_spec, rollout_returns
from iwbc.errors import UserError
from iwbc.files import write_json_atomic
from iwbc.machine import cpu_identity

TASKS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5"}
TIERS = ("random", "medium", "medium-replay", "expert", "medium-expert")
# Reset seeds of the reference-score episodes, apart from every dataset's and evaluation's.
REFERENCE_SEED_BASE = 1_000_000_000
_TIER_TAGS = {"random": 1, "medium": 2, "expert": 3, "reference-random": 4}


@dataclasses.dataclass(frozen=True)
class Preset:
    """The SAC run and the tier sizes of one generation."""

    behaviour: BehaviourConfig
    # Steps of the medium and of the expert tier each (medium-expert holds both).
    tier_steps: int
    random_steps: int
    medium_fraction: float = 1.0 / 3.0
    # "final": the expert is the last policy, as in D4RL. "best": the best evaluated
    # checkpoint, for short runs whose return still swings from one evaluation to the next.
    expert: str = "final"
    reference_episodes: int = 100
    # Envs stepped together while rolling out a tier.
    rollout_envs: int = 32

    def __post_init__(self) -> None:
        if not 0.0 < self.medium_fraction < 1.0:
            raise UserError(f"medium_fraction must lie in (0, 1), got {self.medium_fraction}")
        if self.expert not in ("final", "best"):
            raise UserError(f"expert must be 'final' or 'best', got {self.expert!r}")
        if min(self.tier_steps, self.random_steps, self.reference_episodes) < 1:
            raise UserError("tier sizes and reference episodes must be positive")


PRESETS = {
    # Two CPU cores, under 10 minutes a task: a smaller SAC (128-unit layers) for 100k steps,
    # 100k-step tiers. So short a run still swings between evaluations (Hopper can drop from
    # ~1000 to ~300 and back), so the expert is its best evaluated checkpoint.
    "quick": Preset(
        behaviour=BehaviourConfig(
            env_steps=100_000,
            start_steps=5_000,
            update_every=1_000,
            eval_every=5_000,
            checkpoint_every=25_000,
            sac=SACConfig(hidden_dims=(128, 128)),
        ),
        tier_steps=100_000,
        random_steps=100_000,
        expert="best",
    ),
    # D4RL's recipe on the CPU budget: SAC with D4RL's network (two 256-unit layers, one update
    # per env step), stopped per task where its evaluations reach D4RL-strength returns
    # (TASK_ENV_STEPS), and D4RL's 1M-step tiers. The expert is the best evaluated checkpoint:
    # SAC's return still swings by hundreds between evaluations, and the 100-episode reference
    # score, not the 10-episode evaluation, is what the datasets report.
    "strong": Preset(
        behaviour=BehaviourConfig(
            env_steps=1_000_000,
            start_steps=10_000,
            update_every=50,
            eval_every=10_000,
            checkpoint_every=50_000,
        ),
        tier_steps=1_000_000,
        random_steps=1_000_000,
        expert="best",
    ),
    # D4RL's sizes: SAC for 1M steps, 1M-step tiers. Hours on a CPU.
    "full": Preset(
        behaviour=BehaviourConfig(env_steps=1_000_000),
        tier_steps=1_000_000,
        random_steps=1_000_000,
    ),
}


def dataset_id(task: str, tier: str) -> str:
    """The Minari id of a generated tier, e.g. ``iwbc/hopper/medium-replay-v0``."""
    return f"iwbc/{task}/{tier}-v0"


def resolve_task(task: str) -> str:
    """The Gymnasium id of a task name, with a one-line error listing the known ones."""
    if task not in TASKS:
        raise UserError(f"unknown env {task!r}; available: {', '.join(TASKS)}")
    return TASKS[task]


# SAC env steps per task where a preset's default is too short: in 100k steps the quick
# preset's SAC learns HalfCheetah (return ~4,300) but Walker2d still stands and falls around
# a return of 400 (at 200k it reaches ~800). Hopper peaks at ~970 by 65k and 200k steps do
# not beat that peak, so it keeps 100k.
TASK_ENV_STEPS = {
    "quick": {"walker2d": 200_000},
    "strong": {"hopper": 400_000},
}


def resolve_preset(name: str, task: str) -> Preset:
    """Preset ``name`` as it applies to ``task`` (with the task's SAC length, if it has one)."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    env_steps = TASK_ENV_STEPS.get(name, {}).get(task)
    if env_steps is None:
        return preset
    return dataclasses.replace(
        preset, behaviour=dataclasses.replace(preset.behaviour, env_steps=env_steps)
    )


@dataclasses.dataclass(frozen=True)
class TierSummary:
    """What a written tier holds."""

    dataset_id: str
    episodes: int
    steps: int
    return_p10: float
    return_p50: float
    return_p90: float


def _summary(tier_id: str, episodes: list[EpisodeBuffer]) -> TierSummary:
    returns = np.array([sum(e.rewards) for e in episodes])
    p10, p50, p90 = np.percentile(returns, [10, 50, 90])
    steps = sum(len(e.rewards) for e in episodes)
    return TierSummary(tier_id, len(episodes), steps, float(p10), float(p50), float(p90))


def _seeds(seed: int, tag: int) -> Callable[[int], int]:
    return lambda k: int(np.random.SeedSequence([seed, tag, k]).generate_state(1)[0])


def _uniform_policy(seed: int, tag: int, action_dim: int) -> Callable:
    def act(obs: np.ndarray, step: int) -> np.ndarray:
        rng = np.random.default_rng([seed, tag, step])
        return rng.uniform(-1.0, 1.0, (obs.shape[0], action_dim))

    return act


def _stochastic_policy(params: Any, sac: SACConfig, action_dim: int, seed: int, tag: int):
    key = jax.random.fold_in(jax.random.PRNGKey(seed), tag)
    hidden = tuple(sac.hidden_dims)

    def act(obs: np.ndarray, step: int) -> np.ndarray:
        step_key = jax.random.fold_in(key, step)
        return np.asarray(sample_actions(params, jnp.asarray(obs), step_key, action_dim, hidden))

    return act


def reference_scores(
    env_id: str, expert_params: Any, sac: SACConfig, episodes: int, seed: int
) -> tuple[float, float]:
    """(ref_min, ref_max): mean returns of uniform-random and deterministic expert episodes."""
    action_dim = int(get_spec(env_id).action_bounds()[0].size)
    seeds = REFERENCE_SEED_BASE + np.arange(episodes)
    rng = np.random.default_rng([seed, _TIER_TAGS["reference-random"]])
    random = rollout_returns(
        env_id,
        lambda obs: rng.uniform(-1.0, 1.0, (obs.shape[0], action_dim)),
        seeds,
        engine="batch",
    )
    hidden = tuple(sac.hidden_dims)
    expert = rollout_returns(
        env_id,
        lambda obs: np.asarray(mean_actions(expert_params, jnp.asarray(obs), action_dim, hidden)),
        seeds,
        engine="batch",
    )
    return float(random.returns.mean()), float(expert.returns.mean())


def expert_checkpoint(evaluations: Sequence[tuple[int, float]], rule: str) -> int:
    """Env steps of the expert: the last evaluation, or the best one (the earliest on ties)."""
    if not evaluations:
        raise ValueError("the behaviour run has no evaluations to pick an expert from")
    if rule == "final":
        return evaluations[-1][0]
    return max(evaluations, key=lambda item: (item[1], -item[0]))[0]


def medium_checkpoint(
    evaluations: Sequence[tuple[int, float]], fraction: float, expert_step: int
) -> int:
    """Env steps of the first evaluation reaching ``fraction`` of the expert's return."""
    expert = dict(evaluations)[expert_step]
    if expert <= 0.0:
        raise UserError(
            f"the expert policy returns {expert:.1f} ≤ 0, so 'a fraction of the expert' "
            "is undefined; train longer (--env-steps)"
        )
    return next(step for step, value in evaluations if value >= fraction * expert)


def _fingerprint(*parts: object) -> str:
    text = json.dumps(
        [dataclasses.asdict(p) if dataclasses.is_dataclass(p) else p for p in parts],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def sac_checkpoint(work_dir: str | Path, task: str, seed: int, behaviour: BehaviourConfig) -> Path:
    """Where the SAC run of ``behaviour`` on ``task`` keeps its checkpoint.

    The SAC run depends on less than the tiers do, so tier settings can change without it; and
    its length and checkpoint interval are left out of the key, so that a run asked for more
    env steps (``--env-steps``) extends the shorter one instead of starting over.
    """
    settings = dataclasses.asdict(behaviour)
    del settings["env_steps"], settings["checkpoint_every"]
    key = _fingerprint(task, settings, seed)
    return Path(work_dir) / "sac" / f"{task}-seed{seed}-{key}.msgpack"


@dataclasses.dataclass
class GenerationResult:
    """Per-tier summaries and the run's landmarks, as recorded in its manifest."""

    task: str
    env_id: str
    seed: int
    manifest: dict
    run_dir: Path

    @property
    def tiers(self) -> dict[str, TierSummary]:
        return {t: TierSummary(**v) for t, v in self.manifest["tiers"].items()}


def generate(
    task: str,
    preset: Preset,
    *,
    seed: int = 0,
    tiers: Sequence[str] = TIERS,
    root: str | Path | None = None,
    work_dir: str | Path = "runs/datagen",
    overwrite: bool = False,
    progress: bool = True,
    command: str = "",
) -> GenerationResult:
    """Generate ``tiers`` of ``task`` as local Minari datasets (resuming a killed run)."""
    env_id = resolve_task(task)
    unknown = sorted(set(tiers) - set(TIERS))
    if unknown:
        raise UserError(f"unknown tier(s) {', '.join(unknown)}; available: {', '.join(TIERS)}")
    run_dir = Path(work_dir) / f"{task}-seed{seed}-{_fingerprint(task, preset, seed)}"
    behaviour_checkpoint = sac_checkpoint(work_dir, task, seed, preset.behaviour)
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.setdefault("tiers", {})
    if overwrite:
        manifest.update(tiers={}, tier_seconds=0.0)
        manifest.pop("reference", None)
    # A tier is done when the manifest has it and the dataset is in this root: the manifest
    # does not know the root, and a dataset deleted since is written again.
    todo = [
        t
        for t in TIERS
        if t in tiers
        and (t not in manifest["tiers"] or not dataset_exists(dataset_id(task, t), root))
    ]
    clashes = [dataset_id(task, t) for t in todo if dataset_exists(dataset_id(task, t), root)]
    if clashes and not overwrite:
        raise FileExistsError(
            f"dataset(s) {', '.join(clashes)} already exist; pass --overwrite to replace them"
        )
    manifest.update(
        task=task, env_id=env_id, seed=seed, preset=dataclasses.asdict(preset), command=command
    )
    if not todo:
        return GenerationResult(task, env_id, seed, manifest, run_dir)

    action_dim = int(get_spec(env_id).action_bounds()[0].size)
    run: BehaviourRun | None = None
    started = time.perf_counter()

    def save() -> None:
        # Charge the time since the last save to the tiers first, so a run killed between
        # tiers keeps the time of those it wrote.
        nonlocal started
        now = time.perf_counter()
        manifest["tier_seconds"] = manifest.get("tier_seconds", 0.0) + now - started
        started = now
        write_json_atomic(manifest_path, manifest)

    if any(t != "random" for t in todo) or "reference" not in manifest:
        run = train_behaviour(
            env_id,
            seed,
            preset.behaviour,
            checkpoint=behaviour_checkpoint,
            progress=progress,
        )
        expert_step = expert_checkpoint(run.evaluations, preset.expert)
        medium_step = medium_checkpoint(run.evaluations, preset.medium_fraction, expert_step)
        returns = dict(run.evaluations)
        manifest["behaviour"] = {
            "evaluations": run.evaluations,
            "medium_step": medium_step,
            "medium_return": returns[medium_step],
            "expert_step": expert_step,
            "expert_return": returns[expert_step],
            "final_return": run.evaluations[-1][1],
            "train_seconds": run.wall_seconds,
            # Env steps this invocation found in the SAC checkpoint (0: trained from scratch).
            "resumed_from_env_steps": run.resumed_from,
            # This SAC run's rounding depends on the CPU (iwbc.machine.VECTOR_EXTENSIONS).
            "finished_on": cpu_identity(),
        }
        started = time.perf_counter()
        if "reference" not in manifest:
            ref_min, ref_max = reference_scores(
                env_id,
                run.snapshots[expert_step],
                preset.behaviour.sac,
                preset.reference_episodes,
                seed,
            )
            manifest["reference"] = {"ref_min_score": ref_min, "ref_max_score": ref_max}
        save()

    cache: dict[str, list[EpisodeBuffer]] = {}

    def episodes_of(tier: str) -> list[EpisodeBuffer]:
        if tier in cache:
            return cache[tier]
        if tier == "random":
            policy = _uniform_policy(seed, _TIER_TAGS["random"], action_dim)
            out = rollout_episodes(
                env_id,
                policy,
                preset.random_steps,
                _seeds(seed, _TIER_TAGS["random"]),
                preset.rollout_envs,
            )
        elif tier in ("medium", "expert"):
            behaviour = manifest["behaviour"]
            step = behaviour["medium_step" if tier == "medium" else "expert_step"]
            policy = _stochastic_policy(
                run.snapshots[step], preset.behaviour.sac, action_dim, seed, _TIER_TAGS[tier]
            )
            out = rollout_episodes(
                env_id,
                policy,
                preset.tier_steps,
                _seeds(seed, _TIER_TAGS[tier]),
                preset.rollout_envs,
            )
        elif tier == "medium-replay":
            out = replay_episodes(run.log, manifest["behaviour"]["medium_step"])
        else:
            out = episodes_of("medium") + episodes_of("expert")
        cache[tier] = out
        return out

    reference = manifest["reference"]
    if reference["ref_max_score"] <= reference["ref_min_score"]:
        raise UserError(
            f"{task}: the expert policy's mean return {reference['ref_max_score']:.1f} is not "
            f"above uniform-random's {reference['ref_min_score']:.1f}, so normalized scores "
            f"would be meaningless; train SAC longer (--env-steps, now "
            f"{preset.behaviour.env_steps})"
        )
    for tier in todo:
        episodes = episodes_of(tier)
        tier_id = dataset_id(task, tier)
        write_dataset(
            tier_id,
            episodes,
            env_id=env_id,
            ref_min_score=reference["ref_min_score"],
            ref_max_score=reference["ref_max_score"],
            description=_description(task, tier, preset, seed, manifest, command),
            algorithm_name="SAC behaviour policy (iwbc.datagen)",
            root=root,
            overwrite=overwrite,
        )
        manifest["tiers"][tier] = dataclasses.asdict(_summary(tier_id, episodes))
        save()
    return GenerationResult(task, env_id, seed, manifest, run_dir)


def _description(
    task: str, tier: str, preset: Preset, seed: int, manifest: dict, command: str
) -> str:
    behaviour = manifest.get("behaviour", {})
    finished = behaviour.get("finished_on", {})
    sac = preset.behaviour.sac
    what = {
        "random": f"uniform-random actions, whole episodes totalling ≥ {preset.random_steps} steps",
        "medium": (
            f"the SAC checkpoint at {behaviour.get('medium_step')} env steps (evaluated return "
            f"{behaviour.get('medium_return', float('nan')):.1f}, the first to reach "
            f"{preset.medium_fraction:.3g} of the expert's), stochastic actions"
        ),
        "medium-replay": (
            f"the SAC run's replay stream up to the medium checkpoint "
            f"({behaviour.get('medium_step')} env steps), episode boundaries kept"
        ),
        "expert": (
            f"the {preset.expert} SAC checkpoint ({behaviour.get('expert_step')} env steps, "
            f"evaluated return {behaviour.get('expert_return', float('nan')):.1f}), "
            "stochastic actions"
        ),
        "medium-expert": "the medium and expert tiers together",
    }[tier]
    return (
        f"iwbc D4RL-style {tier} tier of {TASKS[task]}: {what}. SAC hidden {sac.hidden_dims}, "
        f"batch {sac.batch_size}, {preset.behaviour.env_steps} env steps, seed {seed}. "
        f"ref_min_score: {preset.reference_episodes} uniform-random episodes; ref_max_score: "
        f"{preset.reference_episodes} deterministic expert-policy episodes. "
        f"SAC finished on {finished.get('cpu')} ({finished.get('cpu_vector_extension')}); a "
        "CPU with another widest vector extension trains another SAC. "
        f"Made by `{command or 'iwbc data generate'}`."
    )
