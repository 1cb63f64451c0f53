"""Which CPU-sized batch learns like BC should? Episodes × window → score at equal steps.

BC from scratch on each dataset with batches of the same number of steps (256) composed
differently: a few long windows of consecutive steps (the old CPU budget, 16 × 16) down to 256
single steps (window 1), under both step weightings (iwbc.losses), all other settings equal
(3,000 steps, Adam 1e-3, standardized observations, 3 × 256 policy, 3 seeds). Consecutive
steps are strongly correlated, so a batch of few long windows carries less information than its
size says; the table is the evidence for the suites' and README's CPU budget.

    python benchmarks/batch_composition.py --root data/minari \\
        --datasets iwbc/hopper/medium-replay-v0,iwbc/hopper/expert-v0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from iwbc.agents.bc import BCConfig
from iwbc.agents.registry import train_methods
from iwbc.data import dataset_normalized_score, load_dataset
from iwbc.envs.evaluate import evaluate_agent
from iwbc.machine import machine_record

# (episodes, window, weighting): 256 steps a batch each.
COMPOSITIONS = (
    (16, 16, "episode"),
    (16, 16, "transition"),
    (64, 4, "transition"),
    (256, 1, "transition"),
    (256, 1, "episode"),
)
RESULTS = Path(__file__).resolve().parent.parent / "results" / "perf" / "batch_composition"


def score(dataset, episodes: int, window: int, weighting: str, args) -> dict:
    config = BCConfig(steps=args.steps, batch_size=episodes, window=window, weighting=weighting)
    seeds = list(range(args.seeds))
    started = time.perf_counter()
    bc = train_methods(dataset, ["bc"], seeds, {"bc": config}, chunk_size=500, progress=False)
    train_s = time.perf_counter() - started
    returns = evaluate_agent(bc["bc"].agent, dataset.env_id, num_episodes=args.eval_episodes)
    normalized = dataset_normalized_score(dataset, returns).mean(axis=1)
    return {
        "dataset": dataset.id,
        "episodes": episodes,
        "window": window,
        "weighting": weighting,
        "scores": normalized.tolist(),
        "mean": float(normalized.mean()),
        "std": float(normalized.std()),
        "train_seconds": train_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", required=True, help="comma-separated dataset ids")
    parser.add_argument("--root", default="data/minari")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    if out.with_suffix(".json").exists():
        rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    for dataset_id in args.datasets.split(","):
        dataset = load_dataset(dataset_id, root=args.root)
        for episodes, window, weighting in COMPOSITIONS:
            key = (dataset_id, episodes, window, weighting)
            if any((r["dataset"], r["episodes"], r["window"], r["weighting"]) == key for r in rows):
                continue
            rows.append(score(dataset, episodes, window, weighting, args))
            print(json.dumps(rows[-1]), flush=True)
            write(out, rows, args)


def write(out: Path, rows: list[dict], args: argparse.Namespace) -> None:
    """Rows as measured (a killed run keeps them; a rerun skips them)."""
    report = {
        "command": "python " + " ".join(sys.argv),
        "steps": args.steps,
        "seeds": args.seeds,
        "eval_episodes": args.eval_episodes,
        "rows": rows,
        "machine": machine_record(("jax", "jaxlib", "numpy", "mujoco")),
    }
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    header = "| episodes × window | weighting | " + " | ".join(f"`{d}`" for d in datasets) + " |"
    lines = [
        "# BC batch composition at equal steps",
        "",
        f"Regenerate: `{report['command']}` (rows already in the JSON are kept).",
        "",
        f"BC from scratch, {args.steps} steps, 256 steps a batch, Adam 1e-3, standardized "
        f"observations, 3 × 256 Gaussian policy; normalized score of the final policy, mean ± "
        f"std over {args.seeds} seeds, {args.eval_episodes} fixed evaluation episodes each.",
        "",
        header,
        "|---|---|" + "---:|" * len(datasets),
    ]
    for episodes, window, weighting in COMPOSITIONS:
        cells = []
        for d in datasets:
            match = [
                r
                for r in rows
                if (r["dataset"], r["episodes"], r["window"], r["weighting"])
                == (d, episodes, window, weighting)
            ]
            cells.append(f"{match[0]['mean']:.1f} ± {match[0]['std']:.1f}" if match else "—")
        lines.append(f"| {episodes} × {window} | {weighting} | " + " | ".join(cells) + " |")
    lines += ["", "Machine: " + ", ".join(f"{k} {v}" for k, v in report["machine"].items()), ""]
    out.with_suffix(".md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
