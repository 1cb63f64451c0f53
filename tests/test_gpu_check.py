"""benchmarks/gpu_check.py --smoke: the GPU check's every part runs at tiny sizes on CPU JAX.

The real check only runs when a session is lent a GPU, for minutes; this keeps its code from
rotting in between. About 1-2 minutes on a 2-core box (one MJX compile is most of it). The
smoke run sees only the modules the GPU machine has (benchmarks/gpu_box_packages.txt, the
carried wheels, the standard library and this repository), so an import that would fail there
fails here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

pytest.importorskip("mujoco.mjx")

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
PARTS = ("pytest_gpu", "mjx_eval", "training", "paper_cell", "baselines")

# Installed in every process of the smoke run (a sitecustomize on PYTHONPATH): a top-level
# import of an installed module outside the GPU machine's set fails as it would there.
# Optional imports a library guards with try/except stay quiet, as there.
ONLY_THE_GPU_BOX = textwrap.dedent(
    """
    import importlib.abc
    import importlib.machinery
    import os
    import sys

    _ALLOWED = frozenset(os.environ["IWBC_GPU_BOX_MODULES"].split(","))
    _INSTALLED = ("site-packages", "dist-packages")


    class _OnlyTheGpuBox(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if "." in name or name in _ALLOWED or name in sys.stdlib_module_names:
                return None
            spec = importlib.machinery.PathFinder.find_spec(name)
            if spec is None:
                return None
            places = [spec.origin or ""] + list(spec.submodule_search_locations or [])
            if not any(part in place for place in places for part in _INSTALLED):
                return None  # the standard library's private modules, this repository
            raise ModuleNotFoundError(
                f"No module named {name!r} on the GPU machine: add its wheel to GPU_WHEELS "
                "in the Makefile, or do not import it on the GPU check's path",
                name=name,
            )


    sys.meta_path.insert(0, _OnlyTheGpuBox())
    """
)


def _normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def gpu_box_modules() -> set[str]:
    """Import names of the distributions on the GPU machine or carried to it as wheels."""
    listed = (ROOT / "benchmarks" / "gpu_box_packages.txt").read_text().splitlines()
    wheels = re.search(r"^GPU_WHEELS :=((?:.*\\\n)*.*)$", (ROOT / "Makefile").read_text(), re.M)
    carried = [w.split("==")[0] for w in wheels.group(1).split() if w != "\\"]
    there = {_normalized(n) for n in listed + carried if n and not n.startswith("#")}
    return {
        module
        for module, distributions in packages_distributions().items()
        if any(_normalized(d) in there for d in distributions)
    }


def test_the_gpu_machine_set_holds_what_the_check_needs() -> None:
    modules = gpu_box_modules()
    assert {"jax", "flax", "optax", "numpy", "mujoco", "gymnasium", "minari", "h5py"} <= modules
    assert not {"rliable", "ray"} & modules


def test_smoke_run_writes_every_part(tmp_path: Path) -> None:
    out = tmp_path / "gpu"
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(ONLY_THE_GPU_BOX)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(hook), str(ROOT), env.get("PYTHONPATH")) if p
    )
    env["IWBC_GPU_BOX_MODULES"] = ",".join(sorted(gpu_box_modules()))
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    report = json.loads((out / "gpu_check.json").read_text())
    markdown = (out / "gpu_check.md").read_text()
    assert report["smoke"] is True
    assert "--smoke" in report["command"]
    assert report["machine"]["python"]
    assert tuple(report["parts"]) == PARTS
    for name, part in report["parts"].items():
        assert part["status"] == "done", (name, part)
        assert part["rows"], name
        assert f"## {name}:" in markdown
    assert report["parts"]["pytest_gpu"]["rows"][0]["rc"] == 0
    mjx = report["parts"]["mjx_eval"]["rows"][0]
    assert mjx["mjx_env_steps_per_s"] > 0 and mjx["batch_env_steps_per_s"] > 0
    # the compiled rollout's memory comes from the engine's private helpers, None if they moved
    assert mjx["program_bytes"] > 0
    training = report["parts"]["training"]["rows"]
    assert {r["loss"] for r in training} == {"bc", "iw_trajectory"}
    assert all(r["tflops"] > 0 for r in training)
    kinds = [r["kind"] for r in report["parts"]["paper_cell"]["rows"]]
    assert kinds.count("unit") == 2 and kinds.count("evaluation") == 2
    assert report["parts"]["baselines"]["rows"][0]["updates_per_s"] > 0
    estimate = report["suite_estimate"]
    assert estimate["total_s"] > 0 and set(estimate["per_dataset"]) >= {"bc", "iw_bc"}
    assert "## Estimate: the whole `paper` suite" in markdown


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_a_part_past_its_cap_is_killed() -> None:
    gpu_check = _load_script()
    start = time.monotonic()
    rc, wall = gpu_check.run_capped(
        [sys.executable, "-c", "import time; time.sleep(60)"], 1.0, dict(os.environ)
    )
    assert rc is None and wall < 15 and time.monotonic() - start < 15


def test_estimate_uses_the_training_rates_for_units_the_cell_did_not_reach() -> None:
    gpu_check = _load_script()
    training = [
        {
            "loss": "bc",
            "precision": "default",
            "seeds": 5,
            "batch_episodes": 128,
            "updates_per_s": 500.0,
            "compile_s": 10.0,
        },
        {
            "loss": "iw_trajectory",
            "precision": "default",
            "seeds": 5,
            "batch_episodes": 256,
            "updates_per_s": 100.0,
            "compile_s": 10.0,
        },
    ]
    cell = [
        {"kind": "evaluation", "role": "intermediate", "seconds": 1.0, "compile_s": 20.0},
        {"kind": "evaluation", "role": "final", "seconds": 2.0, "compile_s": 20.0},
    ]
    report = {
        "parts": {
            "mjx_eval": {"rows": []},
            "training": {"rows": training},
            # the cell was cut after 3 of BC's 20 segments
            "paper_cell": {
                "rows": cell,
                "progress": {
                    "bc": {"targets": list(range(500, 10_001, 500)), "segments_s": [30.0, 5.0, 7.0]}
                },
            },
            "baselines": {
                "rows": [
                    {"algorithm": "td3_bc", "seeds": 5, "steps_per_s": 1000.0, "compile_s": 5.0}
                ]
            },
        }
    }
    estimate = gpu_check.suite_estimate(report)
    per = estimate["per_dataset"]
    # BC: first segment + 19 x median of the later ones + the two evaluation compiles
    assert per["bc"]["seconds"] == pytest.approx(30.0 + 19 * 6.0 + 40.0)
    # iw-BC: 2,000 steps at 100 / 5 seeds = 20 steps/s, + compile + 3 x 1 s + 2 s
    assert per["iw_bc"]["seconds"] == pytest.approx(2000 / 20 + 10 + 3 + 2)
    assert per["filtered_bc"]["seconds"] == per["iw_bc"]["seconds"]
    # TD3+BC: 1M steps at 1000/s + compile + 199 x 1 s + 2 s + 40 s of compiles
    assert per["td3_bc"]["seconds"] == pytest.approx(1000 + 5 + 199 + 2 + 40)
    assert estimate["missing"] == ["iql", "cql", "awac"] and not estimate["complete"]
    assert estimate["total_s"] == pytest.approx(9 * sum(v["seconds"] for v in per.values()))
