"""How stale may iw-BC's whole-trajectory log q_iw(τ)/|τ| be? Weight error against refresh interval.

Under windows the trainer keeps log q(τ)/|τ| of every training episode in a table, q_ref's once
and q_iw's (the EMA of the policy) recomputed every ``refresh_every`` steps (iwbc.agents.bc). This
script fine-tunes iw-BC from BC with the table refreshed at every step (exact), records it, and
measures for each interval k the error of the weights a k-step-old table would have given:
the total-variation distance between the normalized weights over the training episodes
(0 = same, 1 = disjoint) and the largest relative error of one episode's weight
|exp(temp·Δℓ) − 1|. It also times one refresh against one update, and against a refresh over
every listed row (each copy of a trajectory computed again, as before 2026-12-01).

    python benchmarks/iw_refresh.py --root data/minari --dataset iwbc/hopper/medium-replay-v0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from iwbc.agents.bc import BCConfig, episode_log_probs
from iwbc.agents.registry import METHODS, SelectionConfig, train_methods, training_data
from iwbc.core.sampling import FLAT_BLOCK, DeviceEpisodes
from iwbc.core.trainer import Training, create_agents, run_chunk
from iwbc.data import list_datasets, load_dataset
from iwbc.data.episodes import episode_steps, first_steps
from iwbc.data.scripted import DEFAULT_DATASET_ID, generate_mixed_dataset
from iwbc.machine import machine_record

INTERVALS = (1, 2, 5, 10, 20, 50, 100)
REPEATS = 5
RESULTS = Path(__file__).resolve().parent.parent / "results" / "perf"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=DEFAULT_DATASET_ID)
    parser.add_argument("--root", default="data/minari")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--bc-steps", type=int, default=3000)
    parser.add_argument("--finetune-steps", type=int, default=1000)
    parser.add_argument("--window", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "iw_refresh"))
    args = parser.parse_args()
    if args.dataset == DEFAULT_DATASET_ID and args.dataset not in list_datasets(args.root):
        generate_mixed_dataset(DEFAULT_DATASET_ID, num_episodes=200, seed=0, root=args.root)
    dataset = load_dataset(args.dataset, root=args.root)
    seeds = list(range(args.seeds))
    pretrain = BCConfig(steps=args.bc_steps, batch_size=256, window=1)
    # iw_bc's loss (iw_trajectory) with the table refreshed at every step.
    stage = BCConfig.iw_finetune(
        loss=METHODS["iw_bc"].loss,
        steps=args.finetune_steps,
        warmup_steps=args.finetune_steps // 10,
        learning_rate=1e-4,
        batch_size=256,
        window=args.window,
        refresh_every=1,
    )
    bc = train_methods(dataset, ["bc"], seeds, {"bc": pretrain}, chunk_size=500, progress=False)
    prepared = training_data(METHODS["iw_bc"], dataset, stage, SelectionConfig())
    data = prepared.data
    # The fine-tune starts from BC (q_ref = q_iw = BC), its tables filled as Training does.
    start = create_agents(METHODS["iw_bc"].agent, stage, prepared.spec, seeds, bc["bc"].agent)
    state = Training(start, data, progress=False).agent
    policy = state.policy
    tables = []
    for step in range(stage.steps):
        state, _ = run_chunk(state, data, jnp.asarray(step), 1)
        tables.append(np.asarray(state.iw_log_q, np.float64))
    tables = np.stack(tables)  # [steps, seeds, E]
    ref = np.asarray(state.ref_log_q, np.float64)
    temp = stage.temperature

    def normalized(log_q: np.ndarray) -> np.ndarray:
        w = np.clip(np.exp(temp * (log_q - ref)), 0.0, 1000.0)
        return w / w.sum(axis=-1, keepdims=True)

    exact = normalized(tables)
    rows = []
    for k in INTERVALS:
        stale = tables[np.arange(stage.steps) - np.arange(stage.steps) % k]
        tv = 0.5 * np.abs(normalized(stale) - exact).sum(axis=-1)  # [steps, seeds]
        relative = np.abs(np.expm1(temp * (stale - tables)))
        rows.append(
            {
                "refresh_every": k,
                "tv_median": float(np.median(tv)),
                "tv_max": float(tv.max()),
                "relative_weight_error_median": float(np.median(relative)),
                "relative_weight_error_max": float(relative.max()),
            }
        )
    refresh_s, table = timed_refresh(policy, state.iw_params, data)
    every_row_s, every_row_table = timed_refresh(policy, state.iw_params, listed_rows_layout(data))
    np.testing.assert_array_equal(table, every_row_table)
    # Updates alone: a refresh interval longer than the timed chunk.
    updates_only = state.replace(config=dataclasses.replace(stage, refresh_every=10**9))
    jax.block_until_ready(run_chunk(updates_only, data, jnp.asarray(1), 50))
    started = time.perf_counter()
    jax.block_until_ready(run_chunk(updates_only, data, jnp.asarray(1), 50))
    update_s = (time.perf_counter() - started) / 50
    report = {
        "command": "python " + " ".join(sys.argv),
        "dataset": args.dataset,
        "episodes": int(data.num_episodes),
        "steps_in_selection": int(np.asarray(data.lengths).sum()),
        "seeds": len(seeds),
        "finetune": dataclasses.asdict(stage),
        "distinct_episodes": int(np.unique(np.asarray(data.episode_source)).size),
        "steps_refreshed": int((np.asarray(data.flat_episode) < data.num_episodes).sum()),
        "refresh_seconds": refresh_s,
        "refresh_seconds_every_listed_row": every_row_s,
        "update_seconds": update_s,
        "rows": rows,
        "machine": machine_record(("jax", "jaxlib", "numpy")),
    }
    lines = [
        f"# iw-BC trajectory-weight staleness: {args.dataset}",
        "",
        f"Regenerate: `{report['command']}`",
        "",
        f"iw-BC fine-tune from BC ({args.bc_steps} steps), {stage.steps} steps, lr "
        f"{stage.learning_rate}, {stage.batch_size} × window {stage.window}, temperature "
        f"{temp}, EMA {stage.ema_decay}; {data.num_episodes} training episodes "
        f"({report['steps_in_selection']} steps, the stratified p90/95/98 selection with its "
        f"copies: {report['distinct_episodes']} distinct episodes, {report['steps_refreshed']} "
        f"steps), {len(seeds)} seeds. One refresh of the table: {refresh_s * 1e3:.0f} ms over "
        f"the distinct episodes, {every_row_s * 1e3:.0f} ms over every listed row as before "
        f"2026-12-01 (same values to the bit; {every_row_s / refresh_s:.2f}x); one update: "
        f"{update_s * 1e3:.1f} ms (all seeds).",
        "",
        "| refresh every | TV distance median | TV max | relative weight error median | max |",
        "|---:|---:|---:|---:|---:|",
        *(
            f"| {r['refresh_every']} | {r['tv_median']:.4f} | {r['tv_max']:.4f} | "
            f"{r['relative_weight_error_median']:.4f} | {r['relative_weight_error_max']:.4f} |"
            for r in rows
        ),
    ]
    write_report(Path(args.out), report, lines)


# Every seed's table at once, as the trainer refreshes it.
_refresh = jax.jit(jax.vmap(episode_log_probs, in_axes=(None, 0, None)), static_argnums=0)


def timed_refresh(policy: Any, params: Any, layout: DeviceEpisodes) -> tuple[float, np.ndarray]:
    """Seconds of one refresh of the seed-stacked ``params``' table on ``layout`` (mean of
    ``REPEATS`` after a warm-up), and the table."""
    table = jax.block_until_ready(_refresh(policy, params, layout))
    started = time.perf_counter()
    for _ in range(REPEATS):
        jax.block_until_ready(_refresh(policy, params, layout))
    return (time.perf_counter() - started) / REPEATS, np.asarray(table)


def write_report(out: Path, report: dict, lines: list[str]) -> None:
    """``report`` as ``out``.json, and ``lines`` then its machine as ``out``.md (printed too)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    machine = ", ".join(f"{k} {v}" for k, v in report["machine"].items())
    text = "\n".join([*lines, "", f"Machine: {machine}", ""])
    out.with_suffix(".md").write_text(text)
    print(text)


def listed_rows_layout(data: DeviceEpisodes) -> DeviceEpisodes:
    """``data`` with the flat steps of every listed row, copies included: the refresh's layout
    before a trajectory listed several times was computed once, as the reference for its time."""
    lengths = np.asarray(data.lengths)
    steps = int(lengths.sum())
    padded = -(-steps // FLAT_BLOCK) * FLAT_BLOCK
    first = first_steps(lengths)
    at = episode_steps(np.asarray(data.starts), lengths)

    def flat(array: jax.Array) -> jax.Array:
        rows = np.zeros((padded, array.shape[-1]), np.float32)
        rows[:steps] = np.asarray(array)[at]
        return jnp.asarray(rows)

    episode = np.full(padded, data.num_episodes, np.int32)
    episode[:steps] = np.repeat(np.arange(data.num_episodes), lengths)
    return data.replace(
        flat_observations=flat(data.flat_observations),
        flat_actions=flat(data.flat_actions),
        flat_episode=jnp.asarray(episode),
        starts=jnp.asarray(first, jnp.int32),
        episode_source=jnp.arange(data.num_episodes, dtype=jnp.int32),
    )


if __name__ == "__main__":
    main()
