"""Gradient updates/s of the offline-RL baselines: the kernel and the path users train through.

The kernel is :func:`iwbc.core.trainer.run_chunk` = jit(vmap over seeds(lax.scan over N
updates)), every update sampling a batch of 256 transitions on the device from a resident
synthetic dataset shaped like D4RL locomotion (17-dim observations, 6-dim actions), with CORL's
D4RL networks and hyperparameters. The run path is the training of a benchmark unit (``iwbc
run``, ``iwbc bench``; :class:`iwbc.core.trainer.Training` as ``iwbc.bench.units`` builds
it): two curve points on one checkpoint, on a real dataset, timed against the kernel on that
dataset in the same process (``run_path.py``). Rates are
seed-updates/s summed over the seeds (5 seeds x N steps = 5N); compile time is reported apart.

    python benchmarks/algo_throughput.py --root data/minari
    python benchmarks/algo_throughput.py --steps 50 --no-run-path
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from run_path import (
    PAIRS_TEXT,
    RUN_PATH_COLUMNS,
    add_dataset_arguments,
    benchmark_dataset,
    compare,
    figure,
    rates,
    run_path_cells,
    summary,
)
from train_throughput import JAX_CORL_ANCHOR, machine

from iwbc.agents.registry import BASELINES, METHODS, Method, SelectionConfig, training_data
from iwbc.core.agent import DataSpec
from iwbc.core.sampling import device_transitions
from iwbc.core.trainer import Training, create_agents, run_chunk
from iwbc.data import OfflineDataset
from iwbc.data.episodes import Transitions
from iwbc.data.statistics import normalization_stats

OBS_DIM, ACT_DIM, NUM_TRANSITIONS, BATCH_SIZE = 17, 6, 200_000, 256
# The offline-RL baselines of the registry, by name.
ALGORITHMS = {name: METHODS[name] for name in BASELINES}
# 5: every suite's seed count.
SEED_COUNTS = (1, 5)
REPEATS = 3
RESULTS = Path(__file__).resolve().parent.parent / "results" / "perf"


def synthetic_transitions(seed: int = 0) -> Transitions:
    """Random transitions of D4RL-locomotion shape; the values do not affect the speed."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(NUM_TRANSITIONS, OBS_DIM)).astype(np.float32)
    return Transitions(
        obs=obs,
        actions=rng.uniform(-1, 1, (NUM_TRANSITIONS, ACT_DIM)).astype(np.float32),
        rewards=rng.normal(size=NUM_TRANSITIONS).astype(np.float32),
        next_obs=np.roll(obs, -1, axis=0),
        terminals=(rng.random(NUM_TRANSITIONS) < 1e-3).astype(np.float32),
        timeouts=np.zeros(NUM_TRANSITIONS, np.float32),
    )


def time_chunk(method: Method, data: Any, stats: Any, num_seeds: int, steps: int) -> dict:
    """Compile one chunk of ``steps`` updates for ``num_seeds`` seeds of the baseline's default
    (CORL) config; best of REPEATS runs."""
    config = method.config()
    spec = DataSpec(jnp.asarray(stats[0], jnp.float32), jnp.asarray(stats[1], jnp.float32), ACT_DIM)
    agent = create_agents(method.agent, config, spec, list(range(num_seeds)))
    first = jnp.asarray(0)
    start = time.perf_counter()
    compiled = run_chunk.lower(agent, data, first, length=steps).compile()
    compile_s = time.perf_counter() - start
    seconds = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        jax.block_until_ready(compiled(agent, data, first))
        seconds.append(time.perf_counter() - start)
    best = min(seconds)
    return {
        "seeds": num_seeds,
        "steps": steps,
        "compile_s": compile_s,
        "seconds": best,
        "updates_per_s": num_seeds * steps / best,
    }


def run_path_chunk(kernel_row: dict, seconds: float) -> int:
    """Updates per seed of a run-path chunk that takes about ``seconds`` at the kernel's rate."""
    per_seed = kernel_row["updates_per_s"] / kernel_row["seeds"]
    return max(10, 10 * round(per_seed * seconds / 10))


def time_run_path(name: str, dataset: OfflineDataset, num_seeds: int, chunk: int) -> dict:
    """A unit's training (iwbc.bench.units._agent_at with eval_every = chunk_size = chunk)
    against the kernel: ``chunk``-update chunks from one start state, on the same data."""
    method = ALGORITHMS[name]
    config = dataclasses.replace(method.config(), steps=2 * chunk)
    seeds = list(range(num_seeds))

    def run() -> Any:
        with tempfile.TemporaryDirectory() as directory:
            prepared = training_data(method, dataset, config, SelectionConfig())
            training = Training(
                create_agents(method.agent, config, prepared.spec, seeds),
                prepared.data,
                checkpoint=Path(directory) / "checkpoint.msgpack",
                chunk_size=chunk,
                description=method.stage_name,
                progress=False,
            )
            for until in (chunk, 2 * chunk):
                agent = training.to(until)
        return agent

    def make_kernel() -> Any:
        prepared = training_data(method, dataset, config, SelectionConfig())
        agent = create_agents(method.agent, config, prepared.spec, seeds)
        data = prepared.data
        return lambda: [run_chunk(agent, data, jnp.asarray(start), chunk) for start in (0, chunk)]

    timing = compare(run, make_kernel, REPEATS)
    return {"chunk": chunk, **rates(timing, num_seeds * 2 * chunk)}


def write_report(report: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "algo_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    info = report["machine"]
    with_run_path = report["setup"].get("dataset") is not None
    lines = [
        "# Offline-RL baselines: gradient updates/s, kernel and run path",
        "",
        "**Every rate is seed-updates per second summed over the seeds trained together** "
        "(5 seeds x N steps",
        "in t seconds: 5N/t); `per seed` divides it by the seeds. On this 2-core CPU vmapping "
        "these agents' seeds",
        "barely changes the total, so the per-seed rate falls about as 1/seeds "
        "(results/perf/run_path.md).",
        "",
        "`kernel (synthetic)`: TD3+BC, IQL, CQL and AWAC trained by the trainer that trains "
        "the BC family,",
        "`run_chunk` = jit(vmap over seeds(lax.scan over N updates)), each update sampling",
        f"{BATCH_SIZE} transitions on the device from {NUM_TRANSITIONS:,} resident synthetic "
        f"transitions ({OBS_DIM}-dim observations,",
        f"{ACT_DIM}-dim actions: D4RL locomotion shape); one call of `steps` updates, timed from "
        "the same start state;",
        f"best of {REPEATS}, compilation excluded (`compile s`). Networks and hyperparameters are "
        "CORL's D4RL defaults",
        "(TD3+BC: 2 x 256 twin critics, deterministic actor updated every 2nd step; IQL: 2 x 256",
        "twin critics, value net and Gaussian actor, all updated every step; CQL: 3 x 256 twin",
        "critics and tanh-Gaussian actor, each critic scoring 10 uniform + 20 policy actions per",
        "state for its logsumexp; AWAC: 3 x 256 twin critics and Gaussian actor).",
        "",
    ]
    if with_run_path:
        lines += [
            "`run path`: what `iwbc run` / `iwbc bench` do for a baseline "
            "(iwbc.bench.units): the data prepared",
            "and the agent created once (a `Training` on one checkpoint), then trained on in "
            "memory to each curve point,",
            "here 2 points of `chunk` updates per seed (eval_every = chunk_size = chunk): each "
            "runs the chunk, syncs its",
            "metrics to the host, checks them and the state for non-finite values and writes the "
            "checkpoint; evaluation",
            "is left out.",
            "`kernel`: the same compiled chunk called twice from one start state on the same "
            "data. Both on",
            f"{report['setup']['dataset']}.",
            *PAIRS_TEXT.format(pairs=REPEATS).splitlines(),
            f"`chunk` is sized to take ~{report['setup']['run_seconds']:g} s at the kernel's rate "
            "(the suites use 1000: per-call costs",
            "weigh less there). `first run s`: the first run-path call of the process, "
            "with the seconds JAX spent",
            "compiling in it (tracing, lowering, XLA): paid once per process and program, "
            "excluded from the rates.",
            "",
        ]
    lines += [
        f"Regenerate: `{report['command']}`",
        "",
        f"Machine: {info['cpu']}, {info['logical_cores']} logical cores "
        f"({info['usable_cores']} usable, load average {info['loadavg']} at the start), "
        f"{info['device']}; Python {info['python']}, jax {info['jax']}, jaxlib {info['jaxlib']}, "
        f"flax {info['flax']}, optax {info['optax']}, numpy {info['numpy']}.",
        "A load average above the usable cores means other processes shared the CPU during the",
        "run, so the rates are then lower bounds of what the machine does alone; the ratios, "
        "measured",
        "alternately in one process, are what to compare.",
        "",
    ]
    header = (
        "| algorithm | seeds | steps | kernel (synthetic) | per seed | ms per step (all seeds) "
        "| compile s |"
    )
    rule = "|---|---:|---:|---:|---:|---:|---:|"
    if with_run_path:
        header += " chunk " + RUN_PATH_COLUMNS
        rule += "---:|---:|---:|---:|---:|---:|"
    lines += [header, rule]
    for row in report["results"]:
        line = (
            f"| {row['algorithm']} | {row['seeds']} | {row['steps']} "
            f"| {figure(row['updates_per_s'])} | {figure(row['updates_per_s'] / row['seeds'])} "
            f"| {row['seconds'] / row['steps'] * 1e3:.2f} | {row['compile_s']:.1f} |"
        )
        if with_run_path:
            line += f" {row['run_path']['chunk']} " + run_path_cells(row)
        lines.append(line)
    lines += [
        "",
        f"Context only: JAX-CORL reports ~{JAX_CORL_ANCHOR:,} updates/s for TD3+BC / IQL (1M "
        "updates in ~9 min,",
        "jit included) on a GTX 1080 Ti: same batch size and network sizes, another device, so "
        "not comparable",
        "with these CPU numbers.",
    ]
    (RESULTS / "algo_throughput.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="updates per timed call, 1 seed")
    parser.add_argument(
        "--run-seconds",
        type=float,
        default=3.0,
        help="run-path chunks are sized to take about this long at the kernel's rate",
    )
    parser.add_argument(
        "--algorithms", default=",".join(ALGORITHMS), help="comma-separated subset of the baselines"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    add_dataset_arguments(parser)
    args = parser.parse_args()
    info = machine()
    dataset, described = (None, None)
    if not args.no_run_path:
        dataset, described = benchmark_dataset(args.dataset, args.root)
        print(f"run path on {described}", flush=True)
    transitions = synthetic_transitions()
    stats = normalization_stats(transitions.obs)
    data = device_transitions(transitions, obs_mean=stats[0], obs_std=stats[1])
    report: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/algo_throughput.py", *sys.argv[1:]]),
        "machine": info,
        "setup": {
            "batch_size": BATCH_SIZE,
            "num_transitions": NUM_TRANSITIONS,
            "observation_dim": OBS_DIM,
            "action_dim": ACT_DIM,
            "rates": "seed-updates/s, summed over the seeds",
            "dataset": described,
            "run_seconds": args.run_seconds,
        },
        "results": [],
    }
    for name in args.algorithms.split(","):
        method = ALGORITHMS[name]
        for num_seeds in SEED_COUNTS:
            # Same total work per timed call for every seed count.
            steps = max(1, args.steps // num_seeds)
            row = {"algorithm": name, **time_chunk(method, data, stats, num_seeds, steps)}
            line = (
                f"{name:7s} seeds={num_seeds} kernel {row['updates_per_s']:6.0f} seed-updates/s "
                f"(compile {row['compile_s']:.1f} s)"
            )
            if dataset is not None:
                chunk = run_path_chunk(row, args.run_seconds)
                row["run_path"] = time_run_path(name, dataset, num_seeds, chunk)
                line += " | " + summary(row["run_path"])
            report["results"].append(row)
            print(line, flush=True)
    if not args.no_write:
        write_report(report)


if __name__ == "__main__":
    main()
