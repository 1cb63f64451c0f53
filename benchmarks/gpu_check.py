"""GPU readiness check: every GPU figure the README needs, measured by one command in < 8 min.

    python benchmarks/gpu_check.py --out DIR            # on a GPU machine
    python benchmarks/gpu_check.py --out DIR --smoke    # the same code at tiny sizes, CPU JAX

Parts, run one after another, each in its own process with a wall-time cap (a part that
reaches its cap is killed, or stops itself before a measurement that would not fit, and is
marked "cut"; what it measured before stays):

- ``pytest_gpu``: ``pytest -m gpu tests/test_envs_mjx.py`` (MJX vs MuJoCo statistical parity on
  Hopper, Walker2d, HalfCheetah and Ant, 256 episodes each).
- ``mjx_eval``: env-steps/s of MJX evaluation with the policy in the loop (Hopper with
  auto-reset, HalfCheetah) at 1k/4k/16k/64k envs, compile time, device memory, and the CPU
  batch engine beside it (``benchmarks/mjx_throughput.py``'s ``run_mjx`` / ``run_batch``).
- ``training``: BC and iw-BC updates/s at the paper's batches (128 / 256 whole episodes of up to
  1,000 steps) for 1 and 5 vmapped seeds, and achieved TFLOP/s of the MLP's matrix products
  (``benchmarks/train_throughput.py``'s ``time_scan`` / ``flops_per_update``).
- ``paper_cell``: one (dataset, method) cell of the ``paper`` suite end to end through the
  benchmark runner (BC 10k + iw-BC 2k steps, 5 seeds, evaluation every 500 steps on MJX, 100
  episodes at the end) on a synthetic HalfCheetah dataset written and read as a local Minari
  dataset.
- ``baselines``: updates/s of TD3+BC, IQL, CQL and AWAC at 5 vmapped seeds
  (``benchmarks/algo_throughput.py``'s ``time_chunk``), for the suite estimate.

Last, the whole ``paper`` suite's time is extrapolated from those figures. ``DIR/gpu_check.json``
and ``DIR/gpu_check.md`` are rewritten after every measured row, so a kill keeps what was
done; ``DIR/gpu_check.pytest.log`` holds pytest's output.

The GPU machine lacks mujoco, mujoco-mjx, gymnasium and minari: ``make gpu-wheels`` downloads
them into ``.whl/`` and the device command (README, "GPU") installs them offline first. If they
are still missing when this script starts and ``.whl/`` exists, it runs that same install into
/tmp/site itself. ``--smoke`` runs every part at tiny sizes on CPU JAX (HalfCheetah's MJX rollout,
InvertedDoublePendulum's paper cell, a few envs and steps) in about a minute; CI runs it
(tests/test_gpu_check.py).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import importlib.util
import itertools
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
for _path in (str(ROOT), str(BENCHMARKS)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

WHEELS = ROOT / ".whl"
SITE = Path("/tmp/site")
NEEDED_MODULES = ("mujoco", "mujoco.mjx", "gymnasium", "minari")
JSON_NAME, MD_NAME, PYTEST_LOG = "gpu_check.json", "gpu_check.md", "gpu_check.pytest.log"
SCHEMA = "iwbc.gpu_check/1"
VERSIONED = (
    "jax",
    "jaxlib",
    "jax-cuda13-plugin",
    "jax-cuda12-plugin",
    "flax",
    "optax",
    "numpy",
    "mujoco",
    "mujoco-mjx",
    "gymnasium",
    "minari",
    "h5py",
    "pytest",
)
OPTIONAL_PACKAGES = ("jax-cuda13-plugin", "jax-cuda12-plugin")
BUDGET_S = 470.0
"""The whole run's wall-time budget: under 8 minutes, the parts' caps below fit inside it."""
KILL_GRACE_S = 5.0


@dataclasses.dataclass(frozen=True)
class Part:
    name: str
    title: str
    cap_s: float  # on the GPU
    smoke_cap_s: float  # with --smoke on a loaded 2-core CPU


PARTS = (
    Part("pytest_gpu", "pytest -m gpu: MJX parity on the GPU", 85, 60),
    Part("mjx_eval", "MJX evaluation throughput, policy in the loop", 130, 90),
    Part("training", "BC / iw-BC training throughput at the paper's batches", 75, 60),
    Part("paper_cell", "One paper-protocol cell end to end", 110, 60),
    Part("baselines", "Offline-RL baselines' updates/s (for the suite estimate)", 55, 40),
)
PART_NAMES = tuple(p.name for p in PARTS)

# --- sizes: (GPU, smoke) -------------------------------------------------------------------
MJX_TASKS = ("Hopper-v5", "HalfCheetah-v5")
SMOKE_MJX_TASKS = ("HalfCheetah-v5",)
"""One of the GPU run's tasks, and the quickest MJX rollout to compile on CPU (12 s; 35 s for
InvertedDoublePendulum, whose reset observation needs ``forward``)."""
MJX_NUM_ENVS = (4096, 65536, 16384, 1024)
"""Most telling first: a part cut at its cap keeps those (each size compiles anew)."""
SMOKE_MJX_NUM_ENVS = (4,)
MJX_MAX_ENV_STEPS = 2_000_000
"""Env steps per MJX measurement (1k envs x 1000 steps, 4k x 500, 16k x 125, 64k x 25)."""
SMOKE_MJX_MAX_ENV_STEPS = 100
BATCH_MAX_ENV_STEPS = 400_000
"""Env steps per batch-engine measurement, at least 2 steps per env."""
SMOKE_BATCH_MAX_ENV_STEPS = 100
EPISODE_FLOOR = {"Hopper-v5": 10, "HalfCheetah-v5": 1000}
"""Shortest episode of the fixed random MLP (Hopper falls after 10 steps; HalfCheetah always
runs 1000): how many reset seeds ``run_mjx`` draws on the host per env."""

TRAIN_CONFIGS = (  # (loss, episodes a batch, seeds, matmul precision)
    ("bc", 128, 1, "default"),
    ("bc", 128, 5, "default"),
    ("iw_trajectory", 256, 1, "default"),
    ("iw_trajectory", 256, 5, "default"),
    ("bc", 128, 5, "highest"),
    ("iw_trajectory", 256, 5, "highest"),
    ("bc", 128, 5, "BF16_BF16_F32"),
    ("iw_trajectory", 256, 5, "BF16_BF16_F32"),
)
SMOKE_TRAIN_CONFIGS = (
    ("bc", 2, 1, "default"),
    ("iw_trajectory", 2, 2, "BF16_BF16_F32"),
)
TRAIN_STEPS, SMOKE_TRAIN_STEPS = 20, 2

CELL_ENV, SMOKE_CELL_ENV = "HalfCheetah-v5", "InvertedDoublePendulum-v5"
CELL_EPISODES, SMOKE_CELL_EPISODES = 200, 12
CELL_METHODS = ("bc", "iw_bc")

BASELINES = ("td3_bc", "iql", "cql", "awac")
SMOKE_BASELINES = ("td3_bc",)
BASELINE_SEEDS, SMOKE_BASELINE_SEEDS = 5, 2
BASELINE_STEPS, SMOKE_BASELINE_STEPS = 1000, 2

SMOKE_ENV = {
    "JAX_PLATFORMS": "cpu",
    # XLA:CPU compiles MJX's step about a third faster with these; smoke only times nothing.
    "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
    "XLA_FLAGS": "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
}


# --- the report: one JSON file, its markdown rendered from it ------------------------------


def load(out: Path) -> dict[str, Any]:
    return json.loads((out / JSON_NAME).read_text())


def save(out: Path, report: dict[str, Any]) -> None:
    """Rewrite both files atomically: a kill leaves the previous complete version."""
    from iwbc.files import write_atomic

    write_atomic(out / JSON_NAME, (json.dumps(report, indent=1) + "\n").encode())
    write_atomic(out / MD_NAME, markdown(report).encode())


def update(out: Path, change: Callable[[dict[str, Any]], None]) -> None:
    report = load(out)
    change(report)
    save(out, report)


def add_row(out: Path, part: str, row: dict[str, Any]) -> None:
    update(out, lambda r: r["parts"][part]["rows"].append(row))
    print(f"[{part}] {json.dumps(row, default=str)}", flush=True)


def set_part(out: Path, part: str, **fields: Any) -> None:
    update(out, lambda r: r["parts"][part].update(fields))


# --- parent: wheels, machine, parts as capped subprocesses, estimate -----------------------


def missing_modules() -> list[str]:
    missing = []
    for name in NEEDED_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:
            found = False
        if not found:
            missing.append(name)
    return missing


def ensure_wheels() -> str:
    """Install ``.whl/`` into /tmp/site (README.md of the device tool) if modules are missing."""
    missing = missing_modules()
    if not missing:
        return "all needed modules importable"
    wheels = sorted(str(p) for p in WHEELS.glob("*.whl"))
    if not wheels:
        return f"missing {', '.join(missing)} and no .whl/ to install from (make gpu-wheels)"
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
    command += ["--no-compile", "--no-cache-dir", "--upgrade", "--target", str(SITE), *wheels]
    subprocess.run(command, check=True)
    sys.path.insert(0, str(SITE))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(SITE), os.environ.get("PYTHONPATH")) if p
    )
    importlib.invalidate_caches()
    return f"installed {len(wheels)} wheels from .whl/ into {SITE} (missing: {', '.join(missing)})"


def nvidia_smi() -> str | None:
    query = "--query-gpu=name,driver_version,memory.total"
    try:
        done = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def machine() -> dict[str, Any]:
    """CPU, cores, load and versions (``machine_record``), the GPU as nvidia-smi sees it."""
    from iwbc.machine import machine_record

    record = machine_record(VERSIONED)
    record["missing_packages"] = [
        name for name in VERSIONED if record[name] is None and name not in OPTIONAL_PACKAGES
    ]
    record["nvidia_smi"] = nvidia_smi()
    record["git_commit"] = git_commit()
    return record


def child_env(smoke: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    if smoke:
        env.update(SMOKE_ENV)
    return env


def run_capped(
    command: list[str], cap: float, env: dict[str, str], log: Path | None = None
) -> tuple[int | None, float]:
    """Run ``command`` in its own process group; kill the group at ``cap`` s. (rc or None, s)."""
    start = time.monotonic()
    with contextlib.ExitStack() as stack:
        stdout = stack.enter_context(log.open("w")) if log is not None else None
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is not None else None,
            start_new_session=True,
        )
        try:
            rc: int | None = proc.wait(timeout=max(cap, 1.0))
        except subprocess.TimeoutExpired:
            rc = None
            for sig, wait in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
    return rc, time.monotonic() - start


def children(part: str, smoke: bool) -> list[list[str]]:
    """Extra arguments of each child process of a part (one per MJX task, else one)."""
    if part == "mjx_eval":
        return [["--task", task] for task in (SMOKE_MJX_TASKS if smoke else MJX_TASKS)]
    return [[]]


def run_part(out: Path, part: Part, cap: float, smoke: bool) -> None:
    """Run the part's processes within ``cap`` seconds and record how each ended."""
    set_part(out, part.name, status="running", cap_s=round(cap, 1))
    env = child_env(smoke)
    start = time.monotonic()
    outcomes = []
    if part.name == "pytest_gpu":
        outcomes.append(run_pytest(out, cap, env))
    else:
        pending = children(part.name, smoke)
        for index, extra in enumerate(pending):
            left = cap - (time.monotonic() - start)
            share = left / (len(pending) - index)  # time a child leaves unused flows on
            if share < 5:
                outcomes.append({"args": extra, "outcome": "skipped: no time left in the cap"})
                continue
            deadline = time.time() + share - KILL_GRACE_S - 1
            command = [sys.executable, str(Path(__file__).resolve()), "--child", part.name]
            command += ["--out", str(out), "--deadline", f"{deadline:.1f}", *extra]
            command += ["--smoke"] if smoke else []
            rc, wall = run_capped(command, share, env)
            if rc is None:
                outcome = f"killed at its {share:.0f} s share of the cap"
            elif rc == 0:
                outcome = "done"
            else:
                outcome = f"failed (exit {rc}; its traceback is in the run's output)"
            outcomes.append({"args": extra, "outcome": outcome, "wall_s": round(wall, 1)})
    wall = time.monotonic() - start
    report = load(out)
    entry = report["parts"][part.name]
    if any(o["outcome"].startswith("failed") for o in outcomes):
        status = "failed"
    elif entry.get("cut") or any(not o["outcome"].startswith("done") for o in outcomes):
        status = "cut"
    else:
        status = "done"
    entry.update(status=status, wall_s=round(wall, 1), processes=outcomes)
    save(out, report)
    print(f"[{part.name}] {status} in {wall:.0f} s (cap {cap:.0f} s)", flush=True)


def run_pytest(out: Path, cap: float, env: dict[str, str]) -> dict[str, Any]:
    """``pytest -m gpu`` on the MJX tests, its output in gpu_check.pytest.log, parsed."""
    args = ["-m", "pytest", "-m", "gpu", "tests/test_envs_mjx.py", "-v", "-rA"]
    args += ["-p", "no:cacheprovider"]
    log = out / PYTEST_LOG
    rc, wall = run_capped([sys.executable, *args], cap, env, log)
    text = log.read_text(errors="replace") if log.exists() else ""
    tests: dict[str, str] = {}
    for line in text.splitlines():
        for word in ("PASSED", "FAILED", "SKIPPED", "ERROR", "XFAIL", "XPASS"):
            if line.startswith("tests/") and f" {word}" in line:
                tests[line.split(" ")[0]] = word
    summary = next(
        (line.strip("= ") for line in reversed(text.splitlines()) if line.startswith("=")), ""
    )
    row = {
        "command": "python " + shlex.join(args),
        "rc": rc,
        "summary": summary if rc is not None else f"killed at the {cap:.0f} s cap",
        "passed": sum(v == "PASSED" for v in tests.values()),
        "failed": sum(v in ("FAILED", "ERROR") for v in tests.values()),
        "skipped": sum(v == "SKIPPED" for v in tests.values()),
        "tests": tests,
        "wall_s": round(wall, 1),
        "log": PYTEST_LOG,
    }
    if rc not in (0, None):
        row["tail"] = text.splitlines()[-25:]
    add_row(out, "pytest_gpu", row)
    if rc is None:
        return {"args": args, "outcome": f"killed at the {cap:.0f} s cap", "wall_s": row["wall_s"]}
    if rc in (0, 5):  # 5: nothing collected
        return {"args": args, "outcome": "done", "wall_s": row["wall_s"]}
    return {"args": args, "outcome": f"failed (pytest exit {rc})", "wall_s": row["wall_s"]}


def initial_report(args: argparse.Namespace, command: str, wheels: str) -> dict[str, Any]:
    parts = {}
    for part in PARTS:
        chosen = args.parts is None or part.name in args.parts
        parts[part.name] = {
            "title": part.title,
            "status": "pending" if chosen else "skipped",
            "cap_s": part.smoke_cap_s if args.smoke else part.cap_s,
            "rows": [],
        }
        if not chosen:
            parts[part.name]["note"] = "not in --parts"
    return {
        "schema": SCHEMA,
        "command": command,
        "smoke": args.smoke,
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "budget_s": args.budget,
        "wheels": wheels,
        "machine": machine(),
        "parts": parts,
        "suite_estimate": None,
    }


def parent(args: argparse.Namespace, argv: list[str]) -> int:
    start = time.monotonic()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    wheels = ensure_wheels()
    command = "python benchmarks/gpu_check.py " + shlex.join(argv)
    save(out, initial_report(args, command, wheels))
    print(f"gpu_check: writing {out / JSON_NAME} and {out / MD_NAME}; {wheels}", flush=True)
    for part in PARTS:
        if args.parts is not None and part.name not in args.parts:
            continue
        left = args.budget - (time.monotonic() - start)
        cap = min(part.smoke_cap_s if args.smoke else part.cap_s, left)
        if cap < 10:
            set_part(out, part.name, status="skipped", note="the run's budget was spent")
            continue
        run_part(out, part, cap, args.smoke)
    report = load(out)
    # The estimate imports iwbc, whose import runs a jnp op: keep that off the GPU.
    os.environ["JAX_PLATFORMS"] = "cpu"
    try:
        report["suite_estimate"] = suite_estimate(report)
    except Exception as error:  # the estimate must never lose the measured rows
        report["suite_estimate"] = {"error": f"{type(error).__name__}: {error}"}
    report["wall_s"] = round(time.monotonic() - start, 1)
    report["finished_at"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    save(out, report)
    print(markdown(report), flush=True)
    failed = [name for name, p in report["parts"].items() if p["status"] == "failed"]
    return 1 if failed else 0


# --- children: one part (or one MJX task) in a fresh process -------------------------------


@dataclasses.dataclass
class Child:
    out: Path
    part: str
    deadline: float
    smoke: bool

    def row(self, row: dict[str, Any]) -> None:
        add_row(self.out, self.part, row)

    def fits(self, estimate_s: float) -> bool:
        """Whether a measurement of about ``estimate_s`` ends before the soft deadline."""
        return time.time() + estimate_s < self.deadline

    def cut(self, note: str) -> None:
        def change(report: dict[str, Any]) -> None:
            entry = report["parts"][self.part]
            entry["cut"] = True
            entry["note"] = "; ".join(n for n in (entry.get("note"), note) if n)

        update(self.out, change)
        print(f"[{self.part}] cut: {note}", flush=True)


def device_info() -> dict[str, Any]:
    import jax

    device = jax.devices()[0]
    return {
        "backend": jax.default_backend(),
        "device": str(device),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "bytes_limit": device_memory().get("bytes_limit"),
    }


def device_memory() -> dict[str, int]:
    """The allocator's statistics of device 0 (empty on backends that keep none, e.g. CPU)."""
    import jax

    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:
        return {}
    keys = ("bytes_in_use", "peak_bytes_in_use", "bytes_limit")
    return {k: int(stats[k]) for k in keys if k in stats}


def record_device(child: Child) -> None:
    info = device_info()

    def change(report: dict[str, Any]) -> None:
        report["parts"][child.part].setdefault("devices", []).append(info)

    update(child.out, change)


def mjx_program(env_id: str, num_envs: int, steps: int, floor: int) -> dict[str, Any] | None:
    """The arguments ``run_mjx`` passes to the engine's compiled rollout, rebuilt here.

    Drawing the initial states here (the engine caches them by seeds) times that host work
    apart from the compile; the same arguments then fetch the compiled program's memory from
    the jit cache. Uses the engine's private helpers: None if they moved (the draw then counts
    in run_mjx's compile time, as mjx_throughput documents, and memory is the allocator's).
    """
    import numpy as np

    from iwbc.envs import get_spec

    try:
        from iwbc.envs.mjx_engine import DEFAULT_CHUNK, _episode_starts, _slots
    except ImportError:
        return None
    seeds = np.arange(num_envs * (steps // floor + 1), dtype=np.int64)
    start = time.perf_counter()
    spec = get_spec(env_id)
    qpos, qvel = _episode_starts(spec, np.resize(seeds, _slots(seeds.size, num_envs)).tobytes())
    return {
        "host_s": time.perf_counter() - start,
        "qpos": qpos,
        "qvel": qvel,
        "episodes": int(seeds.size),
        "horizon": spec.max_episode_steps,
        "num_envs": num_envs,
        "chunk": DEFAULT_CHUNK,
    }


def program_bytes(
    env_id: str, program: dict[str, Any] | None, act_fn: Any, params: Any
) -> tuple[int | None, float]:
    """(argument + output + temporary bytes of the compiled rollout, seconds to look it up)."""
    if program is None:
        return None, 0.0
    import jax.numpy as jnp

    from iwbc.envs import get_spec

    start = time.perf_counter()
    try:
        from iwbc.envs.mjx_engine import _rollout

        lowered = _rollout.lower(
            get_spec(env_id),
            act_fn,
            params,
            jnp.asarray(program["qpos"]),
            jnp.asarray(program["qvel"]),
            program["episodes"],
            program["horizon"],
            1,
            program["num_envs"],
            program["chunk"],
        )
        stats = lowered.compile().memory_analysis()
        total = stats.argument_size_in_bytes + stats.output_size_in_bytes
        total += stats.temp_size_in_bytes
    except Exception:
        total = None
    return total, time.perf_counter() - start


def child_mjx_eval(child: Child, env_id: str) -> None:
    import mjx_throughput as mt

    from iwbc.envs import get_spec

    spec = get_spec(env_id)
    params = mt.mlp_params(spec.obs_dim, spec.action_bounds()[0].size)
    mt.EPISODE_STEPS_FLOOR = EPISODE_FLOOR.get(env_id, mt.EPISODE_STEPS_FLOOR)
    sizes = SMOKE_MJX_NUM_ENVS if child.smoke else MJX_NUM_ENVS
    max_steps = SMOKE_MJX_MAX_ENV_STEPS if child.smoke else MJX_MAX_ENV_STEPS
    batch_max = SMOKE_BATCH_MAX_ENV_STEPS if child.smoke else BATCH_MAX_ENV_STEPS
    last = 0.0
    lookup = True
    for n in sizes:
        if not child.fits(last):
            child.cut(f"{env_id}: stopped before {n:,} envs (the last size took {last:.0f} s)")
            return
        start = time.perf_counter()
        steps = mt.steps_per_env(n, 1000, max_steps)
        program = mjx_program(env_id, n, steps, mt.EPISODE_STEPS_FLOOR)
        mjx = mt.run_mjx(env_id, params, n, steps)
        memory = device_memory()
        program_total, lookup_s = program_bytes(env_id, program if lookup else None, mt.mlp, params)
        lookup = lookup_s < 5.0  # a cache miss compiles again: never twice
        batch_steps = max(2, min(steps, batch_max // n))
        batch = mt.run_batch(env_id, params, n, batch_steps)
        last = time.perf_counter() - start
        child.row(
            {
                "env_id": env_id,
                "num_envs": n,
                "mjx_steps_per_env": steps,
                "mjx_env_steps_per_s": mjx["rate"],
                "mjx_busy": mjx["busy"],
                "mjx_compile_s": mjx["compile_s"],
                "host_initial_states_s": None if program is None else program["host_s"],
                "program_bytes": program_total,
                "device_peak_bytes": memory.get("peak_bytes_in_use"),
                "batch_steps_per_env": batch_steps,
                "batch_env_steps_per_s": batch["rate"],
                "wall_s": last,
            }
        )


def child_training(child: Child) -> None:
    import jax
    import numpy as np
    import train_throughput as tt

    data = tt.synthetic_episodes()
    set_part(
        child.out,
        child.part,
        data={
            "episodes": tt.NUM_EPISODES,
            "max_length": tt.MAX_LEN,
            "valid_step_fraction": float(
                np.asarray(data.lengths).sum() / (data.num_episodes * data.max_length)
            ),
            "observation_dim": tt.OBS_DIM,
            "action_dim": tt.ACT_DIM,
            "hidden_dims": list(tt.HIDDEN_DIMS),
        },
    )
    configs = SMOKE_TRAIN_CONFIGS if child.smoke else TRAIN_CONFIGS
    steps = SMOKE_TRAIN_STEPS if child.smoke else TRAIN_STEPS
    last = 0.0
    for loss, batch_size, seeds, precision in configs:
        if not child.fits(last):
            child.cut(f"stopped before {loss} x{seeds} seeds, {precision} precision")
            return
        start = time.perf_counter()
        config = tt.stage(loss, batch_size, None)
        scope = (
            contextlib.nullcontext()
            if precision == "default"
            else jax.default_matmul_precision(precision)
        )
        try:
            with scope:
                timing = tt.time_scan(config, data, seeds, steps)
        except Exception as error:  # e.g. a precision this backend refuses
            child.row(
                {
                    "loss": loss,
                    "batch_episodes": batch_size,
                    "seeds": seeds,
                    "precision": precision,
                    "error": f"{type(error).__name__}: {str(error)[:300]}",
                }
            )
            last = time.perf_counter() - start
            continue
        flops = tt.flops_per_update(config, data.flat_observations.shape[0])
        child.row(
            {
                "loss": loss,
                "batch_episodes": batch_size,
                "seeds": seeds,
                "precision": precision,
                "steps_timed": steps,
                "updates_per_s": timing["updates_per_s"],
                "ms_per_step": timing["seconds"] / steps * 1e3,
                "compile_s": timing["compile_s"],
                "flops_per_update": flops,
                "tflops": timing["updates_per_s"] * flops / 1e12,
                "device_peak_bytes": device_memory().get("peak_bytes_in_use"),
            }
        )
        last = time.perf_counter() - start


def synthetic_buffers(env_id: str, num_episodes: int, smoke: bool) -> list[Any]:
    """Random episodes shaped like ``env_id``'s, returns spread so the percentiles select."""
    import numpy as np
    from minari.data_collector import EpisodeBuffer

    from iwbc.envs import get_spec

    spec = get_spec(env_id)
    act_dim = int(spec.action_bounds()[0].size)
    rng = np.random.default_rng(0)
    buffers = []
    for i in range(num_episodes):
        # HalfCheetah never terminates: every episode runs to the 1000-step limit.
        length = int(rng.integers(20, 60)) if smoke else spec.max_episode_steps
        ends = np.zeros(length, bool)
        ends[-1] = True
        buffers.append(
            EpisodeBuffer(
                id=i,
                observations=rng.standard_normal((length + 1, spec.obs_dim)).astype(np.float32),
                actions=rng.uniform(-0.99, 0.99, (length, act_dim)).astype(np.float32),
                rewards=rng.normal(rng.uniform(-1.0, 5.0), 1.0, length),
                terminations=np.zeros(length, bool),
                truncations=ends,
            )
        )
    return buffers


def cell_suite(dataset_id: str, smoke: bool) -> Any:
    """The ``paper`` suite cut to one dataset and BC + iw-BC (``--smoke``: tiny budgets)."""
    from iwbc.bench.suites import load_suite

    suite = load_suite("paper")
    suite = dataclasses.replace(
        suite, name="gpu_check", datasets=(dataset_id,), methods=CELL_METHODS, scripted=()
    )
    if not smoke:
        return suite
    pipeline = suite.pipeline
    pipeline = dataclasses.replace(
        pipeline,
        pretrain=dataclasses.replace(pipeline.pretrain, steps=4, batch_size=2),
        finetune=dataclasses.replace(pipeline.finetune, steps=2, batch_size=2, warmup_steps=1),
        chunk_size=2,
        eval_every=2,
    )
    return dataclasses.replace(
        suite, seeds=(0, 1), eval_episodes=2, final_eval_episodes=3, pipeline=pipeline
    )


def child_paper_cell(child: Child) -> None:
    env_id = SMOKE_CELL_ENV if child.smoke else CELL_ENV
    num_episodes = SMOKE_CELL_EPISODES if child.smoke else CELL_EPISODES
    dataset_id = f"gpucheck/{env_id.split('-')[0].lower()}/synthetic-v0"
    with tempfile.TemporaryDirectory(prefix="iwbc_gpu_check_") as work:
        cell(child, env_id, num_episodes, dataset_id, Path(work))


def cell(child: Child, env_id: str, num_episodes: int, dataset_id: str, work: Path) -> None:
    from iwbc.bench.units import UnitContext, WorkUnit, run_unit
    from iwbc.data import load_dataset
    from iwbc.data.minari_write import write_dataset
    from iwbc.envs.evaluate import evaluate_agent

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="minari")
        write_dataset(
            dataset_id,
            synthetic_buffers(env_id, num_episodes, child.smoke),
            env_id=env_id,
            ref_min_score=0.0,
            ref_max_score=1000.0,
            description="iwbc gpu_check: random synthetic episodes (timing only)",
            algorithm_name="synthetic",
            root=work / "minari",
        )
    dataset = load_dataset(dataset_id, root=work / "minari")
    suite = cell_suite(dataset_id, child.smoke)
    child.row(
        {
            "kind": "dataset",
            "dataset": dataset_id,
            "env_id": env_id,
            "episodes": dataset.num_episodes,
            "steps": dataset.num_steps,
            "engine": suite.engine,
            "seeds": len(suite.seeds),
            "seconds": time.perf_counter() - start,
        }
    )
    # Evaluation alone, first: its compile (first call) and its run (second call), for the
    # estimate. The bc and iw_bc units then reuse these compilations (BC-family agents act
    # through one MeanAction of the same policy network: BCAgent.acting), so their times hold
    # no evaluation compile. HalfCheetah episodes always run 1000 steps, so untrained weights
    # cost what trained ones do.
    agent = cell_agent(suite, dataset, suite.seeds)
    for role, episodes in (
        ("intermediate", suite.eval_episodes),
        ("final", suite.final_eval_episodes),
    ):
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            evaluate_agent(agent, env_id, num_episodes=episodes, engine=suite.engine)
            times.append(time.perf_counter() - t0)
        child.row(
            {
                "kind": "evaluation",
                "role": role,
                "episodes": episodes,
                "seeds": len(suite.seeds),
                "first_s": times[0],
                "seconds": times[1],
                "compile_s": max(times[0] - times[1], 0.0),
            }
        )
    context = UnitContext(
        suite=suite, records_dir=work / "records", work_dir=work / "runs", dataset=dataset
    )
    for method in CELL_METHODS:
        targets = list(suite.eval_targets(method))
        marks = [time.perf_counter()]
        unit = WorkUnit(dataset_id, method, suite.seeds, suite.seeds)
        run_unit(unit, context, dataset, report=reporter(child, method, targets, marks))
        marks.append(time.perf_counter())
        progress(child, method, targets, marks)
        child.row(
            {
                "kind": "unit",
                "method": method,
                "steps": suite.total_steps(method),
                "evaluations": len(targets),
                "wall_s": marks[-1] - marks[0],
            }
        )


def cell_agent(suite: Any, dataset: Any, seeds: tuple[int, ...]) -> Any:
    """A fresh seed-stacked agent as the runner creates BC's on ``dataset`` (the same config,
    network and observation statistics, so the ``bc`` unit's evaluations share its
    compilations)."""
    from iwbc.agents.registry import METHODS, training_data
    from iwbc.core.trainer import create_agents

    method = METHODS["bc"]
    config = suite.agent_config("bc")
    prepared = training_data(method, dataset, config, suite.pipeline.selection)
    return create_agents(method.agent, config, prepared.spec, list(seeds))


def reporter(
    child: Child, method: str, targets: list[int], marks: list[float]
) -> Callable[[str], None]:
    """The runner's ``report`` callback: note when each evaluation target begins."""

    def report(_message: str) -> None:
        marks.append(time.perf_counter())
        progress(child, method, targets, marks)

    return report


def progress(child: Child, method: str, targets: list[int], marks: list[float]) -> None:
    """Seconds of each finished segment (train to the next target, evaluate) of a unit.

    ``marks`` holds the unit's start, then the time each target began (the runner reports it
    before training to it), then the end; segment k is marks[k+2] - marks[k+1], the first
    also counting the unit's setup.
    """
    segments = [b - a for a, b in itertools.pairwise(marks)][1:]
    if segments:
        segments[0] += marks[1] - marks[0]

    def change(report: dict[str, Any]) -> None:
        report["parts"][child.part].setdefault("progress", {})[method] = {
            "targets": targets,
            "segments_s": [round(s, 3) for s in segments],
        }

    update(child.out, change)


def child_baselines(child: Child) -> None:
    import algo_throughput as at

    from iwbc.core.sampling import device_transitions
    from iwbc.data.statistics import normalization_stats

    transitions = at.synthetic_transitions()
    stats = normalization_stats(transitions.obs)
    data = device_transitions(transitions, obs_mean=stats[0], obs_std=stats[1])
    seeds = SMOKE_BASELINE_SEEDS if child.smoke else BASELINE_SEEDS
    steps = SMOKE_BASELINE_STEPS if child.smoke else BASELINE_STEPS
    last = 0.0
    for name in SMOKE_BASELINES if child.smoke else BASELINES:
        if not child.fits(last):
            child.cut(f"stopped before {name} (the last one took {last:.0f} s)")
            return
        start = time.perf_counter()
        timing = at.time_chunk(at.ALGORITHMS[name], data, stats, seeds, steps)
        child.row(
            {
                "algorithm": name,
                "batch_size": at.BATCH_SIZE,
                **timing,
                "steps_per_s": timing["updates_per_s"] / seeds,
            }
        )
        last = time.perf_counter() - start


def run_child(args: argparse.Namespace) -> int:
    child = Child(args.out.resolve(), args.child, args.deadline, args.smoke)
    record_device(child)
    if args.child == "mjx_eval":
        child_mjx_eval(child, args.task)
    elif args.child == "training":
        child_training(child)
    elif args.child == "paper_cell":
        child_paper_cell(child)
    elif args.child == "baselines":
        child_baselines(child)
    else:
        raise ValueError(f"unknown part {args.child}")
    return 0


# --- the paper suite's time, extrapolated ---------------------------------------------------


def unit_estimate(progress: dict[str, Any] | None, paper_targets: int) -> dict[str, Any] | None:
    """A unit's seconds at the paper's number of evaluation targets from its segments."""
    if not progress or not progress.get("segments_s"):
        return None
    segments = progress["segments_s"]
    later = statistics.median(segments[1:]) if len(segments) > 1 else segments[0]
    complete = len(segments) == len(progress["targets"])
    measured = complete and len(progress["targets"]) == paper_targets
    seconds = sum(segments) if measured else segments[0] + (paper_targets - 1) * later
    return {
        "seconds": seconds,
        "how": "measured"
        if measured
        else f"{segments[0]:.1f} s first segment + {paper_targets - 1} x {later:.1f} s "
        f"(median of {len(segments) - 1} later segments)",
    }


def suite_estimate(report: dict[str, Any]) -> dict[str, Any]:
    """Seconds of the whole ``paper`` suite run unit after unit on this one device."""
    from iwbc.agents.registry import BASELINES
    from iwbc.bench.suites import load_suite

    suite = load_suite("paper")
    parts = report["parts"]
    cell = parts["paper_cell"]
    notes = []
    progress = cell.get("progress", {})
    evals = {r["role"]: r for r in cell["rows"] if r.get("kind") == "evaluation"}
    small, final = evals.get("intermediate"), evals.get("final")
    if small is None or final is None:
        notes.append("evaluation not timed: evaluations and their compiles left out")
    small_s = small["seconds"] if small else 0.0
    final_s = final["seconds"] if final else 0.0
    compiles = (small["compile_s"] if small else 0.0) + (final["compile_s"] if final else 0.0)
    per_dataset: dict[str, Any] = {}
    rates: dict[str, dict[str, Any]] = {}
    for r in parts["training"]["rows"]:  # default precision, the most seeds measured
        measured = r.get("precision") == "default" and "updates_per_s" in r
        if measured and r["seeds"] >= rates.get(r["loss"], {}).get("seeds", 0):
            rates[r["loss"]] = r

    def from_training(method: str, loss: str) -> dict[str, Any] | None:
        """A unit the cell did not reach: the training part's rate at the most seeds."""
        if loss not in rates:
            return None
        rate = rates[loss]
        steps = suite.total_steps(method)
        targets = len(suite.eval_targets(method))
        per_s = rate["updates_per_s"] / rate["seeds"]
        evaluate = (targets - 1) * small_s + final_s
        return {
            "seconds": steps / per_s + rate["compile_s"] + evaluate,
            "how": f"not reached by the cell: {steps:,} steps at {per_s:,.1f}/s (training "
            f"part, {rate['seeds']} seeds, {rate['batch_episodes']} episodes) + compile "
            f"{rate['compile_s']:.0f} s + {targets} evaluations {evaluate:.0f} s",
        }

    bc = unit_estimate(progress.get("bc"), len(suite.eval_targets("bc")))
    bc = bc if bc is not None else from_training("bc", "bc")
    if bc is not None:
        per_dataset["bc"] = {
            "seconds": bc["seconds"] + compiles,
            "how": f"{bc['how']} + {compiles:.1f} s evaluation compiles (timed apart)",
        }
    iw = unit_estimate(progress.get("iw_bc"), len(suite.eval_targets("iw_bc")))
    iw = iw if iw is not None else from_training("iw_bc", "iw_trajectory")
    if iw is not None:
        per_dataset["filtered_bc"] = {
            "seconds": iw["seconds"],
            "how": "taken as iw_bc's (same steps, batch and evaluations; a cheaper loss)",
        }
        per_dataset["iw_bc"] = iw
    agents = {r["algorithm"]: r for r in parts["baselines"]["rows"] if "algorithm" in r}
    for method in suite.methods:
        if method not in BASELINES or method not in agents:
            continue
        rate = agents[method]
        steps = suite.total_steps(method)
        targets = len(suite.eval_targets(method))
        train = steps / rate["steps_per_s"] + rate["compile_s"]
        evaluate = (targets - 1) * small_s + final_s + compiles
        per_dataset[method] = {
            "seconds": train + evaluate,
            "how": f"{steps:,} steps at {rate['steps_per_s']:,.0f}/s ({rate['seeds']} seeds) "
            f"+ compile {rate['compile_s']:.0f} s + {targets} evaluations and their compiles "
            f"{evaluate:.0f} s",
        }
    missing = [m for m in suite.methods if m not in per_dataset]
    per_dataset_s = sum(v["seconds"] for v in per_dataset.values())
    return {
        "suite": suite.name,
        "datasets": len(suite.datasets),
        "methods": list(suite.methods),
        "seeds": len(suite.seeds),
        "per_dataset": per_dataset,
        "per_dataset_s": per_dataset_s,
        "total_s": per_dataset_s * len(suite.datasets),
        "complete": not missing and not notes,
        "missing": missing,
        "notes": notes,
        "assumptions": [
            "units run one after another on this one device (no two processes sharing it)",
            "every dataset costs what the synthetic HalfCheetah cell cost: its evaluations run "
            "all 1000 steps an episode (Hopper and Walker2d episodes that fall end sooner), "
            "its batches are whole 1000-step episodes",
            "a baseline's evaluation costs what the BC policy's did (similar MLPs), its own "
            "two evaluation compiles included",
        ],
    }


# --- markdown ------------------------------------------------------------------------------


def fmt(value: Any, spec: str = ",.0f") -> str:
    if value is None:
        return "—"
    if isinstance(value, float | int):
        return format(value, spec)
    return str(value)


def gib(value: Any) -> str:
    return "—" if value is None else f"{value / 2**30:.2f}"


def part_header(name: str, entry: dict[str, Any]) -> list[str]:
    lines = [f"## {name}: {entry['title']}", ""]
    status = f"Status: **{entry['status']}**"
    if "wall_s" in entry:
        status += f" in {entry['wall_s']:.0f} s"
    status += f" (cap {entry['cap_s']:.0f} s)."
    if entry.get("note"):
        status += f" {entry['note']}."
    lines.append(status)
    for info in entry.get("devices", [])[:1]:
        lines.append(
            f"Device: {info['device_kind']} ({info['device']}, backend {info['backend']}, "
            f"{info['device_count']} device(s), {gib(info.get('bytes_limit'))} GiB for JAX)."
        )
    for proc in entry.get("processes", []):
        if not proc["outcome"].startswith("done"):
            lines.append(f"Process {' '.join(proc['args']) or name}: {proc['outcome']}.")
    return [*lines, ""]


def md_pytest(entry: dict[str, Any]) -> list[str]:
    lines = []
    for row in entry["rows"]:
        lines += [
            f"`{row['command']}`: {row['summary']} (exit {row['rc']}; output in `{row['log']}`).",
            "",
            "| test | outcome |",
            "|---|---|",
        ]
        lines += [f"| `{test}` | {outcome} |" for test, outcome in row["tests"].items()]
        if row.get("tail"):
            lines += ["", "```", *row["tail"], "```"]
        lines.append("")
    return lines


def md_mjx(entry: dict[str, Any]) -> list[str]:
    lines = [
        "Fixed random-weight 3 x 256 tanh MLP in the loop, float32, auto-reset (a finished env "
        "starts the next seed's episode on the same step; Hopper's episodes under this policy "
        "last 10 steps, HalfCheetah's always 1000). MJX: `run_mjx` of "
        "benchmarks/mjx_throughput.py (one compiled rollout; compile = a first call of one "
        "25-step chunk; initial states drawn on the host beforehand, timed apart). Batch: the "
        "CPU `mujoco.batch` engine's host loop with the jitted MLP, on this machine's cores. "
        "Program = the compiled rollout's argument + output + temporary bytes (XLA's memory "
        "analysis); peak = the JAX allocator's peak bytes in use so far in that task's "
        "process (sizes run in the order shown).",
        "",
        "| task | envs | MJX steps/env | MJX env-steps/s | busy | compile s | host init s "
        "| program GiB | peak GiB | batch steps/env | batch env-steps/s | MJX ÷ batch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in entry["rows"]:
        ratio = r["mjx_env_steps_per_s"] / r["batch_env_steps_per_s"]
        lines.append(
            f"| {r['env_id']} | {r['num_envs']:,} | {r['mjx_steps_per_env']} | "
            f"{r['mjx_env_steps_per_s']:,.0f} | {r['mjx_busy']:.0%} | "
            f"{r['mjx_compile_s']:.1f} | {fmt(r['host_initial_states_s'], '.1f')} | "
            f"{gib(r['program_bytes'])} | {gib(r['device_peak_bytes'])} | "
            f"{r['batch_steps_per_env']} | "
            f"{r['batch_env_steps_per_s']:,.0f} | {ratio:.1f}x |"
        )
    return [*lines, ""]


def md_training(entry: dict[str, Any]) -> list[str]:
    data = entry.get("data", {})
    lines = [
        "`time_scan` of benchmarks/train_throughput.py: one compiled jit(vmap(scan)) chunk of "
        f"{TRAIN_STEPS} updates (smoke: {SMOKE_TRAIN_STEPS}), best of 3 timed calls, compile "
        "apart; updates counted per seed. Whole episodes (no window): "
        f"{data.get('episodes', '?')} synthetic episodes of up to "
        f"{data.get('max_length', '?')} steps (batches padded to it, "
        f"{fmt(data.get('valid_step_fraction'), '.0%')} of their steps valid), "
        f"{data.get('observation_dim', '?')}-dim observations, "
        f"{data.get('action_dim', '?')}-dim actions, the paper's 3 x 256 Gaussian policy. "
        "TFLOP/s = updates/s x FLOPs of the MLP's matrix products in one update: 2 x (17x256 "
        "+ 256x256 + 256x256 + 256x6) per row per pass, 3 passes for BC (forward, backward "
        "2x), 5 for iw-BC (adds the q_iw and q_ref forwards), over every padded row of the "
        "batch (padding is computed, then masked); elementwise work, Adam and sampling are not "
        "counted. Precision: `default` is JAX's default for float32 matmuls on this backend; "
        "`highest` forces full float32; `BF16_BF16_F32` runs the matmuls in bfloat16 with "
        "float32 accumulation (parameters and activations stay float32: the project has no "
        "bfloat16 policy).",
        "",
        "| loss | episodes a batch | seeds | precision | updates/s | ms a step (all seeds) "
        "| TFLOP/s | compile s | peak GiB |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in entry["rows"]:
        if "error" in r:
            lines.append(
                f"| {r['loss']} | {r['batch_episodes']} | {r['seeds']} | {r['precision']} | "
                f"error: {r['error']} | | | | |"
            )
            continue
        lines.append(
            f"| {r['loss']} | {r['batch_episodes']} | {r['seeds']} | {r['precision']} | "
            f"{r['updates_per_s']:,.1f} | {r['ms_per_step']:.2f} | {r['tflops']:.2f} | "
            f"{r['compile_s']:.1f} | {gib(r['device_peak_bytes'])} |"
        )
    return [*lines, ""]


def md_cell(entry: dict[str, Any]) -> list[str]:
    lines = [
        "The `paper` suite's protocol through the benchmark runner (`run_unit`): BC 10k steps "
        "(128 episodes a batch) evaluated every 500 steps on 10 episodes and at the end on 100, "
        "then iw-BC 2k fine-tune steps (256 episodes) from it, evaluated likewise; 5 vmapped "
        "seeds; checkpoints and records written as in a sweep. Data: random synthetic episodes "
        "of the task's shape, written and read as a local Minari dataset.",
        "",
    ]
    for r in entry["rows"]:
        kind = r.get("kind")
        if kind == "dataset":
            lines.append(
                f"- Dataset `{r['dataset']}` ({r['env_id']}): {r['episodes']} episodes, "
                f"{r['steps']:,} steps, written and loaded in {r['seconds']:.1f} s; engine "
                f"`{r['engine']}`, {r['seeds']} seeds."
            )
        elif kind == "unit":
            lines.append(
                f"- Unit `{r['method']}`: {r['steps']:,} steps, {r['evaluations']} "
                f"evaluation(s), **{r['wall_s']:.1f} s** end to end."
            )
        elif kind == "evaluation":
            lines.append(
                f"- One evaluation of {r['episodes']} episodes x {r['seeds']} seeds: "
                f"{r['seconds']:.2f} s (compiled; first call {r['first_s']:.2f} s)."
            )
    for method, prog in entry.get("progress", {}).items():
        segments = prog["segments_s"]
        done = ", ".join(f"{s:.1f}" for s in segments) if segments else "none finished"
        lines.append(
            f"- `{method}` segments (train to the next evaluation, evaluate) done: "
            f"{len(segments)}/{len(prog['targets'])}; seconds: {done}"
        )
    return [*lines, ""]


def md_baselines(entry: dict[str, Any]) -> list[str]:
    lines = [
        "`time_chunk` of benchmarks/algo_throughput.py: CORL's networks, 256 transitions a "
        "batch from 200k resident synthetic transitions, one compiled chunk; best of 3.",
        "",
        "| algorithm | seeds | steps timed | updates/s (all seeds) | steps/s | compile s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in entry["rows"]:
        lines.append(
            f"| {r['algorithm']} | {r['seeds']} | {r['steps']} | {r['updates_per_s']:,.0f} | "
            f"{r['steps_per_s']:,.0f} | {r['compile_s']:.1f} |"
        )
    return [*lines, ""]


def md_estimate(estimate: dict[str, Any] | None, smoke: bool) -> list[str]:
    lines = ["## Estimate: the whole `paper` suite", ""]
    if estimate is None:
        return [*lines, "(Not computed yet: it follows the last part.)", ""]
    if "error" in estimate:
        return [*lines, f"Failed: {estimate['error']}", ""]
    if smoke:
        lines += ["**Smoke run: the sizes are tiny, so this is no estimate of anything.**", ""]
    total = estimate["total_s"]
    state = "complete" if estimate["complete"] else "INCOMPLETE, so a lower bound"
    lines += [
        f"{estimate['datasets']} datasets x {len(estimate['methods'])} methods x "
        f"{estimate['seeds']} seeds, one (dataset, method) unit after another: "
        f"**{total / 60:,.1f} min** ({state}; goal ≤ 15 min).",
        "",
        "| method | seconds per dataset | how |",
        "|---|---:|---|",
    ]
    for method, value in estimate["per_dataset"].items():
        lines.append(f"| {method} | {value['seconds']:,.1f} | {value['how']} |")
    lines += ["", *(f"- Missing: {m}" for m in estimate["missing"])]
    lines += [*(f"- {n}" for n in estimate["notes"])]
    lines += [*(f"- Assumed: {a}" for a in estimate["assumptions"])]
    return [*lines, ""]


RENDER = {
    "pytest_gpu": md_pytest,
    "mjx_eval": md_mjx,
    "training": md_training,
    "paper_cell": md_cell,
    "baselines": md_baselines,
}


def markdown(report: dict[str, Any]) -> str:
    info = report["machine"]
    versions = ", ".join(f"{name} {info[name]}" for name in VERSIONED if info.get(name) is not None)
    lines = [
        "# GPU check" + (" (smoke run, CPU: no figures)" if report["smoke"] else ""),
        "",
        f"Command: `{report['command']}` (commit {info.get('git_commit') or 'unknown'}), "
        f"started {report['started_at']}"
        + (f", {report['wall_s']:.0f} s in all" if "wall_s" in report else ", running")
        + f" (budget {report['budget_s']:.0f} s).",
        "",
        f"GPU (nvidia-smi): {info.get('nvidia_smi') or 'none found'}. CPU: {info['cpu']}, "
        f"{info['logical_cores']} logical cores ({info['usable_cores']} usable, load average "
        f"{info['loadavg']} at the start). Python {info['python']}, {versions}"
        + (
            f"; not installed: {', '.join(info['missing_packages'])}"
            if info["missing_packages"]
            else ""
        )
        + f". Wheels: {report['wheels']}.",
        "",
        "| part | status | seconds | cap s | rows |",
        "|---|---|---:|---:|---:|",
    ]
    for name, entry in report["parts"].items():
        lines.append(
            f"| {name} | {entry['status']} | {fmt(entry.get('wall_s'))} | "
            f"{entry['cap_s']:.0f} | {len(entry['rows'])} |"
        )
    lines.append("")
    for name, entry in report["parts"].items():
        lines += part_header(name, entry)
        if entry["rows"] or entry.get("progress"):
            lines += RENDER[name](entry)
    lines += md_estimate(report.get("suite_estimate"), report["smoke"])
    return "\n".join(lines)


# --- entry point ---------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the two files")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on CPU JAX (CI)")
    parser.add_argument(
        "--parts",
        type=lambda text: tuple(text.split(",")),
        default=None,
        help=f"comma-separated subset of {','.join(PART_NAMES)} (default: all)",
    )
    parser.add_argument(
        "--budget", type=float, default=BUDGET_S, help="wall seconds for the whole run"
    )
    parser.add_argument("--child", choices=PART_NAMES, help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts or () if p not in PART_NAMES]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PART_NAMES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.child is not None:
        return run_child(args)
    return parent(args, argv)


if __name__ == "__main__":
    sys.exit(main())
