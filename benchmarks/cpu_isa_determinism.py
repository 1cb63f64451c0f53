"""Does a seeded SAC run repeat bit for bit on another CPU? Same run, XLA:CPU capped per ISA.

`iwbc data generate` is deterministic for a ``--seed`` on one machine (tested), and the
committed quick tiers reproduced bit for bit on the Intel Xeon boxes they were made on and on an
AMD EPYC with AVX-512; on an AMD EPYC whose widest extension is AVX2 the same command wrote other
tiers (HalfCheetah medium-replay 35 episodes, p90 699, against the committed 40 and 1,099). This
script trains the data generator's SAC (``iwbc.datagen.behaviour.train_behaviour``) for a few
thousand env steps in fresh processes, twice at the host's default and once with
``XLA_FLAGS=--xla_cpu_max_isa=<ISA>`` for each ISA up to the host's, and compares a hash of the
final actor and the evaluation returns: run on two machines, it shows whether one cap makes them
train alike (on the AVX2 and the AVX-512 box above it did not: README, *D4RL-style datasets*).

    python benchmarks/cpu_isa_determinism.py --out results/perf/cpu_isa_determinism.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from iwbc.machine import cpu_vector_extension, machine_record

# XLA's names for the caps, narrowest first, with the /proc/cpuinfo flag each needs.
CAPS = (("SSE4_2", "sse4_2"), ("AVX", "avx"), ("AVX2", "avx2"), ("AVX512", "avx512f"))
ENV_ID = "Hopper-v5"


def child(env_steps: int) -> None:
    """One SAC run; prints its actor hash and evaluations as JSON (run in a fresh process,
    since XLA reads XLA_FLAGS once)."""
    import jax
    import numpy as np

    from iwbc.datagen.behaviour import BehaviourConfig, train_behaviour

    config = BehaviourConfig(
        env_steps=env_steps,
        start_steps=env_steps // 3,
        eval_every=env_steps // 2,
        eval_episodes=2,
        checkpoint_every=env_steps,
    )
    started = time.perf_counter()
    run = train_behaviour(ENV_ID, 0, config, progress=False)
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(run.agent.actor.params):
        digest.update(np.asarray(leaf).tobytes())
    print(
        json.dumps(
            {
                "actor_sha256": digest.hexdigest()[:16],
                "evaluations": run.evaluations,
                "seconds": time.perf_counter() - started,
            }
        )
    )


def run_child(env_steps: int, cap: str | None) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_cpu_max_isa={cap}" if cap else ""
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(env_steps), "--out", os.devnull],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-steps", type=int, default=3000)
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return

    host = cpu_vector_extension()
    flags = [flag for _, flag in CAPS]
    usable = flags[: flags.index(host) + 1] if host in flags else []
    rows = [("default", None), ("default again", None)]
    rows += [(f"max ISA {cap}", cap) for cap, flag in CAPS if flag in usable]
    results = []
    for label, cap in rows:
        result = {"run": label, "xla_flags": f"--xla_cpu_max_isa={cap}" if cap else ""}
        result.update(run_child(args.env_steps, cap))
        results.append(result)
        print(f"{label:>16}: actor {result['actor_sha256']}  evaluations {result['evaluations']}")
    default = results[0]["actor_sha256"]
    report = {
        "command": "python " + " ".join(sys.argv),
        "env_id": ENV_ID,
        "env_steps": args.env_steps,
        "host_vector_extension": host,
        "default_repeats": results[1]["actor_sha256"] == default,
        "same_as_default": {r["run"]: r["actor_sha256"] == default for r in results[2:]},
        "runs": results,
        "machine": machine_record(("iwbc", "jax", "jaxlib", "mujoco", "numpy")),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"default repeats bit for bit: {report['default_repeats']}; same actor as the default:")
    print(json.dumps(report["same_as_default"]))


if __name__ == "__main__":
    main()
