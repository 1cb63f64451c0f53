"""A sweep killed with SIGKILL midway resumes with no run lost or repeated.

``iwbc bench`` runs in a subprocess and is killed as soon as its first records appear, while
later units are training. Re-invoking the sweep must skip the finished runs (their records and
cached evaluations untouched), finish every other run, and leave exactly one ``ok`` record per
(method, seed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_scripted_dataset
from test_benchmark_runner import tiny_suite_toml

from iwbc.bench.records import load_records, records_dir
from iwbc.bench.runner import run_suite
from iwbc.bench.suites import load_suite

DATASET = "iwbc-test/idp/resume-v0"
# The budgets of test_benchmark_runner's suite, on the same 6 scripted episodes: same shapes
# and configs, so the two modules share JAX compilations.
METHODS = ("bc", "iw_bc", "td3_bc")
SUITE = tiny_suite_toml(METHODS, (DATASET,), scripted=None)


def _files(directory: Path, pattern: str) -> dict[Path, tuple[int, bytes]]:
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in directory.rglob(pattern)}


# Starting processes from a JAX process warns about fork; they exec at once, so it is harmless.
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_killed_sweep_resumes_without_losing_or_repeating_runs(tmp_path: Path) -> None:
    root, results, work = tmp_path / "minari", tmp_path / "results", tmp_path / "runs"
    make_scripted_dataset(DATASET, root)
    suite_path = tmp_path / "resume.toml"
    suite_path.write_text(SUITE)
    records = records_dir("resume", results)
    command = [sys.executable, "-m", "iwbc.cli", "bench", "--suite", str(suite_path)]
    command += ["--results", str(results), "--work-dir", str(work), "--root", str(root)]
    process = subprocess.Popen(
        [*command, "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 240
    while not list(records.rglob("seed-*.json")) and process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the sweep wrote no record within 240 s")
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the sweep finished before it could be killed"

    done_before = _files(records, "seed-*.json")
    evaluations_before = _files(work, "eval-*.npy")
    assert 1 <= len(done_before) < 6
    summary = run_suite(
        load_suite(suite_path), records, work_dir=work, data_root=root, progress=False
    )

    assert summary.failed == 0
    assert summary.skipped == len(done_before)
    assert summary.ok + summary.skipped == summary.total == 6
    # Nothing finished before the kill was redone: records and evaluations are byte-identical
    # and were not rewritten.
    assert {p: v for p, v in _files(records, "seed-*.json").items() if p in done_before} == (
        done_before
    )
    assert {p: v for p, v in _files(work, "eval-*.npy").items() if p in evaluations_before} == (
        evaluations_before
    )
    # Nothing lost: one ok record per run.
    finished = load_records("resume", results)
    assert sorted((r["method"], r["seed"]) for r in finished) == sorted(
        (m, s) for m in METHODS for s in (0, 1)
    )
    assert all(r["status"] == "ok" for r in finished)
