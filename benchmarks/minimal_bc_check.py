"""An independent minimal BC on any local dataset: tells the data from the plumbing.

When iwbc's BC scores low on a dataset, train the reference learner the CI learning check
holds it to (``minimal_bc`` of tests/test_learning_locomotion.py: plain JAX and optax,
standardized states, MSE, 3 x 256 ReLU MLP -> tanh, Adam 1e-3, 256 transitions a step) on the
same transitions for the same steps. If it scores the same, the data is why. With
``--best-episodes N`` it trains on the N highest-return episodes only, from scratch: a minimal
filtered BC to hold the curated fine-tunes to.

    python benchmarks/minimal_bc_check.py iwbc/halfcheetah/medium-replay-v0 \
        --root data/minari-strong --steps 3000 \
        --out results/strong-halfcheetah/minimal-bc-medium-replay.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from iwbc.data import load_dataset
from iwbc.machine import machine_record

# one copy of the reference learner: the one the CI learning check uses
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_learning_locomotion import minimal_bc_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--root", type=Path, default=None, help="local Minari datasets")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument(
        "--best-episodes", type=int, default=None, help="train on the N best episodes only"
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()

    start = time.perf_counter()
    dataset = load_dataset(args.dataset, root=args.root)
    if args.best_episodes is not None:
        if not 1 <= args.best_episodes <= dataset.num_episodes:
            parser.error(f"--best-episodes must be in [1, {dataset.num_episodes}]")
        best = np.argsort(dataset.returns, kind="stable")[::-1][: args.best_episodes]
        dataset = dataclasses.replace(dataset, episodes=dataset.episodes.subset(np.sort(best)))
    seeds = range(args.seeds)
    scores = minimal_bc_scores(dataset, args.steps, seeds, args.eval_episodes, engine="batch")
    report = {
        "command": "python " + " ".join(sys.argv),
        "dataset": args.dataset,
        "best_episodes": args.best_episodes,
        "transitions": dataset.num_steps,
        "steps": args.steps,
        "batch_size": 256,
        "eval_episodes": args.eval_episodes,
        "normalized_per_seed": scores.tolist(),
        "normalized_mean": float(np.mean(scores)),
        "wall_seconds": time.perf_counter() - start,
        "machine": machine_record(("iwbc", "jax", "jaxlib", "optax", "mujoco", "numpy")),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    trained_on = f" on its {args.best_episodes} best episodes" if args.best_episodes else ""
    print(
        f"{args.dataset}: minimal BC{trained_on}, {args.steps} steps, normalized per seed",
        scores.tolist(),
    )


if __name__ == "__main__":
    main()
