"""An independent minimal BC on any local dataset: tells the data from the plumbing.

When iwbc's BC scores low on a dataset, train the reference learner the CI learning check
holds it to (``minimal_bc`` of tests/test_learning_locomotion.py: plain JAX and optax,
standardized states, MSE, 3 x 256 ReLU MLP -> tanh, Adam 1e-3, 256 transitions a step) on the
same transitions for the same steps. If it scores the same, the data is why.

    python benchmarks/minimal_bc_check.py iwbc/halfcheetah/medium-replay-v0 \
        --root data/minari-strong --steps 3000 \
        --out results/strong-halfcheetah/minimal-bc-medium-replay.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from iwbc.data import dataset_normalized_score, load_dataset
from iwbc.envs.evaluate import evaluate_actor
from iwbc.machine import machine_record

# one copy of the reference learner: the one the CI learning check uses
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_learning_locomotion import minimal_bc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--root", type=Path, default=None, help="local Minari datasets")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()

    start = time.perf_counter()
    dataset = load_dataset(args.dataset, root=args.root)
    transitions = dataset.episodes.to_transitions()
    scores = []
    for seed in range(args.seeds):
        act, params = minimal_bc(transitions.obs, transitions.actions, args.steps, seed)
        returns = evaluate_actor(
            act,
            jax.tree.map(lambda x: x[None], params),
            dataset.env_id,
            observation_dim=dataset.observation_dim,
            action_dim=dataset.action_dim,
            num_episodes=args.eval_episodes,
            engine="batch",
        )
        scores.append(float(dataset_normalized_score(dataset, returns).mean()))
    report = {
        "command": "python " + " ".join(sys.argv),
        "dataset": args.dataset,
        "transitions": int(transitions.obs.shape[0]),
        "steps": args.steps,
        "batch_size": 256,
        "eval_episodes": args.eval_episodes,
        "normalized_per_seed": scores,
        "normalized_mean": float(np.mean(scores)),
        "wall_seconds": time.perf_counter() - start,
        "machine": machine_record(("iwbc", "jax", "jaxlib", "optax", "mujoco", "numpy")),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"{args.dataset}: minimal BC, {args.steps} steps, normalized per seed", scores)


if __name__ == "__main__":
    main()
