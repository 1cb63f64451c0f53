"""The path users train through, timed beside the kernel: shared by the ``*_throughput`` scripts.

``iwbc run`` and ``iwbc bench`` train through a benchmark unit (:mod:`iwbc.bench.units`): it
prepares the data and creates the seed-stacked agent once (reading its checkpoint if there is
one), then trains it on in memory to each evaluation step in jitted chunks
(:func:`iwbc.core.trainer.run_chunk`), with a host sync, a finiteness check and a checkpoint
write after each, and hands back the agent. The kernel columns time only the compiled chunk.
:func:`compare` times both on the same data in the same process, alternately, so that the other
load of a shared machine hits both alike, and reports the first (compiling) call apart:
compilation happens once per process and program, not once per chunk.

Run alone, it times the call of issue #17 (results/perf/run_path.md):

    python benchmarks/run_path.py --root data/minari --algorithm td3_bc --seeds 3 --steps 2000
"""

from __future__ import annotations

import atexit
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from iwbc.data import OfflineDataset, load_dataset
from iwbc.data.minari_write import dataset_exists
from iwbc.data.scripted import DEFAULT_DATASET_ID, generate_mixed_dataset

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATASET = "iwbc/hopper/medium-replay-v0"
# Where `iwbc data generate ... --root data/minari` (iwbc/suites/quick.toml) writes.
DEFAULT_ROOT = REPO / "data" / "minari"
FALLBACK_EPISODES = 100
# Tracing, lowering and XLA compilation, as JAX reports them (jax.monitoring).
COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


class _CompileClock:
    """Seconds JAX has spent compiling in this process."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self, event: str, duration: float, **_: Any) -> None:
        if event in COMPILE_EVENTS:
            self.seconds += duration


COMPILE_CLOCK = _CompileClock()
jax.monitoring.register_event_duration_secs_listener(COMPILE_CLOCK)


def add_dataset_arguments(parser: Any) -> None:
    parser.add_argument("--dataset", default=DEFAULT_DATASET, help="dataset the run path trains on")
    parser.add_argument(
        "--root",
        default=str(DEFAULT_ROOT),
        help="local Minari root holding --dataset; without it a small InvertedDoublePendulum "
        "dataset is generated for the run (iwbc.data.scripted)",
    )
    parser.add_argument(
        "--no-run-path", action="store_true", help="time the kernel only (no dataset needed)"
    )


def benchmark_dataset(dataset_id: str, root: str | Path) -> tuple[OfflineDataset, str]:
    """``dataset_id`` from ``root``, or, where it is missing (a fresh clone), a small scripted
    dataset generated into a temporary root; with a line saying which it is."""
    if dataset_exists(dataset_id, root):
        dataset = load_dataset(dataset_id, root=root)
        origin = f"`{dataset_id}` from `{root}`"
    else:
        generated = tempfile.mkdtemp(prefix="iwbc-bench-data-")
        atexit.register(shutil.rmtree, generated, ignore_errors=True)
        generate_mixed_dataset(DEFAULT_DATASET_ID, num_episodes=FALLBACK_EPISODES, root=generated)
        dataset = load_dataset(DEFAULT_DATASET_ID, root=generated)
        origin = (
            f"`{DEFAULT_DATASET_ID}` ({FALLBACK_EPISODES} episodes generated for this run by "
            f"iwbc.data.scripted, because `{dataset_id}` is not under `{root}`)"
        )
    description = (
        f"{origin}: {dataset.num_episodes} episodes, {dataset.num_steps:,} steps, "
        f"{dataset.observation_dim}-dim observations, {dataset.action_dim}-dim actions"
    )
    return dataset, description


def timed(run: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, seconds of it spent compiling) of ``run()``, its outputs waited for."""
    compiled_before = COMPILE_CLOCK.seconds
    start = time.perf_counter()
    jax.block_until_ready(run())
    return time.perf_counter() - start, COMPILE_CLOCK.seconds - compiled_before


def compare(
    run: Callable[[], Any], make_kernel: Callable[[], Callable[[], Any]], repeats: int
) -> dict[str, Any]:
    """Time ``run`` (the user's path) against the kernel on the same work.

    ``run`` goes first, alone, so its compilations are its own (the kernel reuses the programs it
    compiled; ``make_kernel`` builds the kernel's inputs after it). Then kernel and run path
    alternate ``repeats`` times, and the seconds either spent compiling in those timed runs are
    kept too (0 unless something recompiles). See :func:`measures` for what is made of them.
    """
    first_s, first_compile_s = timed(run)
    kernel = make_kernel()
    jax.block_until_ready(kernel())  # the kernel's inputs (and anything they compile) are ready
    kernel_s, run_s, kernel_compile_s, run_compile_s = [], [], 0.0, 0.0
    for _ in range(repeats):
        seconds, compiling = timed(kernel)
        kernel_s.append(seconds)
        kernel_compile_s += compiling
        seconds, compiling = timed(run)
        run_s.append(seconds)
        run_compile_s += compiling
    return {
        "first_run_s": first_s,
        "first_run_compile_s": first_compile_s,
        "kernel_all_s": kernel_s,
        "run_all_s": run_s,
        "timed_kernel_compile_s": kernel_compile_s,
        "timed_run_compile_s": run_compile_s,
    }


def measures(run: dict[str, Any]) -> dict[str, float]:
    """Rates (seed-updates/s, all seeds) and the ratio from :func:`compare`'s timings.

    ``ratio`` is the median over the alternating (kernel, run path) pairs of kernel seconds ÷
    run-path seconds: each pair ran back to back, so drifting load from other processes hits
    both alike. The rates are each one's median run. Best-of-each (also given) pairs moments
    that may be minutes apart: one kernel run in a dip of the load then sets the ratio alone.
    """
    kernel, path = run["kernel_all_s"], run["run_all_s"]
    work = run["seed_updates"]
    return {
        "kernel_updates_per_s": work / statistics.median(kernel),
        "run_updates_per_s": work / statistics.median(path),
        "ratio": statistics.median(k / r for k, r in zip(kernel, path, strict=True)),
        "kernel_best_updates_per_s": work / min(kernel),
        "run_best_updates_per_s": work / min(path),
    }


# How the run-path columns are measured, for the reports.
PAIRS_TEXT = (
    "Kernel and run path alternate, {pairs} runs each, in one process; the rates are each one's "
    "median run, and\n`run path ÷ kernel` is the median over the back-to-back (kernel, run "
    "path) pairs of their seconds' ratio, so\nthat load drifting on a shared machine hits both "
    "alike (the JSON also has best-of-each rates)."
)

RUN_PATH_COLUMNS = (
    "| kernel, dataset | run path, dataset | run path ÷ kernel | run path, per seed "
    "| first run s (compiling) |"
)


def figure(rate: float) -> str:
    """A rate as the tables print it: whole numbers, one decimal below 10."""
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.1f}"


def run_path_cells(row: dict[str, Any]) -> str:
    """The run-path columns of a table row (rates in seed-updates/s, all seeds)."""
    run = row["run_path"]
    rate = measures(run)
    return (
        f"| {figure(rate['kernel_updates_per_s'])} | {figure(rate['run_updates_per_s'])} "
        f"| {rate['ratio']:.2f}x | {figure(rate['run_updates_per_s'] / row['seeds'])} "
        f"| {run['first_run_s']:.1f} ({run['first_run_compile_s']:.1f}) |"
    )


def rates(timing: dict[str, Any], seed_updates: int) -> dict[str, Any]:
    """``timing`` with its work (seed-updates of one timed run) and :func:`measures`."""
    timing = {**timing, "seed_updates": seed_updates}
    return {**timing, **measures(timing)}


def summary(run: dict[str, Any]) -> str:
    """One printed line of a run-path measurement."""
    rate = measures(run)
    best = rate["run_best_updates_per_s"] / rate["kernel_best_updates_per_s"]
    return (
        f"chunk {run['chunk']}: kernel {rate['kernel_updates_per_s']:6.0f}, run path "
        f"{rate['run_updates_per_s']:6.0f} seed-updates/s ({rate['ratio']:.2f}x, median of "
        f"pairs; best of each {best:.2f}x), first run {run['first_run_s']:.1f} s "
        f"({run['first_run_compile_s']:.1f} compiling)"
    )


def main() -> None:
    """The issue's call, timed: ``train_methods`` straight to ``--steps`` (chunks of 1000, no
    checkpoint), once cold and once warm, then its kernel from one start state; prints the
    compile share of the cold call."""
    import argparse
    import dataclasses
    import os

    import jax.numpy as jnp

    from iwbc.agents.registry import (
        BASELINES,
        METHODS,
        SelectionConfig,
        train_methods,
        training_data,
    )
    from iwbc.core.trainer import create_agents, run_chunk

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--algorithm", default="td3_bc", choices=BASELINES)
    parser.add_argument("--steps", type=int, default=2000, help="a multiple of 1000")
    parser.add_argument("--seeds", type=int, default=3)
    add_dataset_arguments(parser)
    args = parser.parse_args()
    dataset, described = benchmark_dataset(args.dataset, args.root)
    method = METHODS[args.algorithm]
    config = dataclasses.replace(method.config(), steps=args.steps)
    seeds = list(range(args.seeds))
    work = args.seeds * args.steps
    print(f"{args.algorithm}, {args.seeds} seeds x {args.steps} updates on {described}")
    print(f"load average {os.getloadavg()}")

    def run() -> Any:
        trained = train_methods(
            dataset,
            [args.algorithm],
            seeds,
            {args.algorithm: config},
            chunk_size=1000,
            progress=False,
        )
        return trained[args.algorithm].agent

    cold, compiling = timed(run)
    print(
        f"first call: {cold:.1f} s, {compiling:.1f} s of it compiling ({compiling / cold:.0%}); "
        f"{work / (cold - compiling):.0f} seed-updates/s outside compilation"
    )
    warm, _ = timed(run)
    print(f"second call: {warm:.1f} s; {work / warm:.0f} seed-updates/s")
    prepared = training_data(method, dataset, config, SelectionConfig())
    agent = create_agents(method.agent, config, prepared.spec, seeds)
    data = prepared.data
    kernel, _ = timed(
        lambda: [
            run_chunk(agent, data, jnp.asarray(start), 1000) for start in range(0, args.steps, 1000)
        ]
    )
    print(
        f"kernel, {args.steps // 1000} chunks from one start state: {kernel:.1f} s; "
        f"{work / kernel:.0f} seed-updates/s; second call ÷ kernel {kernel / warm:.2f}x"
    )
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
