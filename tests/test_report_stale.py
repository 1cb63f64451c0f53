"""Records made under two configurations of one suite (a budget edited, one method rerun): the
report flags the stale scores in its tables and summary lines, with the command that reruns
them, instead of saying every run finished."""

from __future__ import annotations

import csv
import io
import json
import tomllib
from pathlib import Path

import pytest
from test_report_records import SUITE, make_record, save_record

import iwbc.report.suite_report
from iwbc.bench.records import read_record, record_path, records_dir
from iwbc.bench.runner import plan
from iwbc.bench.suites import Suite, parse_suite
from iwbc.bench.units import UnitContext, WorkUnit, record_failure
from iwbc.cli import main
from iwbc.report.runs import load_runs
from iwbc.report.suite_report import SWEEP_PATHS, report_main, write_suite_report

DATASETS = ("e/x/medium-v0", "e/y/medium-v0")
BEFORE = """
datasets = ["e/x/medium-v0", "e/y/medium-v0"]
methods = ["bc", "td3_bc"]
seeds = [0, 1]

[bc_family.pretrain]
steps = 100

[offline_rl]
steps = 100
"""
# The suite file after its budgets were edited.
AFTER = BEFORE.replace("steps = 100", "steps = 200")


def suite(text: str) -> Suite:
    return parse_suite(SUITE, tomllib.loads(text))


def write(results: Path, method: str, under: Suite, score: float = 50.0) -> None:
    """Records of ``method`` on every dataset and seed, as a sweep of ``under`` writes them."""
    for dataset in DATASETS:
        for seed in under.seeds:
            record = make_record(dataset, method, seed, score + seed)
            record["config"] = under.method_config(method, dataset)
            record["fingerprint"] = under.method_fingerprint(method, dataset)
            save_record(records_dir(SUITE, results), record)


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """bc ran before the edit; after it, only td3_bc was rerun."""
    write(tmp_path, "bc", suite(BEFORE))
    write(tmp_path, "td3_bc", suite(AFTER), score=70.0)
    return tmp_path


def test_records_of_the_old_configuration_are_stale(mixed: Path) -> None:
    runs = load_runs(SUITE, mixed, suite(AFTER))
    assert [(r.method, r.dataset, r.seed) for r in runs.stale] == [
        ("bc", d, s) for d in DATASETS for s in (0, 1)
    ]
    assert runs.stale_in(DATASETS[0], "bc") == 2 and runs.stale_in(DATASETS[0], "td3_bc") == 0
    # Under the old suite file it is the other way round; without one nothing can be told.
    assert {r.method for r in load_runs(SUITE, mixed, suite(BEFORE)).stale} == {"td3_bc"}
    assert load_runs(SUITE, mixed).stale == []


def test_records_without_the_key_are_fingerprinted_from_their_config(mixed: Path) -> None:
    for path in records_dir(SUITE, mixed).rglob("*.json"):
        record = read_record(path)
        del record["fingerprint"]
        path.write_text(json.dumps(record))
    assert len(load_runs(SUITE, mixed, suite(AFTER)).stale) == 4


def test_report_flags_stale_cells_and_says_how_to_rerun(mixed: Path) -> None:
    write_suite_report(SUITE, mixed, reps=20, layout=suite(AFTER))
    table = (mixed / SUITE / "table.md").read_text()
    assert "every run of the grid finished" not in table
    assert "| x | e/x/medium-v0 | 50.5 ± 0.5 (2 stale) | 70.5 ± 0.5 |" in table
    assert "| **average** |  | 50.5 (stale) | 70.5 |" in table
    rerun = f"iwbc bench --suite {SUITE} --results {mixed} --only-methods bc"
    summary = (
        f"4 finished run(s) were made under another configuration of suite {SUITE} than its "
        "file's current one (bc on e/x/medium-v0, bc on e/y/medium-v0); their scores are "
        f"marked 'stale'. Rerun them with `{rerun}` (with the --root and --work-dir the sweep "
        "used, if it set them)."
    )
    assert summary in table
    assert "= 8 runs: 8 finished (4 stale), 0 failed, 0 missing" in table
    assert "| bc | e/y/medium-v0 | 1 | stale | made under configuration " in table
    assert summary.removesuffix(".") in (mixed / SUITE / "stats.md").read_text()
    rows = list(csv.DictReader(io.StringIO((mixed / SUITE / "table.csv").read_text())))
    final = {(r["dataset"], r["method"]): r["seeds_stale"] for r in rows if r["table"] == "final"}
    assert final[(DATASETS[1], "bc")] == "2" and final[(DATASETS[1], "td3_bc")] == "0"
    assert final[("average", "bc")] == "4"


def test_current_records_say_every_run_finished(tmp_path: Path) -> None:
    for method in ("bc", "td3_bc"):
        write(tmp_path, method, suite(AFTER))
    write_suite_report(SUITE, tmp_path, reps=20, layout=suite(AFTER))
    table = (tmp_path / SUITE / "table.md").read_text()
    assert "None: every run of the grid finished under the suite's current configuration." in table
    assert " stale)" not in table and "(stale)" not in table and "| stale |" not in table


def test_report_command_prints_a_warning_line(mixed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(iwbc.report.suite_report, "suite_layout", lambda name: suite(AFTER))
    line, warnings = report_main(SUITE, mixed, reps=20)
    assert line.startswith("wrote ") and len(warnings) == 1
    assert warnings[0].startswith("4 finished run(s) were made under another configuration")
    command = f"`iwbc bench --suite {SUITE} --results {mixed} --only-methods bc`"
    assert warnings[0].endswith(f"{command}{SWEEP_PATHS}")


def test_the_report_command_prints_its_warnings_on_stderr(
    mixed: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As every other command's: prefixed, apart from the line of what was written."""
    monkeypatch.setattr(iwbc.report.suite_report, "suite_layout", lambda name: suite(AFTER))
    assert main(["report", "--suite", SUITE, "--results", str(mixed), "--reps", "20"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("wrote ") and out.count("\n") == 1
    assert err.startswith("iwbc: warning: 4 finished run(s) were made under another") and (
        err.count("\n") == 1
    )


def test_a_suite_given_as_a_path_gets_the_warning_line_too(mixed: Path) -> None:
    """A suite file outside the shipped ones: its records are compared with that file."""
    path = mixed / f"{SUITE}.toml"
    path.write_text(AFTER)
    line, warnings = report_main(str(path), mixed, reps=20)
    assert line.startswith("wrote ") and len(warnings) == 1
    assert warnings[0].startswith("4 finished run(s) were made under another configuration")
    # The commands it writes name the file, as `iwbc bench` needs it.
    command = f"`iwbc bench --suite {path} --results {mixed} --only-methods bc`"
    assert warnings[0].endswith(f"{command}{SWEEP_PATHS}")
    table = (mixed / SUITE / "table.md").read_text()
    assert f"iwbc report --suite {path} --results {mixed}" in table


def test_a_budget_raised_on_one_dataset_makes_only_its_baselines_stale(tmp_path: Path) -> None:
    """[offline_rl.datasets."<id>"]: the report and the sweep's plan compare each run with its
    dataset's configuration, so the baselines there rerun and nothing else does."""
    raised = suite(BEFORE + f'[offline_rl.datasets."{DATASETS[1]}"]\nsteps = 200\n')
    for method in ("bc", "td3_bc"):
        write(tmp_path, method, suite(BEFORE))
    runs = load_runs(SUITE, tmp_path, raised)
    assert [(r.method, r.dataset, r.seed) for r in runs.stale] == [
        ("td3_bc", DATASETS[1], 0),
        ("td3_bc", DATASETS[1], 1),
    ]
    units, total, finished = plan(raised, records_dir(SUITE, tmp_path))
    assert [(u.dataset, u.method, u.pending) for u in units] == [(DATASETS[1], "td3_bc", (0, 1))]
    assert (total, finished) == (8, 6)
    write(tmp_path, "td3_bc", raised)
    assert load_runs(SUITE, tmp_path, raised).stale == []
    assert plan(raised, records_dir(SUITE, tmp_path))[0] == []


def test_provenance_states_each_methods_budget_and_where_it_differs(tmp_path: Path) -> None:
    """The budget is read from the curves: a dataset trained at another one is named."""
    raised = suite(BEFORE + f'[offline_rl.datasets."{DATASETS[1]}"]\nsteps = 200\n')
    for method in ("bc", "td3_bc"):
        write(tmp_path, method, raised)
    for seed in raised.seeds:
        path = record_path(records_dir(SUITE, tmp_path), DATASETS[1], "td3_bc", seed)
        record = read_record(path)
        record["curve"]["steps"] = [200, 400, 600]
        path.write_text(json.dumps(record))
    write_suite_report(SUITE, tmp_path, reps=20, layout=raised)
    table = (tmp_path / SUITE / "table.md").read_text()
    assert (
        "- updates to the final policy (fine-tunes: after their start): bc 300, "
        f"td3_bc 300 (600 on {DATASETS[1]})\n"
    ) in table


def test_the_runner_writes_the_fingerprint_it_compares(tmp_path: Path) -> None:
    current = suite(AFTER)
    context = UnitContext(suite=current, records_dir=tmp_path / "records", work_dir=tmp_path)
    outcome = record_failure(WorkUnit(DATASETS[0], "td3_bc", (0, 1), (0, 1)), context, "x", 1.0)
    for path in outcome.records:
        record = read_record(path)
        assert record["fingerprint"] == current.method_fingerprint("td3_bc")
        assert record["fingerprint"] != suite(BEFORE).method_fingerprint("td3_bc")


def test_runs_on_other_contents_of_one_dataset_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bc ran on e/x before its data was regenerated, td3_bc after: the report and the command
    say so; records that state no data (written before the key) count as no version."""
    current = suite(AFTER)
    for method in ("bc", "td3_bc"):
        write(tmp_path, method, current)
    for path in records_dir(SUITE, tmp_path).rglob("*.json"):
        record = read_record(path)
        record["data_fingerprint"] = {
            ("e__x__medium-v0", "bc"): "a" * 32,
            ("e__x__medium-v0", "td3_bc"): "b" * 32,
        }.get((path.parent.parent.name, path.parent.name))
        path.write_text(json.dumps(record))
    assert load_runs(SUITE, tmp_path, current).mixed_data == {DATASETS[0]: ["a" * 32, "b" * 32]}
    monkeypatch.setattr(iwbc.report.suite_report, "suite_layout", lambda name: current)
    _, warnings = report_main(SUITE, tmp_path, reps=20)
    summary = (
        "The runs of 1 dataset(s) were made on different contents of their data (content "
        f"fingerprints): {DATASETS[0]} ({'a' * 12}, {'b' * 12}). Their methods were not "
        f"compared on the same data; `iwbc bench --suite {SUITE} --results {tmp_path} "
        f"--only-datasets {DATASETS[0]}` (with the --root and --work-dir the sweep used, if it "
        "set them) retrains every run not made on the data as it is now"
    )
    assert warnings == [summary]
    table = (tmp_path / SUITE / "table.md").read_text()
    assert "every run of the grid finished" not in table
    assert f"| bc | {DATASETS[0]} | 0 | mixed data | made on content {'a' * 12} |" in table
    assert "| e/y/medium-v0 | mixed data" not in table
    assert summary in (tmp_path / SUITE / "stats.md").read_text()
