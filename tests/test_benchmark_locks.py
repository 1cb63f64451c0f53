"""Two sweeps of one suite at once train each unit once: a unit whose lock another process
holds is skipped, then collected at the end (or run here if that process gave it up)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_benchmark_runner import tiny_suite_toml, write_suite
from test_report_records import make_record, save_record

import iwbc.bench.units
from iwbc.bench.records import load_records, records_dir
from iwbc.bench.runner import run_suite
from iwbc.bench.suites import Suite
from iwbc.bench.units import UnitContext, UnitOutcome, WorkUnit, execute_unit, unit_lock
from iwbc.files import file_lock

DATASET = "iwbc-test/idp/locks-v0"
UNIT = WorkUnit(DATASET, "bc", (0, 1), (0, 1))


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Suite, UnitContext]:
    suite = write_suite(tmp_path, "locks", tiny_suite_toml(("bc",), (DATASET,), scripted=None))
    context = UnitContext(suite, records_dir("locks", tmp_path / "results"), tmp_path / "runs")
    return suite, context


@pytest.fixture
def executed(monkeypatch: pytest.MonkeyPatch) -> list[WorkUnit]:
    """The units this process really runs (training replaced by a no-op that succeeds)."""
    calls: list[WorkUnit] = []

    def fake(unit: WorkUnit, context: UnitContext, report: object) -> UnitOutcome:
        calls.append(unit)
        return UnitOutcome(unit, ())

    monkeypatch.setattr(iwbc.bench.units, "_execute", fake)
    return calls


def write_ok_records(suite: Suite, context: UnitContext) -> None:
    for seed in UNIT.seeds:
        record = make_record(DATASET, "bc", seed, 10.0, suite="locks")
        record["config"] = suite.method_config("bc")
        save_record(context.records_dir, record)


@contextlib.contextmanager
def hold(
    path: Path, then: Callable[[], None] | None = None, seconds: float = 1.0
) -> Iterator[None]:
    """Hold ``path``'s lock in another thread (its own open file, as another process would)
    for ``seconds``, then call ``then`` and release it."""
    taken, done = threading.Event(), threading.Event()

    def holder() -> None:
        with file_lock(path) as held:
            assert held
            taken.set()
            time.sleep(seconds)
            if then is not None:
                then()
        done.set()

    thread = threading.Thread(target=holder)
    thread.start()
    taken.wait()
    yield
    thread.join()
    assert done.is_set()


def test_a_held_unit_is_skipped_then_collected(
    setup: tuple[Suite, UnitContext], executed: list, capsys: pytest.CaptureFixture[str]
) -> None:
    suite, context = setup
    assert execute_unit(UNIT, context, wait=False).elsewhere is None  # free: it runs
    executed.clear()
    with hold(unit_lock(context, UNIT), then=lambda: write_ok_records(suite, context)):
        assert execute_unit(UNIT, context).elsewhere == "running"
        summary = run_suite(suite, context.records_dir, work_dir=context.work_dir, progress=True)
    assert executed == []
    assert (summary.total, summary.skipped, summary.ok, summary.failed) == (2, 2, 0, 0)
    assert summary.elsewhere == 2
    out = capsys.readouterr()
    said = out.out + out.err
    assert f"{DATASET} bc: another process is running it; skipped" in said
    assert f"{DATASET} bc: run by another process" in said


def test_a_unit_the_other_process_gave_up_is_run_here(
    setup: tuple[Suite, UnitContext], executed: list
) -> None:
    suite, context = setup
    with hold(unit_lock(context, UNIT)):
        summary = run_suite(suite, context.records_dir, work_dir=context.work_dir, progress=False)
    assert executed == [UNIT]
    assert (summary.skipped, summary.ok, summary.elsewhere) == (0, 2, 0)


def test_seeds_finished_after_planning_are_not_redone(
    setup: tuple[Suite, UnitContext], executed: list
) -> None:
    suite, context = setup
    write_ok_records(suite, context)
    assert execute_unit(UNIT, context).elsewhere == "finished"
    assert executed == []


# Starting processes from a JAX process warns about fork; they exec at once, so it is harmless.
@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_two_concurrent_sweeps_train_each_unit_once(tmp_path: Path) -> None:
    """bc and filtered_bc share the BC pre-training; the scripted dataset is made by whichever
    sweep gets there first."""
    suite_path = tmp_path / "pair.toml"
    suite_path.write_text(tiny_suite_toml(("bc", "filtered_bc"), (DATASET,), DATASET))
    command = [sys.executable, "-m", "iwbc.cli", "bench", "--suite", str(suite_path), "--quiet"]
    command += ["--results", str(tmp_path / "results"), "--work-dir", str(tmp_path / "runs")]
    command += ["--root", str(tmp_path / "minari")]
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=540) for process in processes]
    done_now = []
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
        match = re.search(r"pair: (\d+) runs done now, (\d+) already done, 0 failed, of 4", out)
        assert match, out
        done_now.append(int(match[1]))
    assert sum(done_now) == 4
    records = load_records("pair", tmp_path / "results")
    assert sorted((r["method"], r["seed"], r["status"]) for r in records) == [
        (m, s, "ok") for m in ("bc", "filtered_bc") for s in (0, 1)
    ]


def test_a_full_disk_while_recording_a_failure_names_the_file(
    setup: tuple[Suite, UnitContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unit failed (here: a full disk) and not even its traceback could be written: the
    error names that file, not just "file too large" (found by the bad-input sweep)."""
    _, context = setup

    def failing(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))

    monkeypatch.setattr(iwbc.bench.units, "run_unit", failing)
    monkeypatch.setattr(iwbc.bench.units, "context_dataset", lambda context, dataset: None)
    monkeypatch.setattr(os, "fsync", failing)  # every atomic write fails as the disk is full
    with pytest.raises(OSError) as raised:
        execute_unit(UNIT, context)
    assert raised.value.errno == errno.EFBIG
    assert raised.value.filename.endswith("/traceback.txt")
    assert not list(context.work_dir.rglob("traceback.txt"))
