"""Suite tables: cells against NumPy, the literature column group, failed and missing runs."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from test_report_records import SUITE, write_records

from iwbc.report.figures import returns_figure
from iwbc.report.literature import load_literature
from iwbc.report.runs import load_runs
from iwbc.report.tables import (
    MethodScores,
    footnote_mark,
    suite_csv_table,
    suite_markdown_table,
    weight_ess_table,
)

HOPPER = ("iwbc/hopper/medium-v0", "iwbc/hopper/medium-replay-v0")
METHODS = ("bc", "iw_bc", "td3_bc")


def _rows(markdown: str) -> dict[str, list[str]]:
    """Table rows keyed by their dataset cell (or the first cell for the average row)."""
    rows = {}
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[1] or cells[0]] = cells
    rows["header"] = header
    return rows


@pytest.fixture
def scores() -> dict[tuple[str, str], list[float]]:
    rng = np.random.default_rng(3)
    return {(d, m): list(rng.uniform(0, 120, size=4)) for d in HOPPER for m in METHODS}


def test_cells_are_mean_and_std_over_seeds(tmp_path: Path, scores) -> None:
    write_records(tmp_path, scores)
    runs = load_runs(SUITE, tmp_path)
    rows = _rows(suite_markdown_table(runs))
    best_rows = _rows(suite_markdown_table(runs, best=True))
    for (dataset, method), values in scores.items():
        column = rows["header"].index(method)
        values = np.array(values)
        assert rows[dataset][column] == f"{values.mean():.1f} ± {values.std():.1f}"
        best = values + 5  # the factory's curve peaks 5 above the final score
        assert best_rows[dataset][column] == f"{best.mean():.1f} ± {best.std():.1f}"
    for method in METHODS:
        average = np.mean([np.mean(scores[(d, method)]) for d in HOPPER])
        assert rows["**average**"][rows["header"].index(method)] == f"{average:.1f}"


def test_csv_has_the_same_numbers(tmp_path: Path, scores) -> None:
    write_records(tmp_path, scores)
    table = list(csv.DictReader(io.StringIO(suite_csv_table(load_runs(SUITE, tmp_path)))))
    final = {(r["dataset"], r["method"]): r for r in table if r["table"] == "final"}
    for key, values in scores.items():
        np.testing.assert_allclose(float(final[key]["mean"]), np.mean(values), atol=1e-4)
        np.testing.assert_allclose(float(final[key]["std"]), np.std(values), atol=1e-4)
        assert (final[key]["seeds_ok"], final[key]["seeds_expected"]) == ("4", "4")


def test_rows_follow_env_then_tier(tmp_path: Path, scores) -> None:
    write_records(tmp_path, {**scores, ("iwbc/ant/medium-expert-v0", "bc"): [1.0]})
    lines = suite_markdown_table(load_runs(SUITE, tmp_path)).splitlines()
    firsts = [line.split("|")[1].strip() for line in lines[2:]]
    datasets = [line.split("|")[2].strip() for line in lines[2:]]
    assert datasets[:3] == ["iwbc/ant/medium-expert-v0", "iwbc/hopper/medium-v0", HOPPER[1]]
    assert firsts[:3] == ["ant", "hopper", ""]  # the env is named once per group


def test_literature_columns_sit_beside_our_rows(tmp_path: Path, scores) -> None:
    write_records(tmp_path, scores)
    markdown = suite_markdown_table(load_runs(SUITE, tmp_path), load_literature())
    rows = _rows(markdown)
    assert "published (D4RL v2, other data) →" in rows["header"]
    bc, td3 = rows["header"].index("BC†"), rows["header"].index("TD3+BC†")
    assert (rows[HOPPER[0]][bc], rows[HOPPER[0]][td3]) == ("53.5", "60.4")
    assert (rows[HOPPER[1]][bc], rows[HOPPER[1]][td3]) == ("29.8", "64.4")
    assert rows["**average**"][bc] == f"{(53.5 + 29.8) / 2:.1f}"
    assert "IQL†" not in rows["header"]  # only methods the suite ran
    published = [
        r
        for r in csv.DictReader(
            io.StringIO(suite_csv_table(load_runs(SUITE, tmp_path), load_literature()))
        )
        if r["table"] == "published"
    ]
    assert {(r["dataset"], r["method"], r["mean"]) for r in published} >= {
        (HOPPER[1], "bc", "29.8"),
        (HOPPER[1], "td3_bc", "64.4"),
    }


def test_five_sources_keep_the_header_and_rows_aligned(tmp_path: Path, scores) -> None:
    """Past the fourth source the marks double (††): each source keeps its header columns."""
    write_records(tmp_path, scores)
    (corl,) = load_literature()
    sources = [dataclasses.replace(corl) for _ in range(5)]
    rows = _rows(suite_markdown_table(load_runs(SUITE, tmp_path), sources))
    assert {len(cells) for cells in rows.values()} == {len(rows["header"])}
    assert [footnote_mark(i) for i in range(6)] == ["†", "‡", "§", "¶", "††", "‡‡"]
    assert any(cell.endswith("††") for cell in rows["header"])


def test_failed_and_missing_cells(tmp_path: Path) -> None:
    write_records(
        tmp_path,
        {
            ("e/x/medium-v0", "bc"): [10.0, "fail: diverged", 30.0],
            ("e/x/medium-v0", "iql"): ["fail: diverged", "fail: diverged", None],
            ("e/y/medium-v0", "bc"): [1.0, 2.0, 3.0],
            ("e/y/medium-v0", "iql"): [4.0, 5.0, 6.0],
        },
    )
    rows = _rows(suite_markdown_table(load_runs(SUITE, tmp_path)))
    bc, iql = rows["header"].index("bc"), rows["header"].index("iql")
    assert rows["e/x/medium-v0"][bc] == "20.0 ± 10.0 (2/3)"
    assert rows["e/x/medium-v0"][iql] == "—"
    assert rows["**average**"][iql] == "—"  # e/x has no finished iql run
    # Averaged over what finished, and marked so: a (k/n) cell would otherwise hide in it.
    assert rows["**average**"][bc] == f"{(20.0 + 2.0) / 2:.1f} (incomplete)"


def test_weight_table_lists_the_runs_that_logged_importance_weights(tmp_path: Path) -> None:
    """The last chunk's effective sample fraction, mean (min–max) over seeds, for iw_bc only,
    on the datasets where it ran; records without training metrics (older ones) count as none."""
    ess = {0: [0.9, 0.5], 1: [0.8, 0.2], 2: [0.7, 0.3]}
    outcomes = {(HOPPER[0], m): [50.0, 60.0, 70.0] for m in METHODS}
    outcomes[(HOPPER[1], "bc")] = [40.0, 45.0, 50.0]
    directory = write_records(tmp_path, outcomes)
    for path in directory.glob("*/iw_bc/seed-*.json"):
        record = json.loads(path.read_text())
        if record["seed"] != 2:
            record["training"] = {"steps": [10, 20], "weight_ess": ess[record["seed"]]}
        path.write_text(json.dumps(record))
    table = weight_ess_table(load_runs(SUITE, tmp_path))
    assert table.splitlines() == [
        "| dataset | iw_bc |",
        "|---|---|",
        f"| {HOPPER[0]} | 0.35 (0.20–0.50) |",
    ]
    for path in directory.glob("*/iw_bc/seed-*.json"):
        path.unlink()
    assert weight_ess_table(load_runs(SUITE, tmp_path)) == ""


@pytest.mark.parametrize(
    "dataset_scores",
    [np.full(30, 10.0), 10.0 + np.arange(30) * 1e-15, np.linspace(-5.0, 80.0, 30)],
    ids=["equal", "equal-up-to-rounding", "spread"],
)
def test_the_returns_figure_draws_any_dataset(tmp_path: Path, dataset_scores: np.ndarray) -> None:
    """Episodes whose returns differ by a few ulps once made numpy refuse 40 bins, after all
    the training, and no table was written."""
    scores = [MethodScores("d", "bc", np.zeros((2, 3)), np.full((2, 3), 50.0), 30)]
    path = returns_figure(dataset_scores, scores, tmp_path / "returns.png")
    assert imread(path).shape[2] == 4
