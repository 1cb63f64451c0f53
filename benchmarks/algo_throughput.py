"""Gradient updates/s of the offline-RL baselines with the trainer's engine, 1 and 8 seeds.

Each measured call is ``make_agent_chunk`` = jit(vmap over seeds(lax.scan over N updates)), every
update sampling a batch of 256 transitions on the device from a resident synthetic dataset shaped
like D4RL locomotion (17-dim observations, 6-dim actions), with CORL's D4RL networks and
hyperparameters. Updates are counted per seed (8 seeds x N steps = 8N updates); compile time is
reported separately and excluded from the rates.

    python benchmarks/algo_throughput.py
    python benchmarks/algo_throughput.py --steps 50
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from train_throughput import JAX_CORL_ANCHOR, machine

from iwbc.algos import ALGORITHMS
from iwbc.algos.common import device_transitions, make_agent_chunk, normalization_stats
from iwbc.data.episodes import Transitions

OBS_DIM, ACT_DIM, NUM_TRANSITIONS, BATCH_SIZE = 17, 6, 200_000, 256
AGENTS = {name: agent_cls for name, (agent_cls, _) in ALGORITHMS.items()}
SEED_COUNTS = (1, 8)
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


def time_chunk(agent_cls: Any, data: Any, stats: Any, num_seeds: int, steps: int) -> dict:
    """Compile one chunk of ``steps`` updates for ``num_seeds`` seeds; best of REPEATS runs."""
    agent = agent_cls.create(list(range(num_seeds)), OBS_DIM, ACT_DIM, *stats)
    start = time.perf_counter()
    compiled = make_agent_chunk(agent_cls.update, BATCH_SIZE, steps).lower(agent, data, 0).compile()
    compile_s = time.perf_counter() - start
    seconds = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        jax.block_until_ready(compiled(agent, data, 0))
        seconds.append(time.perf_counter() - start)
    best = min(seconds)
    return {
        "seeds": num_seeds,
        "steps": steps,
        "compile_s": compile_s,
        "seconds": best,
        "updates_per_s": num_seeds * steps / best,
    }


def write_report(report: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "algo_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    info = report["machine"]
    lines = [
        "# Offline-RL baselines: gradient updates/s",
        "",
        "Updates/s of TD3+BC, IQL, CQL and AWAC trained by the engine the iw-BC trainer uses:",
        "`make_agent_chunk` = jit(vmap over seeds(lax.scan over N updates)), each update sampling",
        f"{BATCH_SIZE} transitions on the device from {NUM_TRANSITIONS:,} resident synthetic "
        f"transitions ({OBS_DIM}-dim observations,",
        f"{ACT_DIM}-dim actions: D4RL locomotion shape). Networks and hyperparameters are CORL's "
        "D4RL defaults",
        "(TD3+BC: 2 x 256 twin critics, deterministic actor updated every 2nd step; IQL: 2 x 256",
        "twin critics, value net and Gaussian actor, all updated every step; CQL: 3 x 256 twin",
        "critics and tanh-Gaussian actor, each critic scoring 10 uniform + 20 policy actions per",
        "state for its logsumexp; AWAC: 3 x 256 twin critics and Gaussian actor). Updates are",
        "counted per seed; rates",
        f"exclude compilation (reported separately); best of {REPEATS} timed runs.",
        "",
        f"Regenerate: `{report['command']}`",
        "",
        f"Machine: {info['cpu']}, {info['logical_cores']} logical cores "
        f"({info['usable_cores']} usable, load average {info['loadavg']} at the start), "
        f"{info['device']}; Python {info['python']}, jax {info['jax']}, jaxlib {info['jaxlib']}, "
        f"flax {info['flax']}, optax {info['optax']}, numpy {info['numpy']}.",
        "A load average above the usable cores means other processes shared the CPU during the",
        "run, so the rates are then lower bounds of what the machine does alone.",
        "",
        "| algorithm | seeds | steps timed | updates/s | ms per step (all seeds) | compile s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        lines.append(
            f"| {row['algorithm']} | {row['seeds']} | {row['steps']} "
            f"| {row['updates_per_s']:,.0f} | {row['seconds'] / row['steps'] * 1e3:.2f} "
            f"| {row['compile_s']:.1f} |"
        )
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
    args = parser.parse_args()
    transitions = synthetic_transitions()
    stats = normalization_stats(transitions.obs)
    data = device_transitions(transitions, obs_mean=stats[0], obs_std=stats[1])
    report: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/algo_throughput.py", *sys.argv[1:]]),
        "machine": machine(),
        "setup": {
            "batch_size": BATCH_SIZE,
            "num_transitions": NUM_TRANSITIONS,
            "observation_dim": OBS_DIM,
            "action_dim": ACT_DIM,
        },
        "results": [],
    }
    for name, agent_cls in AGENTS.items():
        for num_seeds in SEED_COUNTS:
            # Same total work per timed call for every seed count.
            steps = max(1, args.steps // num_seeds)
            row = {"algorithm": name, **time_chunk(agent_cls, data, stats, num_seeds, steps)}
            report["results"].append(row)
            print(
                f"{name:7s} seeds={num_seeds} {row['updates_per_s']:8.0f} updates/s "
                f"(compile {row['compile_s']:.1f} s)",
                flush=True,
            )
    write_report(report)


if __name__ == "__main__":
    main()
