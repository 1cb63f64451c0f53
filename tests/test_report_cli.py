"""`iwbc report`: every file written from records alone, figures, failures listed, errors."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_report_records import SUITE, make_record, save_record, write_records

from iwbc.bench.records import records_dir
from iwbc.cli import main
from iwbc.errors import UserError
from iwbc.report.suite_report import write_suite_report

OUTCOMES = {
    ("iwbc/hopper/medium-v0", "bc"): [50.0, 60.0, "fail: NaN in the actor loss | step 12"],
    ("iwbc/hopper/medium-v0", "td3_bc"): [70.0, 75.0, 80.0],
    ("iwbc/hopper/medium-replay-v0", "bc"): [20.0, 30.0, None],
    ("iwbc/hopper/medium-replay-v0", "td3_bc"): [60.0, 65.0, 70.0],
}
FILES = ("table.md", "table.csv", "runs.csv", "stats.md", "stats.csv", "profiles.csv")
FIGURES = ("learning_curves", "aggregates", "profiles")


def test_report_writes_tables_stats_and_figures(tmp_path: Path) -> None:
    write_records(tmp_path, OUTCOMES)
    written = write_suite_report(SUITE, tmp_path, reps=50)
    out = tmp_path / SUITE
    assert {p.relative_to(out).as_posix() for p in written} == {
        *FILES,
        *(f"figures/{name}.{ext}" for name in FIGURES for ext in ("png", "svg")),
    }
    for name in FIGURES:
        assert (out / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (out / "figures" / f"{name}.svg").read_bytes()[:1000]
    table = (out / "table.md").read_text()
    assert "`iwbc report --suite toy --results " in table
    assert "| bc | iwbc/hopper/medium-v0 | 2 | failed | NaN in the actor loss / step 12 |" in table
    assert "| bc | iwbc/hopper/medium-replay-v0 | 2 | missing |" in table
    assert "55.0 ± 5.0 (2/3)" in table
    assert "published (D4RL v2, other data)" in table and "other data than ours" in table.lower()
    # The BC column's published recipe is not ours, and the footnote says how; 10%BC's is not
    # said, as its column is not shown.
    assert "as well as implementations: CORL's BC is a deterministic" in table
    assert "CORL's 10%BC" not in table
    assert "## Best during training (labelled: not the final policy)" in table
    assert "3 seeds = 12 runs: 10 finished, 1 failed, 1 missing" in table
    assert "jax 0.0.test" in table and "loadavg" not in table
    fed = "| standardized (training data's mean, std + 0.001) | transition"
    assert f"| bc {fed} | 256 × 1-step windows |" in table
    assert f"| td3_bc {fed} (uniform transitions) | 256 transitions |" in table
    runs_csv = (out / "runs.csv").read_text()
    assert "iwbc/hopper/medium-replay-v0,bc,2,missing" in runs_csv
    stats = (out / "stats.md").read_text()
    assert "| bc | 2 × 2 |" in stats and "| td3_bc | 3 × 2 |" in stats


def test_provenance_names_the_env_with_its_recorded_arguments(tmp_path: Path) -> None:
    """A dataset evaluated on a non-default env (D4RL's Ant: Ant-v5 without contact forces)
    says so in the report; records written before the label carry only env_id."""
    directory = records_dir(SUITE, tmp_path)
    label = "Ant-v5 (include_cfrc_ext_in_observation=False)"
    for seed in (0, 1):
        labelled = make_record("d4rl/ant/medium-v2", "bc", seed, 40.0)
        labelled.update(env_id="Ant-v5", env=label)
        save_record(directory, labelled)
        save_record(directory, make_record("iwbc/toy/medium-v0", "bc", seed, 30.0))
    write_suite_report(SUITE, tmp_path, reps=20)
    table = (tmp_path / SUITE / "table.md").read_text()
    assert f"| d4rl/ant/medium-v2 | {label} | 0.00 | 100.00 |" in table
    assert "| iwbc/toy/medium-v0 | Toy-v5 | 0.00 | 100.00 |" in table


def test_report_names_methods_whose_layers_started_as_pytorchs(tmp_path: Path) -> None:
    """layer_init is stated only where set (torch): the report names those methods and says
    nothing for a suite at the default."""
    write_records(tmp_path, OUTCOMES)
    write_suite_report(SUITE, tmp_path, reps=20)
    assert "nn.Linear" not in (tmp_path / SUITE / "table.md").read_text()
    directory = records_dir(SUITE, tmp_path)
    for path in directory.rglob("td3_bc/seed-*.json"):
        record = json.loads(path.read_text())
        record["config"]["algorithm"]["layer_init"] = "torch"
        path.write_text(json.dumps(record))
    write_suite_report(SUITE, tmp_path, reps=20)
    assert (
        "Layers started as PyTorch's `nn.Linear` default (layer_init torch: kernels and biases "
        "uniform in ±1/√fan_in): td3_bc; bc's as Flax's default (LeCun-normal kernels, zero "
        "biases)."
    ) in (tmp_path / SUITE / "table.md").read_text()


def test_provenance_says_where_reference_scores_came_from_and_what_was_clipped(
    tmp_path: Path,
) -> None:
    """Records state the source of their reference scores and the share of clipped actions;
    records from before those keys leave a dash, and a report of such records only has no
    such columns (so reports of old records stay as they were)."""
    write_records(tmp_path, {("iwbc/toy/medium-v0", "bc"): [30.0, 31.0]})
    write_suite_report(SUITE, tmp_path, reps=20)
    table = (tmp_path / SUITE / "table.md").read_text()
    assert "reference scores from" not in table and "actions clipped" not in table
    directory = records_dir(SUITE, tmp_path)
    for seed in (0, 1):
        record = make_record("iwbc/toy/clipped-v0", "bc", seed, 40.0)
        record.update(ref_source="--ref-min/--ref-max", clipped_actions=0.0123)
        save_record(directory, record)
    write_suite_report(SUITE, tmp_path, reps=20)
    table = (tmp_path / SUITE / "table.md").read_text()
    header = (
        "| dataset | env | ref_min_score | ref_max_score | reference scores from | "
        "actions clipped into the box | content fingerprint |"
    )
    assert header in table
    assert (
        "| iwbc/toy/clipped-v0 | Toy-v5 | 0.00 | 100.00 | --ref-min/--ref-max | 1.2% | — |" in table
    )
    assert "| iwbc/toy/medium-v0 | Toy-v5 | 0.00 | 100.00 | — | — | — |" in table
    assert "action box" not in table
    # A box mapped into [-1, 1] gets a column; [-1, 1] boxes and older records a dash there.
    for seed in (0, 1):
        record = make_record("iwbc/toy/boxed-v0", "bc", seed, 50.0)
        record.update(action_box={"low": [-3.0, -0.4], "high": [3.0, 0.4]})
        save_record(directory, record)
        record = make_record("iwbc/toy/unit-v0", "bc", seed, 50.0)
        record.update(action_box={"low": [-1.0], "high": [1.0]})
        save_record(directory, record)
    write_suite_report(SUITE, tmp_path, reps=20)
    table = (tmp_path / SUITE / "table.md").read_text()
    assert "| action box (mapped into [-1, 1] to train, back to act) | content fingerprint |" in (
        table
    )
    scores = "Toy-v5 | 0.00 | 100.00 | — | —"
    assert f"| iwbc/toy/boxed-v0 | {scores} | [-3, 3]; [-0.4, 0.4] | — |" in table
    assert f"| iwbc/toy/unit-v0 | {scores} | [-1, 1] on every dimension | — |" in table
    assert f"| iwbc/toy/medium-v0 | {scores} | — | — |" in table
    record.update(action_box={"low": [-1.0], "high": [1.0, 2.0]})
    save_record(directory, record)
    with pytest.raises(UserError, match=r"has a malformed curve, final, best or action_box"):
        write_suite_report(SUITE, tmp_path, reps=20)


def test_published_numbers_beside_imported_d4rl_files_say_same_files(tmp_path: Path) -> None:
    """On D4RL's own files (imported) CORL's numbers are the same data; beside generated tiers
    they are other data; a table of both says which rows are which."""
    write_records(tmp_path, {("d4rl/hopper/medium-replay-v2", "bc"): [40.0, 42.0]})
    write_suite_report(SUITE, tmp_path, reps=20)
    table = (tmp_path / SUITE / "table.md").read_text()
    assert "| published (D4RL v2, same files) → | BC† |" in table
    assert "| d4rl/hopper/medium-replay-v2 | 41.0 ± 1.0 |  | 29.8 |" in table
    assert "The same files as ours (D4RL's, imported" in table and "Other data" not in table

    write_records(tmp_path, {("iwbc/hopper/medium-v0", "bc"): [50.0, 52.0]})
    write_suite_report(SUITE, tmp_path, reps=20)
    table = (tmp_path / SUITE / "table.md").read_text()
    assert "| published (D4RL v2) → | BC† |" in table
    assert "On d4rl/hopper/medium-replay-v2: the same files as ours" in table
    assert "Elsewhere: other data than ours" in table


def test_report_is_the_same_when_regenerated(tmp_path: Path) -> None:
    write_records(tmp_path, OUTCOMES)
    first = {p: p.read_bytes() for p in write_suite_report(SUITE, tmp_path, reps=20)}
    second = {p: p.read_bytes() for p in write_suite_report(SUITE, tmp_path, reps=20)}
    assert first == second


def test_learning_curves_of_different_lengths(tmp_path: Path) -> None:
    """BC fine-tunes (hundreds of updates) beside offline RL (a million): symlog x, no error."""
    directory = write_records(tmp_path, {("e/x/medium-v0", "bc"): [10.0, 20.0]})
    for seed in (0, 1):
        record = make_record("e/x/medium-v0", "iql", seed, 40.0)
        record["curve"]["steps"] = [250_000, 500_000, 1_000_000]
        save_record(directory, record)
    written = write_suite_report(SUITE, tmp_path, reps=10)
    assert all(p.stat().st_size > 0 for p in written)


def test_layout_names_datasets_nobody_ran(tmp_path: Path) -> None:
    write_records(tmp_path, {("e/x/medium-v0", "bc"): [1.0]})
    layout = SimpleNamespace(
        datasets=("e/x/medium-v0", "e/z/medium-v0"), methods=("bc",), seeds=(0,)
    )
    write_suite_report(SUITE, tmp_path, reps=10)
    assert (tmp_path / SUITE / "figures" / "aggregates.png").exists()
    write_suite_report(SUITE, tmp_path, reps=10, layout=layout)
    assert not (tmp_path / SUITE / "figures" / "aggregates.png").exists()  # stale, removed
    table = (tmp_path / SUITE / "table.md").read_text()
    assert "| z | e/z/medium-v0 | — |" in table
    assert (
        "No method has a finished run on every dataset"
        in (tmp_path / SUITE / "stats.md").read_text()
    )


def test_cli_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_records(tmp_path, OUTCOMES)
    assert main(["report", "--suite", SUITE, "--results", str(tmp_path), "--reps", "20"]) == 0
    assert "table.md" in capsys.readouterr().out
    assert (tmp_path / SUITE / "figures" / "profiles.svg").stat().st_size > 0


def test_cli_unknown_suite_says_run_bench_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "--suite", "nope", "--results", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("iwbc: error: unknown suite 'nope' and no records")
    assert "`iwbc bench --suite <name>` first" in error and "demo" in error
    assert error.count("\n") == 1


def test_cli_known_suite_without_records(tmp_path: Path, capsys) -> None:
    assert main(["report", "--suite", "demo", "--results", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert f"no records for suite 'demo' under {records_dir('demo', tmp_path)}" in error
    assert "run `iwbc bench --suite demo` first" in error
