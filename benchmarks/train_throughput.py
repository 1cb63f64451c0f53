"""Gradient updates/s of the BC family's trainer: the kernel, a Python loop, and the run path.

Kernel: jit(vmap(scan(update))) vs a Python loop of jitted updates, on synthetic episodes shaped
like D4RL locomotion (17-dim observations, 6-dim actions, episodes of 200-1000 steps) with the
paper's 3 x 256 Gaussian policy. The paper's batches (128 BC / 256 iw-BC whole episodes, i.e. up
to 128k-256k steps an update) take seconds an update on a CPU, so the measured configuration is
CPU-sized: 32 episodes x a random window of 32 steps.

Run path: BC pre-training and the iw-BC fine-tune at the quick suite's stage configurations
(256 one-step windows; iwbc/suites/quick.toml) trained as a benchmark unit trains them
(``iwbc run``, ``iwbc bench``), on a real dataset, against the kernel on that dataset in the same
process (``run_path.py``). Rates are seed-updates/s summed over the seeds (8 seeds x N steps =
8N); compile time is reported apart and excluded from the rates.

    python benchmarks/train_throughput.py --root data/minari
    python benchmarks/train_throughput.py --batch-size 64 --window 64 --steps 50 --no-run-path
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
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
    rates,
    run_path_cells,
    summary,
)

from iwbc.agents.bc import BCAgent, BCConfig
from iwbc.agents.registry import METHODS, training_data
from iwbc.bench.suites import Suite, load_suite
from iwbc.bench.units import UnitContext, WorkUnit, _agent_at, unit_directory
from iwbc.core.agent import DataSpec
from iwbc.core.sampling import DeviceEpisodes
from iwbc.core.trainer import Training, create_agents, run_chunk
from iwbc.data import OfflineDataset
from iwbc.machine import machine_record

OBS_DIM, ACT_DIM, MAX_LEN, NUM_EPISODES = 17, 6, 1000, 500
# The kernel table's data: iw-BC under windows recomputes log q_iw over every step of the data
# each 10 updates, so the data's size sets its cost; 100 episodes (~70k steps, 3.5x Hopper
# medium-replay's quick tier) keep its rows to minutes on 2 cores.
TABLE_EPISODES = 100
HIDDEN_DIMS = (256, 256, 256)
LOSSES = ("bc", "iw_trajectory")
SEED_COUNTS = (1, 8)
REPEATS = 3
# The run path: BC pre-training and the iw-BC fine-tune of the quick suite, 1 and 5 (its) seeds.
RUN_SUITE = "quick"
RUN_METHODS = ("bc", "iw_bc")
RUN_SEED_COUNTS = (1, 5)
RESULTS = Path(__file__).resolve().parent.parent / "results" / "perf"
# Context only: JAX-CORL's TD3+BC / IQL on a GTX 1080 Ti (another algorithm, batch and device).
JAX_CORL_ANCHOR = 1_850


def flops_per_update(config: BCConfig, flat_steps: int) -> float:
    """FLOPs of the MLP's matrix products in one update: the yardstick for compute-boundness.

    Forward + backward (2x) on the batch; iw losses add the q_iw and q_ref forward passes on it,
    except under trajectory tables, which instead take one q_iw forward pass over every step of
    the data (``flat_steps``) each ``refresh_every`` updates.
    """
    widths = (OBS_DIM, *HIDDEN_DIMS, ACT_DIM)
    macs_per_row = sum(a * b for a, b in itertools.pairwise(widths))
    rows = config.batch_size * (config.window or MAX_LEN)
    if config.loss == "bc" or config.trajectory_table:
        flops = 2.0 * macs_per_row * 3 * rows
    else:
        flops = 2.0 * macs_per_row * 5 * rows
    if config.trajectory_table:
        flops += 2.0 * macs_per_row * flat_steps / config.refresh_every
    return flops


def synthetic_episodes(seed: int = 0, num_episodes: int = NUM_EPISODES) -> DeviceEpisodes:
    """D4RL-locomotion-shaped episodes; the values do not affect the speed."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(200, MAX_LEN + 1, size=num_episodes)
    lengths[: num_episodes // 4] = MAX_LEN  # many locomotion episodes run to the time limit
    mask = (np.arange(MAX_LEN)[None, :] < lengths[:, None]).astype(np.float32)
    observations = rng.standard_normal((num_episodes, MAX_LEN, OBS_DIM), dtype=np.float32)
    actions = rng.uniform(-0.99, 0.99, (num_episodes, MAX_LEN, ACT_DIM)).astype(np.float32)
    observations *= mask[..., None]
    actions *= mask[..., None]
    return DeviceEpisodes.from_padded(observations, actions, mask)


def stage(loss: str, batch_size: int, window: int | None) -> BCConfig:
    """BC pre-training or the paper's iw-BC fine-tune (its schedule kept), resized batches,
    on the paper's 3 x 256 policy."""
    if loss == "bc":
        return BCConfig(loss="bc", batch_size=batch_size, window=window, hidden_dims=HIDDEN_DIMS)
    return BCConfig.iw_finetune(
        loss=loss, batch_size=batch_size, window=window, hidden_dims=HIDDEN_DIMS
    )


def start_state(config: BCConfig, data: DeviceEpisodes, num_seeds: int) -> Any:
    """A stage's seed-stacked agent for ``num_seeds`` seeds, trajectory tables filled in where
    it has them (iw-BC under windows), as :class:`iwbc.core.trainer.Training` starts it."""
    seeds = list(range(num_seeds))
    # Identity statistics: the standardization's cost is measured, its values do not matter.
    spec = DataSpec(jnp.zeros(OBS_DIM, jnp.float32), jnp.ones(OBS_DIM, jnp.float32), ACT_DIM)
    agent = create_agents(BCAgent, config, spec, seeds)
    return Training(agent, data, progress=False).agent


def best_seconds(run: Callable[[], Any]) -> float:
    """Fastest of REPEATS timed runs: other load on the machine only ever slows a run."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        jax.block_until_ready(run())
        times.append(time.perf_counter() - start)
    return min(times)


def time_scan(
    config: BCConfig, data: DeviceEpisodes, num_seeds: int, steps: int
) -> dict[str, float]:
    """The trainer's path: one compiled call runs ``steps`` updates of every seed."""
    state = start_state(config, data, num_seeds)
    first = jnp.asarray(0)
    start = time.perf_counter()
    compiled = run_chunk.lower(state, data, first, length=steps).compile()
    compile_s = time.perf_counter() - start
    seconds = best_seconds(lambda: compiled(state, data, first))
    return {
        "compile_s": compile_s,
        "seconds": seconds,
        "updates_per_s": num_seeds * steps / seconds,
    }


def single_update(agent: BCAgent, data: DeviceEpisodes, step: jax.Array) -> tuple[BCAgent, dict]:
    """One seed's update as the trainer's scan body makes it: split the key, ``sample`` a batch
    on the device, ``update``."""
    rng, key = jax.random.split(agent.rng)
    agent, batch = agent.replace(rng=rng).sample(key, data, step)
    return agent.update(batch)


def time_loop(config: BCConfig, data: DeviceEpisodes, steps: int) -> dict[str, float]:
    """Reference: a Python loop dispatching a jitted single update per step, one seed.

    Only the final state is waited for, so JAX's asynchronous dispatch overlaps the Python
    overhead with compute; a loop that logged the loss every step would be slower.
    """
    state = jax.tree.map(lambda x: x[0], start_state(config, data, 1))
    start = time.perf_counter()
    compiled = jax.jit(single_update).lower(state, data, jnp.asarray(0)).compile()
    compile_s = time.perf_counter() - start

    def run() -> Any:
        current = state
        for step in range(steps):
            current, _ = compiled(current, data, jnp.asarray(step))
        return current

    seconds = best_seconds(run)
    return {"compile_s": compile_s, "seconds": seconds, "updates_per_s": steps / seconds}


def run_suite(dataset: OfflineDataset, chunk: int) -> Suite:
    """The quick suite's BC-family stages on ``dataset``, each cut to 2 chunks of ``chunk`` steps
    with a curve point after each (a stage's length changes its schedule, not its speed)."""
    suite = load_suite(RUN_SUITE)
    pipeline = suite.pipeline
    finetune = pipeline.finetune
    warmup = None if finetune.warmup_steps is None else min(finetune.warmup_steps, chunk)
    pipeline = dataclasses.replace(
        pipeline,
        pretrain=dataclasses.replace(pipeline.pretrain, steps=2 * chunk),
        finetune=dataclasses.replace(finetune, steps=2 * chunk, warmup_steps=warmup),
        chunk_size=chunk,
        eval_every=chunk,
    )
    return dataclasses.replace(suite, datasets=(dataset.id,), pipeline=pipeline, eval_every=chunk)


def unit_training(
    suite: Suite, dataset: OfflineDataset, method: str, seeds: tuple[int, ...], work_dir: Path
) -> Any:
    """What a benchmark unit (``iwbc.bench.units.run_unit``) does for ``method`` but
    evaluate: the agent at each curve point; returns the last."""
    context = UnitContext(
        suite=suite, records_dir=work_dir / "records", work_dir=work_dir, dataset=dataset
    )
    unit = WorkUnit(dataset.id, method, seeds, seeds)
    directory = unit_directory(context, unit)
    directory.mkdir(parents=True, exist_ok=True)
    agent_at = _agent_at(method, unit, context, dataset, directory)
    return [agent_at(step) for step in suite.eval_targets(method)][-1]


def time_run_path(
    dataset: OfflineDataset, num_seeds: int, chunk: int, repeats: int = REPEATS
) -> list[dict[str, Any]]:
    """BC pre-training (the ``bc`` unit), then the iw-BC fine-tune (the ``iw_bc`` unit, its
    pre-training already on disk), each against its kernel: 2 ``chunk``-step calls from one
    start state on the unit's own training episodes."""
    suite = run_suite(dataset, chunk)
    seeds = tuple(range(num_seeds))
    rows = []
    with tempfile.TemporaryDirectory() as shared:
        shared_dir = Path(shared)
        for method in RUN_METHODS:
            if method == "bc":

                def run() -> Any:
                    with tempfile.TemporaryDirectory() as fresh:
                        return unit_training(suite, dataset, "bc", seeds, Path(fresh))

            else:
                unit_training(suite, dataset, "bc", seeds, shared_dir)  # the shared pre-training

                def run(method: str = method) -> Any:
                    context = UnitContext(suite, shared_dir / "records", shared_dir)
                    unit = WorkUnit(dataset.id, method, seeds, ())
                    shutil.rmtree(unit_directory(context, unit), ignore_errors=True)
                    return unit_training(suite, dataset, method, seeds, shared_dir)

            def make_kernel(method: str = method) -> Callable[[], Any]:
                config = suite.agent_config(method)
                prepared = training_data(METHODS[method], dataset, config, suite.pipeline.selection)
                data = prepared.data
                # A fresh start (not BC's parameters): the kernel's speed does not depend on it.
                agent = create_agents(BCAgent, config, prepared.spec, list(seeds))
                state = Training(agent, data, progress=False).agent
                return lambda: [
                    run_chunk(state, data, jnp.asarray(start), chunk) for start in (0, chunk)
                ]

            timing = compare(run, make_kernel, repeats)
            rows.append(
                {
                    "method": method,
                    "seeds": num_seeds,
                    "run_path": {"chunk": chunk, **rates(timing, num_seeds * 2 * chunk)},
                }
            )
    return rows


def machine() -> dict[str, object]:
    return {
        **machine_record(("jax", "jaxlib", "flax", "optax", "numpy")),
        "device": str(jax.devices()[0]),
    }


def write_report(report: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train_throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    info, setup = report["machine"], report["setup"]
    window = setup["window"] if setup["window"] is not None else "whole episodes"
    lines = [
        "# Trainer throughput: gradient updates/s",
        "",
        "Updates/s of one stage of the trainer (`run_chunk` = jit(vmap(scan(update)))), each",
        "update sampling its batch on the device, against a reference Python loop that calls a",
        "jitted single update per step for 1 seed (no scan; only the final state is waited for,",
        "so asynchronous dispatch already hides part of the Python overhead).",
        "**Every rate is seed-updates per second summed over the seeds trained together** "
        f"({max(SEED_COUNTS)} seeds x N steps",
        f"in t seconds: {max(SEED_COUNTS)}N/t); compare the seed counts: the total need not "
        "grow with the seeds.",
        f"Rates exclude compilation (reported separately); best of {REPEATS} timed runs of",
        f"{setup['steps']} steps each, starting at step 0. GFLOP/s counts the MLP's matrix "
        "products only (forward +",
        "2x for the backward pass; for iw-BC under windows, plus its trajectory-table refresh: a "
        "q_iw forward pass over",
        "every step of the data each 10 updates).",
        "",
        f"**CPU-sized configuration, not the paper's:** {setup['batch_size']} episodes x "
        f"window {window} steps per update",
        f"({setup['batch_size'] * (setup['window'] or MAX_LEN)} steps a batch). The paper "
        "trains on 128 (BC) / 256 (iw-BC) whole episodes, up to",
        "128k-256k steps a batch, which takes seconds per update on this CPU. Data: "
        f"{setup['num_episodes']} synthetic episodes",
        f"of 200-{MAX_LEN} steps ({setup['data_steps']:,} steps), "
        f"{OBS_DIM}-dim observations, {ACT_DIM}-dim actions (D4RL locomotion",
        "shape); policy: the paper's 3 x 256 Gaussian MLP. `bc` is BC pre-training (Adam 1e-3);",
        "`iw_trajectory` is the iw-BC fine-tune (warm-up cosine schedule, EMA q_iw, frozen q_ref; "
        "under windows its",
        "trajectory weights come from whole-episode tables of log q(τ)/|τ|, q_iw's refreshed "
        "every 10 updates, so",
        "its cost grows with the data: see the GFLOP/s).",
        "",
        f"Regenerate: `{report['command']}`",
        "",
        f"Machine: {info['cpu']}, {info['logical_cores']} logical cores "
        f"({info['usable_cores']} usable, load average {info['loadavg']} at the start), "
        f"{info['device']}; Python {info['python']}, jax {info['jax']}, jaxlib {info['jaxlib']}, "
        f"flax {info['flax']}, optax {info['optax']}, numpy {info['numpy']}.",
        "",
        "| loss | mode | seeds | seed-updates/s | ms per step (all seeds) | ≈GFLOP/s | compile s "
        "| ÷ loop, 1 seed |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        loop = next(
            r["updates_per_s"]
            for r in report["results"]
            if r["loss"] == row["loss"] and r["mode"] == "python loop"
        )
        lines.append(
            f"| {row['loss']} | {row['mode']} | {row['seeds']} | {row['updates_per_s']:,.0f} "
            f"| {row['seconds'] / setup['steps'] * 1e3:.2f} | {row['gflops']:.0f} "
            f"| {row['compile_s']:.1f} "
            f"| {row['updates_per_s'] / loop:.2f}x |"
        )
    lines += [
        "",
        "`jit(scan)` vs the loop, 1 seed, shows what running the updates inside one compiled",
        "call buys (no per-step dispatch, no per-call output buffers); "
        f"{max(SEED_COUNTS)} vmapped seeds vs 1 shows",
        "what batching seeds into one program buys in total updates/s. On a CPU both are small:",
        "even this CPU-sized update is milliseconds of matrix products (see GFLOP/s, about what",
        "2 cores sustain), so the scan gains only what per-call overhead costs next to them, and",
        "vmapping seeds only turns the MLP's matrix products into batched ones, which XLA's CPU",
        "backend runs at the same or a lower rate (for updates this size; smaller ones, like the",
        "run-path table's 256 one-step windows, can gain). The design should pay off where an",
        "update is cheap next to its dispatch (a GPU; not measured here); on CPU its gain is all",
        "seeds in one call and one compile. " + paper_batch_estimate(report["results"]),
        "",
        f"Context only: JAX-CORL reports ~{JAX_CORL_ANCHOR:,} updates/s for TD3+BC / IQL on a "
        "GTX 1080 Ti — a",
        "different algorithm (transition batches of 256, critic + actor), batch and device,",
        "so not comparable.",
    ]
    if report.get("run_path"):
        lines += run_path_section(report)
    (RESULTS / "train_throughput.md").write_text("\n".join(lines) + "\n")


def paper_batch_estimate(results: list[dict[str, Any]]) -> str:
    """How long one update of the paper's batch would take at the GFLOP/s measured for 1 seed
    under jit (an estimate from the matrix products alone: the paper's batch takes seconds
    per update here, too long to time in this table)."""
    # The paper's batches of whole episodes are BCConfig's defaults for each stage.
    batches = {"bc": BCConfig().batch_size, "iw_trajectory": BCConfig.iw_finetune().batch_size}
    seconds = {}
    for row in results:
        if row["mode"] != "python loop" and row["seeds"] == 1:
            config = stage(row["loss"], batches[row["loss"]], None)
            seconds[row["loss"]] = flops_per_update(config, 0) / (row["gflops"] * 1e9)
    return (
        f"At the GFLOP/s above (1 seed), one update of the paper's batch would take about "
        f"{seconds['bc']:.1f} s (BC, {batches['bc']} x up to {MAX_LEN} steps) and "
        f"{seconds['iw_trajectory']:.1f} s (iw-BC, {batches['iw_trajectory']} x up to "
        f"{MAX_LEN} steps; an estimate)."
    )


def run_path_section(report: dict[str, Any]) -> list[str]:
    """The table of the BC family's run path against its kernel on the dataset."""
    setup = report["run_path_setup"]
    lines = [
        "",
        "## Run path: the BC family as `iwbc run` / `iwbc bench` train it",
        "",
        f"The quick suite's stages (iwbc/suites/{RUN_SUITE}.toml: BC pre-training, Adam "
        "1e-3; the iw-BC fine-tune,",
        "Adam 1e-4 after a warm-up, trajectory weights from whole-episode tables refreshed every "
        "10 steps; 256 one-step",
        f"windows a batch), on {setup['dataset']}.",
        "`run path`: a benchmark unit's training (iwbc.bench.units) with its evaluation "
        "left out: 2 curve points",
        "of `chunk` steps per seed on one checkpoint (eval_every = chunk_size = chunk). The "
        "unit prepares its data and",
        "creates its agents once, then trains on in memory to each point, syncing the metrics, "
        "checking them and the",
        "state for non-finite values and writing the checkpoint after each chunk; `bc` also "
        "saves its agent snapshot at",
        "each point and reads it back, `iw_bc` starts from BC's final snapshot (its "
        "pre-training is done beforehand, as",
        "the shared pre-training is in a sweep; reading it rebuilds BC's training as the "
        "template) and fills its",
        "trajectory tables. `kernel`: the same compiled chunk called twice from one start state "
        "on the unit's training",
        "episodes.",
        *PAIRS_TEXT.format(pairs=setup.get("run_repeats", REPEATS)).splitlines(),
        f"`chunk`: steps per seed ({RUN_SUITE}.toml's chunk_size is 500, and it evaluates every "
        "1000",
        "steps: the per-call costs weigh half as much there). `first run s`: the first run-path "
        "call, with the seconds JAX spent",
        "compiling in it, paid once per process and program and excluded from the rates. "
        "Rates: seed-updates/s, all",
        "seeds.",
        "",
        "| method | seeds | chunk " + RUN_PATH_COLUMNS,
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["run_path"]:
        lines.append(
            f"| {row['method']} | {row['seeds']} | {row['run_path']['chunk']} "
            + run_path_cells(row)
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32, help="episodes per update")
    parser.add_argument(
        "--window", type=int, default=32, help="steps per episode; 0 for whole episodes"
    )
    parser.add_argument("--steps", type=int, default=20, help="updates per timed run")
    parser.add_argument(
        "--run-chunk",
        type=int,
        default=load_suite(RUN_SUITE).pipeline.chunk_size,
        help="steps per seed of a run-path chunk (default: the quick suite's chunk size)",
    )
    parser.add_argument(
        "--run-repeats", type=int, default=REPEATS, help="timed runs of each, run path and kernel"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    add_dataset_arguments(parser)
    args = parser.parse_args(argv)
    window = args.window or None

    info = machine()
    dataset, described = (None, None)
    if not args.no_run_path:
        dataset, described = benchmark_dataset(args.dataset, args.root)
        print(f"run path on {described}", flush=True)
    data = synthetic_episodes(num_episodes=TABLE_EPISODES)
    rows: list[dict[str, Any]] = []
    for loss in LOSSES:
        config = stage(loss, args.batch_size, window)
        runs = [("python loop", 1, time_loop(config, data, args.steps))]
        runs += [
            ("jit(vmap(scan))", n, time_scan(config, data, n, args.steps)) for n in SEED_COUNTS
        ]
        flops = flops_per_update(config, data.flat_observations.shape[0])
        for mode, seeds, timing in runs:
            timing["gflops"] = timing["updates_per_s"] * flops / 1e9
            rows.append({"loss": loss, "mode": mode, "seeds": seeds, **timing})
            print(
                f"{loss:14s} {mode:16s} seeds={seeds}  {timing['updates_per_s']:8,.0f} updates/s"
                f"  compile {timing['compile_s']:.1f}s",
                flush=True,
            )
    run_rows: list[dict[str, Any]] = []
    if dataset is not None:
        for num_seeds in RUN_SEED_COUNTS:
            for row in time_run_path(dataset, num_seeds, args.run_chunk, args.run_repeats):
                print(
                    f"{row['method']:6s} seeds={num_seeds} {summary(row['run_path'])}", flush=True
                )
                run_rows.append(row)
    print(json.dumps(info))
    if not args.no_write:
        report = {
            "machine": info,
            "command": "python " + " ".join(["benchmarks/train_throughput.py", *sys.argv[1:]]),
            "setup": {
                "batch_size": args.batch_size,
                "window": window,
                "steps": args.steps,
                "repeats": REPEATS,
                "num_episodes": TABLE_EPISODES,
                "data_steps": int(np.asarray(data.lengths).sum()),
                "max_length": MAX_LEN,
                "observation_dim": OBS_DIM,
                "action_dim": ACT_DIM,
                "hidden_dims": list(HIDDEN_DIMS),
                "jax_corl_anchor_updates_per_s": JAX_CORL_ANCHOR,
            },
            "results": rows,
            "run_path_setup": {
                "dataset": described,
                "run_chunk": args.run_chunk,
                "run_repeats": args.run_repeats,
            },
            "run_path": run_rows,
        }
        write_report(report)


if __name__ == "__main__":
    main()
