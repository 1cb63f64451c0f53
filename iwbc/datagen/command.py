"""``iwbc data generate``: the tiers of one or more tasks, and a summary table of what they hold."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

import numpy as np

from iwbc.datagen.generate import (
    PRESETS,
    TASKS,
    TIERS,
    GenerationResult,
    Preset,
    generate,
    resolve_preset,
    resolve_task,
)
from iwbc.errors import UserError
from iwbc.machine import machine_record
from iwbc.options import ROOT_HELP, check_writable, jax_seed, name_list, positive_int

# D4RL v2's published sizes (transitions) and expert reference returns (d4rl/infos.py
# REF_MAX_SCORE), the yardstick the generated tiers are read against. D4RL publishes no return
# percentiles per tier; its normalization uses these references.
D4RL_TIER_STEPS = {
    "halfcheetah": {"medium-replay": 202_000},
    "hopper": {"medium-replay": 402_000},
    "walker2d": {"medium-replay": 302_000},
}
D4RL_DEFAULT_TIER_STEPS = {
    "random": 1_000_000,
    "medium": 1_000_000,
    "expert": 1_000_000,
    "medium-expert": 2_000_000,
}
D4RL_EXPERT_RETURN = {"halfcheetah": 12_135.0, "hopper": 3_234.3, "walker2d": 4_592.3}
# The strong preset's bar: 80% of D4RL's expert reference return.
STRONG_FRACTION = 0.8


def d4rl_tier_steps(task: str, tier: str) -> int:
    """D4RL v2's number of transitions in ``tier`` of ``task``."""
    return D4RL_TIER_STEPS[task].get(tier, D4RL_DEFAULT_TIER_STEPS.get(tier, 0))


def summary_markdown(results: list[GenerationResult], preset: str, command: str) -> str:
    """A table of every tier written: episodes, steps and return percentiles, per task, beside
    D4RL v2's sizes; then each SAC run's landmarks against D4RL's expert return."""
    lines = [
        f"# Generated datasets: preset `{preset}`",
        "",
        f"Regenerate: `{command}`",
        "",
        "| dataset | episodes | steps | D4RL v2 steps | return p10 | p50 | p90 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        for tier in TIERS:
            summary = result.tiers.get(tier)
            if summary is None:
                continue
            lines.append(
                f"| `{summary.dataset_id}` | {summary.episodes:,} | {summary.steps:,} | "
                f"{d4rl_tier_steps(result.task, tier):,} | "
                f"{summary.return_p10:.1f} | {summary.return_p50:.1f} | {summary.return_p90:.1f} |"
            )
    lines += [
        "",
        "| task | SAC env steps | medium step (return) | expert step (return) | final return | "
        "ref_min | ref_max | D4RL expert (80%) | ref_max ≥ 80%? | SAC s | reference + tiers s |",
        "|---|---:|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for result in results:
        behaviour = result.manifest.get("behaviour", {})
        reference = result.manifest.get("reference", {})
        lines.append(
            f"| {result.env_id} | {result.manifest['preset']['behaviour']['env_steps']:,} | "
            f"{behaviour.get('medium_step', '—')} ({behaviour.get('medium_return', 0.0):.1f}) | "
            f"{behaviour.get('expert_step', '—')} ({behaviour.get('expert_return', 0.0):.1f}) | "
            f"{behaviour.get('final_return', 0.0):.1f} | "
            f"{reference.get('ref_min_score', 0.0):.1f} | "
            f"{reference.get('ref_max_score', 0.0):.1f} | "
            f"{D4RL_EXPERT_RETURN[result.task]:,.0f} "
            f"({STRONG_FRACTION * D4RL_EXPERT_RETURN[result.task]:,.0f}) | "
            f"{_verdict(reference.get('ref_max_score'), result.task)} | "
            f"{behaviour.get('train_seconds', 0.0):.0f} | "
            f"{result.manifest.get('tier_seconds', 0.0):.0f} |"
        )
    env = machine_record(("jax", "mujoco", "gymnasium", "minari", "numpy"))
    total = sum(
        r.manifest.get("behaviour", {}).get("train_seconds", 0.0)
        + r.manifest.get("tier_seconds", 0.0)
        for r in results
    )
    lines += [
        "",
        f"Total {total / 60:.1f} min. Returns in the first table are per-episode sums; "
        "medium/expert steps are the SAC evaluations (10 episodes, deterministic policy) the "
        "tiers were cut at. SAC s is the training wall time summed over resumed invocations "
        "(read from its checkpoint); the rest is the reference scores and the tiers.",
        "",
    ]
    lines.append("- " + ", ".join(f"{k} {v}" for k, v in env.items()))
    return "\n".join(lines) + "\n"


def _verdict(ref_max: float | None, task: str) -> str:
    if ref_max is None:
        return "—"
    return "yes" if ref_max >= STRONG_FRACTION * D4RL_EXPERT_RETURN[task] else "**no**"


def sac_curves_figure(results: list[GenerationResult], path: Path) -> Path:
    """Each task's SAC evaluations (deterministic return against env steps) with D4RL's expert
    return and the 80% bar, and where the medium and expert checkpoints were cut."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(results), 3.4), layout="constrained")
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, result in zip(axes, results, strict=True):
        behaviour = result.manifest.get("behaviour", {})
        evaluations = np.asarray(behaviour.get("evaluations", []), float).reshape(-1, 2)
        ax.plot(evaluations[:, 0], evaluations[:, 1], color="tab:blue", label="SAC evaluation")
        expert = D4RL_EXPERT_RETURN[result.task]
        ax.axhline(expert, color="black", lw=0.8, label="D4RL expert")
        ax.axhline(STRONG_FRACTION * expert, color="black", lw=0.8, ls="--", label="80% bar")
        for key, marker in (("medium_step", "o"), ("expert_step", "*")):
            step = behaviour.get(key)
            if step is not None:
                value = dict(map(tuple, evaluations)).get(float(step))
                ax.plot([step], [value], marker, color="tab:red", ms=8, label=key[:-5])
        ax.set_title(result.env_id)
        ax.set_xlabel("env steps")
        ax.set_ylabel("return (10 episodes, deterministic)")
        ax.legend(fontsize=7, loc="lower right")
    fig.savefig(path, dpi=110, metadata={"Software": None})
    return path


def _preset(args: argparse.Namespace, task: str) -> Preset:
    """The named preset for ``task``, with the command line's size overrides."""
    preset = resolve_preset(args.preset, task)
    behaviour = preset.behaviour
    if args.env_steps is not None:
        if args.env_steps % behaviour.update_every:
            raise UserError(
                f"--env-steps must be a multiple of {behaviour.update_every} (the {args.preset} "
                f"preset's SAC update interval), got {args.env_steps}"
            )
        if args.env_steps <= behaviour.start_steps:
            raise UserError(
                f"--env-steps must exceed the {args.preset} preset's {behaviour.start_steps} "
                f"uniform-random warm-up steps, or SAC never trains; got {args.env_steps}"
            )
        behaviour = dataclasses.replace(
            behaviour,
            env_steps=args.env_steps,
            eval_every=min(behaviour.eval_every, args.env_steps),
            checkpoint_every=min(behaviour.checkpoint_every, args.env_steps),
        )
    return dataclasses.replace(
        preset,
        behaviour=behaviour,
        tier_steps=args.tier_steps or preset.tier_steps,
        random_steps=args.random_steps or preset.random_steps,
    )


def _generate(args: argparse.Namespace) -> None:
    for task in args.envs:
        resolve_task(task)
    presets = {task: _preset(args, task) for task in args.envs}
    tiers = args.tiers or TIERS
    unknown = [tier for tier in tiers if tier not in TIERS]
    if unknown:
        raise UserError(
            f"--tiers: unknown tier(s) {', '.join(unknown)}; available: {', '.join(TIERS)}"
        )
    check_writable(args.work_dir, "--work-dir")
    if args.report:
        check_writable(Path(args.report).parent, "--report")
    command = "iwbc " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    results = []
    for task in args.envs:
        result = generate(
            task,
            presets[task],
            seed=args.seed,
            tiers=tiers,
            root=args.root,
            work_dir=args.work_dir,
            overwrite=args.overwrite,
            progress=not args.quiet,
            command=command,
        )
        results.append(result)
        for summary in result.tiers.values():
            print(
                f"{summary.dataset_id}: {summary.episodes} episodes, {summary.steps} steps, "
                f"return p10/p50/p90 {summary.return_p10:.1f} / {summary.return_p50:.1f} / "
                f"{summary.return_p90:.1f}"
            )
    if args.report:
        report = Path(args.report)
        figure = sac_curves_figure(results, report.with_name(f"{report.stem}_sac_curves.png"))
        text = summary_markdown(results, args.preset, command)
        report.write_text(f"{text}\n![SAC learning curves]({figure.name})\n")
        print(f"wrote {report} and {figure}")


def add_generate_parser(commands: argparse._SubParsersAction) -> None:
    """Register ``generate`` under ``iwbc data``."""
    parser = commands.add_parser(
        "generate", help="D4RL-style tiers (random … medium-expert) from a SAC behaviour policy"
    )
    parser.add_argument("envs", nargs="+", metavar="ENV", help=f"from {', '.join(TASKS)}")
    parser.add_argument(
        "--preset", default="quick", help=f"from {', '.join(PRESETS)} (default: %(default)s)"
    )
    parser.add_argument(
        "--seed",
        type=jax_seed,
        default=0,
        help="seed of the SAC run and of the tiers' episodes (default: %(default)s)",
    )
    parser.add_argument(
        "--tiers",
        type=name_list,
        default=None,
        help=f"comma-separated (default: {','.join(TIERS)})",
    )
    parser.add_argument("--root", default=None, help=ROOT_HELP)
    parser.add_argument(
        "--work-dir",
        default="runs/datagen",
        help="SAC checkpoints and manifests, to resume from (default: %(default)s)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing datasets")
    parser.add_argument(
        "--env-steps",
        type=positive_int,
        default=None,
        help="env steps of the SAC behaviour run (default: the preset's)",
    )
    parser.add_argument(
        "--tier-steps",
        type=positive_int,
        default=None,
        help="steps of the medium and expert tiers, at least: whole episodes are recorded "
        "until they hold this many, the episodes then running finish (default: the preset's)",
    )
    parser.add_argument(
        "--random-steps",
        type=positive_int,
        default=None,
        help="steps of the random tier, at least, as --tier-steps (default: the preset's)",
    )
    parser.add_argument(
        "--report", default=None, help="write a markdown summary to this file (default: none)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_generate)
