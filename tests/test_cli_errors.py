"""Every CLI option's bad values stop the command in one line (``iwbc: error: ...``, exit 2)
before anything trains; a bug keeps its traceback; ``--debug`` shows it for a user's error;
Ctrl-C exits 130 saying how to resume."""

from __future__ import annotations

import dataclasses
import errno
import gc
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import h5py
import mujoco
import numpy as np
import pytest
from conftest import make_scripted_dataset
from gymnasium.envs.registration import EnvSpec, WrapperSpec
from test_mujoco_warnings import SLIDER
from test_report_records import write_records

import iwbc.bench.experiment
import iwbc.cli
from iwbc.cli import main
from iwbc.core.sampling import locomotion_reward_scale
from iwbc.data import Transitions
from iwbc.envs.evaluate import check_evaluable
from iwbc.errors import UserError

DATASET = "iwbc-test/idp/cli-errors-v0"
REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_scripted_dataset(DATASET, tmp_path_factory.mktemp("minari"))


@pytest.fixture
def read_only(tmp_path: Path) -> Path:
    """A folder nobody may write into; /sys refuses even root, who ignores permissions."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if not os.access(folder, os.W_OK):
        return folder
    if Path("/sys").is_dir():
        return Path("/sys/iwbc-cli-errors")
    pytest.skip("no folder this user cannot write into")


def _suite(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text('datasets = ["iwbc/x/medium-v0"]\nseeds = [0]\n' + text)
    return path


SUITES = {
    "twice": 'methods = ["bc", "bc"]\n',
    "discount": 'methods = ["td3_bc"]\n[offline_rl]\ndiscount = 1.5\n',
    "hidden": 'methods = ["bc"]\n[bc_family]\nhidden_dims = [0]\n',
    "ema": 'methods = ["iw_bc"]\n[bc_family.finetune]\nema_decay = 1.0\n',
    "lr": 'methods = ["bc"]\n[bc_family.pretrain]\nlearning_rate = -1.0\n',
}

RUN = ["run", DATASET, "--root", "{root}"]
BASELINES = [*RUN, "--methods", "td3_bc,iql,cql,awac"]
GENERATE = ["data", "generate", "hopper"]

# (argv, fragment of the one-line message). "{root}": a local root holding DATASET; "{file}":
# a regular file; "{ro}": a read-only folder; "{tmp}": an empty folder; "{suite:NAME}": a suite
# file from SUITES.
CASES: list[tuple[list[str], str]] = [
    # iwbc (no subcommand)
    ([], "the following arguments are required: command"),
    (["nope"], "invalid choice: 'nope'"),
    # iwbc run: every numeric option, before the dataset is loaded
    ([*RUN, "--methods", "bc,dqn"], "--methods: unknown method(s) dqn; choose from bc, "),
    ([*RUN, "--methods", "bc,bc"], "--methods: method(s) bc listed twice"),
    ([*RUN, "--methods", ","], "--methods: no methods given; choose from bc, filtered_bc"),
    ([*RUN, "--methods", ""], "--methods: no methods given; choose from bc, filtered_bc"),
    ([*RUN, "--seeds", "0"], "--seeds must be an integer ≥ 1, got 0"),
    ([*RUN, "--seeds", "two"], "--seeds must be an integer ≥ 1, got 'two'"),
    ([*RUN, "--seed", "-1"], "--seed must be an integer ≥ 0, got -1"),
    ([*RUN, "--seed", str(2**32)], "--seed must be below 2**32 = 4294967296 (JAX keys keep"),
    ([*RUN, "--seed", str(2**32 - 1), "--seeds", "2"], "goes past 2**32 - 1, and JAX keys keep"),
    ([*RUN, "--bc-steps", "0"], "--bc-steps must be an integer ≥ 1, got 0"),
    ([*RUN, "--bc-batch-size", "-3"], "--bc-batch-size must be an integer ≥ 1, got -3"),
    ([*RUN, "--bc-lr", "nan"], "--bc-lr must be a finite number > 0, got nan"),
    ([*RUN, "--bc-lr", "0"], "--bc-lr must be a finite number > 0, got 0"),
    ([*RUN, "--bc-lr", "fast"], "--bc-lr must be a finite number > 0, got 'fast'"),
    ([*RUN, "--finetune-steps", "0"], "--finetune-steps must be an integer ≥ 1, got 0"),
    ([*RUN, "--finetune-batch-size", "0"], "--finetune-batch-size must be an integer ≥ 1"),
    ([*RUN, "--finetune-lr", "inf"], "--finetune-lr must be a finite number > 0, got inf"),
    ([*RUN, "--finetune-lr=-1e-4"], "--finetune-lr must be a finite number > 0, got -1e-4"),
    ([*RUN, "--warmup-steps", "-1"], "--warmup-steps must be an integer ≥ 0, got -1"),
    (
        [*RUN, "--warmup-steps", "10", "--finetune-steps", "10"],
        "--warmup-steps must be less than --finetune-steps (10), got 10",
    ),
    ([*RUN, "--temperature", "nan"], "--temperature must be a finite number > 0, got nan"),
    ([*RUN, "--temperature", "0"], "--temperature must be a finite number > 0, got 0"),
    ([*RUN, "--temperature=-inf"], "--temperature must be a finite number > 0, got -inf"),
    ([*RUN, "--ema-decay", "nan"], "--ema-decay must be a number in [0, 1), got nan"),
    ([*RUN, "--ema-decay", "1"], "--ema-decay must be a number in [0, 1), got 1"),
    ([*RUN, "--ema-decay", "-0.1"], "--ema-decay must be a number in [0, 1), got -0.1"),
    ([*RUN, "--window", "0"], "--window must be an integer ≥ 1, got 0"),
    ([*RUN, "--weighting", "steps"], "--weighting: invalid choice: 'steps'"),
    ([*RUN, "--hidden", "0"], "--hidden must be comma-separated positive integers, e.g. 256,256"),
    ([*RUN, "--hidden", "-4"], "--hidden must be comma-separated positive integers, e.g. 256,256"),
    (
        [*RUN, "--hidden", "abc"],
        "--hidden must be comma-separated positive integers, e.g. 256,256; got 'abc'",
    ),
    ([*RUN, "--hidden", "64,"], "--hidden must be comma-separated positive integers"),
    ([*RUN, "--algo-steps", "0"], "--algo-steps must be an integer ≥ 1, got 0"),
    # a baseline's own hyperparameters are checked against the values they may take
    (
        [*BASELINES, "--set", "iql.expectile=2.0"],
        "IQLConfig.expectile must be in (0, 1), got 2.0",
    ),
    (
        [*BASELINES, "--set", "awac.awac_lambda=0"],
        "AWACConfig.awac_lambda must be in (0, ∞), got 0",
    ),
    ([*BASELINES, "--set", "td3_bc.alpha=-1"], "TD3BCConfig.alpha must be in [0, ∞), got -1"),
    ([*BASELINES, "--set", "cql.cql_temp=0"], "CQLConfig.cql_temp must be in (0, ∞), got 0"),
    (
        [*BASELINES, "--set", "iql.log_std_min=5"],
        "IQLConfig.log_std_min must be below log_std_max, got 5",
    ),
    ([*RUN, "--eval-episodes", "0"], "--eval-episodes must be an integer ≥ 1, got 0"),
    ([*RUN, "--eval-episodes", "-1"], "--eval-episodes must be an integer ≥ 1, got -1"),
    ([*RUN, "--engine", "warp"], "--engine: invalid choice: 'warp'"),
    ([*RUN, "--ref-min", "nan", "--ref-max", "1"], "--ref-min must be a finite number, got nan"),
    ([*RUN, "--ref-min", "0", "--ref-max", "inf"], "--ref-max must be a finite number, got inf"),
    ([*RUN, "--ref-min", "0"], "--ref-min and --ref-max go together; pass both or neither"),
    ([*RUN, "--ref-max", "5"], "--ref-min and --ref-max go together"),
    ([*RUN, "--ref-min", "5", "--ref-max", "5"], "--ref-max must be greater than --ref-min"),
    # references whose normalized scores overflow: refused before training, not at its end
    (
        [*RUN, "--ref-min=-1e308", "--ref-max", "1e308"],
        "normalized scores overflow with ref_min=-1e+308 and ref_max=1e+308",
    ),
    ([*RUN, "--ref-min", "0", "--ref-max", "1e-306"], "overflow with ref_min=0 and ref_max=1e-306"),
    ([*RUN, "--bogus"], "unrecognized arguments: --bogus"),
    (
        [*RUN, "--methods", "td3_bc,iql", "--hidden", "32,32"],
        "--hidden sets the BC family's widths and --methods has none of it; set a baseline's "
        "with --set METHOD.hidden_dims=[...]",
    ),
    (["run", DATASET, "--root", "{file}"], "--root {file} is a file; it must be a directory"),
    ([*RUN, "--out", "{file}"], "--out {file} is a file; it must be a directory"),
    ([*RUN, "--work-dir", "{file}"], "--work-dir {file} is a file; it must be a directory"),
    ([*RUN, "--out", "{ro}"], "--out {ro} is not writable"),
    ([*RUN, "--work-dir", "{ro}"], "--work-dir {ro} is not writable"),
    (["run", "not-an-id", "--root", "{root}"], "'not-an-id' is not a Minari dataset id"),
    (
        ["run", "hopper_medium-v2.hdf5", "--root", "{root}"],
        "imported first (`iwbc data import-d4rl hopper_medium-v2.hdf5`), then run by the id",
    ),
    (
        ["run", "iwbc-test/idp/none-v0", "--root", "{root}"],
        "pass --download (download=True from Python)",
    ),
    # iwbc bench
    (["bench"], "the following arguments are required: --suite"),
    (["bench", "--suite", "nope"], "unknown suite 'nope'; available suites: demo, "),
    (["bench", "--suite", "{tmp}/missing.toml"], "cannot read suite file {tmp}/missing.toml"),
    (["bench", "--suite", "{suite:twice}"], "'methods' lists bc twice; list each once"),
    (["bench", "--suite", "{suite:discount}"], "TD3BCConfig.discount must be in [0, 1], got 1.5"),
    (["bench", "--suite", "{suite:hidden}"], "hidden_dims must be positive layer widths"),
    (["bench", "--suite", "{suite:ema}"], "ema_decay must be in [0, 1), got 1.0"),
    (["bench", "--suite", "{suite:lr}"], "learning_rate must be a positive finite number"),
    (["bench", "--suite", "demo", "--executor", "dask"], "--executor: invalid choice: 'dask'"),
    (["bench", "--suite", "demo", "--only-methods", "dqn"], "method(s) dqn not in suite demo"),
    (["bench", "--suite", "demo", "--only-methods", "bc,bc"], "--only-methods must list each"),
    (["bench", "--suite", "demo", "--only-datasets", ","], "--only-datasets must be comma-sep"),
    (["bench", "--suite", "demo", "--only-datasets", "x/y-v0"], "dataset(s) x/y-v0 not in suite"),
    (["bench", "--suite", "demo", "--num-cpus", "0"], "--num-cpus must be an integer ≥ 1, got 0"),
    (["bench", "--suite", "demo", "--root", "{file}"], "--root {file} is a file"),
    (["bench", "--suite", "demo", "--results", "{file}"], "--results {file} is a file"),
    (["bench", "--suite", "demo", "--results", "{ro}"], "--results {ro}/demo/records is not writ"),
    (["bench", "--suite", "demo", "--work-dir", "{ro}"], "--work-dir {ro} is not writable"),
    # iwbc report
    (["report"], "the following arguments are required: --suite"),
    (["report", "--suite", "demo", "--reps", "0"], "--reps must be an integer ≥ 1, got 0"),
    (["report", "--suite", "demo", "--reps", "many"], "--reps must be an integer ≥ 1, got 'many'"),
    (["report", "--suite", "nope", "--results", "{tmp}"], "unknown suite 'nope' and no records"),
    (["report", "--suite", "{suite:twice}"], "'methods' lists bc twice"),
    (["report", "--suite", "{tmp}/missing.toml"], "cannot read suite file {tmp}/missing.toml"),
    (["report", "--suite", "demo", "--results", "{tmp}"], "no records for suite 'demo' under"),
    # iwbc demo
    (["demo", "--root", "{file}"], "--root {file} is a file; it must be a directory"),
    (["demo", "--results", "{file}"], "--results {file} is a file; it must be a directory"),
    (["demo", "--work-dir", "{file}"], "--work-dir {file} is a file; it must be a directory"),
    (["demo", "--results", "{ro}"], "--results {ro}/demo/records is not writable"),
    (["demo", "--work-dir", "{ro}"], "--work-dir {ro} is not writable"),
    # iwbc data list / info
    (["data"], "the following arguments are required: data_command"),
    (["data", "list", "--root", "{file}"], "--root {file} is a file; it must be a directory"),
    (["data", "info", "bad"], "'bad' is not a Minari dataset id"),
    (["data", "info", DATASET, "--root", "{file}"], "--root {file} is a file"),
    (["data", "info", "iwbc-test/idp/none-v0", "--root", "{root}"], "pass --download"),
    # iwbc data scripted
    (["data", "scripted", "--episodes", "0"], "--episodes must be an integer ≥ 1, got 0"),
    (["data", "scripted", "--seed", "-2"], "--seed must be an integer ≥ 0, got -2"),
    (["data", "scripted", "--seed", "10"], "reaching the evaluation's reset seeds"),
    (["data", "scripted", "--dataset", "bad"], "--dataset must be a Minari dataset id like"),
    (["data", "scripted", "--root", "{file}"], "--root {file} is a file"),
    (
        ["data", "scripted", "--dataset", DATASET, "--root", "{root}"],
        "already exists; pass --overwrite (overwrite=True from Python)",
    ),
    # iwbc data generate
    (["data", "generate"], "the following arguments are required: ENV"),
    (["data", "generate", "ant"], "unknown env 'ant'; available: hopper, "),
    ([*GENERATE, "--preset", "huge"], "unknown preset 'huge'; available: quick, "),
    ([*GENERATE, "--seed", "-1"], "--seed must be an integer ≥ 0, got -1"),
    ([*GENERATE, "--seed", str(2**63)], "--seed must be below 2**32 = 4294967296"),
    ([*GENERATE, "--env-steps", "5000"], "--env-steps must exceed the quick preset's 5000 unif"),
    ([*GENERATE, "--tiers", "best"], "--tiers: unknown tier(s) best; available: random, "),
    ([*GENERATE, "--tiers", ","], "--tiers must be comma-separated names"),
    ([*GENERATE, "--tiers", "random,random"], "--tiers must list each name once"),
    ([*GENERATE, "--env-steps", "0"], "--env-steps must be an integer ≥ 1, got 0"),
    ([*GENERATE, "--env-steps", "1500"], "--env-steps must be a multiple of 1000"),
    ([*GENERATE, "--tier-steps", "0"], "--tier-steps must be an integer ≥ 1, got 0"),
    ([*GENERATE, "--random-steps", "-5"], "--random-steps must be an integer ≥ 1, got -5"),
    ([*GENERATE, "--root", "{file}"], "--root {file} is a file"),
    ([*GENERATE, "--work-dir", "{file}"], "--work-dir {file} is a file"),
    ([*GENERATE, "--work-dir", "{ro}"], "--work-dir {ro} is not writable"),
    ([*GENERATE, "--report", "{ro}/summary.md"], "--report {ro} is not writable"),
    # iwbc data import-d4rl
    (["data", "import-d4rl"], "the following arguments are required: file"),
    (["data", "import-d4rl", "{tmp}/hopper_medium-v2.hdf5"], "is not a file; pass the path of"),
    (["data", "import-d4rl", "{file}", "--env", "ant3"], "cannot tell the env from --env 'ant3'"),
    (["data", "import-d4rl", "{file}", "--env", "hopper", "--name", "x"], "'x' is not a Minari"),
    (["data", "import-d4rl", "{file}", "--root", "{file}"], "--root {file} is a file"),
    # iwbc data minari-tiers
    (["data", "minari-tiers"], "the following arguments are required: NAMESPACE"),
    (["data", "minari-tiers", "hopper", "/"], "empty namespace; pass e.g. mujoco/hopper"),
    (["data", "minari-tiers", "hopper", "--episodes", "0"], "--episodes must be an integer ≥ 1"),
    (["data", "minari-tiers", "hopper", "--seed", "x"], "--seed must be an integer ≥ 0, got 'x'"),
    (["data", "minari-tiers", "hopper", "--root", "{file}"], "--root {file} is a file"),
]


def _fill(text: str, places: dict[str, str]) -> str:
    for key, value in places.items():
        text = text.replace("{" + key + "}", value)
    return text


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_line(
    argv: list[str],
    message: str,
    root: Path,
    read_only: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # defaults such as results/ and runs/ land in the test's folder
    regular = tmp_path / "a-file"
    regular.write_text("not a folder")
    places = {"root": str(root), "file": str(regular), "ro": str(read_only), "tmp": str(tmp_path)}
    places |= {f"suite:{name}": str(_suite(tmp_path, name, text)) for name, text in SUITES.items()}
    assert main([_fill(arg, places) for arg in argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("iwbc: error: ")
    assert captured.err.count("\n") == 1, captured.err
    assert _fill(message, places) in captured.err
    assert "Traceback" not in captured.err + captured.out


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain ValueError is not a user's mistake: it leaves main as it was raised."""

    def broken(root: object) -> list[str]:
        raise ValueError("internal invariant broken")

    monkeypatch.setattr(iwbc.cli, "list_datasets", broken)
    with pytest.raises(ValueError, match="internal invariant broken") as raised:
        main(["data", "list"])
    assert not isinstance(raised.value, UserError)


@pytest.mark.parametrize(
    "argv",
    [["--debug", "data", "info", "bad"], ["data", "info", "bad", "--debug"]],
    ids=["before", "after"],
)
def test_debug_shows_the_traceback_of_a_user_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "DatasetError" in err
    assert err.endswith(
        "iwbc: error: 'bad' is not a Minari dataset id (it does not end in a version such as "
        "-v0); ids look like "
        "'namespace/name-v0', e.g. 'mujoco/hopper/expert-v0'\n"
    )


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/data/records/x.json"),
            "no space left on device while writing /data/records/x.json; free some space",
        ),
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on device; free"),
        (
            PermissionError(errno.EACCES, "Permission denied", "/data/x"),
            "permission denied: /data/x",
        ),
        (OSError(errno.EROFS, "Read-only file system", "/mnt/x"), "read-only file system: /mnt/x"),
        (
            FileExistsError("dataset x exists; pass --overwrite"),
            "dataset x exists; pass --overwrite",
        ),
    ],
    ids=["full-disk", "full-disk-no-path", "permission", "read-only", "message-only"],
)
def test_os_errors_name_what_and_where(
    error: OSError,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def failing(root: object) -> list[str]:
        raise error

    monkeypatch.setattr(iwbc.cli, "list_datasets", failing)
    assert main(["data", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"iwbc: error: {message}") and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [[*RUN, "--engine", "mjx"], ["bench", "--suite", "{suite:mjx}"]],
    ids=["run", "bench"],
)
def test_mjx_without_the_extra_is_refused_before_training(
    argv: list[str],
    root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "mujoco.mjx" else find_spec(name)
    )
    suite = _suite(tmp_path, "mjx", 'methods = ["bc"]\nengine = "mjx"\n')
    places = {"root": str(root), "suite:mjx": str(suite)}
    assert main([_fill(arg, places) for arg in argv]) == 2
    err = capsys.readouterr().err
    expected = "iwbc: error: engine 'mjx' is not available yet in this install: pip install "
    assert err == expected + "'iwbc[mjx]'\n"


def test_ref_scores_from_the_command_line(
    make_minari_dataset: Callable[..., object],
    minari_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A dataset without reference scores: the error names --ref-min/--ref-max, which work."""
    dataset = "iwbc-test/pendulum/unscored-v0"
    make_minari_dataset(dataset, ref_min_score=None, ref_max_score=None)
    argv = ["run", dataset, "--root", str(minari_root), "--out", str(tmp_path / "out")]
    argv += ["--work-dir", str(tmp_path / "runs"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "has no ref_min_score/ref_max_score" in err and "pass --ref-min and --ref-max" in err
    assert err.count("\n") == 1

    seen = {}

    def record(dataset: object, config: object, out: object, **kwargs: object) -> tuple:
        seen["scores"] = (dataset.ref_min_score, dataset.ref_max_score)
        return [], []

    monkeypatch.setattr(iwbc.bench.experiment, "run_experiment", record)
    assert main([*argv, "--ref-min", "-5", "--ref-max", "95.5"]) == 0
    assert seen["scores"] == (-5.0, 95.5)


def test_report_accepts_a_suite_path_like_bench(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_records(tmp_path, {("iwbc/hopper/medium-v0", "bc"): [50.0, 60.0]})
    suite = tmp_path / "toy.toml"
    suite.write_text('datasets = ["iwbc/hopper/medium-v0"]\nmethods = ["bc"]\nseeds = [0, 1]\n')
    assert main(["report", "--suite", str(suite), "--results", str(tmp_path), "--reps", "10"]) == 0
    assert f"wrote {tmp_path / 'toy'}/" in capsys.readouterr().out
    assert (tmp_path / "toy" / "table.md").is_file()


def test_interrupted_bench_says_what_was_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import iwbc.bench.runner

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(iwbc.bench.runner, "run_suite", interrupted)
    results, work = tmp_path / "results", tmp_path / "runs"
    argv = ["bench", "--suite", "demo", "--results", str(results), "--work-dir", str(work)]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert err == (
        f"iwbc: interrupted; finished runs are kept under {results / 'demo' / 'records'} and "
        f"checkpoints under {work}; run the same command again to resume\n"
    )


def test_ctrl_c_during_run_exits_130_in_one_line(root: Path, tmp_path: Path) -> None:
    """A real ``iwbc run`` gets SIGINT once its first training chunk is checkpointed."""
    work = tmp_path / "runs"
    # A shell starting a background job may leave SIGINT ignored; a terminal never does.
    code = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from iwbc.cli import main; sys.exit(main())"
    )
    argv = ["run", DATASET, "--root", str(root), "--methods", "bc", "--seeds", "1"]
    argv += ["--bc-steps", "1000000", "--bc-batch-size", "2", "--window", "4", "--hidden", "8"]
    argv += ["--eval-episodes", "1", "--out", str(tmp_path / "out"), "--work-dir", str(work)]
    env = dict(os.environ, PYTHONPATH=str(REPOSITORY), JAX_PLATFORMS="cpu")
    process = subprocess.Popen(
        [sys.executable, "-c", code, *argv, "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(work.glob("*/*/checkpoint.msgpack")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert err == (
        f"iwbc: interrupted; finished runs and checkpoints are kept under {work}; run the same "
        "command again to resume\n"
    )
    assert "Traceback" not in out + err


# A command that runs ``interrupt_inside`` (a Ctrl-C arriving inside a callback), then waits
# for the interrupt to come, in a fresh interpreter: no earlier test's callbacks or handlers are
# in the way, and a process that aborts fails the test instead of the suite.
_INTERRUPTED_INSIDE = """
import gc, signal, time, warnings
import mujoco, numpy as np
import iwbc.cli

def interrupt(*args, **kwargs):
    signal.raise_signal(signal.SIGINT)  # its handler runs here, inside the callback
{interrupt_inside}
def command(args):
    interrupt_inside()
    time.sleep(20)  # the interrupt must come here
    return 0

iwbc.cli._data_list = command
signal.signal(signal.SIGINT, signal.default_int_handler)
started = time.monotonic()
code = iwbc.cli.main(["data", "list"])
assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
print(code, round(time.monotonic() - started))
"""

_IN_A_GC_CALLBACK = """
def callback(phase, info):
    if phase == "start":
        interrupt()

def interrupt_inside():
    gc.callbacks.append(callback)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(callback)
"""

_IN_MUJOCOS_WARNING_HANDLER = f"""
def interrupt_inside():
    model = mujoco.MjModel.from_xml_string({SLIDER!r})
    data = mujoco.MjData(model)
    data.qvel[:] = np.inf
    warnings.showwarning = interrupt
    mujoco.mj_step(model, data)  # warns through iwbc's handler
"""


# filelock (Minari's, while a dataset is written) registers one; Python ignores its exceptions
_IN_AN_AT_FORK_HANDLER = """
import os

def interrupt_inside():
    os.register_at_fork(after_in_parent=interrupt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # JAX's: fork and threads
        child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
"""


@pytest.mark.parametrize(
    "interrupt_inside",
    [_IN_A_GC_CALLBACK, _IN_MUJOCOS_WARNING_HANDLER, _IN_AN_AT_FORK_HANDLER],
    ids=["gc-callback", "mujoco-warning-handler", "at-fork-handler"],
)
def test_ctrl_c_inside_a_callback_interrupts_the_command(interrupt_inside: str) -> None:
    """Raised inside a gc callback, a KeyboardInterrupt is printed as "Exception ignored" and
    the command goes on: JAX registers one, so a Ctrl-C while a command loaded its libraries was
    often lost and the command ran to its end (found by the bad-input sweep). Raised inside the
    handler that routes MuJoCo's warnings to Python, it crosses MuJoCo's C frames and aborts the
    process (SIGABRT, no message). Raised in an at-fork handler, it is ignored the same way
    (the bad-input sweep's Ctrl-C as `data scripted` wrote its dataset, inside filelock's)."""
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    script = _INTERRUPTED_INSIDE.replace("{interrupt_inside}", interrupt_inside)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    code, seconds = done.stdout.split()
    assert (code, done.stderr) == ("130", "iwbc: interrupted\n")
    assert int(seconds) < 10


def test_ctrl_c_while_the_libraries_import_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The console script imports the CLI (JAX, Flax, MuJoCo: seconds) inside its own guard."""
    import builtins

    import iwbc.__main__

    real_import = builtins.__import__

    def interrupted(name: str, *args: object, **kwargs: object) -> object:
        if name == "iwbc.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    assert iwbc.__main__.main() == 130
    assert capsys.readouterr().err == "iwbc: interrupted while starting; nothing was run\n"


def test_ctrl_c_inside_a_gc_callback_while_importing_is_not_swallowed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """JAX's garbage-collector callback runs often while the CLI imports; a Ctrl-C raised in it
    would be printed as "Exception ignored" and the command would run to its end (the bad-input
    sweep caught one at 1 s). It exits 130 in one line once the import is over."""
    import builtins

    import iwbc.__main__

    real_import = builtins.__import__
    seen = []

    def callback(phase: str, info: dict) -> None:
        if phase == "start" and not seen:
            seen.append(phase)
            signal.raise_signal(signal.SIGINT)

    def collecting(name: str, *args: object, **kwargs: object) -> object:
        if name == "iwbc.cli":
            gc.callbacks.append(callback)
            try:
                gc.collect()
            finally:
                gc.callbacks.remove(callback)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", collecting)
    monkeypatch.setattr(sys, "argv", ["iwbc", "data", "list", "--root", "/nonexistent"])
    # A shell starting the tests as a background job leaves SIGINT ignored; a terminal never does.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert iwbc.__main__.main() == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen and capsys.readouterr().err == "iwbc: interrupted while starting; nothing was run\n"


def test_an_env_no_engine_here_runs_is_refused_before_training(
    make_minari_dataset, minari_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked before anything trains: at paper budgets a failure at the first evaluation
    would cost hours."""
    make_minari_dataset("iwbc-test/pendulum/cli-v0", env="Pendulum-v1")  # no batch-engine spec
    make_minari_dataset(
        "iwbc-test/pendulum/no-env-v0",
        env=None,
        observation_space=gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
        action_space=gym.spaces.Box(-1.0, 1.0, (1,), np.float32),
    )
    unlimited = dataclasses.replace(gym.spec("InvertedPendulum-v5"), max_episode_steps=None)
    make_minari_dataset("iwbc-test/pendulum/no-limit-v0", env=unlimited)
    work = tmp_path / "runs"
    for dataset, extra, message in (
        ("iwbc-test/pendulum/cli-v0", ["--engine", "batch"], "no built-in spec for "),
        ("iwbc-test/pendulum/no-env-v0", [], "records no environment, so it cannot be evaluated"),
        ("iwbc-test/pendulum/no-limit-v0", [], "has no time limit (max_episode_steps=None)"),
    ):
        argv = ["run", dataset, "--root", str(minari_root), "--methods", "bc", "--seeds", "1"]
        argv += ["--bc-steps", "20", "--work-dir", str(work), "--out", str(tmp_path / "out")]
        argv += ["--ref-min", "0", "--ref-max", "100"]
        assert main([*argv, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("iwbc: error: ") and err.count("\n") == 1 and message in err, err
    assert not list(tmp_path.rglob("*.msgpack"))


def test_an_env_gymnasium_cannot_rebuild_is_one_line() -> None:
    spec = dataclasses.replace(
        gym.spec("Hopper-v5"),
        additional_wrappers=(WrapperSpec("Broken", "no_such_module:Broken", {}),),
    )
    with pytest.raises(
        UserError, match=r"^dataset x's env Hopper-v5 cannot be built or run here \("
    ):
        check_evaluable(spec, "auto", "x")


class FailsOnReset(gym.Env):
    """An env that builds, then fails a bare assert on reset (as Gymnasium-Robotics 1.4.2's
    Kitchen does as it builds on MuJoCo 3.12+, without ``iwbc.envs.robotics_compat``)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Box(-1.0, 1.0, (1,))

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple:
        raise AssertionError


def test_an_env_that_builds_but_cannot_reset_is_refused_before_training() -> None:
    spec = EnvSpec("FailsOnReset-v0", entry_point=f"{__name__}:FailsOnReset", max_episode_steps=5)
    with pytest.raises(UserError) as info:
        check_evaluable(spec, "auto", "x")
    message = str(info.value)
    assert message.startswith(
        "dataset x's env FailsOnReset-v0 cannot be built or run here (AssertionError at "
        "test_cli_errors.py:"
    )
    assert f"install what it needs, in versions that run with MuJoCo {mujoco.__version__}, or" in (
        message
    )


def test_an_env_of_gymnasium_robotics_names_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Minari's D4RL Adroit datasets record AdroitHandPen-v1 and its kind, whose module is
    Gymnasium-Robotics' (a dependency: here it is made unimportable, as where it is missing)."""
    spec = EnvSpec(
        "AdroitHandPen-v1",
        entry_point="gymnasium_robotics.envs.adroit_hand.adroit_pen:AdroitHandPenEnv",
        max_episode_steps=100,
    )
    for name in [m for m in sys.modules if m.partition(".")[0] == "gymnasium_robotics"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)
    with pytest.raises(UserError) as info:
        check_evaluable(spec, "auto", "D4RL/pen/human-v2")
    message = str(info.value)
    assert message.startswith(
        "dataset D4RL/pen/human-v2's env AdroitHandPen-v1 cannot be built or run here (No module "
        "named 'gymnasium_robotics"
    )
    assert message.endswith(
        "evaluation runs the env the dataset records, so install what it needs (`pip install "
        "gymnasium-robotics`), or record the dataset on an env (and wrappers) Gymnasium can "
        "rebuild from its spec"
    )


def test_reward_scaling_of_equal_returns_names_the_switch() -> None:
    transitions = Transitions(
        obs=np.zeros((2, 1)),
        actions=np.zeros((2, 1)),
        rewards=np.ones(2),
        next_obs=np.zeros((2, 1)),
        terminals=np.array([1.0, 1.0]),
        timeouts=np.zeros(2),
    )
    with pytest.raises(UserError, match=r"--set <method>.normalize_rewards=false"):
        locomotion_reward_scale(transitions)


def test_equal_returns_under_reward_scaling_are_refused_before_any_method_trains(
    make_minari_dataset, minari_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """IQL's reward scaling needs returns that differ: found from the episodes before TD3+BC,
    listed first, trains, not after it."""
    dataset = "iwbc-test/pendulum/equal-returns-v0"
    make_minari_dataset(dataset)
    with h5py.File(minari_root / dataset / "data" / "main_data.hdf5", "r+") as f:
        for name in f:
            f[name]["rewards"][...] = 0.0
    argv = ["run", dataset, "--root", str(minari_root), "--methods", "td3_bc,iql", "--seeds", "1"]
    argv += ["--algo-steps", "20", "--work-dir", str(tmp_path / "runs"), "--quiet"]
    argv += ["--out", str(tmp_path / "out"), "--ref-min", "0", "--ref-max", "100"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (
        "iwbc: error: all episodes have the same return, so CORL's reward scaling (1000 / (max "
        "return − min return)) is undefined; train without it: --set iql.normalize_rewards=false "
        "(normalize_rewards = false in a suite's [offline_rl.iql])\n"
    )
    assert not [path for path in (tmp_path / "runs").rglob("*") if path.is_file()]


@pytest.mark.parametrize(("extra", "every"), [([], "25,000"), (["--env-steps", "14000"], "14,000")])
def test_interrupted_generate_says_how_often_sac_checkpoints(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    every: str,
) -> None:
    """A user stopping SAC before its first checkpoint must not expect to resume from one."""
    import iwbc.datagen.command

    def interrupted(args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(iwbc.datagen.command, "_generate", interrupted)
    work = tmp_path / "work"
    argv = [*GENERATE, "--preset", "quick", "--work-dir", str(work), *extra]
    assert main(argv) == 130
    assert capsys.readouterr().err == (
        f"iwbc: interrupted; the behaviour policies' SAC checkpoints, taken every {every} env "
        f"steps, are kept under {work} (a SAC run stopped before its first starts over); run "
        "the same command again to resume\n"
    )
