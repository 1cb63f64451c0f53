"""Seeds apart from their cell: the modified z-score against its formula, and which seeds the
report names (records from the report tests' factory, nothing trained)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_report_records import SUITE, write_records

from iwbc.report.outliers import modified_z_scores, seeds_apart
from iwbc.report.runs import load_runs
from iwbc.report.suite_report import write_suite_report


def test_modified_z_score_is_its_formula() -> None:
    values = np.array([3.0, 1.0, 2.0, 100.0, 4.0])
    # median 3; absolute deviations 0, 2, 1, 97, 1; their median (MAD) 1.
    np.testing.assert_allclose(modified_z_scores(values), 0.6745 * np.array([0, -2, -1, 97, 1]))
    # MAD 0: off-median values are infinitely far, the others 0.
    np.testing.assert_array_equal(modified_z_scores(np.array([5.0, 5, 5, 9])), [0, 0, 0, np.inf])


def test_report_names_the_stuck_seed_with_its_best_and_the_cell_median(tmp_path: Path) -> None:
    write_records(
        tmp_path,
        {
            # Seed 4 is stuck 40 points below the others.
            ("a/toy/medium-v0", "bc"): [50.0, 51.0, 52.0, 49.0, 10.0],
            # Agreeing to the point but for one seed 4 points off: not worth a reader's time.
            ("a/toy/medium-v0", "iql"): [60.0, 60.0, 60.0, 60.0, 64.0],
            # Spread evenly over 40 points: no seed stands apart from the others.
            ("b/toy/medium-v0", "bc"): [10.0, 20.0, 30.0, 40.0, 50.0],
            # Two seeds: not tested.
            ("b/toy/medium-v0", "iql"): [80.0, 5.0, None, None, None],
        },
    )
    apart = seeds_apart(load_runs(SUITE, tmp_path))
    assert [(a.dataset, a.method, a.seed) for a in apart] == [("a/toy/medium-v0", "bc", 4)]
    # The factory's curve is [final / 2, final + 5, final] at updates 100, 200, 300.
    (stuck,) = apart
    assert (stuck.final, stuck.best, stuck.best_step, stuck.last_step) == (10.0, 15.0, 200, 300)
    assert (stuck.cell_median, stuck.cell_seeds) == (50.0, 5)

    write_suite_report(SUITE, tmp_path, reps=20)
    table = (tmp_path / SUITE / "table.md").read_text()
    assert "## Seeds apart from their cell" in table
    assert "| a/toy/medium-v0 | bc | 4 | 10.0 | 15.0 (200 of 300) | 50.0 (5) |" in table


def test_report_says_none_when_every_seed_agrees(tmp_path: Path) -> None:
    write_records(tmp_path, {("a/toy/medium-v0", "bc"): [50.0, 51.0, 52.0]})
    write_suite_report(SUITE, tmp_path, reps=20)
    table = (tmp_path / SUITE / "table.md").read_text()
    section = table.split("## Seeds apart from their cell")[1].split("##")[0]
    assert section.strip().endswith("None.")


def test_iwbc_runs_table_names_a_seed_apart() -> None:
    """`iwbc run`'s table.md: one line naming such seeds by their seed ids, none otherwise."""
    from iwbc.bench.experiment import _seeds_apart_lines
    from iwbc.report.tables import MethodScores

    def scores(method: str, finals: list[float]) -> MethodScores:
        normalized = np.repeat(np.array(finals)[:, None], 2, axis=1)
        return MethodScores("a/toy/medium-v0", method, normalized, normalized, 10)

    lines = _seeds_apart_lines(
        [
            scores("bc", [50.0, 51.0, 52.0, 49.0, 10.0]),
            scores("iw_bc", [60.0, 61.0, 62.0, 60.0, 66.0]),
        ],
        seeds=(3, 4, 5, 6, 7),
    )
    assert lines[0].startswith("Seeds apart from their method's others: bc seed 7 10.0 (median")
    assert "iw_bc" not in lines[0]
    assert _seeds_apart_lines([scores("bc", [50.0, 51.0, 52.0])], seeds=(0, 1, 2)) == []
