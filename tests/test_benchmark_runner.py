"""The sweep runner: records match the schema and a straight training run, finished runs are
skipped, an edited suite reruns only what changed, and a failing unit is recorded while the
others finish."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

from iwbc import machine
from iwbc.agents.registry import train_methods
from iwbc.bench import executors, runner
from iwbc.bench.records import RECORD_KEYS, check_record, load_records, records_dir
from iwbc.bench.runner import plan, run_suite
from iwbc.bench.suites import Suite, load_suite
from iwbc.cli import main
from iwbc.core import trainer
from iwbc.core.sampling import value_bounds
from iwbc.data import DatasetError, load_dataset
from iwbc.data.scripted import generate_mixed_dataset
from iwbc.envs.evaluate import evaluate_agent
from iwbc.errors import UserError
from iwbc.report.runs import load_runs
from iwbc.report.suite_report import write_suite_report

DATASET = "iwbc-test/idp/mixed-v0"
MISSING = "iwbc-test/missing/none-v0"


def tiny_suite_toml(
    methods: tuple[str, ...],
    datasets: tuple[str, ...] = (DATASET,),
    scripted: str | None = DATASET,
) -> str:
    """Two seeds, 20 updates a stage evaluated every 10, 16-unit networks: seconds a unit.

    ``scripted`` names a dataset the runner makes itself (None: the test makes its own)."""
    made_here = f'[scripted."{scripted}"]\nepisodes = 6\n' if scripted else ""
    return f"""
description = "tiny test suite"
datasets = {json.dumps(list(datasets))}
methods = {json.dumps(list(methods))}
seeds = [0, 1]
eval_episodes = 2
final_eval_episodes = 3
eval_every = 10

{made_here}
[bc_family]
hidden_dims = [16, 16]
chunk_size = 10

[bc_family.pretrain]
steps = 20
batch_size = 4
window = 8

[bc_family.finetune]
steps = 20
warmup_steps = 2
batch_size = 4
window = 8
learning_rate = 1e-3

[offline_rl]
steps = 20
batch_size = 16
chunk_size = 10

[offline_rl.td3_bc]
hidden_dims = [16, 16]
"""


def write_suite(directory: Path, name: str, text: str) -> Suite:
    path = directory / f"{name}.toml"
    path.write_text(text)
    return load_suite(path)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One finished sweep of bc, iw_bc and td3_bc; the scripted dataset is made by the runner."""
    base = tmp_path_factory.mktemp("sweep")
    suite = write_suite(base, "tiny", tiny_suite_toml(("bc", "iw_bc", "td3_bc")))
    paths = {"root": base / "minari", "results": base / "results", "work": base / "runs"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        summary = run_suite(
            suite,
            records_dir("tiny", paths["results"]),
            work_dir=paths["work"],
            data_root=paths["root"],
            progress=False,
        )
    return {"suite": suite, "summary": summary, "base": base, **paths}


def test_sweep_writes_one_schema_record_per_run(sweep: dict) -> None:
    suite = sweep["suite"]
    summary = sweep["summary"]
    assert (summary.total, summary.ok, summary.failed, summary.skipped) == (6, 6, 0, 0)
    records = load_records("tiny", sweep["results"])
    assert [(r["method"], r["seed"]) for r in records] == [
        (m, s) for m in ("bc", "iw_bc", "td3_bc") for s in (0, 1)
    ]
    rewards = load_dataset(DATASET, root=sweep["root"]).episodes.to_transitions().rewards
    td_range = value_bounds(rewards, suite.agent_config("td3_bc").discount)
    for record in records:
        check_record(record)
        assert set(RECORD_KEYS) <= set(record)
        assert (record["suite"], record["dataset"], record["status"]) == ("tiny", DATASET, "ok")
        assert record["env_id"] == record["env"] == "InvertedDoublePendulum-v5"
        assert record["error"] is None
        assert record["config"] == suite.method_config(record["method"], DATASET)
        assert record["environment"]["jax"] and record["environment"]["cpu"]
        assert record["environment"]["gymnasium-robotics"]  # its envs' rewards vary by version
        curve, final, best = record["curve"], record["final"], record["best"]
        assert curve["steps"] == [10, 20]
        assert len(curve["returns"]) == len(curve["normalized"]) == 2
        low, high = record["ref_min_score"], record["ref_max_score"]
        expected = 100 * (np.array(curve["returns"]) - low) / (high - low)
        np.testing.assert_allclose(curve["normalized"], expected)
        assert len(final["episode_returns"]) == suite.final_eval_episodes
        assert final["return"] == pytest.approx(np.mean(final["episode_returns"]))
        assert (final["return"], final["normalized"]) == (
            curve["returns"][-1],
            curve["normalized"][-1],
        )
        assert best["normalized"] == max(curve["normalized"])
        assert best["step"] == curve["steps"][int(np.argmax(curve["normalized"]))]
        assert record["wall_seconds"] > 0
        assert record["trained_with_seeds"] == [0, 1]
        # Engine auto resolved (no GPU here), and the commit of the code that evaluated it.
        assert record["engine"] == "batch"
        assert record["evaluated_at_commits"] == [machine.running_commit()]
        training = record["training"]
        assert training["steps"] == [10, 20] and len(training["loss"]) == 2
        assert all(np.isfinite(training["loss"]))
        if record["method"] == "iw_bc":
            assert all(0 < ess <= 1 for ess in training["weight_ess"])
        # The range TD3+BC's critic can reach on these rewards; the BC family has no critic.
        if record["method"] == "td3_bc":
            assert record["q_bounds"] == pytest.approx(list(td_range))
        else:
            assert "q_bounds" not in record


def test_curves_by_until_reproduce_a_straight_run(sweep: dict) -> None:
    """Training to successive targets on one checkpoint (and sharing the BC pre-training) gives
    the policy one uninterrupted run gives: same final evaluation, episode by episode."""
    suite = sweep["suite"]
    dataset = load_dataset(DATASET, root=sweep["root"])
    methods = ["bc", "iw_bc", "td3_bc"]
    trained = train_methods(
        dataset.episodes,
        methods,
        suite.seeds,
        {name: suite.agent_config(name) for name in methods},
        selection=suite.pipeline.selection,
        progress=False,
    )
    assert [result.history[-1]["step"] for result in trained.values()] == [20, 20, 20]
    straight = {
        name: evaluate_agent(result.agent, dataset.env_id, num_episodes=3)
        for name, result in trained.items()
    }
    for record in load_records("tiny", sweep["results"]):
        index = suite.seeds.index(record["seed"])
        np.testing.assert_allclose(
            record["final"]["episode_returns"], straight[record["method"]][index], rtol=1e-6
        )


def test_second_invocation_redoes_nothing(sweep: dict) -> None:
    directory = records_dir("tiny", sweep["results"])
    before = {p: p.stat().st_mtime_ns for p in directory.rglob("*.json")}
    summary = run_suite(
        sweep["suite"], directory, work_dir=sweep["work"], data_root=sweep["root"], progress=False
    )
    assert (summary.total, summary.skipped, summary.ok, summary.failed) == (6, 6, 0, 0)
    assert {p: p.stat().st_mtime_ns for p in directory.rglob("*.json")} == before


def test_records_made_from_the_cache_state_the_time_their_training_took(sweep: dict) -> None:
    """Records rewritten from cached checkpoints and evaluations (a resumed run, a new results
    folder) sum the wall time of every invocation, not just the last one's."""
    results = records_dir("tiny", sweep["base"] / "results-again")
    summary = run_suite(
        sweep["suite"], results, work_dir=sweep["work"], data_root=sweep["root"], progress=False
    )
    assert (summary.total, summary.ok) == (6, 6)
    first = {(r["method"], r["seed"]): r for r in load_records("tiny", sweep["results"])}
    for record in load_records("tiny", results.parent.parent):
        earlier = first[record["method"], record["seed"]]
        assert record["curve"] == earlier["curve"]
        assert record["wall_seconds"] >= earlier["wall_seconds"] > 0


def test_edited_suite_reruns_only_the_changed_method(sweep: dict) -> None:
    text = tiny_suite_toml(("bc", "iw_bc", "td3_bc")).replace(
        "learning_rate = 1e-3", "learning_rate = 5e-4"
    )
    folder = sweep["base"] / "edited"
    folder.mkdir(exist_ok=True)
    edited = write_suite(folder, "tiny", text)
    units, total, finished = plan(edited, records_dir("tiny", sweep["results"]))
    assert (total, finished) == (6, 4)
    assert [(u.method, u.pending) for u in units] == [("iw_bc", (0, 1))]


def rerun_with(sweep: dict, name: str, table: str) -> tuple[Suite, Path]:
    """The sweep's suite with ``steps = 30`` in ``table``, run over a copy of its records with
    its work dir: two of its six runs (one method's seeds) must train again."""
    results = sweep["base"] / f"results-{name}"
    shutil.copytree(records_dir("tiny", sweep["results"]), records_dir("tiny", results))
    folder = sweep["base"] / name
    folder.mkdir(exist_ok=True)
    text = tiny_suite_toml(("bc", "iw_bc", "td3_bc"))
    raised = write_suite(folder, "tiny", f"{text}\n{table}\nsteps = 30\n")
    summary = run_suite(
        raised,
        records_dir("tiny", results),
        work_dir=sweep["work"],
        data_root=sweep["root"],
        progress=False,
    )
    assert (summary.total, summary.skipped, summary.ok) == (6, 4, 2)
    return raised, results


def test_a_dataset_budget_retrains_only_the_baselines_there(sweep: dict) -> None:
    """[offline_rl.datasets."<id>"] steps: the sweep reruns the baselines on that dataset at
    that budget, evaluated along it, and keeps the BC family's records."""
    raised, results = rerun_with(sweep, "budget", f'[offline_rl.datasets."{DATASET}"]')
    records = {(r["method"], r["seed"]): r for r in load_records("tiny", results)}
    for seed in raised.seeds:
        record = records["td3_bc", seed]
        assert record["curve"]["steps"] == [10, 20, 30]
        assert record["config"]["algorithm"]["steps"] == 30
        assert record["config"] == raised.method_config("td3_bc", DATASET)
        assert records["bc", seed]["config"] == sweep["suite"].method_config("bc")
    assert load_runs("tiny", results, raised).stale == []


def test_a_dataset_fine_tune_budget_retrains_only_the_fine_tunes_there(sweep: dict) -> None:
    """[bc_family.datasets."<id>".finetune] steps: the sweep reruns iw_bc on that dataset at
    that budget, from the same BC start, and keeps BC's and the baseline's records."""
    raised, results = rerun_with(sweep, "finetune", f'[bc_family.datasets."{DATASET}".finetune]')
    records = {(r["method"], r["seed"]): r for r in load_records("tiny", results)}
    for seed in raised.seeds:
        record = records["iw_bc", seed]
        assert record["curve"]["steps"] == [10, 20, 30]
        assert record["config"]["stage"]["steps"] == 30
        assert record["config"]["pretrain"] == sweep["suite"].method_config("iw_bc")["pretrain"]
        assert record["config"] == raised.method_config("iw_bc", DATASET)
        assert records["td3_bc", seed]["config"] == sweep["suite"].method_config("td3_bc")
    assert load_runs("tiny", results, raised).stale == []


def test_records_state_the_data_they_were_made_on(sweep: dict) -> None:
    made_on = load_dataset(DATASET, root=sweep["root"]).content_fingerprint
    records = load_records("tiny", sweep["results"])
    assert {record["data_fingerprint"] for record in records} == {made_on}


def test_the_same_id_with_other_content_is_planned_again(sweep: dict) -> None:
    """A dataset id names no content: records made on the dataset as it was are not finished
    once it is regenerated (or read from another root); on the same content they are, and a
    dataset that cannot be loaded keeps its records (its pending runs fail on it anyway)."""
    directory = records_dir("tiny", sweep["results"])
    other = generate_mixed_dataset(DATASET, num_episodes=7, seed=3, root=sweep["base"] / "other")
    regenerated = load_dataset(other, root=sweep["base"] / "other").content_fingerprint
    same = load_dataset(DATASET, root=sweep["root"]).content_fingerprint
    assert regenerated != same
    asked: list[str] = []

    def current(name: str) -> str:
        asked.append(name)
        return regenerated

    units, total, finished = plan(sweep["suite"], directory, data_fingerprint=current)
    assert (total, finished, asked) == (6, 0, [DATASET])
    assert [(u.method, u.pending, u.data_fingerprint) for u in units] == [
        (method, (0, 1), regenerated) for method in ("bc", "iw_bc", "td3_bc")
    ]
    assert plan(sweep["suite"], directory, data_fingerprint=lambda name: same)[1:] == (6, 6)

    def unloadable(name: str) -> str:
        raise DatasetError(f"dataset '{name}' is not in the local root")

    assert plan(sweep["suite"], directory, data_fingerprint=unloadable)[1:] == (6, 6)


def test_a_regenerated_dataset_retrains_and_the_report_flags_mixed_data(sweep: dict) -> None:
    """A sweep of bc alone on regenerated data retrains bc there; the other methods' records
    stay on the old data, which the report then names, with the command that fixes it."""
    results = sweep["base"] / "results-regenerated"
    shutil.copytree(records_dir("tiny", sweep["results"]), records_dir("tiny", results))
    root = sweep["base"] / "regenerated"
    generate_mixed_dataset(DATASET, num_episodes=7, seed=3, root=root)
    # A dataset made outside the suite: its [scripted] table would refuse other episodes.
    folder = sweep["base"] / "regenerated-suite"
    folder.mkdir()
    suite = write_suite(folder, "tiny", tiny_suite_toml(("bc", "iw_bc", "td3_bc"), scripted=None))
    assert suite.method_config("bc") == sweep["suite"].method_config("bc")
    summary = run_suite(
        suite,
        records_dir("tiny", results),
        work_dir=sweep["work"],
        data_root=root,
        only_methods=["bc"],
        progress=False,
    )
    assert (summary.total, summary.skipped, summary.ok) == (2, 0, 2)
    made_on = {r["method"]: r["data_fingerprint"] for r in load_records("tiny", results)}
    assert made_on["bc"] == load_dataset(DATASET, root=root).content_fingerprint
    assert made_on["iw_bc"] == made_on["td3_bc"] != made_on["bc"]
    runs = load_runs("tiny", results, sweep["suite"])
    assert runs.mixed_data == {DATASET: [made_on["bc"], made_on["iw_bc"]]}
    write_suite_report("tiny", results, reps=20, layout=sweep["suite"])
    table = (results / "tiny" / "table.md").read_text()
    assert "The runs of 1 dataset(s) were made on different contents of their data" in table
    assert f"iwbc bench --suite tiny --results {results} --only-datasets {DATASET}`" in table
    row = f"| td3_bc | {DATASET} | 1 | mixed data | made on content {made_on['td3_bc'][:12]} |"
    assert row in table
    # The provenance table names the contents the dataset's runs were made on, where their
    # reference scores came from and the share of actions clipped into the box.
    assert (
        f"| the dataset's metadata | 0.0% | {made_on['bc'][:12]} / {made_on['iw_bc'][:12]} |"
        in (table)
    )
    assert {(r["ref_source"], r["clipped_actions"]) for r in load_records("tiny", results)} == {
        ("the dataset's metadata", 0.0)
    }
    # The action box is kept; a [-1, 1] one (InvertedDoublePendulum's) gets no column.
    boxes = [r["action_box"] for r in load_records("tiny", results) if r["status"] == "ok"]
    assert boxes and all(box == {"low": [-1.0], "high": [1.0]} for box in boxes)
    assert "action box" not in table
    # iw-BC's weights: the last chunk's effective sample fraction, mean (min–max) over seeds.
    records = load_records("tiny", results)
    ess = [r["training"]["weight_ess"][-1] for r in records if r["method"] == "iw_bc"]
    assert "## Importance weights (effective sample fraction)" in table
    assert f"| {DATASET} | {np.mean(ess):.2f} ({min(ess):.2f}–{max(ess):.2f}) |" in table


def test_records_name_the_commit_of_the_code_the_sweep_loaded(
    sweep: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkout moving on while a sweep trains (a commit made meanwhile) does not change
    the commit its records name: it is looked up when the sweep starts."""
    checkout = {"commit": "a" * 40}
    monkeypatch.setattr(machine, "source_commit", lambda: checkout["commit"])
    prepare = runner.prepare_datasets

    def prepare_then_commit(*args, **kwargs):  # the sweep has started; then HEAD moves on
        prepare(*args, **kwargs)
        checkout["commit"] = "b" * 40

    monkeypatch.setattr(runner, "prepare_datasets", prepare_then_commit)
    machine.running_commit.cache_clear()
    suite = write_suite(sweep["base"], "committed", tiny_suite_toml(("bc",)))
    results = sweep["base"] / "results-committed"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            run_suite(
                suite,
                records_dir("committed", results),
                work_dir=sweep["work"],
                data_root=sweep["root"],
                progress=False,
            )
        assert machine.running_commit() == "a" * 40
    finally:
        machine.running_commit.cache_clear()
    records = load_records("committed", results)
    assert records and {r["environment"]["iwbc_commit"] for r in records} == {"a" * 40}


def test_a_unit_drops_the_programs_it_compiled(sweep: dict) -> None:
    """XLA:CPU keeps ~6 memory maps per compiled program while JAX's caches hold it: a sweep
    of a few hundred units in one process would reach Linux's 65,530-map limit and segfault."""
    suite = write_suite(sweep["base"], "dropped", tiny_suite_toml(("bc",)))
    results = sweep["base"] / "results-dropped"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        summary = run_suite(
            suite,
            records_dir("dropped", results),
            work_dir=sweep["base"] / "runs-dropped",  # its own: the unit trains, not reads
            data_root=sweep["root"],
            progress=False,
        )
    assert (summary.ok, summary.failed) == (2, 0)
    assert trainer.finite_state._cache_size() == 0  # read after every chunk of the unit


def test_records_rebuilt_from_evaluations_of_other_code_say_so(
    sweep: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints and evaluations are kept by configuration and data, not by code: records
    written from them by a later commit name the commit that evaluated, and the report warns."""
    evaluated_at = machine.running_commit()
    monkeypatch.setattr(machine, "source_commit", lambda: "c" * 40)
    machine.running_commit.cache_clear()
    results = sweep["base"] / "results-later-code"
    try:
        run_suite(
            sweep["suite"],
            records_dir("tiny", results),
            work_dir=sweep["work"],
            data_root=sweep["root"],
            progress=False,
        )
    finally:
        machine.running_commit.cache_clear()
    records = load_records("tiny", results)
    assert {r["environment"]["iwbc_commit"] for r in records} == {"c" * 40}
    assert {tuple(r["evaluated_at_commits"]) for r in records} == {(evaluated_at,)}
    assert len(load_runs("tiny", results, sweep["suite"]).reused_evaluations) == 6
    write_suite_report("tiny", results, reps=20, layout=sweep["suite"])
    table = (results / "tiny" / "table.md").read_text()
    assert "6 finished run(s) reuse evaluations made at another source commit" in table
    assert "rerun them with a fresh --work-dir" in table


def test_runs_evaluated_on_another_engine_are_planned_again_and_flagged(sweep: dict) -> None:
    """Engine auto is MJX on a GPU: a sweep resolving another engine than the records' reruns
    them, and a table mixing engines says so."""
    directory = records_dir("tiny", sweep["results"])
    same = load_dataset(DATASET, root=sweep["root"]).content_fingerprint
    units, total, finished = plan(
        sweep["suite"], directory, data_fingerprint=lambda name: same, engine=lambda name: "mjx"
    )
    assert (total, finished) == (6, 0)
    assert {(u.pending, u.engine) for u in units} == {((0, 1), "mjx")}
    on_batch = plan(
        sweep["suite"], directory, data_fingerprint=lambda name: same, engine=lambda name: "batch"
    )
    assert on_batch[1:] == (6, 6)

    results = sweep["base"] / "results-engines"
    shutil.copytree(directory, records_dir("tiny", results))
    path = next(records_dir("tiny", results).rglob("td3_bc/seed-1.json"))
    path.write_text(json.dumps({**json.loads(path.read_text()), "engine": "mjx"}))
    runs = load_runs("tiny", results, sweep["suite"])
    assert runs.mixed_engines == {DATASET: ["batch", "mjx"]}
    write_suite_report("tiny", results, reps=20, layout=sweep["suite"])
    table = (results / "tiny" / "table.md").read_text()
    assert f"were evaluated on different engines: {DATASET} (batch, mjx)" in table
    assert f"| td3_bc | {DATASET} | 1 | mixed engines | evaluated on mjx |" in table
    assert "shared by all runs; engine batch / mjx" in table


def test_a_ray_worker_names_the_commit_it_started_with(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's records name the code it ran: its commit is looked up before the unit runs,
    not when it writes records, maybe after the checkout moved on."""
    checkout = {"commit": "d" * 40}
    monkeypatch.setattr(machine, "source_commit", lambda: checkout["commit"])

    def unit_that_outlives_a_commit(unit, context):
        checkout["commit"] = "e" * 40
        return machine.running_commit()

    monkeypatch.setattr(executors, "execute_unit", unit_that_outlives_a_commit)
    machine.running_commit.cache_clear()
    try:
        assert executors.execute_in_worker(None, None) == "d" * 40
    finally:
        machine.running_commit.cache_clear()


def test_a_scripted_dataset_unlike_the_suites_is_refused(sweep: dict) -> None:
    """The runner makes a missing [scripted] dataset; one already there must be what the
    suite asks for, or the suite's episodes and seed would be silently ignored."""
    lock = sweep["base"] / "datasets.lock"
    for edit in ("episodes = 9", "episodes = 6\nseed = 3"):
        text = tiny_suite_toml(("bc",)).replace("episodes = 6", edit)
        folder = sweep["base"] / f"scripted-{edit[-1]}"
        folder.mkdir(exist_ok=True)
        suite = write_suite(folder, "tiny", text)
        with pytest.raises(UserError, match=r"holds 6 episodes from seed 0, but suite tiny's"):
            runner.prepare_datasets(suite, suite.datasets, str(sweep["root"]), lock)
    runner.prepare_datasets(sweep["suite"], (DATASET,), str(sweep["root"]), lock)


def test_a_dataset_without_reference_scores_fails_before_training(
    make_minari_dataset, minari_root: Path, tmp_path: Path
) -> None:
    """Every score a report prints is normalized: a dataset lacking reference scores fails
    its units at once with the one-line fix, and the report lists them as failed."""
    dataset = "iwbc-test/pendulum/noref-v0"
    make_minari_dataset(dataset, ref_min_score=None, ref_max_score=None)
    results = tmp_path / "results"

    def run(given: str = "") -> tuple[Suite, tuple[int, int, int]]:
        text = tiny_suite_toml(("bc",), (dataset,), scripted=None) + given
        suite = write_suite(tmp_path, "tiny", text)
        summary = run_suite(
            suite,
            records_dir("tiny", results),
            work_dir=tmp_path / "runs",
            data_root=minari_root,
            progress=False,
        )
        return suite, (summary.total, summary.ok, summary.failed)

    suite, counts = run()
    assert counts == (2, 0, 2)
    for record in load_records("tiny", results):
        assert record["status"] == "failed"
        assert f"dataset {dataset} has no ref_min_score/ref_max_score" in record["error"]
        assert "iwbc data minari-tiers" in record["error"]
    assert not list((tmp_path / "runs").rglob("checkpoint.msgpack"))
    write_suite_report("tiny", results, reps=20, layout=suite)
    assert "has no ref_min_score" in (results / "tiny" / "table.md").read_text()

    # The suite gives them (iwbc run's --ref-min/--ref-max): the units train and score with them.
    _, counts = run(f'\n[reference_scores."{dataset}"]\nref_min = -10.0\nref_max = 30\n')
    assert counts == (2, 2, 0)
    for record in load_records("tiny", results):
        assert (record["ref_min_score"], record["ref_max_score"]) == (-10.0, 30.0)
        assert record["ref_source"] == f'the suite\'s [reference_scores."{dataset}"]'
        returns = np.array(record["curve"]["returns"])
        np.testing.assert_allclose(record["curve"]["normalized"], 100 * (returns + 10) / 40)


def test_failing_unit_is_recorded_and_the_sweep_goes_on(
    sweep: dict, capsys: pytest.CaptureFixture
) -> None:
    """A missing dataset fails its unit; the other dataset's runs finish; exit status is 1; a
    later invocation retries only the failed runs."""
    suite = write_suite(
        sweep["base"], "mixed", tiny_suite_toml(("bc",), datasets=(MISSING, DATASET))
    )
    results = sweep["base"] / "results-mixed"
    argv = [
        "bench",
        "--suite",
        str(sweep["base"] / "mixed.toml"),
        "--results",
        str(results),
        "--work-dir",
        str(sweep["work"]),
        "--root",
        str(sweep["root"]),
        "--quiet",
    ]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert "mixed: 2 runs done now, 0 already done, 2 failed, of 4" in out
    assert f"failed: {MISSING} bc: DatasetError: dataset '{MISSING}' is not in the local" in err
    records = {(r["dataset"], r["seed"]): r for r in load_records("mixed", results)}
    assert len(records) == 4
    for seed in suite.seeds:
        failed, ok = records[(MISSING, seed)], records[(DATASET, seed)]
        check_record(failed)
        assert failed["status"] == "failed"
        assert "\n" not in failed["error"] and "DatasetError" in failed["error"]
        assert failed["curve"] is failed["final"] is failed["best"] is None
        assert ok["status"] == "ok" and ok["final"]["return"] > 0
    units, _, finished = plan(suite, records_dir("mixed", results))
    assert finished == 2
    assert [(u.dataset, u.method) for u in units] == [(MISSING, "bc")]


def test_bench_notes_on_a_cpu_what_takes_hours_before_the_dataset_trains(
    sweep: dict, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stages of pending units whose work passes the CPU-hours marks (lowered here to the tiny
    budgets) are named with the suite keys that shrink them; a dataset that cannot load gets
    no note (its unit fails as before), and a finished sweep none."""
    monkeypatch.setattr("iwbc.bench.cpu_cost.SLOW_ON_CPU_SEED_ROWS", 2 * 20 * 4 * 8)
    monkeypatch.setattr("iwbc.bench.cpu_cost.SLOW_ON_CPU_SEED_UPDATES", 2 * 20)
    write_suite(
        sweep["base"], "noted", tiny_suite_toml(("bc", "td3_bc"), datasets=(MISSING, DATASET))
    )
    argv = ["bench", "--suite", str(sweep["base"] / "noted.toml"), "--quiet"]
    argv += ["--results", str(sweep["base"] / "results-noted"), "--work-dir", str(sweep["work"])]
    argv += ["--root", str(sweep["root"])]
    assert main(argv) == 1  # the missing dataset's runs fail
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("iwbc: note:")]
    expected = [
        f"iwbc: note: {DATASET}: bc (4 windows of 8 steps a batch, 20 updates) with 2 seeds: "
        "hours on a CPU; window = 1 and batch_size = 256 under the suite's [bc_family.pretrain] "
        "and [bc_family.finetune] train on 256 one-step windows (CORL's BC batch), minutes a "
        "method",
        f"iwbc: note: {DATASET}: td3_bc trains for 20 updates with 2 seeds: hours each on a CPU; "
        "a smaller steps under the suite's [offline_rl] sets fewer",
    ]
    assert notes == (expected if jax.default_backend() == "cpu" else [])
    assert main(argv) == 1
    assert "iwbc: note:" not in capsys.readouterr().err
