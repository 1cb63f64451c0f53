"""The built-in default run (`make demo`): the ``demo`` benchmark suite, then its report.

It makes the scripted mixed-quality InvertedDoublePendulum-v5 dataset locally, trains every
method of ``benchmarks/suites/demo.toml`` (the BC family and the offline-RL baselines) for five
vmapped seeds at budgets cut to fit a laptop-class CPU, evaluates each on fixed-seed episodes
on the mujoco.batch engine, and writes tables, statistics and figures under
``results/demo/``. It is exactly ``iwbc bench --suite demo`` followed by
``iwbc report --suite demo``, so a killed demo resumes without redoing finished runs.
"""

from __future__ import annotations

from pathlib import Path

from iwbc.benchmark.records import records_dir
from iwbc.benchmark.runner import run_suite
from iwbc.benchmark.suites import load_suite
from iwbc.errors import UserError
from iwbc.report.suite_report import write_suite_report

SUITE = "demo"


def run_demo(
    results_dir: str | Path = "results",
    *,
    data_root: str | Path = "data/minari",
    work_dir: str | Path = "runs",
    progress: bool = True,
) -> list[Path]:
    """Run the demo suite's unfinished runs and write its report; returns the files written."""
    suite = load_suite(SUITE)
    summary = run_suite(
        suite,
        records_dir(suite.name, results_dir),
        work_dir=work_dir,
        data_root=data_root,
        progress=progress,
    )
    if summary.failed:
        raise UserError(
            f"{summary.failed} demo run(s) failed: {'; '.join(summary.errors)}; "
            "fix the cause and rerun `iwbc demo` (finished runs are kept)"
        )
    return write_suite_report(SUITE, results_dir)
