"""The command line: ``iwbc run`` trains the offline-RL baselines beside the BC family through the
benchmark runner and keeps its table output; ``iwbc bench`` reports bad input in one line."""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import make_scripted_dataset

from iwbc.agents.bc import BCConfig
from iwbc.bench.experiment import ExperimentConfig, cpu_cost_notes, write_file_set
from iwbc.bench.suites import PipelineConfig
from iwbc.cli import main
from iwbc.core.sampling import value_bounds
from iwbc.data import load_dataset
from iwbc.errors import WriteError

DATASET = "iwbc-test/idp/cli-v0"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_scripted_dataset(DATASET, tmp_path_factory.mktemp("minari"))


def test_run_accepts_baselines_and_writes_its_tables(root: Path, tmp_path: Path) -> None:
    out, work = tmp_path / "out", tmp_path / "runs"
    argv = ["run", DATASET, "--root", str(root), "--methods", "bc,iw_bc,td3_bc", "--seeds", "2"]
    argv += ["--bc-steps", "10", "--bc-batch-size", "4", "--finetune-steps", "10"]
    argv += ["--warmup-steps", "2", "--finetune-batch-size", "4", "--window", "8"]
    argv += ["--hidden", "16,16", "--algo-steps", "10", "--eval-episodes", "2"]
    argv += ["--out", str(out), "--work-dir", str(work), "--quiet"]
    assert main(argv) == 0
    table = (out / "table.md").read_text()
    for method in ("bc", "iw_bc", "td3_bc"):
        assert f"| {DATASET} | {method} |" in table
    assert "td3_bc: TD3BCConfig(steps=10," in table
    # Each config as it trained, less the fields its loss never reads: BC has no temperature.
    configs = dict(line[2:].split(": ", 1) for line in table.splitlines() if "Config(" in line)
    assert "window=8" in configs["bc"] and "temperature" not in configs["bc"]
    assert "temperature=10.0" in configs["iw_bc"] and "refresh_every=10" in configs["iw_bc"]
    assert "action box" not in table  # InvertedDoublePendulum's is [-1, 1]
    scores = json.loads((out / "scores.json").read_text())
    low, high = (scores["reference_scores"][k] for k in ("ref_min", "ref_max"))
    assert scores["reference_scores"]["source"] == "the dataset's metadata"
    assert f"ref_min = {low:.2f} and ref_max = {high:.2f} (from the dataset's metadata)" in table
    # The engine the records say evaluated every run (auto resolved: the batch engine here).
    assert scores["config"]["engine"] == "auto" and scores["evaluation_engines"] == ["batch"]
    assert "shared by all methods and seeds; batch engine); the table gives" in table
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert [(r["method"], r["seed_index"]) for r in rows] == [
        (m, str(s)) for m in ("bc", "iw_bc", "td3_bc") for s in (0, 1)
    ]
    assert set(scores["methods"]) == {"bc", "iw_bc", "td3_bc"}
    assert all(
        len(m["returns"]) == 2 and len(m["returns"][0]) == 2 for m in scores["methods"].values()
    )
    assert (out / "returns.png").stat().st_size > 0
    # iw-BC's weight concentration, per seed in scores.json and summarized in table.md.
    ess = scores["methods"]["iw_bc"]["weight_ess"]
    assert len(ess) == 2 and all(0 < value <= 1 for value in ess)
    assert "weight_ess" not in scores["methods"]["bc"]
    summary = f"iw_bc {sum(ess) / 2:.2f} ({min(ess):.2f}–{max(ess):.2f})"
    assert f"Importance weights at the end of training: {summary}." in table
    assert "Episodes trained on (iw_bc): the union of the top episodes of each percentile" in table
    # A second invocation finds every run finished and reproduces the same scores.
    assert main(argv) == 0
    assert json.loads((out / "scores.json").read_text())["methods"] == scores["methods"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", DATASET, "--methods", "bc,dqn"], "unknown method(s) dqn; choose from bc, "),
        (["bench", "--suite", "nope"], "unknown suite 'nope'; available suites: demo, full, "),
        (["bench", "--suite", "demo", "--only-methods", "dqn"], "method(s) dqn not in suite demo"),
    ],
)
def test_bad_input_is_one_line(
    root: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    assert main([*argv, "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("iwbc: error: ") and message in err
    assert err.count("\n") == 1


def test_cpu_cost_notes_name_what_takes_hours_and_the_flags_that_take_minutes() -> None:
    paper = ExperimentConfig(methods=("iw_bc", "td3_bc", "iql"))
    whole, baselines = cpu_cost_notes(paper, DATASET, 1000)
    # BC trains too, as iw-BC starts from it.
    assert whole == (
        "bc (128 whole episodes of up to 1,000 steps a batch, 10,000 updates), iw_bc (256 whole "
        "episodes of up to 1,000 steps a batch, 2,000 updates) with 5 seeds: hours on a CPU; "
        "--window 1 --bc-batch-size 256 --finetune-batch-size 256 trains on 256 one-step windows "
        "(CORL's BC batch), minutes a method"
    )
    assert baselines == (
        "td3_bc, iql train for 1,000,000 updates with 5 seeds: hours each on a CPU; "
        "--algo-steps sets fewer"
    )
    windows = BCConfig(window=1, batch_size=256)
    one_step = ExperimentConfig(
        methods=("bc", "td3_bc"),
        pipeline=PipelineConfig(pretrain=windows),
        algorithm_steps=20_000,
    )
    assert cpu_cost_notes(one_step, DATASET, 1000) == []
    # Little work in all: short episodes, or a few updates of one seed (the tests' budgets).
    assert cpu_cost_notes(ExperimentConfig(methods=("iw_bc",)), DATASET, 50) == []
    few = ExperimentConfig(
        methods=("bc", "awac"),
        seeds=(0,),
        pipeline=PipelineConfig(pretrain=BCConfig(steps=20)),
        algorithm_steps=200_000,
    )
    assert cpu_cost_notes(few, DATASET, 1000) == []
    # A method's own setting counts: BC on long windows, the fine-tune on whole episodes.
    own = ExperimentConfig(methods=("iw_bc",), seeds=(0,), settings=(("bc", (("window", 8),)),))
    assert cpu_cost_notes(own, DATASET, 1000) == [
        "iw_bc (256 whole episodes of up to 1,000 steps a batch, 2,000 updates) with 1 seed: "
        "hours on a CPU; --window 1 --bc-batch-size 256 --finetune-batch-size 256 trains on 256 "
        "one-step windows (CORL's BC batch), minutes a method"
    ]
    longer = ExperimentConfig(methods=("awac",), settings=(("awac", (("steps", 200_000),)),))
    assert cpu_cost_notes(longer, DATASET, 1000) == [
        "awac trains for 200,000 updates with 5 seeds: hours each on a CPU; --algo-steps sets fewer"
    ]


def test_run_notes_on_a_cpu_what_takes_hours(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The paper's whole-episode BC batch (128 episodes) at 2 updates, counted as the work of
    10,000: the note comes first; with one-step windows there is none."""
    monkeypatch.setattr("iwbc.bench.cpu_cost.SLOW_ON_CPU_SEED_ROWS", 128 * 1000 * 2)
    argv = ["run", DATASET, "--root", str(root), "--methods", "bc", "--seeds", "1"]
    argv += ["--bc-steps", "2", "--hidden", "16,16", "--eval-episodes", "1", "--quiet"]
    argv += ["--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "runs")]
    longest = int(load_dataset(DATASET, root=root).episodes.lengths.max())
    assert longest == 1000  # the fixture's expert episodes run to the time limit
    assert main(argv) == 0
    err = capsys.readouterr().err
    expected = f"iwbc: note: bc (128 whole episodes of up to {longest:,} steps a batch, 2 updates)"
    assert (expected in err) == (jax.default_backend() == "cpu")
    assert main([*argv, "--window", "1", "--bc-batch-size", "4"]) == 0
    assert "iwbc: note:" not in capsys.readouterr().err


def test_run_on_a_full_disk_replaces_none_of_its_files(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    out, work = tmp_path / "out", tmp_path / "runs"
    argv = ["run", DATASET, "--root", str(root), "--methods", "bc", "--seeds", "1"]
    argv += ["--bc-steps", "10", "--bc-batch-size", "4", "--hidden", "16,16"]
    argv += ["--eval-episodes", "2", "--out", str(out), "--work-dir", str(work), "--quiet"]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["returns.png", "scores.json", "table.csv", "table.md"]
    capsys.readouterr()

    write_text = Path.write_text

    def disk_fills_at_scores(self: Path, data: str, *args: object, **kwargs: object) -> int:
        if self.name == "scores.json":
            write_text(self, data[:10])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_text(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", disk_fills_at_scores)
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"iwbc: error: no space left on device while writing {out / 'scores.json'}; none of "
        "the files replaced: free space or fix permissions and run again (finished runs are "
        "kept and not trained again)\n"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_file_set_that_fails_midway_leaves_no_file(tmp_path: Path) -> None:
    def fails(path: Path) -> None:
        path.write_bytes(b"half")
        raise OSError(errno.EACCES, os.strerror(errno.EACCES))

    out = tmp_path / "new" / "out"
    writers = {"a.md": lambda p: p.write_text("a"), "b.csv": lambda p: p.write_text("b")}
    with pytest.raises(WriteError, match=r"^permission denied while writing .*c\.json; none "):
        write_file_set(out, {**writers, "c.json": fails, "d.png": lambda p: p.write_text("d")})
    assert list(out.iterdir()) == []
    write_file_set(out, writers)
    assert sorted(p.name for p in out.iterdir()) == ["a.md", "b.csv"]


def test_run_says_whether_each_baselines_critic_had_settled(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run scored only at its end has no learning curve to test: its table gives each
    baseline's critic over the last tenth of its updates and names those still learning."""
    out = tmp_path / "out"
    argv = ["run", DATASET, "--root", str(root), "--methods", "bc,td3_bc", "--seeds", "2"]
    argv += ["--bc-steps", "10", "--bc-batch-size", "4", "--window", "8", "--hidden", "16,16"]
    argv += ["--algo-steps", "3000", "--eval-episodes", "2", "--out", str(out)]
    argv += ["--work-dir", str(tmp_path / "runs"), "--quiet"]
    argv += ["--set", "td3_bc.hidden_dims=[16, 16]", "--set", "td3_bc.batch_size=16"]
    assert main(argv) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert "critic_q_tail" not in scores["methods"]["bc"]
    table = (out / "table.md").read_text()
    line = next(row for row in table.splitlines() if row.startswith("Critics at the end"))
    tail = scores["methods"]["td3_bc"]["critic_q_tail"]
    q = np.array(tail["q_mean"])
    assert tail["steps"] == [2700, 3000] and q.shape == (2, 2)  # chunks of a tenth
    moved = np.mean(np.abs(q[:, 1] - q[:, 0]) / np.abs(q[:, 0]))
    assert tail["moved"] == pytest.approx(moved)
    start, end = (f"{v:.4g}" for v in q.mean(axis=0))
    assert f"td3_bc {start} → {end} over updates 2,700 → 3,000, moved {moved:.1%}" in line
    assert moved >= 0.05  # 3k updates: far from settled
    assert "Still learning: td3_bc." in line
    rewards = load_dataset(DATASET, root=root).episodes.to_transitions().rewards
    td_range = value_bounds(rewards, 0.99)
    assert tail["q_bounds"] == [pytest.approx(list(td_range))] * 2
    assert tail["outside_bounds"] == [bool(v > td_range[1]) for v in q[:, 1]]
    warning = (
        f"iwbc: warning: td3_bc's critic (mean Q) still moved {moved:.1%} over updates 2,700 to "
        "3,000: more --algo-steps may change its score (table.md)\n"
    )
    assert capsys.readouterr().err == warning


def test_the_same_id_under_another_root_trains_anew(root: Path, tmp_path: Path) -> None:
    """A dataset id names no content: the same id read from another root (a regenerated or
    stronger tier) must train and score on that data, never reuse the runs of the first,
    though both share the work directory; the first root's data is reused as before."""
    other = make_scripted_dataset(DATASET, tmp_path / "other", episodes=9)
    work = tmp_path / "runs"

    def run(data_root: Path, out: Path) -> dict:
        argv = ["run", DATASET, "--root", str(data_root), "--methods", "bc", "--seeds", "1"]
        argv += ["--bc-steps", "10", "--bc-batch-size", "4", "--hidden", "16,16"]
        argv += ["--eval-episodes", "2", "--out", str(out), "--work-dir", str(work), "--quiet"]
        assert main(argv) == 0
        row = next(r for r in (out / "table.md").read_text().splitlines() if "| bc |" in r)
        return {"episodes": row.split("|")[3].strip(), "files": sorted(work.rglob("*.npy"))}

    first = run(root, tmp_path / "first")
    second = run(other, tmp_path / "second")
    assert (first["episodes"], second["episodes"]) == ("6", "9")
    assert len(second["files"]) == 2 * len(first["files"])  # its own evaluation cache
    again = run(root, tmp_path / "again")
    assert again["episodes"] == "6" and again["files"] == second["files"]


def test_new_reference_scores_rescore_finished_runs_without_training(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reference scores only rescale returns: a run given other ones (``--ref-min/--ref-max``,
    or a cache filled in later) rescores its cached evaluations instead of training again,
    and its table, records and scores use the new ones."""
    work = tmp_path / "runs"

    def run(out: Path, *refs: str) -> dict:
        argv = ["run", DATASET, "--root", str(root), "--methods", "bc,iw_bc", "--seeds", "1"]
        argv += ["--bc-steps", "10", "--bc-batch-size", "4", "--finetune-steps", "10"]
        argv += ["--warmup-steps", "2", "--finetune-batch-size", "4", "--window", "8"]
        argv += ["--hidden", "16,16", "--eval-episodes", "2", "--out", str(out)]
        argv += ["--work-dir", str(work), "--quiet", *refs]
        assert main(argv) == 0
        return json.loads((out / "scores.json").read_text())

    first = run(tmp_path / "first")
    cached = sorted(work.rglob("*.npy"))

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained again")

    monkeypatch.setattr("iwbc.bench.units.Training", no_training)
    second = run(tmp_path / "second", "--ref-min", "0", "--ref-max", "100")
    assert sorted(work.rglob("*.npy")) == cached
    assert second["reference_scores"]["source"] == "--ref-min/--ref-max"
    for method in ("bc", "iw_bc"):
        returns = second["methods"][method]["returns"]
        assert returns == first["methods"][method]["returns"]
        np.testing.assert_allclose(second["methods"][method]["normalized"], returns)  # 0 to 100
    assert "ref_min = 0.00 and ref_max = 100.00" in (tmp_path / "second" / "table.md").read_text()


def test_caches_keyed_before_the_reference_scores_were_dropped_are_reused(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints and evaluations made when caches were keyed by the data's whole content
    fingerprint (reference scores included) are moved to the current key on first use: a
    finished run, its records gone, rescores from them instead of training again."""
    from iwbc.data import OfflineDataset

    work = tmp_path / "runs"
    argv = ["run", DATASET, "--root", str(root), "--methods", "bc,iw_bc", "--seeds", "1"]
    argv += ["--bc-steps", "10", "--bc-batch-size", "4", "--finetune-steps", "10"]
    argv += ["--warmup-steps", "2", "--finetune-batch-size", "4", "--window", "8"]
    argv += ["--hidden", "16,16", "--eval-episodes", "2", "--work-dir", str(work), "--quiet"]
    with monkeypatch.context() as old_keys:
        old_keys.setattr(
            OfflineDataset, "training_fingerprint", property(lambda d: d.content_fingerprint)
        )
        assert main([*argv, "--out", str(tmp_path / "first")]) == 0
    first = json.loads((tmp_path / "first" / "scores.json").read_text())
    cached = {p.relative_to(work).parts[1:] for p in work.rglob("*.npy")}
    shutil.rmtree(work / "records")

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained again")

    monkeypatch.setattr("iwbc.bench.units.Training", no_training)
    assert main([*argv, "--out", str(tmp_path / "second")]) == 0
    second = json.loads((tmp_path / "second" / "scores.json").read_text())
    assert second["methods"] == first["methods"]
    moved = {p.relative_to(work).parts[1:] for p in work.rglob("*.npy")}
    assert {name[1:] for name in moved} == {name[1:] for name in cached}
    assert moved != cached  # under the new keys


def test_a_settled_critic_is_named_as_such() -> None:
    from iwbc.bench.experiment import _critic_lines
    from iwbc.report.convergence import CriticEnd

    settled = CriticEnd(DATASET, "iql", (9000, 10000), np.array([[100.0, 101.0], [50.0, 49.0]]))
    (line, blank) = _critic_lines([settled])
    assert "iql 75 → 75 over updates 9,000 → 10,000, moved 1.5%" in line and blank == ""
    assert line.endswith("None was still learning by that measure.")
    assert _critic_lines([]) == []


CRITIC_VERDICTS = {
    # A final mean Q outside the range TD on the data can reach has diverged, though it no
    # longer moves.
    "diverged": (
        "awac",
        [[900.0, 901.0], [300.0, 301.0]],
        [0.5, 395.0],
        (9000, 10000),
        "None was still learning by that measure. awac's critic diverged: its final mean Q lies "
        "outside [0.5, 395], every value TD targets of the data's rewards can reach, on 1 of 2 "
        "seeds, so its score is of a policy following values no data supports.",
        "iwbc: warning: awac's critic diverged: its final mean Q lies outside every value TD "
        "targets of the data's rewards can reach on 1 of 2 seeds (table.md)\n",
    ),
    # Rewards all negative leave a critic from near 0 outside the TD range until it gets there:
    # one coming closer is still learning, not diverged (IQL on Pusher, 30 updates).
    "approaching": (
        "iql",
        [[-5.879, -6.749]] * 2,
        [-2.097e4, -35.84],
        (27, 30),
        "Still learning: iql. Their value estimates had not settled, so more updates "
        "(--algo-steps) may change their scores even where they look final. iql's critic ended "
        "outside [-2.097e+04, -35.84], every value TD targets of the data's rewards can reach, "
        "on 2 of 2 seeds, but between it and 0 and closer to it than before: it is still on its "
        "way from its initial values, hence still learning, whatever it moved.",
        "iwbc: warning: iql's critic (mean Q) ended outside every value TD targets of the data's "
        "rewards can reach, still approaching them, on 2 of 2 seeds: more --algo-steps may "
        "change its score (table.md)\n",
    ),
}


@pytest.mark.parametrize("case", list(CRITIC_VERDICTS))
def test_a_critic_outside_its_datas_values_is_named_in_the_table_and_on_stderr(
    case: str,
    root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    from iwbc.bench.experiment import _critic_lines
    from iwbc.report.convergence import CriticEnd

    method, q, bounds, steps, line_end, stderr = CRITIC_VERDICTS[case]
    end = CriticEnd(DATASET, method, steps, np.array(q), np.array([bounds] * 2))
    (line, _) = _critic_lines([end])
    assert line.endswith(line_end)
    monkeypatch.setattr("iwbc.bench.experiment.run_experiment", lambda *args, **kwargs: ([], [end]))
    argv = ["run", DATASET, "--root", str(root), "--methods", method, "--seeds", "2"]
    argv += ["--algo-steps", str(steps[1])]  # under an hour: no note on a CPU
    assert main([*argv, "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert capsys.readouterr().err == stderr


def test_a_weak_humanoid_dataset_trains_and_scores_on_the_batch_engine(
    make_minari_dataset, minari_root: Path, tmp_path: Path
) -> None:
    """A weak policy's Humanoid data (many short episodes beside a long one, 348-dim
    observations, a [-0.4, 0.4] action box) loads flat, trains, and is scored on the batch
    engine, its actions mapped back into the box."""
    lengths = (300, *[12] * 40)
    make_minari_dataset(
        "iwbc-test/humanoid/weak-v0",
        env="Humanoid-v5",
        lengths=lengths,
        terminated=(False, *[True] * 40),
        ref_min_score=0.0,
        ref_max_score=5000.0,
    )
    dataset = load_dataset("iwbc-test/humanoid/weak-v0", root=minari_root)
    assert dataset.episodes.observations.shape == (sum(lengths), 348)
    out = tmp_path / "out"
    argv = ["run", "iwbc-test/humanoid/weak-v0", "--root", str(minari_root), "--methods", "bc"]
    argv += ["--seeds", "1", "--bc-steps", "4", "--bc-batch-size", "4", "--window", "4"]
    argv += ["--hidden", "16,16", "--eval-episodes", "2", "--quiet"]
    argv += ["--out", str(out), "--work-dir", str(tmp_path / "runs")]
    assert main(argv) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["evaluation_engines"] == ["batch"]
    table = (out / "table.md").read_text()
    assert f"- dataset: 41 episodes, {sum(lengths)} steps, env Humanoid-v5;" in table
    assert "- action box [-0.4, 0.4] on every dimension: mapped into [-1, 1]" in table
    # An untrained policy earns the healthy bonus (5 a step) until the humanoid falls.
    returns = np.array(scores["methods"]["bc"]["returns"])
    assert returns.shape == (1, 2) and np.all(returns > 0)
