"""The Ray executor runs a tiny suite on a local Ray instance: each unit a task in a worker
process that writes its records (a failing unit's too), and the driver gathers the outcomes."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_scripted_dataset
from test_benchmark_runner import tiny_suite_toml

from iwbc.bench.records import load_records, records_dir
from iwbc.bench.runner import run_suite
from iwbc.bench.suites import load_suite

ray = pytest.importorskip("ray")

DATASET = "iwbc-test/idp/ray-v0"
MISSING = "iwbc-test/missing/none-v0"
# One method: the executor runs any unit alike (the local executor's tests cover the rest).
SUITE = tiny_suite_toml(("bc",), (DATASET, MISSING), scripted=None)


# Starting processes from a JAX process warns about fork; they exec at once, so it is harmless.
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_ray_executor_runs_a_suite(tmp_path: Path) -> None:
    root, results = tmp_path / "minari", tmp_path / "results"
    make_scripted_dataset(DATASET, root)
    (tmp_path / "raysuite.toml").write_text(SUITE)
    suite = load_suite(tmp_path / "raysuite.toml")
    summary = run_suite(
        suite,
        records_dir("raysuite", results),
        work_dir=tmp_path / "runs",
        data_root=root,
        executor="ray",
        num_cpus=2,
        progress=False,
    )
    assert not ray.is_initialized(), "the executor shuts down the Ray instance it started"
    assert (summary.total, summary.ok, summary.failed) == (4, 2, 2)
    records = load_records("raysuite", results)
    ok = {(r["method"], r["seed"]) for r in records if r["status"] == "ok"}
    assert ok == {("bc", 0), ("bc", 1)}
    assert all(r["dataset"] == DATASET for r in records if r["status"] == "ok")
    failed = [r for r in records if r["status"] == "failed"]
    assert {r["dataset"] for r in failed} == {MISSING}
    assert all("DatasetError" in r["error"] for r in failed)
    # Workers ran the units: their records carry curves evaluated at every step.
    assert all(r["curve"]["steps"] == [10, 20] for r in records if r["status"] == "ok")
