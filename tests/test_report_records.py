"""Reading a suite's records for reports, and the record factory the other report tests use.

The factory writes JSON records in the runner's schema (``iwbc.bench.records``) into a
temporary results directory, so reports are tested without training anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from iwbc.bench.records import check_record, read_record, record_path, records_dir
from iwbc.files import write_json_atomic
from iwbc.report.runs import load_runs, order_datasets

SUITE = "toy"
# One seed's outcome: a final normalized score, "fail: <error>" for a failed run, None: no record.
Outcome = float | str | None


# What a record's config says each method was fed (see iwbc.bench.suites.Suite.method_config).
FED = {
    "bc": {
        "family": "bc",
        "observations": "standardized (training data's mean, std + 0.001)",
        "stage": {"weighting": "transition", "batch_size": 256, "window": 1},
    },
    "td3_bc": {
        "family": "offline_rl",
        "observations": "standardized (training data's mean, std + 0.001)",
        "algorithm": {"batch_size": 256},
    },
}


def make_record(
    dataset: str, method: str, seed: int, outcome: float | str, suite: str = SUITE
) -> dict:
    """A record whose curve is [final/2, final + 5, final] at steps 100, 200, 300, so the best
    score is final + 5 and differs from the final one."""
    record = {
        "schema": 1,
        "suite": suite,
        "dataset": dataset,
        "env_id": "Toy-v5",
        "method": method,
        "seed": seed,
        "status": "ok",
        "error": None,
        "config": {"evaluation": {"eval_every": 100, "eval_episodes": 3}, **FED.get(method, {})},
        "environment": {"cpu": "toy cpu", "loadavg": f"{seed}.00", "jax": "0.0.test"},
        "curve": None,
        "final": None,
        "best": None,
        "ref_min_score": 0.0,
        "ref_max_score": 100.0,
        "wall_seconds": 10.0 + seed,
        "finished_at": f"2026-01-01T00:00:0{seed}+00:00",
    }
    if isinstance(outcome, str):
        record.update(status="failed", error=outcome.removeprefix("fail: "))
        return record
    final = float(outcome)
    curve = [final / 2, final + 5, final]
    record.update(
        curve={"steps": [100, 200, 300], "returns": curve, "normalized": curve},
        final={"return": final, "normalized": final, "episode_returns": [final - 1, final + 1]},
        best={"normalized": final + 5, "step": 200},
    )
    return record


def save_record(directory: Path, record: Mapping) -> Path:
    """Write ``record`` where, and as, the runner writes it under the records ``directory``."""
    path = record_path(directory, record["dataset"], record["method"], record["seed"])
    return write_json_atomic(path, record)


def write_records(
    results: Path, outcomes: Mapping[tuple[str, str], Sequence[Outcome]], suite: str = SUITE
) -> Path:
    """Write one record per (dataset, method) and seed index; returns the records directory."""
    directory = records_dir(suite, results)
    for (dataset, method), seeds in outcomes.items():
        for seed, outcome in enumerate(seeds):
            if outcome is None:
                continue
            record = make_record(dataset, method, seed, outcome, suite)
            check_record(record)
            save_record(directory, record)
    return directory


def test_runs_read_back_with_failed_and_missing(tmp_path: Path) -> None:
    write_records(
        tmp_path,
        {
            ("a/toy/medium-v0", "bc"): [10.0, "fail: out of memory", None],
            ("a/toy/medium-v0", "iql"): [1.0, 2.0, 3.0],
        },
    )
    runs = load_runs(SUITE, tmp_path)
    assert runs.seeds == (0, 1, 2)
    np.testing.assert_array_equal(runs.final_scores("a/toy/medium-v0", "bc"), [10.0])
    np.testing.assert_array_equal(runs.best_scores("a/toy/medium-v0", "iql"), [6.0, 7.0, 8.0])
    assert [(r.method, r.seed, r.error) for r in runs.failed] == [("bc", 1, "out of memory")]
    assert runs.missing == [("a/toy/medium-v0", "bc", 2)]


def test_rows_group_by_env_in_tier_order() -> None:
    ids = [
        "iwbc/walker2d/medium-expert-v0",
        "iwbc/hopper/medium-replay-v0",
        "iwbc/walker2d/medium-v0",
        "iwbc/hopper/medium-expert-v0",
        "iwbc/hopper/medium-v0",
    ]
    assert order_datasets(ids) == (
        "iwbc/walker2d/medium-v0",
        "iwbc/walker2d/medium-expert-v0",
        "iwbc/hopper/medium-v0",
        "iwbc/hopper/medium-replay-v0",
        "iwbc/hopper/medium-expert-v0",
    )


def test_layout_orders_columns_and_names_runs_never_run(tmp_path: Path) -> None:
    write_records(tmp_path, {("e/x/medium-v0", "iql"): [1.0], ("e/x/medium-v0", "bc"): [2.0]})
    layout = SimpleNamespace(
        datasets=("e/x/medium-v0", "e/y/medium-v0"), methods=("iql", "bc"), seeds=(0,)
    )
    runs = load_runs(SUITE, tmp_path, layout)
    assert runs.methods == ("iql", "bc")
    assert runs.missing == [("e/y/medium-v0", "iql", 0), ("e/y/medium-v0", "bc", 0)]


def test_no_records_says_to_run_bench_first(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no records for suite 'toy'.*`iwbc bench --suite toy`"):
        load_runs(SUITE, tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(suite="other"), "belongs to suite 'other'"),
        (lambda r: r.update(seed=7), "belongs at"),
        (lambda r: r.pop("final"), "lacks final"),
        (lambda r: r.update(final={"return": 1.0}), "malformed"),
        (lambda r: r.update(final=None), "lacks its curve, final or best evaluation"),
        (lambda r: r.update(schema=2), "schema 2"),
        (lambda r: r["curve"].update(steps=[1, 2]), "differ in length"),
    ],
)
def test_bad_records_are_one_line_errors(tmp_path: Path, change, message: str) -> None:
    directory = write_records(tmp_path, {("e/x/medium-v0", "bc"): [1.0]})
    path = record_path(directory, "e/x/medium-v0", "bc", 0)
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=message) as error:
        load_runs(SUITE, tmp_path)
    assert "\n" not in str(error.value)


def test_unreadable_record(tmp_path: Path) -> None:
    directory = write_records(tmp_path, {("e/x/medium-v0", "bc"): [1.0]})
    record_path(directory, "e/x/medium-v0", "bc", 0).write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        load_runs(SUITE, tmp_path)
    for text, kind in (("null", "NoneType"), ("3", "int"), ("[]", "list")):
        record_path(directory, "e/x/medium-v0", "bc", 0).write_text(text)
        with pytest.raises(ValueError, match=f"holds {kind}, not a record; delete it"):
            load_runs(SUITE, tmp_path)


def test_a_record_in_another_runs_place_is_refused_by_the_runner_too(tmp_path: Path) -> None:
    """A record copied to another seed's place would count that run as done with the first
    seed's scores: every reader refuses it, naming where it belongs."""
    directory = write_records(tmp_path, {("e/x/medium-v0", "bc"): [1.0]})
    copy = record_path(directory, "e/x/medium-v0", "bc", 1)
    copy.write_text(record_path(directory, "e/x/medium-v0", "bc", 0).read_text())
    with pytest.raises(ValueError, match=r"belongs at e__x__medium-v0/bc/seed-0\.json: move it"):
        read_record(copy)
