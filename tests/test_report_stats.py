"""rliable aggregates: IQM and friends against NumPy/SciPy, CIs, profiles, left-out runs."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from rliable import library as rly
from scipy.stats import trim_mean
from test_report_records import SUITE, write_records

from iwbc.report.runs import load_runs
from iwbc.report.stats import (
    METRICS,
    fraction_above,
    profiles_csv,
    stats_csv,
    stats_markdown,
    suite_stats,
)

DATASETS = ("e/x/medium-v0", "e/x/medium-replay-v0", "e/y/medium-v0")


@pytest.fixture
def scores() -> dict[tuple[str, str], list[float]]:
    rng = np.random.default_rng(5)
    return {
        (d, m): list(rng.normal(loc, 15, size=5))
        for d in DATASETS
        for m, loc in (("bc", 40.0), ("iw_bc", 80.0))
    }


def test_aggregates_match_numpy_and_cis_contain_them(tmp_path: Path, scores) -> None:
    write_records(tmp_path, scores)
    stats = suite_stats(load_runs(SUITE, tmp_path), reps=200)
    assert stats.metrics == METRICS
    for method in ("bc", "iw_bc"):
        matrix = np.array([scores[(d, method)] for d in DATASETS]).T  # [seeds, datasets]
        np.testing.assert_array_equal(stats.scores[method], matrix)
        expected = [
            trim_mean(matrix.ravel(), 0.25),
            np.median(matrix.mean(axis=0)),
            matrix.mean(),
            100 - np.minimum(matrix, 100).mean(),
        ]
        np.testing.assert_allclose(stats.estimates[method], expected, rtol=1e-12)
        low, high = stats.intervals[method]
        assert np.all(low <= stats.estimates[method]) and np.all(stats.estimates[method] <= high)
        assert np.all(high - low > 0)
    # 5 seeds × 3 datasets apart by 40 points: the IQM CIs do not overlap.
    assert stats.intervals["bc"][1][0] < stats.intervals["iw_bc"][0][0]


def test_reports_are_deterministic_and_leave_global_rng_alone(tmp_path: Path, scores) -> None:
    write_records(tmp_path, scores)
    runs = load_runs(SUITE, tmp_path)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first, second = suite_stats(runs, reps=100), suite_stats(runs, reps=100)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    assert stats_csv(first) == stats_csv(second)
    other_seed = suite_stats(runs, reps=100, seed=1)
    assert stats_csv(other_seed) != stats_csv(first)


def test_profiles_are_rliable_score_distributions(tmp_path: Path, scores) -> None:
    write_records(tmp_path, scores)
    stats = suite_stats(load_runs(SUITE, tmp_path), reps=50)
    for method, matrix in stats.scores.items():
        expected = rly.score_distributions(matrix, stats.taus)
        np.testing.assert_allclose(fraction_above(matrix, stats.taus), expected)
        np.testing.assert_allclose(stats.profiles[method], expected)
        low, high = stats.profile_intervals[method]
        assert np.all(low <= expected + 1e-12) and np.all(expected <= high + 1e-12)
    assert stats.taus[0] == 0 and stats.taus[-1] >= max(m.max() for m in stats.scores.values())


def test_incomplete_methods_are_noted_not_hidden(tmp_path: Path) -> None:
    outcomes = {(d, "bc"): [10.0, 20.0, 30.0] for d in DATASETS}
    outcomes[(DATASETS[1], "bc")] = [10.0, "fail: diverged", 30.0]
    outcomes |= {(d, "iql"): [1.0, 2.0, 3.0] for d in DATASETS[:2]}
    outcomes[(DATASETS[2], "iql")] = ["fail: diverged", "fail: diverged", "fail: diverged"]
    write_records(tmp_path, outcomes)
    stats = suite_stats(load_runs(SUITE, tmp_path), reps=50)
    assert list(stats.scores) == ["bc"]
    # Each dataset keeps its first two finished seeds: seeds 0, 1 / 0, 2 / 0, 1.
    np.testing.assert_array_equal(stats.scores["bc"], [[10.0, 10.0, 10.0], [20.0, 30.0, 20.0]])
    assert any("bc: 2 finished run(s) left out" in note for note in stats.notes)
    assert any(
        note.startswith(f"iql: no aggregate, no finished run on {DATASETS[2]}")
        for note in stats.notes
    )
    rows = list(csv.DictReader(io.StringIO(stats_csv(stats))))
    assert {(r["method"], r["runs"], r["datasets"]) for r in rows} == {("bc", "2", "3")}


def test_bad_reps(tmp_path: Path, scores) -> None:
    write_records(tmp_path, scores)
    with pytest.raises(ValueError, match="reps must be at least 1"):
        suite_stats(load_runs(SUITE, tmp_path), reps=0)


def test_one_run_per_dataset_has_no_interval(tmp_path: Path, scores) -> None:
    """With one run per dataset every stratified resample is the data itself: the report
    prints no interval rather than a zero-width one that reads as certainty."""
    scores[(DATASETS[1], "bc")] = [scores[(DATASETS[1], "bc")][0]] + ["fail: diverged"] * 4
    write_records(tmp_path, scores)
    stats = suite_stats(load_runs(SUITE, tmp_path), reps=50)
    assert stats.scores["bc"].shape == (1, 3) and stats.scores["iw_bc"].shape == (5, 3)
    table = stats_markdown(stats)
    bc_row = next(line for line in table.splitlines() if line.startswith("| bc |"))
    assert bc_row.count("[—]") == len(METRICS) and "[—]" not in table.split("| iw_bc |")[1]
    assert "bc: one run per dataset, so no confidence interval" in table
    rows = list(csv.DictReader(io.StringIO(stats_csv(stats))))
    assert {(r["ci_low"], r["ci_high"]) for r in rows if r["method"] == "bc"} == {("", "")}
    assert all(r["ci_low"] for r in rows if r["method"] == "iw_bc")
    profiles = list(csv.DictReader(io.StringIO(profiles_csv(stats))))
    assert {(r["ci_low"], r["ci_high"]) for r in profiles if r["method"] == "bc"} == {("", "")}
    assert all(r["ci_low"] for r in profiles if r["method"] == "iw_bc")
