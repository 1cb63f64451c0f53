"""`make demo` on a fresh clone trains: the records committed under results/demo/records/ are
the README's copy, not the runner's resume state, which lives in the work directory."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

import iwbc.bench.demo
from iwbc.bench.demo import run_demo
from iwbc.bench.records import records_dir
from iwbc.bench.runner import SweepSummary, plan
from iwbc.bench.suites import Suite, load_suite

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "demo" / "records"


class Planned(Exception):
    """Stops the demo once the runner has planned, before anything trains."""


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A results directory as a fresh clone has it: the committed demo records, no runs/."""
    results = tmp_path / "results"
    shutil.copytree(COMMITTED, records_dir("demo", results))
    return results


def test_committed_records_are_finished_runs_of_the_current_suite(clone: Path) -> None:
    """Why resuming from them would train nothing."""
    units, total, finished = plan(load_suite("demo"), records_dir("demo", clone))
    assert (units, finished) == ([], total)


def test_fresh_clone_schedules_every_run(clone: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    planned: dict[str, Any] = {}

    def run_suite(suite: Suite, records: Path, **kwargs: Any) -> SweepSummary:
        planned["units"], planned["total"], planned["finished"] = plan(suite, records)
        raise Planned

    monkeypatch.setattr(iwbc.bench.demo, "run_suite", run_suite)
    with pytest.raises(Planned):
        run_demo(clone, work_dir=clone.parent / "runs", progress=False)
    suite = load_suite("demo")
    assert planned["finished"] == 0
    assert planned["total"] == len(suite.datasets) * len(suite.methods) * len(suite.seeds)
    assert [(u.method, u.pending) for u in planned["units"]] == [
        (method, suite.seeds) for method in suite.methods
    ]


def test_a_second_run_reuses_its_own_records_and_publishes_them(
    clone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = clone.parent / "runs"
    stray = records_dir("demo", clone) / "old__dataset-v0" / "bc" / "seed-0.json"
    stray.parent.mkdir(parents=True)
    stray.write_text("{}")
    runs: list[tuple[int, int]] = []

    def run_suite(suite: Suite, records: Path, **kwargs: Any) -> SweepSummary:
        """Trains what is pending, here by copying the committed records in."""
        units, total, finished = plan(suite, records)
        runs.append((len(units), finished))
        if units:
            shutil.copytree(COMMITTED, records, dirs_exist_ok=True)
        return SweepSummary(total, finished, total - finished, 0)

    monkeypatch.setattr(iwbc.bench.demo, "run_suite", run_suite)
    monkeypatch.setattr(iwbc.bench.demo, "write_suite_report", lambda suite, results: [])
    for _ in range(2):
        run_demo(clone, work_dir=work, progress=False)
    suite = load_suite("demo")
    grid = len(suite.datasets) * len(suite.methods) * len(suite.seeds)
    assert runs == [(len(suite.methods), 0), (0, grid)]
    published = sorted(p.relative_to(clone) for p in clone.rglob("seed-*.json"))
    local = sorted(p.relative_to(work) for p in work.rglob("seed-*.json"))
    assert published == local and len(local) == grid
    assert not stray.exists()
