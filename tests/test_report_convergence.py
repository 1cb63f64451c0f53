"""Learning curves still rising at the end of training: the test against SciPy, which curves it
flags, and how the report shows them; critics still learning where the score is flat."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from test_report_records import SUITE, make_record, save_record

from iwbc.bench.records import check_record, critic_q_end, critic_q_tail, records_dir
from iwbc.report.convergence import CriticEnd, CurveEnd, critic_ends, curve_ends, still_rising
from iwbc.report.runs import load_runs
from iwbc.report.suite_report import report_main, write_suite_report

DATASET = "iwbc/hopper/medium-replay-v0"
STEPS = [1000, 2000, 3000, 4000]
NOISE = np.array([-0.6, 0.4, 0.1, -0.3, 0.5])  # per seed, so that the t-tests have a spread


def write_curves(results: Path, curves: dict[str, list[list[float]]], steps=STEPS) -> None:
    """One record per method and seed with the given normalized learning curve."""
    for method, per_seed in curves.items():
        for seed, curve in enumerate(per_seed):
            record = make_record(DATASET, method, seed, curve[-1])
            record["curve"] = {"steps": steps, "returns": curve, "normalized": curve}
            record["best"] = {"normalized": max(curve), "step": steps[int(np.argmax(curve))]}
            check_record(record)
            save_record(records_dir(SUITE, results), record)


def seeds(*curve: float) -> list[list[float]]:
    """The curve for each of five seeds, each shifted by its own noise at every point."""
    return [[value + noise * (k + 1) for k, value in enumerate(curve)] for noise in NOISE]


def test_slopes_and_p_value_are_least_squares_and_a_one_sided_t_test() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(50, 5, size=(5, 3)) + np.array([0.0, 2.0, 4.0])
    end = CurveEnd(DATASET, "bc", (2000, 3000, 4000), scores)
    slopes = [scipy.stats.linregress([2000, 3000, 4000], row).slope for row in scores]
    np.testing.assert_allclose(end.slopes, slopes, rtol=1e-9)
    expected = scipy.stats.ttest_1samp(slopes, 0.0, alternative="greater").pvalue
    assert end.p_value == pytest.approx(expected, rel=1e-9)
    assert end.trend == pytest.approx(np.mean(slopes) * 2000)
    assert end.last_gain == pytest.approx(np.mean(scores[:, 2] - scores[:, 1]))


def test_only_a_curve_still_climbing_at_its_end_is_flagged(tmp_path: Path) -> None:
    write_curves(
        tmp_path,
        {
            "bc": seeds(10, 20, 30, 40),  # climbing to the end: flagged
            "filtered_bc": seeds(10, 30, 45, 44.5),  # a significant trend, then level
            "iw_bc": seeds(30, 31, 29, 30.5),  # flat, within noise
            "top10_bc": seeds(10, 20, 30, 30.8),  # the last gain under one point
        },
    )
    runs = load_runs(SUITE, tmp_path)
    assert [(end.dataset, end.method) for end in still_rising(runs)] == [(DATASET, "bc")]
    ends = curve_ends(runs)
    assert ends[DATASET, "filtered_bc"].p_value < 0.05  # rose, but not over its last interval
    assert not any(ends[DATASET, m].still_rising for m in ("filtered_bc", "iw_bc", "top10_bc"))


def test_the_final_point_is_scored_on_the_intermediate_evaluations_episodes(
    tmp_path: Path,
) -> None:
    """The final evaluation's 100 episodes start from other states than the 10 of each earlier
    evaluation, except its first 10: the trend compares the final policy on those alone. A
    curve level on them is not rising, whatever its other 90 episodes score, and one climbing
    on them is, though its 100-episode mean fell back."""
    level_on_ten = seeds(10, 20, 30, 30.2)
    climbing_on_ten = seeds(10, 20, 30, 40)
    for method, on_ten, others in (
        ("bc", level_on_ten, 60.0),
        ("iql", climbing_on_ten, 0.0),
    ):
        for seed, curve in enumerate(on_ten):
            episodes = [curve[-1]] * 10 + [others] * 90  # normalized = return: ref 0 to 100
            final = float(np.mean(episodes))
            record = make_record(DATASET, method, seed, final)
            record["config"]["evaluation"] = {"eval_episodes": 10, "final_eval_episodes": 100}
            shown = [*curve[:-1], final]
            record["curve"] = {"steps": STEPS, "returns": shown, "normalized": shown}
            record["final"]["episode_returns"] = episodes
            record["best"] = {"normalized": max(shown), "step": STEPS[int(np.argmax(shown))]}
            check_record(record)
            save_record(records_dir(SUITE, tmp_path), record)
    runs = load_runs(SUITE, tmp_path)
    ends = curve_ends(runs)
    np.testing.assert_allclose(ends[DATASET, "bc"].scores[:, -1], [c[-1] for c in level_on_ten])
    assert [end.method for end in still_rising(runs)] == ["iql"]
    bc = runs.ok_runs(DATASET, "bc")[0]
    assert bc.curve[-1] == pytest.approx(0.1 * level_on_ten[0][-1] + 54.0)  # the table's


def test_curves_too_short_or_with_one_seed_are_not_tested(tmp_path: Path) -> None:
    write_curves(tmp_path, {"iw_bc": seeds(40, 60)}, steps=[500, 1000])  # a fine-tune
    write_curves(tmp_path, {"bc": seeds(10, 20, 30, 40)[:1]})
    assert curve_ends(load_runs(SUITE, tmp_path)) == {
        (DATASET, "bc"): None,
        (DATASET, "iw_bc"): None,
    }


def test_a_stale_seed_zero_does_not_decide_which_runs_are_tested(tmp_path: Path) -> None:
    """Seed 0 made under an older budget, evaluated at other steps: the test reads the four
    seeds that share their last steps, not seed 0 alone (which would leave it untested)."""
    write_curves(tmp_path, {"bc": seeds(10, 20, 30, 40)})
    write_curves(tmp_path, {"bc": seeds(10, 20, 30, 40)[:1]}, steps=[500, 1000, 1500, 2000])
    end = curve_ends(load_runs(SUITE, tmp_path))[DATASET, "bc"]
    assert end is not None and end.steps == (2000, 3000, 4000)
    np.testing.assert_allclose(end.scores, np.array(seeds(10, 20, 30, 40))[1:, 1:])
    assert end.still_rising


def test_the_report_marks_explains_and_warns_of_rising_cells(tmp_path: Path) -> None:
    write_curves(tmp_path, {"bc": seeds(10, 20, 30, 40), "iql": seeds(30, 31, 29, 30.5)})
    write_curves(tmp_path, {"iw_bc": seeds(40, 60)}, steps=[500, 1000])
    write_suite_report(SUITE, tmp_path, reps=20)
    table = (tmp_path / SUITE / "table.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("|") and DATASET in line)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2].endswith(" ↑") and not cells[3].endswith("↑") and not cells[4].endswith("↑")
    section = table.split("## Learning curves at the end of training")[1].split("\n## ")[0]
    assert "2 of 3 cells could be tested; not those of iw_bc" in section
    assert f"| {DATASET} | bc | 2,000 → 3,000 → 4,000 | " in section
    final = {
        row["method"]: row["still_rising"]
        for row in csv.DictReader(io.StringIO((tmp_path / SUITE / "table.csv").read_text()))
        if row["table"] == "final" and row["dataset"] == DATASET
    }
    assert final == {"bc": "1", "iw_bc": "", "iql": "0"}
    stats = (tmp_path / SUITE / "stats.md").read_text()
    assert "Cells table.md marks: bc 1 of 1 ↑. These methods' aggregates take them in" in stats
    _, warnings = report_main(SUITE, tmp_path, reps=20)
    assert warnings == [
        f"1 cell(s) were still improving when training stopped (bc on {DATASET}): "
        "their scores, marked ↑, understate what those methods reach; compare them at a budget "
        "where every curve has flattened (the suite's steps)"
    ]


def write_critics(
    results: Path,
    q_ends: dict[str, list[tuple[float, float]] | None],
    q_bounds: dict[str, list | None] | None = None,
) -> None:
    """Records of flat score curves whose critic's mean Q (chunk means every 500 updates) ends
    going from the first value at 3k updates to the second at 4k, per seed; None: no training
    metrics. ``q_bounds``: the record's range TD on its data can reach, where given."""
    for method, ends in q_ends.items():
        for seed, curve in enumerate(seeds(30, 31, 29, 30.5)):
            record = make_record(DATASET, method, seed, curve[-1])
            record["curve"] = {"steps": STEPS, "returns": curve, "normalized": curve}
            if ends is not None:
                first, last = ends[seed]
                q = [*np.linspace(first / 2, first, 6).tolist(), (first + last) / 2, last]
                record["training"] = {"steps": list(range(500, 4001, 500)), "q_mean": q}
            if (q_bounds or {}).get(method) is not None:
                record["q_bounds"] = q_bounds[method]
            check_record(record)
            save_record(records_dir(SUITE, results), record)


def main_table_cells(table: str) -> tuple[dict[str, str], dict[str, str]]:
    """The main table's cells of DATASET's row and of the average row, by column."""
    header, row, average = (
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in table.split("\n## ")[0].splitlines()
        if line.startswith(("| env ", f"| hopper | {DATASET} ", "| **average**"))
    )
    return dict(zip(header, row, strict=True)), dict(zip(header, average, strict=True))


def test_critics_still_moving_are_named_though_their_scores_are_flat(tmp_path: Path) -> None:
    rising = [(50.0, 55.0)] * 5  # +10% on every seed
    settled = [(100.0, 102.0)] * 5  # +2%
    swinging = [(100.0, 110.0), (100.0, 90.0)] * 2 + [(100.0, 100.0)]  # ±10%: mean change 0
    write_critics(tmp_path, {"td3_bc": rising, "iql": settled, "cql": swinging, "awac": None})
    ends = critic_ends(load_runs(SUITE, tmp_path))
    assert [(end.method, end.steps) for end in ends] == [
        ("td3_bc", (3000, 4000)),
        ("iql", (3000, 4000)),
        ("cql", (3000, 4000)),
    ]
    assert ends[0].moved == pytest.approx(0.10) and ends[0].still_learning
    assert ends[1].moved == pytest.approx(0.02) and not ends[1].still_learning
    assert ends[2].moved == pytest.approx(0.08) and ends[2].still_learning
    np.testing.assert_allclose(ends[2].changes, [0.1, -0.1, 0.1, -0.1, 0.0])
    assert not still_rising(load_runs(SUITE, tmp_path))

    write_suite_report(SUITE, tmp_path, reps=20)
    table = (tmp_path / SUITE / "table.md").read_text()
    section = table.split("## Critics at the end of training")[1].split("\n## ")[0]
    ten = ", ".join(["+10.0%"] * 5)
    assert (
        f"| td3_bc | 3,000 → 4,000 | 50 → 55 | — | 10.0% | {ten} | **still learning** |" in section
    )
    assert f"| {DATASET} | iql | 3,000 → 4,000 | 100 → 102 | — | 2.0% | " in section
    swing = "+10.0%, -10.0%, +10.0%, -10.0%, +0.0%"
    assert (
        f"| cql | 3,000 → 4,000 | 100 → 100 | — | 8.0% | {swing} | **still learning** |" in section
    )
    # AWAC's records have no training metrics: no row, and named as not tested, since its
    # unmarked score says nothing of its critic.
    assert "| awac |" not in section and f"| {DATASET} | awac |" not in section
    assert (
        f"Not tested: awac on {DATASET} (records made before training metrics were kept); the "
        "score table leaves them unmarked, which says nothing of their critics: rerun them to "
        "test." in section
    )
    _, warnings = report_main(SUITE, tmp_path, reps=20)
    assert warnings == [
        "2 cell(s) ended with their critic's mean Q still moving by 5% or more over "
        "the last evaluation interval, or still approaching the range TD on their data can "
        f"reach from outside it (td3_bc on {DATASET}, cql on {DATASET}): their value "
        "estimates had not settled, so a larger budget may change their scores, marked Q~, "
        "even where the score curve is flat (*Critics at the end of training*)"
    ]
    cells, averages = main_table_cells(table)
    assert cells["td3_bc"].endswith(" Q~") and cells["cql"].endswith(" Q~")
    assert not cells["iql"].endswith("~") and not cells["awac"].endswith("~")
    assert averages["td3_bc"].endswith(" Q~") and not averages["iql"].endswith("~")
    assert "Q~: its critic's mean Q still moved by 5% or more" in table
    final = {
        row["method"]: (row["critic_moved"], row["critic_still_learning"])
        for row in csv.DictReader(io.StringIO((tmp_path / SUITE / "table.csv").read_text()))
        if row["table"] == "final" and row["dataset"] == DATASET
    }
    assert final == {
        "td3_bc": ("0.1000", "1"),
        "iql": ("0.0200", "0"),
        "cql": ("0.0800", "1"),
        "awac": ("", ""),
    }


def test_a_critic_past_what_its_data_allows_is_marked_diverged_though_settled(
    tmp_path: Path,
) -> None:
    """A mean Q outside the range TD targets of the data's rewards can reach is no policy's
    value: the cell is marked Q! whether or not Q still moves; records before the range was
    kept (awac here) are marked neither way."""
    settled_high = [(500.0, 501.0)] * 5  # +0.2%, far above 395
    within = [(100.0, 102.0)] * 5
    two_seeds = [(100.0, 101.0)] * 3 + [(-50.0, -51.0), (400.0, 420.0)]  # one below, one above
    write_critics(
        tmp_path,
        {"td3_bc": settled_high, "iql": within, "cql": two_seeds, "awac": settled_high},
        {"td3_bc": [0.5, 395.0], "iql": [0.5, 395.0], "cql": [0.0, 395.0], "awac": None},
    )
    ends = {end.method: end for end in critic_ends(load_runs(SUITE, tmp_path))}
    assert ends["td3_bc"].diverged and not ends["td3_bc"].still_learning
    np.testing.assert_array_equal(ends["cql"].outside, [False, False, False, True, True])
    assert not ends["iql"].diverged and not ends["awac"].diverged

    write_suite_report(SUITE, tmp_path, reps=20)
    table = (tmp_path / SUITE / "table.md").read_text()
    section = table.split("## Critics at the end of training")[1].split("\n## ")[0]
    assert (
        "| td3_bc | 3,000 → 4,000 | 500 → 501 | [0.5, 395] | 0.2% | "
        + ", ".join(["+0.2%"] * 5)
        + " | **outside the range** (5/5 seeds) |"
    ) in section
    assert "| iql | 3,000 → 4,000 | 100 → 102 | [0.5, 395] | 2.0% | " in section
    assert "| cql | 3,000 → 4,000 | " in section and "**outside the range** (2/5 seeds)" in section
    assert "| awac | 3,000 → 4,000 | 500 → 501 | — | 0.2% |" in section
    cells, averages = main_table_cells(table)
    assert cells["td3_bc"].endswith(" Q!") and cells["cql"].endswith(" Q!")
    assert not cells["iql"].endswith("!") and not cells["awac"].endswith("!")
    assert averages["cql"].endswith(" Q!") and not averages["awac"].endswith("!")
    assert "Q!: some seed's critic ended with a mean Q outside the range" in table
    final = {
        row["method"]: row["critic_outside_bounds"]
        for row in csv.DictReader(io.StringIO((tmp_path / SUITE / "table.csv").read_text()))
        if row["table"] == "final" and row["dataset"] == DATASET
    }
    assert final == {"td3_bc": "5", "iql": "0", "cql": "2", "awac": ""}
    _, warnings = report_main(SUITE, tmp_path, reps=20)
    assert warnings == [
        "2 cell(s) ended with a critic whose mean Q lies outside the range any "
        f"discounted return of its training rewards can take (td3_bc on {DATASET} (5/5 "
        f"seeds), cql on {DATASET} (2/5 seeds)): those value estimates have diverged, so the "
        "scores, marked Q!, are of policies following values no data supports (*Critics at "
        "the end of training*)"
    ]


def test_a_critic_on_its_way_into_a_negative_range_is_still_learning_not_diverged(
    tmp_path: Path,
) -> None:
    """Rewards all negative (Pusher, Reacher) put the TD range below 0: a critic starting near 0
    is outside it until it gets there. Coming closer over the last interval is learning,
    however little it moved relative to that range; drifting away from it is divergence."""
    entering = [(-5.0, -7.0)] * 5  # towards [-20000, -30]
    leaving = [(-5.0, -4.0)] * 5  # away from it
    write_critics(
        tmp_path,
        {"td3_bc": entering, "iql": leaving},
        {"td3_bc": [-20000.0, -30.0], "iql": [-20000.0, -30.0]},
    )
    ends = {end.method: end for end in critic_ends(load_runs(SUITE, tmp_path))}
    entering_end, leaving_end = ends["td3_bc"], ends["iql"]
    assert entering_end.moved < 0.05  # 2 on the floor scale, 1% of the range's 19,970: 1%
    assert entering_end.approaching.all() and entering_end.still_learning
    assert not entering_end.diverged
    assert not leaving_end.approaching.any() and leaving_end.diverged
    assert not leaving_end.still_learning

    write_suite_report(SUITE, tmp_path, reps=20)
    table = (tmp_path / SUITE / "table.md").read_text()
    section = table.split("## Critics at the end of training")[1].split("\n## ")[0]
    assert "**still learning**, approaching the range (5/5 seeds) |" in section
    assert "| iql | 3,000 → 4,000 | -5 → -4 | [-2e+04, -30] |" in section
    assert "**outside the range** (5/5 seeds) |" in section
    cells, _ = main_table_cells(table)
    assert cells["td3_bc"].endswith(" Q~") and cells["iql"].endswith(" Q!")
    _, warnings = report_main(SUITE, tmp_path, reps=20)
    assert warnings[0].startswith(
        "1 cell(s) ended with their critic's mean Q still moving by 5% or more over the last "
        "evaluation interval, or still approaching the range TD on their data can reach from "
        f"outside it (td3_bc on {DATASET})"
    )
    assert warnings[1].startswith(
        "1 cell(s) ended with a critic whose mean Q lies outside the range any discounted "
        f"return of its training rewards can take (iql on {DATASET} (5/5 seeds))"
    )


def test_only_a_critic_between_zero_and_its_range_can_be_approaching_it() -> None:
    """Coming closer counts only on the way in from 0: a critic far past its range that fell
    back a little (AWAC's diverging ones on Hopper medium-expert) or one beyond it on the far
    side of 0 has diverged; one just above 0 that falls into a negative range is on its way."""
    q = np.array([[7000.0, 5000.0], [0.01, 0.05], [-3e4, -2.5e4], [0.5, 0.1], [-8.0, -9.0]])
    bounds = np.array([[0.1, 395.0], [0.1, 395.0], [-2e4, -30.0], [-2e4, -30.0], [-2e4, -30.0]])
    end = CriticEnd("d", "awac", (1000, 2000), q, bounds)
    np.testing.assert_array_equal(end.outside, [True, True, True, True, True])
    np.testing.assert_array_equal(end.approaching, [False, True, False, True, True])
    np.testing.assert_array_equal(end.diverging, [True, False, True, False, False])
    unknown = CriticEnd("d", "awac", (1, 2), q, np.full((5, 2), np.nan))
    assert not unknown.approaching.any() and not unknown.diverged


def test_a_critic_is_read_only_where_its_metrics_meet_the_curve() -> None:
    record = {"curve": {"steps": [2000, 4000]}, "training": {"steps": [1000, 2000, 3000, 4000]}}
    record["training"]["q_mean"] = [1.0, 2.0, 3.0, 4.0]
    assert critic_q_end(record) == (2.0, 4.0)
    record["curve"]["steps"] = [1500, 4000]  # the evaluation before the last is not a chunk end
    assert critic_q_end(record) is None
    assert critic_q_end({"curve": {"steps": [4000]}, "training": record["training"]}) is None
    assert critic_q_end({"curve": {"steps": [2000, 4000]}, "training": {"steps": [4000]}}) is None


def test_a_run_scored_only_at_its_end_reads_its_critic_over_its_last_tenth() -> None:
    training = {"steps": list(range(1000, 10001, 1000)), "q_mean": [float(q) for q in range(10)]}
    assert critic_q_tail({"training": training}) == ((9000, 10000), (8.0, 9.0))
    training = {"steps": [500, 1000, 1500, 2000], "q_mean": [1.0, 2.0, 3.0, 4.0]}
    assert critic_q_tail({"training": training}) == ((1500, 2000), (3.0, 4.0))
    assert critic_q_tail({"training": training}, share=0.5) == ((1000, 2000), (2.0, 4.0))
    assert critic_q_tail({"training": {"steps": [2000], "q_mean": [4.0]}}) is None
    assert critic_q_tail({"training": {"steps": [1000, 2000], "loss": [1.0, 2.0]}}) is None
    assert critic_q_tail({"training": None}) is None


def test_a_critic_near_zero_is_measured_against_its_reachable_range() -> None:
    """Sparse rewards leave Q near 0: 0.001 -> 0.002 is no 100% move on a range of 100 (it is
    0.1% of the 1% floor's scale), while a Q far from 0 keeps its own scale, and a Q of exactly
    0 that stays there has not moved (no 0/0)."""
    q = np.array([[0.001, 0.002], [0.0, 0.0], [50.0, 55.0]])
    bounds = np.array([[0.0, 100.0]] * 3)
    end = CriticEnd("d", "iql", (1000, 2000), q, bounds)
    np.testing.assert_allclose(end.changes, [0.001, 0.0, 0.1])
    assert end.moved == pytest.approx(0.101 / 3)
    unbounded = CriticEnd("d", "iql", (1000, 2000), q, np.array([[0.0, np.inf]] * 3))
    np.testing.assert_allclose(unbounded.changes, [1.0, 0.0, 0.1])
    assert not np.isnan(CriticEnd("d", "iql", (1, 2), q).changes).any()
