"""The built-in default run (`make demo`): the ``demo`` benchmark suite, then its report.

It makes the scripted mixed-quality InvertedDoublePendulum-v5 dataset locally, trains every
method of ``iwbc/suites/demo.toml`` (the BC family) for five vmapped seeds at budgets cut
to fit a laptop-class CPU, evaluates each on fixed-seed episodes on the mujoco.batch engine,
and writes tables, statistics and figures under ``results/demo/``.

The records the runner resumes from are this machine's, kept in the git-ignored work
directory (``runs/demo/records/``): the copy under ``results/demo/records/`` is committed for
the README, so were the runner to resume from it a fresh clone would train nothing. The demo is
``iwbc bench --suite demo --results runs`` followed by that copy and ``iwbc report --suite
demo``; a killed demo resumes without redoing the runs it finished.
"""

from __future__ import annotations

from pathlib import Path

from iwbc.bench.records import records_dir
from iwbc.bench.runner import run_suite
from iwbc.bench.suites import load_suite
from iwbc.errors import UserError
from iwbc.files import write_atomic
from iwbc.report.suite_report import write_suite_report

SUITE = "demo"


def publish_records(local: Path, published: Path) -> None:
    """Make ``published`` hold exactly the records under ``local`` (this machine's run)."""
    kept = set()
    for path in local.glob("*/*/seed-*.json"):
        relative = path.relative_to(local)
        write_atomic(published / relative, path.read_bytes())
        kept.add(relative)
    for path in published.glob("*/*/seed-*.json"):
        if path.relative_to(published) not in kept:
            path.unlink()


def run_demo(
    results_dir: str | Path = "results",
    *,
    data_root: str | Path = "data/minari",
    work_dir: str | Path = "runs",
    progress: bool = True,
) -> list[Path]:
    """Run the demo suite's runs not yet finished on this machine, publish their records and
    write the report; returns the report's files."""
    suite = load_suite(SUITE)
    local = records_dir(suite.name, work_dir)
    summary = run_suite(suite, local, work_dir=work_dir, data_root=data_root, progress=progress)
    if summary.failed:
        # Each unit's error is one line with the path of its traceback.
        raise UserError(
            f"{summary.failed} demo run(s) failed: {'; '.join(summary.errors)}; "
            "fix the cause and rerun `iwbc demo` (finished runs are kept)"
        )
    publish_records(local, records_dir(suite.name, results_dir))
    return write_suite_report(SUITE, results_dir)
