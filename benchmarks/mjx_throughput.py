"""Env-steps/s of the MJX engine vs the CPU batch engine, policy in the loop.

Both sides run the same fixed random-weight JAX tanh MLP (3 hidden layers of 256,
float32). MJX runs it inside its compiled rollout (``mjx_rollout_returns``, one
``while_loop`` of ``scan`` chunks, no host round trip per step); the batch engine calls
the jitted MLP from its host loop once per step, as ``rollout_returns`` does. The task
defaults to HalfCheetah-v5, which never terminates, so every env-step counted is one
simulated. Compile time is that of a first call cut to one 25-step scan chunk (the
horizon is traced, so later calls reuse the compilation). Last, the time of a whole
evaluation (100 episodes of 1000 steps; 16 by default on CPU) after compilation, on
both engines.

MJX is built for accelerators: on CPU it is expected to be far slower than MuJoCo's C
engine. Its CPU compile takes a minute or more per batch size, so the CPU default sizes
are capped at (1, 64) and the evaluation at 16 episodes; the GPU defaults are
``--num-envs 1 64 1024 4096 --steps 1000 --episodes 100``.

    python benchmarks/mjx_throughput.py
    python benchmarks/mjx_throughput.py --num-envs 1 64 1024 4096 --steps 1000
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from iwbc.envs import BatchEngine, get_spec, rollout_returns
from iwbc.envs.mjx_engine import mjx_rollout_returns
from iwbc.machine import machine_record

DEFAULT_ENV_ID = "HalfCheetah-v5"
GPU_NUM_ENVS = (1, 64, 1024, 4096)
CPU_NUM_ENVS = (1, 64)
RESULTS = Path(__file__).resolve().parent.parent / "results" / "perf"


def mlp_params(obs_dim: int, act_dim: int, seed: int = 0, hidden: int = 256) -> list[Any]:
    """Random fixed weights of obs -> 3 x 256 tanh -> action."""
    rng = np.random.default_rng(seed)
    sizes = [obs_dim, hidden, hidden, hidden, act_dim]
    return [
        (
            jnp.asarray((rng.standard_normal((m, k)) / np.sqrt(m)).astype(np.float32)),
            jnp.zeros(k, jnp.float32),
        )
        for m, k in itertools.pairwise(sizes)
    ]


def mlp(params: list[Any], obs: jax.Array) -> jax.Array:
    """The policy: tanh layers, tanh output in [-1, 1]."""
    x = obs.astype(jnp.float32)
    for w, b in params:
        x = jnp.tanh(x @ w + b)
    return x


def compile_mjx(env_id: str, params: list[Any], seeds: np.ndarray) -> float:
    """Seconds of a first call truncated to one scan chunk: compilation, mostly.

    The horizon is a traced argument, so the full-length calls after it reuse the
    compiled rollout.
    """
    start = time.perf_counter()
    mjx_rollout_returns(env_id, mlp, params, seeds, max_steps=1)
    return time.perf_counter() - start


def run_mjx(env_id: str, params: list[Any], num_envs: int, steps: int) -> dict[str, float]:
    """Compile seconds and env-steps/s of one ``steps``-step rollout of ``num_envs`` envs."""
    seeds = np.arange(num_envs)
    compile_s = compile_mjx(env_id, params, seeds)
    start = time.perf_counter()
    result = mjx_rollout_returns(env_id, mlp, params, seeds, max_steps=steps)
    run = time.perf_counter() - start
    return {"compile_s": compile_s, "rate": float(result.lengths.sum()) / run}


def run_batch(env_id: str, params: list[Any], num_envs: int, steps: int) -> dict[str, float]:
    """Env-steps/s of the batch engine's host loop with the jitted policy."""
    engine = BatchEngine(get_spec(env_id), num_envs)
    policy = jax.jit(mlp)
    obs = engine.reset(np.arange(num_envs))
    np.asarray(policy(params, obs.astype(np.float32)))
    start = time.perf_counter()
    for _ in range(steps):
        actions = np.asarray(policy(params, obs.astype(np.float32)))
        obs = engine.step(actions).obs
    return {"rate": num_envs * steps / (time.perf_counter() - start)}


def run_evaluation(env_id: str, params: list[Any], episodes: int) -> dict[str, float]:
    """Seconds for ``episodes`` full episodes on each engine, after compilation."""
    seeds = np.arange(episodes)
    compile_s = compile_mjx(env_id, params, seeds)
    start = time.perf_counter()
    mjx_result = mjx_rollout_returns(env_id, mlp, params, seeds)
    mjx_s = time.perf_counter() - start
    policy = jax.jit(mlp)
    np.asarray(policy(params, np.zeros((episodes, get_spec(env_id).obs_dim), np.float32)))
    start = time.perf_counter()
    cpu_result = rollout_returns(
        env_id, lambda obs: np.asarray(policy(params, obs)), seeds, engine="batch"
    )
    batch_s = time.perf_counter() - start
    return {
        "episodes": episodes,
        "env_steps": int(mjx_result.lengths.sum()),
        "mjx_s": mjx_s,
        "mjx_compile_s": compile_s,
        "batch_s": batch_s,
        "mjx_mean_return": float(mjx_result.returns.mean()),
        "batch_mean_return": float(cpu_result.returns.mean()),
    }


def machine() -> str:
    """CPU, cores, JAX backend and devices, load, versions: what the figures depend on."""
    packages = ("jax", "jaxlib", "mujoco", "mujoco-mjx", "numpy")
    info = machine_record(packages)
    versions = ", ".join(f"{name} {info[name]}" for name in packages)
    return (
        f"{info['cpu']}, {info['logical_cores']} logical cores (load average {info['loadavg']} "
        f"at the start); JAX backend {jax.default_backend()} "
        f"({', '.join(str(d) for d in jax.devices())}); Python {info['python']}, {versions}."
    )


def markdown(report: dict[str, Any], command: str) -> str:
    """The results table with its context."""
    gpu = report["backend"] == "gpu"
    lines = [
        "# MJX throughput: MJX engine vs CPU batch engine",
        "",
        f"Task {report['env_id']} (never terminates: every counted env-step is simulated), "
        "same fixed random-weight JAX tanh MLP (3 x 256, float32) on both sides. MJX runs "
        "it inside its compiled rollout; the batch engine calls the jitted MLP from its "
        f"host loop each step. {report['steps']} env steps per env per measurement; "
        "compile = a first call cut to one 25-step chunk (the horizon is traced, so the "
        "timed calls reuse that compilation).",
        "",
        f"Regenerate: `{command}`",
        "",
        f"Machine: {report['machine']}",
        "",
    ]
    if not gpu:
        lines += [
            "**No GPU on this machine.** These are CPU figures: MJX on CPU is XLA-compiled "
            "JAX physics and is expected to lose to MuJoCo's C engine; batch sizes are "
            "capped (each MJX size compiles for 1 min or more on 2 CPU cores) and so is the "
            "evaluation's episode count. The issue's goal, "
            "at least 1M env-steps/s on an H100 at 4096+ envs, is not measured here; run "
            "`python benchmarks/mjx_throughput.py --num-envs 1 64 1024 4096 --steps 1000 "
            "--episodes 100` "
            "on a GPU machine (also the GPU defaults of the script).",
            "",
        ]
    lines += [
        "| num_envs | MJX env-steps/s | batch env-steps/s | MJX ÷ batch | MJX compile s |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        lines.append(
            f"| {row['num_envs']} | {row['mjx']['rate']:,.0f} | {row['batch']['rate']:,.0f} | "
            f"{row['mjx']['rate'] / row['batch']['rate']:.2f}x | "
            f"{row['mjx']['compile_s']:.1f} |"
        )
    ev = report["evaluation"]
    lines += [
        "",
        f"Whole evaluation, {ev['episodes']} episodes ({ev['env_steps']:,} env-steps), "
        "after compilation:",
        "",
        "| engine | seconds | mean return |",
        "|---|---:|---:|",
        f"| MJX (one call, {ev['episodes']} envs; compile {ev['mjx_compile_s']:.1f} s) | "
        f"{ev['mjx_s']:.2f} | {ev['mjx_mean_return']:.2f} |",
        f"| batch (`rollout_returns`, up to 128 envs) | {ev['batch_s']:.2f} | "
        f"{ev['batch_mean_return']:.2f} |",
        "",
        "The policy has random weights, not trained ones: the time of an evaluation "
        "depends on the network's size and the episodes' lengths, not on its weights, "
        "and HalfCheetah episodes always run 1000 steps. The mean returns differ: "
        "with ground contacts, MJX (float32) and MuJoCo's C engine (float64) trajectories "
        "part within a few steps, so the engines agree only in distribution, over many "
        "episodes (see tests/test_envs_mjx.py).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    gpu = jax.default_backend() == "gpu"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default=DEFAULT_ENV_ID)
    parser.add_argument(
        "--num-envs", type=int, nargs="+", default=list(GPU_NUM_ENVS if gpu else CPU_NUM_ENVS)
    )
    parser.add_argument("--steps", type=int, default=1000 if gpu else 100)
    parser.add_argument("--episodes", type=int, default=100 if gpu else 16)
    parser.add_argument("--out", type=Path, default=RESULTS / "mjx_throughput")
    args = parser.parse_args(argv)
    spec = get_spec(args.env_id)
    params = mlp_params(spec.obs_dim, spec.action_bounds()[0].size)
    report: dict[str, Any] = {
        "env_id": args.env_id,
        "steps": args.steps,
        "backend": jax.default_backend(),
        "machine": machine(),
        "rows": [],
    }
    for n in args.num_envs:
        row = {
            "num_envs": n,
            "mjx": run_mjx(args.env_id, params, n, args.steps),
            "batch": run_batch(args.env_id, params, n, args.steps),
        }
        report["rows"].append(row)
        print(json.dumps(row), flush=True)
    report["evaluation"] = run_evaluation(args.env_id, params, args.episodes)
    print(json.dumps(report["evaluation"]), flush=True)
    command = "python benchmarks/mjx_throughput.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(report, command))


if __name__ == "__main__":
    main()
