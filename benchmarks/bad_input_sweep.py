"""Bad inputs, interrupts, full disks and concurrent runs against the real ``iwbc`` command.

Tried as a new user would: every case runs ``python -m iwbc ...`` as a subprocess in a
fresh folder of its own (its cwd, so default ``results/`` and ``runs/`` land there; Minari's
default root points into it too), on its own copy of one small dataset made once with
``iwbc data scripted --episodes 20``, at tiny budgets (``--bc-steps 20 --finetune-steps 10
--warmup-steps 2 --seeds 1 --eval-episodes 2``; most training cases also ``--methods bc
--hidden 16,16``, which keeps the compile time down). The cases:

- every option of every subcommand with invalid values: the table of
  ``tests/test_cli_errors.py`` (imported, so the two never drift), plus NaN/inf/negative/huge
  numerics, duplicate methods and names, bad suite files;
- NaN appearing during training (``--bc-lr 1e30``, ...) and in a dataset;
- missing and malformed datasets and files (D4RL files missing a key or corrupt, a Minari
  dataset with a zero-length episode, a truncated HDF5 file, corrupt records and checkpoints);
- read-only paths and files where folders are expected;
- a stale-configuration ``iwbc report`` (a suite budget edited, one method rerun);
- Ctrl-C (SIGINT to the process group, as a terminal sends it) during ``iwbc run`` and ``iwbc
  bench`` once the first checkpoint exists, during ``iwbc data scripted`` (its rollouts, as its
  --root appears, its HDF5 write), a second later and while ``iwbc run`` is still loading, and
  twice in a row; ``kill -9`` mid-run, then the same command again (it must finish, and the records
  written before the kill must be intact);
- two concurrent ``iwbc bench`` (and ``iwbc run``) on the same folders;
- a full disk, simulated with ``RLIMIT_FSIZE`` (SIGXFSZ ignored, so writes fail with EFBIG),
  during ``data scripted``, ``data import-d4rl``, ``run --out`` and ``bench``.

Each case is classified automatically:

- clear error: exit ≠ 0, the last line of stderr is one ``iwbc: error: ...`` or ``iwbc:
  interrupted ...`` line (for ``iwbc bench`` with failed runs, exit 1 and one ``failed: ...``
  line per failed run after its summary), no traceback;
- behaved well: exit 0 and the case's outcome checks pass (outputs are strict JSON without
  NaN, one row per method, a stale report flags the stale cell, concurrent sweeps trained each
  unit once, ...);
- silent wrong result: a check fails: a NaN or infinity in an output (stdout, a table, a
  JSON file), invalid JSON, a wrong or duplicated row;
- traceback: a Python traceback, or a process killed by a signal (a crash; but a second
  Ctrl-C that ends the process after its one ``iwbc: interrupted`` line counts as that line:
  a shell shows status 130 either way);
- hang: no exit within the case's time limit;
- data loss: a file that existed before the command (the dataset, a finished record, a
  previous output set) is gone or changed, or staging/temporary files were left behind;
- other: exit ≠ 0 without a one-line message, or a valid input refused (none expected);
- not exercised: the sweep could not set the situation up (e.g. a run ended before it could be
  interrupted); none expected.

Regenerate (about half an hour on 2 busy cores; ``--only REGEX`` runs the cases whose names it
matches, ``--list`` lists them, ``--out`` writes elsewhere)::

    PYTHONPATH=. python benchmarks/bad_input_sweep.py --jobs 2

It writes ``results/hardening/bad_input_sweep.md`` and ``.json`` and prints the totals.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import fnmatch
import functools
import hashlib
import json
import math
import multiprocessing
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "results" / "hardening"
DATASET = "iwbc/inverted-double-pendulum/mixed-v0"
DATASET_DIR = DATASET  # its folder under a Minari root
TINY = ["--bc-steps", "20", "--finetune-steps", "10", "--warmup-steps", "2", "--seeds", "1"]
TINY += ["--eval-episodes", "2"]
SMALL = ["--methods", "bc", "--hidden", "16,16"]
RUN = ["run", DATASET, "--root", "{root}"]
OUT = ["--out", "out", "--work-dir", "runs", "--quiet"]
ERROR_TIMEOUT = 240
TRAIN_TIMEOUT = 900

CLEAR, WELL, WRONG, TRACEBACK, HANG, LOSS = (
    "clear error",
    "behaved well",
    "silent wrong result",
    "traceback",
    "hang",
    "data loss",
)
OTHER, NOT_EXERCISED = "other", "not exercised"
CLASSES = (CLEAR, WELL, WRONG, TRACEBACK, HANG, LOSS, OTHER, NOT_EXERCISED)
# Names a failed or interrupted write may leave behind (iwbc.files, iwbc.bench.experiment,
# iwbc.data.minari_write, iwbc.options.check_writable).
LEFTOVERS = (".staging-*", ".retired-*", ".*.tmp", ".iwbc-write-check-*")
NON_FINITE = re.compile(r"(?<![\w.])[-+]?(nan|inf|infinity)(?![\w])", re.IGNORECASE)

# The tiny suite of the bench cases: bc and filtered_bc share the BC pre-training.
TINY_SUITE = f"""description = "bad-input sweep: tiny"
datasets = ["{DATASET}"]
methods = ["bc", "filtered_bc"]
seeds = [0]
eval_episodes = 2
final_eval_episodes = 2
eval_every = 10

[bc_family]
hidden_dims = [16, 16]
chunk_size = 10

[bc_family.pretrain]
steps = 20
batch_size = 16

[bc_family.finetune]
steps = 10
warmup_steps = 2
batch_size = 16
"""


# ---------------------------------------------------------------------------------------------
# Running the CLI


def words(text: str) -> list[str]:
    """Command-line words, written as one string."""
    return text.split()


@dataclasses.dataclass
class Done:
    """One finished (or killed) command."""

    argv: list[str]
    rc: int | None
    out: str
    err: str
    seconds: float
    timed_out: bool = False


class NotExercised(Exception):
    """The sweep could not set up the situation the case is about."""


def _child_setup(fsize: int | None) -> None:
    """In the child before exec: Ctrl-C as a terminal delivers it (a background job may start
    with SIGINT ignored, and Python then never raises KeyboardInterrupt); with ``fsize``, a
    "full disk": writes beyond ``fsize`` bytes fail with EFBIG instead of killing the process."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if fsize is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))


def cli_env(folder: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every command: this checkout's iwbc first on the path, Minari's
    default root inside the case's folder (so no case reads or writes ~/.minari)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, PYTHONPATH=path, PYTHONDONTWRITEBYTECODE="1")
    env["MINARI_DATASETS_PATH"] = str(folder / "minari-default")
    env.update(extra or {})
    return env


def start(
    argv: Sequence[str],
    cwd: Path,
    *,
    fsize: int | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """``iwbc ARGV`` in its own process group (so a signal reaches it and its children)."""
    return subprocess.Popen(
        [sys.executable, "-m", "iwbc", *argv],
        cwd=cwd,
        env=cli_env(cwd, env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=functools.partial(_child_setup, fsize),
    )


def finish(process: subprocess.Popen, argv: Sequence[str], started: float, timeout: float) -> Done:
    """Wait for ``process``; past ``timeout`` its whole group is killed (a hang)."""
    try:
        out, err = process.communicate(timeout=max(timeout - (time.monotonic() - started), 1))
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill_group(process, signal.SIGKILL)
        out, err = process.communicate()
        timed_out = True
    _kill_group(process, signal.SIGKILL)  # nothing of it may outlive the case
    return Done(list(argv), process.returncode, out, err, time.monotonic() - started, timed_out)


def _kill_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def run_cli(
    argv: Sequence[str],
    cwd: Path,
    *,
    timeout: float = ERROR_TIMEOUT,
    fsize: int | None = None,
    env: dict[str, str] | None = None,
) -> Done:
    started = time.monotonic()
    return finish(start(argv, cwd, fsize=fsize, env=env), argv, started, timeout)


def signal_when(
    argv: Sequence[str],
    cwd: Path,
    ready: Callable[[], bool],
    sig: int,
    *,
    delay: float = 0.0,
    timeout: float = TRAIN_TIMEOUT,
) -> Done:
    """Start ``iwbc ARGV``, send ``sig`` to its process group ``delay`` seconds after
    ``ready()``, wait for it."""
    started = time.monotonic()
    process = start(argv, cwd)
    while not ready():
        if process.poll() is not None:
            done = finish(process, argv, started, timeout)
            raise NotExercised(
                f"`iwbc {shlex.join(argv)}` ended (exit {done.rc}) before it could be "
                f"signalled: {_tail(done)}"
            )
        if time.monotonic() - started > timeout:
            finish(process, argv, started, 0)
            raise NotExercised(f"`iwbc {shlex.join(argv)}` never reached the point to signal")
        time.sleep(0.05)
    time.sleep(delay)
    if process.poll() is not None:
        done = finish(process, argv, started, timeout)
        raise NotExercised(f"`iwbc {shlex.join(argv)}` ended before the signal: {_tail(done)}")
    _kill_group(process, sig)
    return finish(process, argv, started, timeout)


def _tail(done: Done, lines: int = 3) -> str:
    text = (done.err.strip() or done.out.strip()).splitlines()
    return " / ".join(text[-lines:]) if text else "(no output)"


def must(done: Done, what: str) -> Done:
    """A setup step that has to succeed for the case to mean anything."""
    if done.rc != 0 or done.timed_out:
        raise NotExercised(f"setup step {what} failed (exit {done.rc}): {_tail(done)}")
    return done


# ---------------------------------------------------------------------------------------------
# A case's folder and what it checks


@dataclasses.dataclass
class Ctx:
    """One case: its fresh folder (cwd of its commands) and the sweep's shared folder."""

    base: Path
    dir: Path
    before: dict[str, str] = dataclasses.field(default_factory=dict)  # files before the command

    def root(self) -> Path:
        """This case's own copy of the sweep's dataset root."""
        copy = self.dir / "minari"
        if not copy.exists():
            shutil.copytree(self.base / "R", copy)
        return copy

    def dataset_dir(self) -> Path:
        return self.root() / DATASET_DIR

    def main_file(self) -> Path:
        return self.dataset_dir() / "data" / "main_data.hdf5"

    def file(self) -> Path:
        regular = self.dir / "a-file"
        if not regular.exists():
            regular.write_text("not a folder")
        return regular

    def ro(self) -> Path:
        """A folder nobody may write into; /sys refuses even root, who ignores permissions."""
        folder = self.dir / "read-only"
        if not folder.exists():
            folder.mkdir()
            folder.chmod(0o555)
        if not os.access(folder, os.W_OK):
            return folder
        return Path("/sys/iwbc-bad-input-sweep")

    def suite(self, name: str, text: str) -> Path:
        path = self.dir / f"{name}.toml"
        path.write_text(text)
        return path

    def fill(self, argv: Sequence[str], suites: dict[str, str] | None = None) -> list[str]:
        places = {"file": self.file, "ro": self.ro, "tmp": lambda: self.dir, "root": self.root}
        filled = []
        for arg in argv:
            for key, make in places.items():
                if "{" + key + "}" in arg:
                    arg = arg.replace("{" + key + "}", str(make()))
            for name, text in (suites or {}).items():
                if "{suite:" + name + "}" in arg:
                    arg = arg.replace("{suite:" + name + "}", str(self.suite(name, text)))
            filled.append(arg)
        return filled

    def show(self, argv: Sequence[str]) -> str:
        """The command as the report shows it."""
        return self.hide("iwbc " + shlex.join(argv))

    def hide(self, text: str) -> str:
        """The case's folder as $CASE, the sweep's as $SWEEP."""
        return text.replace(str(self.dir), "$CASE").replace(str(self.base), "$SWEEP")


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every regular file under ``folder``."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            try:
                files[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                continue
    return files


def losses(before: dict[str, str], after: dict[str, str], mutable: Sequence[str] = ()) -> list[str]:
    """Files that existed before and are now gone or changed (``mutable`` globs excepted)."""
    lost = []
    for rel, digest in before.items():
        if any(fnmatch.fnmatch(rel, pattern) for pattern in mutable):
            continue
        if rel not in after:
            lost.append(f"{rel} is gone")
        elif after[rel] != digest:
            lost.append(f"{rel} changed")
    return lost


def leftovers(folder: Path) -> list[str]:
    return [
        f"left behind: {path.relative_to(folder)}"
        for path in sorted(folder.rglob("*"))
        if any(fnmatch.fnmatch(path.name, pattern) for pattern in LEFTOVERS)
    ]


def strict_json(path: Path) -> object:
    def refuse(token: str) -> None:
        raise ValueError(f"non-finite number {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def output_problems(folder: Path, before: dict[str, str], done: Done | None) -> list[str]:
    """What any case checks: the files it wrote are strict JSON / tables without NaN, its stdout
    holds no NaN, and nothing was written into the current folder by MuJoCo's logger."""
    problems = []
    for rel, digest in snapshot(folder).items():
        if before.get(rel) == digest:
            continue
        path = folder / rel
        if path.suffix == ".json":
            try:
                strict_json(path)
            except (ValueError, UnicodeDecodeError) as error:
                problems.append(f"{rel} is not valid JSON ({error})")
        elif path.suffix in (".csv", ".md"):
            lines = path.read_text(errors="replace").splitlines()
            rows = lines if path.suffix == ".csv" else [x for x in lines if x.startswith("|")]
            bad = [row for row in rows if NON_FINITE.search(row)]
            if bad:
                problems.append(f"{rel} has a NaN/inf: {bad[0][:160]}")
    if (folder / "MUJOCO_LOG.TXT").exists():
        problems.append("MUJOCO_LOG.TXT written into the current folder")
    if done is not None and done.rc == 0:
        bad = [line for line in done.out.splitlines() if NON_FINITE.search(line)]
        if bad:
            problems.append(f"stdout has a NaN/inf: {bad[0][:160]}")
    return problems


def run_outputs(out: Path, methods: Sequence[str], seeds: int = 1) -> list[str]:
    """``iwbc run``'s four files: present, one row per method and seed, finite scores."""
    missing = [
        n
        for n in ("table.md", "table.csv", "scores.json", "returns.png")
        if not (out / n).is_file()
    ]
    if missing:
        return [f"{out.name}/ lacks {', '.join(missing)}"]
    problems = []
    rows = (out / "table.csv").read_text().splitlines()[1:]
    keys = [tuple(row.split(",")[1:3]) for row in rows]
    if len(set(keys)) != len(keys):
        problems.append(f"table.csv has duplicated rows: {rows}")
    if sorted({k[0] for k in keys}) != sorted(methods) or len(keys) != len(methods) * seeds:
        problems.append(f"table.csv rows {keys} are not {list(methods)} × {seeds} seed(s)")
    for row in rows:
        if not all(math.isfinite(float(x)) for x in row.split(",")[3:]):
            problems.append(f"table.csv has a non-finite score: {row}")
    try:
        scores = strict_json(out / "scores.json")
        if sorted(scores["methods"]) != sorted(methods):
            problems.append(f"scores.json has methods {sorted(scores['methods'])}")
    except ValueError as error:
        problems.append(f"scores.json is not valid JSON ({error})")
    table = (out / "table.md").read_text()
    for method in methods:
        count = table.count(f"| {method} |")
        if count != 1:
            problems.append(f"table.md has {count} rows of {method}")
    return problems


def bench_records(records: Path, expected: dict[tuple[str, int], str]) -> list[str]:
    """The records under ``records``: (method, seed) -> status as expected; ok ones finite."""
    problems, seen = [], {}
    for path in sorted(records.rglob("seed-*.json")):
        try:
            record = strict_json(path)
        except ValueError as error:
            problems.append(f"{path.name} is not valid JSON ({error})")
            continue
        seen[(record["method"], record["seed"])] = record["status"]
        if record["status"] == "ok" and not math.isfinite(record["final"]["normalized"]):
            problems.append(f"{path} has a non-finite score")
    if seen != expected:
        problems.append(f"records {sorted(seen.items())}, expected {sorted(expected.items())}")
    return problems


def bench_summary(done: Done, suite: str) -> tuple[int, int, int, int] | None:
    """(done now, already done, failed, total) from ``iwbc bench``'s summary line."""
    match = re.search(
        rf"{suite}: (\d+) runs done now, (\d+) already done, (\d+) failed, of (\d+)", done.out
    )
    return None if match is None else tuple(int(x) for x in match.groups())


# ---------------------------------------------------------------------------------------------
# Outcome of a case and its class


@dataclasses.dataclass
class Outcome:
    command: str
    done: Done
    wrong: list[str] = dataclasses.field(default_factory=list)
    lost: list[str] = dataclasses.field(default_factory=list)
    expect: str | None = None
    valid: bool = False  # a valid input: it must succeed
    bench: bool = False  # `iwbc bench`: failed runs are reported as `failed: ...` lines


def classify(outcome: Outcome) -> tuple[str, str, list[str]]:
    """(class, the message's first line, notes)."""
    done = outcome.done
    err_lines = [line for line in done.err.splitlines() if line.strip()]
    out_lines = [line for line in done.out.splitlines() if line.strip()]
    text = done.out + done.err
    notes = []
    if done.timed_out:
        return HANG, f"no exit after {done.seconds:.0f} s", notes
    last = err_lines[-1] if err_lines else ""
    if (
        done.rc == -signal.SIGINT
        and last.startswith("iwbc: interrupted")
        and "Traceback" not in text
    ):
        # A second Ctrl-C while the interpreter exits: a shell shows status 130 all the same.
        notes.append("killed by SIGINT while exiting, after its one line (a shell shows 130)")
    elif "Traceback (most recent call last)" in text or (done.rc is not None and done.rc < 0):
        last = next(
            (line for line in reversed(err_lines) if not line.startswith(" ")),
            f"killed by signal {-done.rc}" if done.rc and done.rc < 0 else "",
        )
        return TRACEBACK, last, notes
    if outcome.lost:
        return LOSS, "; ".join(outcome.lost), notes
    if outcome.wrong:
        return WRONG, "; ".join(outcome.wrong), notes
    if done.rc == 0:
        message = out_lines[0] if out_lines else "(no output)"
        return WELL, message, notes
    one_line = last.startswith(("iwbc: error: ", "iwbc: interrupted"))
    if not one_line and outcome.bench and done.rc == 1 and last.startswith("failed: "):
        one_line = True
        last = next(line for line in err_lines if line.startswith("failed: "))
    if not one_line:
        return OTHER, last or "(no message)", notes
    if outcome.valid:
        return OTHER, f"a valid input refused: {last}", notes
    if len(err_lines) > 1 and not outcome.bench:
        notes.append(f"stderr has {len(err_lines)} lines; before the error: {err_lines[0][:120]}")
    if outcome.expect is not None and outcome.expect not in last:
        notes.append(f"message differs from the expected {outcome.expect!r}")
    return CLEAR, last, notes


# ---------------------------------------------------------------------------------------------
# The cases


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    group: str
    fn: Callable[[Ctx], Outcome]
    heavy: bool = False  # trains something: scheduled first


def simple(
    ctx: Ctx,
    argv: Sequence[str],
    *,
    expect: str | None = None,
    suites: dict[str, str] | None = None,
    setup: Callable[[Ctx], None] | None = None,
    check: Callable[[Ctx, Done], list[str]] | None = None,
    fsize: int | None = None,
    env: dict[str, str] | None = None,
    mutable: Sequence[str] = (),
    valid: bool = False,
    timeout: float = ERROR_TIMEOUT,
) -> Outcome:
    """One command: set up, snapshot, run, then check outputs, losses and leftovers."""
    filled = ctx.fill(argv, suites)
    expect = None if expect is None else ctx.fill([expect], suites)[0]
    env = {k: v.replace("{tmp}", str(ctx.dir)) for k, v in (env or {}).items()}
    if setup is not None:
        setup(ctx)
    before = ctx.before = snapshot(ctx.dir)
    done = run_cli(filled, ctx.dir, timeout=timeout, fsize=fsize, env=env)
    after = snapshot(ctx.dir)
    outcome = Outcome(ctx.show(filled), done, expect=expect, valid=valid)
    outcome.bench = bool(filled) and filled[0] == "bench"
    outcome.lost = losses(before, after, mutable) + leftovers(ctx.dir)
    outcome.wrong = output_problems(ctx.dir, before, done)
    if check is not None and not done.timed_out:
        outcome.wrong += check(ctx, done)
    return outcome


def table_cases() -> list[Case]:
    """The in-process table of tests/test_cli_errors.py, run here as real subprocesses."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        import test_cli_errors as table
    finally:
        sys.path.remove(str(REPO / "tests"))
    # The suite files exactly as the test writes them (its SUITES entries are completed there).
    with tempfile.TemporaryDirectory() as folder:
        suites = {
            name: table._suite(Path(folder), name, text).read_text()
            for name, text in table.SUITES.items()
        }
    cases = []
    for argv, message in table.CASES:
        argv = [DATASET if arg == table.DATASET else arg for arg in argv]
        shown = " ".join(argv) or "(no arguments)"
        fn = functools.partial(simple, argv=argv, expect=message, suites=suites)
        cases.append(Case(f"option table: {shown}", "options (tests/test_cli_errors.py)", fn))
    return cases


def error(argv: list[str], expect: str | None = None, **kwargs: object) -> Callable:
    return functools.partial(simple, argv=argv, expect=expect, **kwargs)


def _check_run(methods: Sequence[str], out: str = "out") -> Callable[[Ctx, Done], list[str]]:
    return functools.partial(_run_check, methods=tuple(methods), out=out)


def _run_check(ctx: Ctx, done: Done, methods: tuple[str, ...], out: str) -> list[str]:
    if done.rc != 0:
        scores = f"{out}/scores.json"
        if (ctx.dir / scores).exists() and scores not in ctx.before:
            return [f"{scores} written by a failed run"]
        return []
    return run_outputs(ctx.dir / out, methods)


def _not_created(ctx: Ctx, done: Done, rel: str) -> list[str]:
    return [f"{rel} was created by a read-only command"] if (ctx.dir / rel).exists() else []


def not_created(rel: str) -> Callable[[Ctx, Done], list[str]]:
    return functools.partial(_not_created, rel=rel)


def _stdout_has(ctx: Ctx, done: Done, text: str) -> list[str]:
    if done.rc == 0 and text not in done.out:
        return [f"stdout lacks {text!r}"]
    return []


def train(argv: list[str], methods: Sequence[str] = ("bc",), **kwargs: object) -> Callable:
    """An ``iwbc run`` that trains (tiny budgets, --out out --work-dir runs)."""
    kwargs.setdefault("check", _check_run(methods))
    kwargs.setdefault("timeout", TRAIN_TIMEOUT)
    return functools.partial(simple, argv=[*RUN, *argv, *OUT], **kwargs)


# Datasets and files made broken on purpose ----------------------------------------------------


def _h5_episode_edit(ctx: Ctx, edit: str) -> None:
    """Damage this case's copy of the dataset in place."""
    import h5py
    import numpy as np

    with h5py.File(ctx.main_file(), "r+") as f:
        group = f["episode_2"]
        if edit == "zero-length":
            for key in ("actions", "rewards", "terminations", "truncations"):
                data = group[key]
                data.resize((0, *data.shape[1:]))
            group["observations"].resize((1, *group["observations"].shape[1:]))
            group.attrs["total_steps"] = 0
        elif edit == "nan-observation":
            group["observations"][3, 0] = np.nan
        elif edit == "nan-reward":
            group["rewards"][5] = np.nan
        elif edit == "inf-action":
            group["actions"][4, 0] = np.inf
        elif edit == "short-actions":
            data = group["actions"]
            data.resize((data.shape[0] - 3, *data.shape[1:]))
        elif edit == "terminates-midway":
            group["terminations"][3] = True
        elif edit == "huge-reward":
            group["rewards"][5] = 1e39
        elif edit == "actions-outside-box":
            group["actions"][:4, 0] = 1.5
        elif edit == "equal-returns":
            for name in f:
                f[name]["rewards"][...] = 0.0
        else:
            raise ValueError(edit)


def _edit_metadata(ctx: Ctx, **values: object) -> None:
    """Set metadata.json keys of this case's copy; ``max_episode_steps`` edits its env specs."""
    path = ctx.dataset_dir() / "data" / "metadata.json"
    metadata = json.loads(path.read_text())
    if "max_episode_steps" in values:
        limit = values.pop("max_episode_steps")
        for key in ("env_spec", "eval_env_spec"):
            spec = json.loads(metadata[key])
            spec["max_episode_steps"] = limit
            metadata[key] = json.dumps(spec)
    path.write_text(json.dumps({**metadata, **values}))


def _around_clip_action(ctx: Ctx) -> None:
    """This case's copy as if recorded around Gymnasium's ClipAction: an unbounded action box,
    the wrapper in its env specs."""
    path = ctx.dataset_dir() / "data" / "metadata.json"
    metadata = json.loads(path.read_text())
    space = json.loads(metadata["action_space"])
    space["low"] = [-math.inf] * len(space["low"])
    space["high"] = [math.inf] * len(space["high"])
    metadata["action_space"] = json.dumps(space)
    clip = {"name": "ClipAction", "entry_point": "gymnasium.wrappers:ClipAction", "kwargs": {}}
    for key in ("env_spec", "eval_env_spec"):
        spec = json.loads(metadata[key])
        spec["additional_wrappers"] = [clip]
        metadata[key] = json.dumps(spec)
    path.write_text(json.dumps(metadata))


def edited_metadata(**values: object) -> Callable[[Ctx], None]:
    return functools.partial(_edit_metadata, **values)


def _warned_and_noted(ctx: Ctx, done: Done, methods: tuple[str, ...]) -> list[str]:
    problems = _run_check(ctx, done, methods, "out")
    if done.rc == 0 and "iwbc: warning: " not in done.err:
        problems.append("no warning on stderr")
    table = ctx.dir / "out" / "table.md"
    if done.rc == 0 and table.exists() and "were clipped to it" not in table.read_text():
        problems.append("table.md does not say the actions were clipped")
    return problems


def damaged(edit: str) -> Callable[[Ctx], None]:
    return functools.partial(_h5_episode_edit, edit=edit)


def _truncate(ctx: Ctx, rel: str, keep: float) -> None:
    path = ctx.dataset_dir() / rel
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _remove(ctx: Ctx, rel: str) -> None:
    (ctx.dataset_dir() / rel).unlink()


def _write_text(ctx: Ctx, rel: str, text: str) -> None:
    path = ctx.dataset_dir() / rel
    path.write_text(text)


def _empty_dataset_dir(ctx: Ctx) -> None:
    shutil.rmtree(ctx.dataset_dir() / "data")


def _empty_minari_tier(ctx: Ctx) -> None:
    """What an interrupted download leaves: a Minari tier's folder with an empty data/."""
    (ctx.root() / "mujoco" / "hopper" / "medium-v0" / "data").mkdir(parents=True)


HOPPER_OBS, HOPPER_ACT = 11, 3


def _d4rl_file(ctx: Ctx, name: str, variant: str) -> None:
    """A small D4RL-layout hopper file (4 episodes of 50 steps), broken as ``variant`` says."""
    import h5py
    import numpy as np

    path = ctx.dir / name
    if variant == "empty":
        path.write_bytes(b"")
        return
    if variant == "text":
        path.write_text("this is not an HDF5 file\n")
        return
    rng = np.random.default_rng(0)
    n = 200
    arrays = {
        "observations": rng.normal(size=(n, HOPPER_OBS)).astype(np.float32),
        "next_observations": rng.normal(size=(n, HOPPER_OBS)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, HOPPER_ACT)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": (np.arange(n) % 50 == 49),
    }
    if variant == "no-rewards":
        del arrays["rewards"]
    elif variant == "short-actions":
        arrays["actions"] = arrays["actions"][:-7]
    elif variant == "nan-observation":
        arrays["observations"][17, 2] = np.nan
    elif variant == "no-episode-end":
        arrays["timeouts"][:] = False
    elif variant == "wide-observations":
        arrays["observations"] = rng.normal(size=(n, 17)).astype(np.float32)
        del arrays["next_observations"]
    elif variant == "flags-2":
        arrays["terminals"] = np.full(n, 2, np.int64)
    elif variant != "valid":
        raise ValueError(variant)
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)


def d4rl(name: str, variant: str) -> Callable[[Ctx], None]:
    return functools.partial(_d4rl_file, name=name, variant=variant)


def _then(ctx: Ctx, steps: Sequence[Callable[[Ctx], None]]) -> None:
    for step in steps:
        step(ctx)


def steps(*functions: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
    return functools.partial(_then, steps=functions)


def _cli_step(ctx: Ctx, argv: Sequence[str], suites: dict[str, str] | None = None) -> None:
    filled = ctx.fill(argv, suites)
    must(run_cli(filled, ctx.dir, timeout=TRAIN_TIMEOUT), ctx.show(filled))


def cli_step(argv: Sequence[str], suites: dict[str, str] | None = None) -> Callable[[Ctx], None]:
    return functools.partial(_cli_step, argv=argv, suites=suites)


def _corrupt_glob(ctx: Ctx, pattern: str, text: bytes) -> None:
    paths = sorted(ctx.dir.glob(pattern))
    if not paths:
        raise NotExercised(f"nothing matches {pattern} to corrupt")
    for path in paths:
        path.write_bytes(text)


def corrupt(pattern: str, text: bytes) -> Callable[[Ctx], None]:
    return functools.partial(_corrupt_glob, pattern=pattern, text=text)


def _nan_record(ctx: Ctx, pattern: str) -> None:
    paths = sorted(ctx.dir.glob(pattern))
    if not paths:
        raise NotExercised(f"no record matches {pattern}")
    record = json.loads(paths[0].read_text())
    record["final"]["normalized"] = float("nan")
    paths[0].write_text(json.dumps(record))  # a NaN token: not strict JSON


BENCH = ["bench", "--suite", "{suite:tiny}", "--root", "{root}", "--quiet"]
BENCH_DIRS = ["--results", "results", "--work-dir", "runs"]
REPORT = ["report", "--suite", "{suite:tiny}", "--results", "results", "--reps", "20"]
SUITE = {"tiny": TINY_SUITE}
RECORDS = "results/tiny/records"


def suite_variant(old: str, new: str) -> dict[str, str]:
    if old not in TINY_SUITE:
        raise ValueError(old)
    return {"tiny": TINY_SUITE.replace(old, new, 1)}


def _bench_check(
    ctx: Ctx, done: Done, expected: dict[tuple[str, int], str], total: int
) -> list[str]:
    if done.rc not in (0, 1):
        return []
    problems = bench_records(ctx.dir / RECORDS, expected)
    summary = bench_summary(done, "tiny")
    if summary is None or summary[3] != total:
        problems.append(f"no summary line of {total} runs in: {done.out.strip()[-200:]}")
    return problems


def bench_check(expected: dict[tuple[str, int], str], total: int) -> Callable:
    return functools.partial(_bench_check, expected=expected, total=total)


BOTH_OK = {("bc", 0): "ok", ("filtered_bc", 0): "ok"}


def _report_check(ctx: Ctx, done: Done, stale: bool, missing: bool) -> list[str]:
    if done.rc != 0:
        return []
    table = (ctx.dir / "results" / "tiny" / "table.md").read_text()
    problems = []
    finished = "every run of the grid finished" in table
    if (stale or missing) and finished:
        problems.append("table.md says every run of the grid finished")
    if stale and "(1 stale)" not in table:
        problems.append("table.md does not flag the stale filtered_bc cell")
    if stale:
        warning = next((x for x in done.err.splitlines() if x.startswith("iwbc: warning: ")), None)
        rerun = re.search(r"`(iwbc bench [^`]*)`", warning or "")
        suite = str(ctx.dir / "tiny.toml")
        if warning is None:
            problems.append("no warning line about the stale records")
        elif rerun is None or f"--suite {suite} " not in rerun[1] + " ":
            shown = rerun[1] if rerun else warning
            problems.append(
                f"the warning's rerun command `{ctx.hide(shown)}` does not name the suite file "
                "the report was given ($CASE/tiny.toml), so it fails with 'unknown suite'"
            )
    if missing and "missing" not in table:
        problems.append("the missing runs are not reported in table.md")
    if not stale and not missing and not finished:
        problems.append("table.md does not say every run finished")
    return problems


def report_check(stale: bool = False, missing: bool = False) -> Callable:
    return functools.partial(_report_check, stale=stale, missing=missing)


# Multi-step situations -------------------------------------------------------------------------


def _first(pattern: str, folder: Path) -> Callable[[], bool]:
    return lambda: any(folder.glob(pattern))


def interrupted(
    ctx: Ctx,
    argv: Sequence[str],
    wait_for: str | None,
    delay: float = 0.0,
    suites: dict[str, str] | None = None,
    keep: Sequence[str] = (),
) -> Outcome:
    """Ctrl-C ``delay`` seconds after ``wait_for`` (a glob under the case's folder; None: the
    start) exists."""
    filled = ctx.fill(argv, suites)
    ctx.root()
    before = snapshot(ctx.dir)
    ready = (lambda: True) if wait_for is None else _first(wait_for, ctx.dir)
    done = signal_when(filled, ctx.dir, ready, signal.SIGINT, delay=delay)
    when = "the start" if wait_for is None else f"{wait_for} exists"
    outcome = Outcome(
        f"{ctx.show(filled)}  # SIGINT {delay:g} s after {when}",
        done,
        bench=filled[0] == "bench",
    )
    outcome.lost = losses(before, snapshot(ctx.dir)) + leftovers(ctx.dir)
    outcome.wrong = output_problems(ctx.dir, before, done)
    if done.rc == 0:
        outcome.wrong.append("exit 0 after SIGINT: the interrupt was swallowed")
    for pattern in keep:
        if not any(ctx.dir.glob(pattern)):
            outcome.lost.append(f"nothing matches {pattern} after the interrupt")
    return outcome


def killed_then_rerun(
    ctx: Ctx,
    argv: Sequence[str],
    wait_for: str,
    records: str,
    check: Callable[[Ctx, Done], list[str]],
    suites: dict[str, str] | None = None,
) -> Outcome:
    """kill -9 once a first record exists, then the same command again: it must finish, and the
    records that existed after the kill must be unchanged."""
    filled = ctx.fill(argv, suites)
    ctx.root()
    killed = signal_when(filled, ctx.dir, _first(wait_for, ctx.dir), signal.SIGKILL)
    if killed.rc != -signal.SIGKILL:
        raise NotExercised(f"the first run was not killed (exit {killed.rc}): {_tail(killed)}")
    before = snapshot(ctx.dir)
    kept = {rel: h for rel, h in before.items() if fnmatch.fnmatch(rel, records)}
    if not kept:
        raise NotExercised(f"no record matching {records} existed at the kill")
    done = run_cli(filled, ctx.dir, timeout=TRAIN_TIMEOUT)
    outcome = Outcome(
        f"{ctx.show(filled)}  # again, after kill -9 once {wait_for} existed",
        done,
        bench=filled[0] == "bench",
        valid=True,
    )
    outcome.lost = losses(kept, snapshot(ctx.dir)) + leftovers(ctx.dir)
    outcome.wrong = output_problems(ctx.dir, before, done) + check(ctx, done)
    return outcome


def twice_at_once(
    ctx: Ctx, argv: Sequence[str], check: Callable, suites: dict[str, str] | None = None
) -> Outcome:
    """The same command twice at once on the same folders."""
    filled = ctx.fill(argv, suites)
    ctx.root()
    before = snapshot(ctx.dir)
    started = time.monotonic()
    processes = [start(filled, ctx.dir) for _ in range(2)]
    dones = [finish(p, filled, started, TRAIN_TIMEOUT) for p in processes]
    merged = Done(
        filled,
        max((d.rc for d in dones), key=lambda rc: (rc != 0, abs(rc or 0))),
        "".join(d.out for d in dones),
        "".join(d.err for d in dones),
        time.monotonic() - started,
        any(d.timed_out for d in dones),
    )
    outcome = Outcome(f"{ctx.show(filled)}  # twice at once", merged, valid=True)
    outcome.bench = filled[0] == "bench"
    outcome.lost = losses(before, snapshot(ctx.dir)) + leftovers(ctx.dir)
    outcome.wrong = output_problems(ctx.dir, before, merged) + check(ctx, dones)
    return outcome


def _concurrent_bench_check(ctx: Ctx, dones: list[Done]) -> list[str]:
    summaries = [bench_summary(d, "tiny") for d in dones]
    if any(s is None for s in summaries):
        return [f"a sweep printed no summary: {[d.out[-200:] for d in dones]}"]
    problems = bench_records(ctx.dir / RECORDS, BOTH_OK)
    trained = sum(s[0] for s in summaries)
    if trained != 2:
        problems.append(f"the two sweeps trained {trained} runs of 2: {summaries}")
    return problems


def _concurrent_run_check(ctx: Ctx, dones: list[Done]) -> list[str]:
    problems = []
    for done in dones:
        if done.rc != 0:
            problems.append(f"one run failed: {_tail(done)}")
    records = list((ctx.dir / "runs" / "records").rglob("seed-*.json"))
    if len(records) != 2:
        problems.append(f"{len(records)} records for 2 method-seeds")
    return problems + run_outputs(ctx.dir / "out", ("bc", "filtered_bc"))


def rerun_report(ctx: Ctx) -> Outcome:
    """Records of two configurations: bench, edit the pre-training budget, rerun bc, report."""
    before_edit = {"tiny": TINY_SUITE}
    after_edit = suite_variant("steps = 20\n", "steps = 30\n")
    _cli_step(ctx, [*BENCH, *BENCH_DIRS], before_edit)
    old = snapshot(ctx.dir)
    stale = {rel: h for rel, h in old.items() if fnmatch.fnmatch(rel, f"{RECORDS}/*/filtered_bc/*")}
    _cli_step(ctx, [*BENCH, *BENCH_DIRS, "--only-methods", "bc"], after_edit)
    argv = ctx.fill(REPORT, after_edit)
    done = run_cli(argv, ctx.dir)
    outcome = Outcome(
        f"{ctx.show(argv)}  # after bench, suite pretrain steps 20 → 30, bench --only-methods bc",
        done,
        valid=True,
    )
    outcome.lost = losses(stale, snapshot(ctx.dir)) + leftovers(ctx.dir)
    outcome.wrong = output_problems(ctx.dir, old, done) + _report_check(ctx, done, True, False)
    return outcome


def full_disk_over_previous(ctx: Ctx, fsize: int) -> Outcome:
    """``iwbc run --out`` finishes once; the same command on a full disk must keep that set."""
    argv = ctx.fill([*RUN, *SMALL, *TINY, *OUT])
    must(run_cli(argv, ctx.dir, timeout=TRAIN_TIMEOUT), "first run")
    before = snapshot(ctx.dir)
    done = run_cli(argv, ctx.dir, timeout=TRAIN_TIMEOUT, fsize=fsize)
    outcome = Outcome(f"{ctx.show(argv)}  # again, with RLIMIT_FSIZE {fsize} B", done)
    outcome.lost = losses(before, snapshot(ctx.dir)) + leftovers(ctx.dir)
    outcome.wrong = output_problems(ctx.dir, before, done)
    if done.rc == 0:
        outcome.wrong += run_outputs(ctx.dir / "out", ["bc"])
    return outcome


def overwrite_on_full_disk(ctx: Ctx, fsize: int) -> Outcome:
    """``data scripted --overwrite`` on a full disk keeps the dataset it would replace."""
    argv = ctx.fill(["data", "scripted", "--episodes", "20", "--root", "{root}", "--overwrite"])
    before = snapshot(ctx.dir)
    done = run_cli(argv, ctx.dir, timeout=TRAIN_TIMEOUT, fsize=fsize)
    outcome = Outcome(f"{ctx.show(argv)}  # with RLIMIT_FSIZE {fsize} B", done)
    outcome.lost = losses(before, snapshot(ctx.dir)) + leftovers(ctx.dir)
    outcome.wrong = output_problems(ctx.dir, before, done)
    return outcome


def _root_unchanged_or_fresh(ctx: Ctx, done: Done) -> list[str]:
    """After a failed dataset write: nothing under the root it wrote into."""
    root = ctx.dir / "fresh"
    if done.rc != 0 and root.exists():
        left = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]
        if left:
            return [f"a failed write left {left[:3]} under fresh/"]
    return []


def cases() -> list[Case]:
    """Every case of the sweep (the option table first)."""
    out: list[Case] = table_cases()

    def add(name: str, group: str, fn: Callable, heavy: bool = False) -> None:
        out.append(Case(name, group, fn, heavy))

    # Numerics beyond the table: caught before anything trains ------------------------------
    g = "numerics: NaN, inf, negative, huge, not a number"
    for argv, expect in [
        (["--seeds", "1.5"], "--seeds must be an integer ≥ 1, got '1.5'"),
        (["--seeds", "1e3"], "--seeds must be an integer ≥ 1, got '1e3'"),
        (["--seed", "1e3"], "--seed must be an integer ≥ 0"),
        (["--eval-episodes", "2.5"], "--eval-episodes must be an integer ≥ 1"),
        (["--bc-lr", "1e309"], "--bc-lr must be a finite number > 0"),
        (["--bc-lr=-0.0"], "--bc-lr must be a finite number > 0"),
        (["--bc-lr", ""], "--bc-lr must be a finite number > 0"),
        (["--finetune-lr", "NaN"], "--finetune-lr must be a finite number > 0"),
        (["--finetune-batch-size", "nan"], "--finetune-batch-size must be an integer ≥ 1"),
        (["--temperature", "1e309"], "--temperature must be a finite number > 0"),
        (["--temperature", "-1"], "--temperature must be a finite number > 0"),
        (["--ema-decay", "0.99999999999999999"], "--ema-decay must be a number in [0, 1)"),
        (["--ema-decay", "inf"], "--ema-decay must be a number in [0, 1)"),
        (["--window", "-1"], "--window must be an integer ≥ 1"),
        (["--window", "nan"], "--window must be an integer ≥ 1"),
        (["--algo-steps", "inf"], "--algo-steps must be an integer ≥ 1"),
        (["--warmup-steps", "nan"], "--warmup-steps must be an integer ≥ 0"),
        (["--bc-steps", "-20"], "--bc-steps must be an integer ≥ 1"),
        (["--bc-steps", "2**31"], "--bc-steps must be an integer ≥ 1"),
        (["--hidden", "16,nan"], "--hidden must be comma-separated positive integers"),
        (["--hidden", "1e3"], "--hidden must be comma-separated positive integers"),
        (["--hidden", ""], "--hidden must be comma-separated positive integers"),
        (["--ref-min", "", "--ref-max", "1"], "--ref-min must be a finite number"),
        (["--ref-min=-inf", "--ref-max", "1"], "--ref-min must be a finite number"),
        (["--ref-min", "3", "--ref-max", "1"], "--ref-max must be greater than --ref-min"),
    ]:
        add(f"run {' '.join(argv)}", g, error([*RUN, *argv, *OUT], expect))
    for argv, expect in [
        (["data", "scripted", "--episodes", "nan"], "--episodes must be an integer ≥ 1"),
        (["data", "scripted", "--episodes", "-3"], "--episodes must be an integer ≥ 1"),
        (["data", "scripted", "--seed", "inf"], "--seed must be an integer ≥ 0"),
        (["report", "--suite", "demo", "--reps", "-5"], "--reps must be an integer ≥ 1"),
        (["report", "--suite", "demo", "--reps", "nan"], "--reps must be an integer ≥ 1"),
        (["bench", "--suite", "demo", "--num-cpus", "-1"], "--num-cpus must be an integer ≥ 1"),
        (["data", "generate", "hopper", "--env-steps", "nan"], "--env-steps must be an integer"),
        (["data", "minari-tiers", "hopper", "--episodes", "inf"], "--episodes must be an"),
    ]:
        add(" ".join(argv), g, error(argv, expect))

    # Numerics that pass the checks and reach training ---------------------------------------
    g = "numerics reaching training (NaN during training, extreme values)"
    add(
        "run --bc-lr 1e30 (NaN during BC training)",
        g,
        train([*SMALL, *TINY, "--bc-lr", "1e30"], expect="bc pre-training diverged"),
        True,
    )
    add(
        "run --methods iw_bc --finetune-lr 1e30 (NaN during the fine-tune)",
        g,
        train(
            ["--methods", "iw_bc", "--hidden", "16,16", *TINY, "--finetune-lr", "1e30"],
            ["iw_bc"],
            expect="diverged",
        ),
        True,
    )
    add(
        "run --window 8 --bc-batch-size 100000000 (a batch larger than the machine's memory)",
        g,
        train(
            [*SMALL, *TINY, *words("--window 8 --bc-batch-size 100000000")],
            expect="GiB of working memory for its updates (XLA's estimate)",
        ),
        True,
    )
    add(
        "run --methods bc,td3_bc --bc-lr 1e30 --algo-steps 20 (bc diverges, td3_bc not)",
        g,
        train(
            [
                *words("--methods bc,td3_bc --hidden 16,16"),
                *TINY,
                *words("--bc-lr 1e30 --algo-steps 20"),
            ],
            ["bc", "td3_bc"],
            expect="1 of 2 runs failed",
        ),
        True,
    )
    for extra, methods, name in [
        (["--temperature", "1e30"], ["iw_bc"], "run --methods iw_bc --temperature 1e30"),
        (["--temperature", "1e-30"], ["iw_bc"], "run --methods iw_bc --temperature 1e-30"),
        (["--bc-lr", "1e-300"], ["bc"], "run --bc-lr 1e-300"),
        (
            ["--ref-min=-1e308", "--ref-max", "1e308"],
            ["bc"],
            "run --ref-min -1e308 --ref-max 1e308",
        ),
        (["--ref-min", "0", "--ref-max", "1e-306"], ["bc"], "run --ref-min 0 --ref-max 1e-306"),
        (["--seed", "4294967296"], ["bc"], "run --seed 2^32"),
        (["--seed", "100000000000000000000000000000"], ["bc"], "run --seed 1e29"),
        (["--window", "100000"], ["bc"], "run --window 100000 (longer than every episode)"),
        (
            ["--window", "1", "--bc-batch-size", "100000"],
            ["bc"],
            "run --window 1 --bc-batch-size 100000 (more than the dataset's steps)",
        ),
        (["--hidden", " 16 , 16 "], ["bc"], "run --hidden ' 16 , 16 '"),
    ]:
        method_args = ["--methods", ",".join(methods)]
        if "--hidden" not in extra:
            method_args += ["--hidden", "16,16"]
        add(name, g, train([*method_args, *TINY, *extra], methods), True)

    # Duplicates ------------------------------------------------------------------------------
    g = "duplicates"
    for methods in ("bc, bc", "bc,,bc", "bc,iw_bc,bc"):
        add(
            f"run --methods {methods!r}",
            g,
            error([*RUN, "--methods", methods, *TINY, *OUT], "listed twice"),
        )
    add("run --methods BC", g, error([*RUN, "--methods", "BC", *OUT], "unknown method(s) BC"))
    add(
        "bench --only-datasets D,D",
        g,
        error(
            [*BENCH, *BENCH_DIRS, "--only-datasets", f"{DATASET},{DATASET}"], "once", suites=SUITE
        ),
    )
    add(
        "bench, suite lists a dataset twice",
        g,
        error(
            [*BENCH, *BENCH_DIRS],
            "twice",
            suites=suite_variant(
                f'datasets = ["{DATASET}"]', f'datasets = ["{DATASET}", "{DATASET}"]'
            ),
        ),
    )
    add(
        "bench, suite lists seed 0 twice",
        g,
        error(
            [*BENCH, *BENCH_DIRS],
            "distinct integers",
            suites=suite_variant("seeds = [0]", "seeds = [0, 0]"),
        ),
    )
    add(
        "data generate --tiers medium,medium",
        g,
        error(["data", "generate", "hopper", "--tiers", "medium,medium"], "once"),
    )

    # Suite files -----------------------------------------------------------------------------
    g = "suite files"
    for name, old, new, expect in [
        ("TOML syntax error", "seeds = [0]", "seeds = [0", "suite"),
        ("unknown key", "seeds = [0]", "seeds = [0]\nseed = 1", "seed"),
        ("no datasets", f'datasets = ["{DATASET}"]', "datasets = []", "datasets"),
        ("no methods", 'methods = ["bc", "filtered_bc"]', "methods = []", "methods"),
        ("no seeds", "seeds = [0]", "seeds = []", "seeds"),
        ("negative seed", "seeds = [0]", "seeds = [-1]", "seeds"),
        ("eval_episodes 0", "eval_episodes = 2", "eval_episodes = 0", "eval_episodes"),
        ("eval_episodes nan", "eval_episodes = 2", "eval_episodes = nan", "eval_episodes"),
        ("eval_every 0", "eval_every = 10", "eval_every = 0", "eval_every"),
        ("pretrain steps 0", "steps = 20", "steps = 0", "steps"),
        ("pretrain steps 1.5", "steps = 20", "steps = 1.5", "steps"),
        ("pretrain lr nan", "batch_size = 16", "batch_size = 16\nlearning_rate = nan", "learn"),
        ("pretrain lr inf", "batch_size = 16", "batch_size = 16\nlearning_rate = inf", "learn"),
        (
            "finetune temperature -1",
            "warmup_steps = 2",
            "warmup_steps = 2\ntemperature = -1.0",
            "temperature",
        ),
        ("warmup ≥ steps", "warmup_steps = 2", "warmup_steps = 10", "warmup"),
        ("hidden_dims [16, -1]", "hidden_dims = [16, 16]", "hidden_dims = [16, -1]", "hidden"),
        ("unknown method", 'methods = ["bc", "filtered_bc"]', 'methods = ["bc", "dqn"]', "dqn"),
        ("engine warp", "eval_every = 10", 'eval_every = 10\nengine = "warp"', "engine"),
        ("methods a string", 'methods = ["bc", "filtered_bc"]', 'methods = "bc"', "methods"),
        (
            "scripted episodes 0",
            "eval_every = 10",
            f'eval_every = 10\n[scripted."{DATASET}"]\nepisodes = 0',
            "episodes",
        ),
    ]:
        add(
            f"bench, suite with {name}",
            g,
            error([*BENCH, *BENCH_DIRS], expect, suites=suite_variant(old, new)),
        )
    add("bench, an empty suite file", g, error([*BENCH, *BENCH_DIRS], None, suites={"tiny": ""}))
    add(
        "bench, a suite path that is a folder",
        g,
        error(
            ["bench", "--suite", "{tmp}/folder.toml", *BENCH_DIRS],
            None,
            setup=functools.partial(_mkdir, rel="folder.toml"),
        ),
    )
    add(
        "bench, a suite naming a dataset that is not there",
        g,
        simple_bench_missing_dataset(),
        True,
    )
    add(
        "report --results a file",
        g,
        error(["report", "--suite", "demo", "--results", "{file}"], "is a file"),
    )

    # Datasets and files ----------------------------------------------------------------------
    g = "missing or malformed datasets and files"
    for variant, expect in [
        ("no-rewards", "lacks key(s) rewards"),
        ("short-actions", "different numbers of rows"),
        ("nan-observation", "has NaN/inf"),
        ("no-episode-end", "no step is flagged"),
        ("wide-observations", "observations are 17 wide"),
        ("flags-2", "values other than 0/1"),
        ("empty", "cannot read"),
        ("text", "cannot read"),
    ]:
        add(
            f"data import-d4rl, a D4RL file: {variant}",
            g,
            error(
                ["data", "import-d4rl", "{tmp}/hopper_medium-v2.hdf5", "--root", "d4rl-root"],
                expect,
                setup=d4rl("hopper_medium-v2.hdf5", variant),
                check=not_created("d4rl-root/d4rl"),
            ),
        )
    add(
        "data import-d4rl, a valid D4RL file (then data info)",
        g,
        functools.partial(
            simple,
            argv=["data", "info", "d4rl/hopper/medium-v2", "--root", "d4rl-root"],
            setup=steps(
                d4rl("hopper_medium-v2.hdf5", "valid"),
                cli_step(
                    ["data", "import-d4rl", "{tmp}/hopper_medium-v2.hdf5", "--root", "d4rl-root"]
                ),
            ),
            check=functools.partial(_stdout_has, text="episodes 4, steps 200"),
            valid=True,
        ),
    )
    add(
        "data import-d4rl --overwrite, a malformed file over an existing dataset",
        g,
        error(
            [
                *words("data import-d4rl"),
                "{tmp}/bad/hopper_medium-v2.hdf5",
                *words("--root d4rl-root --overwrite"),
            ],
            "lacks key(s) rewards",
            setup=steps(
                d4rl("hopper_medium-v2.hdf5", "valid"),
                cli_step(
                    ["data", "import-d4rl", "{tmp}/hopper_medium-v2.hdf5", "--root", "d4rl-root"]
                ),
                functools.partial(_mkdir, rel="bad"),
                d4rl("bad/hopper_medium-v2.hdf5", "no-rewards"),
            ),
        ),
    )
    add(
        "data import-d4rl, a file name that names no env",
        g,
        error(
            ["data", "import-d4rl", "{tmp}/mystery.hdf5"],
            "cannot tell the env",
            setup=d4rl("mystery.hdf5", "valid"),
        ),
    )
    for edit, expect in [
        ("zero-length", "has no steps"),
        ("nan-observation", None),
        ("nan-reward", None),
        ("inf-action", None),
        ("short-actions", None),
        ("terminates-midway", "goes on; an episode ends at its first termination"),
        ("huge-reward", "beyond the float32 range"),
    ]:
        add(
            f"data info, a dataset with episode 2 {edit}",
            g,
            error(["data", "info", DATASET, "--root", "{root}"], expect, setup=damaged(edit)),
        )
        add(
            f"run, a dataset with episode 2 {edit}",
            g,
            train(
                ["--methods", "bc,filtered_bc", "--hidden", "16,16", *TINY],
                ["bc", "filtered_bc"],
                expect=expect,
                setup=damaged(edit),
            ),
            True,
        )
    add(
        "run, a dataset with actions outside its action box",
        g,
        train(
            [*SMALL, *TINY],
            check=functools.partial(_warned_and_noted, methods=("bc",)),
            setup=damaged("actions-outside-box"),
        ),
        True,
    )
    add(
        "run, a dataset recorded around ClipAction (an unbounded action box)",
        g,
        train([*SMALL, *TINY], setup=_around_clip_action),
        True,
    )
    add(
        "run, an unbounded action box and actions beyond [-1, 1]",
        g,
        train(
            [*SMALL, *TINY],
            expect="unbounded action box",
            setup=steps(_around_clip_action, damaged("actions-outside-box")),
        ),
        True,
    )
    add(
        "run td3_bc,iql, every episode of the same return (IQL's reward scaling)",
        g,
        train(
            ["--methods", "td3_bc,iql", "--algo-steps", "20", *TINY],
            ["td3_bc", "iql"],
            expect="--set iql.normalize_rewards=false",
            setup=damaged("equal-returns"),
        ),
    )
    for name, values, expect in [
        ("ref_min_score 'n/a'", {"ref_min_score": "n/a"}, "not a finite number"),
        ("ref_max_score below ref_min_score", {"ref_max_score": 0.0}, "<= ref_min_score"),
        ("an env spec without time limit", {"max_episode_steps": None}, "has no time limit"),
    ]:
        add(
            f"run, a dataset with {name} in its metadata",
            g,
            error([*RUN, *SMALL, *TINY, *OUT], expect, setup=edited_metadata(**values)),
        )
    add(
        "run --ref-min/--ref-max, a dataset with ref_min_score 'n/a' in its metadata",
        g,
        train(
            [*SMALL, *TINY, "--ref-min", "0", "--ref-max", "9000"],
            setup=edited_metadata(ref_min_score="n/a"),
        ),
        True,
    )
    add(
        "run --env Hopper-v5 on a dataset that records InvertedDoublePendulum-v5",
        g,
        error([*RUN, *SMALL, *TINY, *OUT, "--env", "Hopper-v5"], "drop --env"),
    )
    for name, fn, expect in [
        (
            "main_data.hdf5 truncated to half",
            functools.partial(_truncate, rel="data/main_data.hdf5", keep=0.5),
            None,
        ),
        ("main_data.hdf5 missing", functools.partial(_remove, rel="data/main_data.hdf5"), None),
        ("metadata.json missing", functools.partial(_remove, rel="data/metadata.json"), None),
        (
            "metadata.json not JSON",
            functools.partial(_write_text, rel="data/metadata.json", text="{not json"),
            None,
        ),
        ("its data/ folder missing", _empty_dataset_dir, None),
    ]:
        add(
            f"data info, a dataset with {name}",
            g,
            error(["data", "info", DATASET, "--root", "{root}"], expect, setup=fn),
        )
        add(
            f"run, a dataset with {name}",
            g,
            error([*RUN, *SMALL, *TINY, *OUT], expect, setup=fn, timeout=TRAIN_TIMEOUT),
        )
    add(
        "run, a Minari mujoco/* dataset (no reference scores) whose data/ folder is empty",
        g,
        error(
            ["run", "mujoco/hopper/medium-v0", "--root", "{root}", *SMALL, *TINY, *OUT],
            "cannot be opened",
            setup=_empty_minari_tier,
        ),
    )
    add(
        "data list, a dataset with metadata.json missing",
        g,
        error(
            ["data", "list", "--root", "{root}"],
            None,
            setup=functools.partial(_remove, rel="data/metadata.json"),
        ),
    )
    add(
        "bench, a record truncated to half",
        g,
        error(
            [*BENCH, *BENCH_DIRS],
            None,
            suites=SUITE,
            setup=steps(
                cli_step([*BENCH, *BENCH_DIRS], SUITE),
                corrupt(f"{RECORDS}/*/bc/seed-0.json", b'{"schema": 1, "sui'),
            ),
            mutable=(f"{RECORDS}/*/bc/*",),
            timeout=TRAIN_TIMEOUT,
        ),
        True,
    )
    add(
        "report, a record truncated to half",
        g,
        error(
            REPORT,
            None,
            suites=SUITE,
            setup=steps(
                cli_step([*BENCH, *BENCH_DIRS], SUITE),
                corrupt(f"{RECORDS}/*/bc/seed-0.json", b'{"schema": 1, "sui'),
            ),
        ),
        True,
    )
    add(
        "report, a record holding a NaN score",
        g,
        error(
            REPORT,
            None,
            suites=SUITE,
            setup=steps(
                cli_step([*BENCH, *BENCH_DIRS], SUITE),
                functools.partial(_nan_record, pattern=f"{RECORDS}/*/bc/seed-0.json"),
            ),
        ),
        True,
    )
    add(
        "run again, its checkpoints corrupted (records and evaluations removed)",
        g,
        train(
            [*SMALL, *TINY],
            setup=steps(
                cli_step([*RUN, *SMALL, *TINY, *OUT]),
                corrupt("runs/*/*/*.msgpack", b"\x93garbage"),
                functools.partial(_remove_glob, pattern="runs/*/*/eval-*.npy"),
                functools.partial(_remove_glob, pattern="runs/records"),
            ),
            mutable=("runs/*", "out/*"),
        ),
        True,
    )
    add(
        "run again, its cached evaluations corrupted (records removed)",
        g,
        train(
            [*SMALL, *TINY],
            setup=steps(
                cli_step([*RUN, *SMALL, *TINY, *OUT]),
                corrupt("runs/*/*/eval-*.npy", b"\x93NUMPY garbage"),
                functools.partial(_remove_glob, pattern="runs/records"),
            ),
            mutable=("runs/*", "out/*"),
        ),
        True,
    )

    # Paths: read-only, files instead of folders, missing folders -------------------------------
    g = "paths: read-only, a file instead of a folder, missing"
    add(
        "run --out under a file",
        g,
        error([*RUN, *SMALL, *TINY, "--out", "{file}/sub", "--work-dir", "runs"], None),
    )
    add(
        "run --work-dir under a file",
        g,
        error([*RUN, *SMALL, *TINY, "--out", "out", "--work-dir", "{file}/sub"], None),
    )
    add(
        "data scripted --root read-only",
        g,
        error(["data", "scripted", "--episodes", "2", "--root", "{ro}/minari"], None),
    )
    add(
        "data import-d4rl --root read-only",
        g,
        error(
            ["data", "import-d4rl", "{tmp}/hopper_medium-v2.hdf5", "--root", "{ro}"],
            None,
            setup=d4rl("hopper_medium-v2.hdf5", "valid"),
        ),
    )
    add(
        "data list --root missing (not created)",
        g,
        error(
            ["data", "list", "--root", "nowhere"], "does not exist", check=not_created("nowhere")
        ),
    )
    add(
        "data info --root missing (not created)",
        g,
        error(
            ["data", "info", DATASET, "--root", "nowhere"],
            "does not exist",
            check=not_created("nowhere"),
        ),
    )
    add(
        "run --root missing (not created)",
        g,
        error(
            ["run", DATASET, "--root", "nowhere", *SMALL, *TINY, *OUT],
            "does not exist",
            check=not_created("nowhere"),
        ),
    )
    add(
        "data list, MINARI_DATASETS_PATH a file",
        g,
        error(
            ["data", "list"],
            None,
            env={"MINARI_DATASETS_PATH": "{tmp}/a-file"},
            setup=lambda_file(),
        ),
    )
    add(
        "run --work-dir '' (the current folder)",
        g,
        functools.partial(
            simple,
            argv=[*RUN, *SMALL, *TINY, "--out", "out", "--work-dir", "", "--quiet"],
            check=_check_run(["bc"]),
            valid=True,
            timeout=TRAIN_TIMEOUT,
        ),
        True,
    )
    add(
        "bench --root a read-only folder holding no dataset",
        g,
        error([*BENCH[:3], "--root", "{ro}", "--quiet", *BENCH_DIRS], None, suites=SUITE),
    )

    # Valid runs: the checks must pass on good input --------------------------------------------
    g = "valid input (the checks' baseline)"
    add("run, tiny", g, train([*SMALL, *TINY], valid=True), True)
    add(
        "run, tiny, the four default methods",
        g,
        train(["--hidden", "16,16", *TINY], ["bc", "filtered_bc", "top10_bc", "iw_bc"], valid=True),
        True,
    )
    add(
        "run again, finished (reuses its records)",
        g,
        train(
            [*SMALL, *TINY],
            valid=True,
            setup=cli_step([*RUN, *SMALL, *TINY, *OUT]),
            mutable=("out/*",),
        ),
        True,
    )
    add(
        "bench, tiny",
        g,
        functools.partial(
            simple,
            argv=[*BENCH, *BENCH_DIRS],
            suites=SUITE,
            valid=True,
            check=bench_check(BOTH_OK, 2),
            timeout=TRAIN_TIMEOUT,
        ),
        True,
    )
    for name, reps in (("report", "20"), ("report --reps 1", "1")):
        add(
            f"{name} after a finished bench",
            g,
            functools.partial(
                simple,
                argv=[*REPORT[:-1], reps],
                suites=SUITE,
                valid=True,
                setup=cli_step([*BENCH, *BENCH_DIRS], SUITE),
                check=report_check(),
            ),
            True,
        )

    # Stale and partial reports ------------------------------------------------------------------
    g = "reports of stale, partial and failed sweeps"
    add("report, stale config (suite budget edited, one method rerun)", g, rerun_report, True)
    add(
        "report after bench --only-methods bc (filtered_bc missing)",
        g,
        functools.partial(
            simple,
            argv=REPORT,
            suites=SUITE,
            valid=True,
            setup=cli_step([*BENCH, *BENCH_DIRS, "--only-methods", "bc"], SUITE),
            check=report_check(missing=True),
        ),
        True,
    )
    failing = suite_variant("batch_size = 16\n", "batch_size = 16\nlearning_rate = 1e30\n")
    add(
        "bench, pre-training lr 1e30 (every run diverges)",
        g,
        functools.partial(
            simple,
            argv=[*BENCH, *BENCH_DIRS],
            suites=failing,
            check=bench_check({("bc", 0): "failed", ("filtered_bc", 0): "failed"}, 2),
            expect="diverged",
            timeout=TRAIN_TIMEOUT,
        ),
        True,
    )
    add(
        "report after a sweep whose runs all diverged",
        g,
        functools.partial(
            simple,
            argv=REPORT,
            suites=failing,
            setup=functools.partial(_bench_may_fail, suites=failing),
            check=report_check(missing=True),
        ),
        True,
    )

    # Interrupts, kills, concurrency ---------------------------------------------------------------
    g = "interrupts, kill -9 and resume, concurrent runs"
    long_run = [
        *RUN,
        *words("--methods bc --seeds 1 --bc-steps 1000000 --bc-batch-size 2 --window 4 --hidden 8"),
        *words("--eval-episodes 1"),
        *OUT,
    ]
    add(
        "SIGINT during run (after its first checkpoint)",
        g,
        functools.partial(
            interrupted,
            argv=long_run,
            wait_for="runs/*/*/checkpoint.msgpack",
            keep=("runs/*/*/checkpoint.msgpack",),
        ),
        True,
    )
    long_suite = suite_variant("steps = 20\n", "steps = 1000000\n")
    add(
        "SIGINT during bench (after its first checkpoint)",
        g,
        functools.partial(
            interrupted,
            argv=[*BENCH, *BENCH_DIRS],
            wait_for="runs/*/*/checkpoint.msgpack",
            suites=long_suite,
            keep=("runs/*/*/checkpoint.msgpack",),
        ),
        True,
    )
    # data scripted makes its --root only once its rollouts are done (400 episodes: ~6 s on the
    # 2-core box, after ~2.5 s of imports), so the rollouts are interrupted by time from the start,
    # in a run long enough (2,000 episodes, ~27 s) that a machine several times faster or slower
    # is still in them 6 s in.
    for name, episodes, wait_for, delay in [
        ("as soon as its --root appears", 400, "fresh", 0.0),
        ("during its rollouts", 2000, None, 6.0),
        ("during the HDF5 write", 400, "fresh/.staging-*", 0.0),
    ]:
        scripted = ["data", "scripted", "--episodes", str(episodes), "--root", "fresh"]
        add(
            f"SIGINT during data scripted, {name}",
            g,
            functools.partial(interrupted, argv=scripted, wait_for=wait_for, delay=delay),
            True,
        )
    for delay in (1.0, 2.5):
        add(
            f"SIGINT during run, {delay:g} s after its start (loading)",
            g,
            functools.partial(interrupted, argv=long_run, wait_for=None, delay=delay),
            True,
        )
    add("SIGINT twice during run", g, functools.partial(double_interrupt, argv=long_run), True)
    kill_run = [
        *RUN,
        *words("--methods bc,iw_bc --hidden 16,16 --bc-steps 20 --finetune-steps 200"),
        *words("--warmup-steps 2 --seeds 1 --eval-episodes 2"),
        *OUT,
    ]
    add(
        "kill -9 during run (after bc's record), then the same command",
        g,
        functools.partial(
            killed_then_rerun,
            argv=kill_run,
            wait_for="runs/records/*/*/bc/seed-0.json",
            records="runs/records/*",
            check=_check_run(["bc", "iw_bc"]),
        ),
        True,
    )
    kill_suite = suite_variant("steps = 10\n", "steps = 200\n")
    add(
        "kill -9 during bench (after bc's record), then the same command",
        g,
        functools.partial(
            killed_then_rerun,
            argv=[*BENCH, *BENCH_DIRS],
            wait_for=f"{RECORDS}/*/bc/seed-0.json",
            records=f"{RECORDS}/*",
            suites=kill_suite,
            check=bench_check(BOTH_OK, 2),
        ),
        True,
    )
    add(
        "two concurrent bench on the same folders",
        g,
        functools.partial(
            twice_at_once, argv=[*BENCH, *BENCH_DIRS], suites=SUITE, check=_concurrent_bench_check
        ),
        True,
    )
    add(
        "two concurrent run on the same folders",
        g,
        functools.partial(
            twice_at_once,
            argv=[*RUN, "--methods", "bc,filtered_bc", "--hidden", "16,16", *TINY, *OUT],
            check=_concurrent_run_check,
        ),
        True,
    )

    # Full disk (RLIMIT_FSIZE) ---------------------------------------------------------------------
    g = "full disk (RLIMIT_FSIZE, SIGXFSZ ignored: writes fail with EFBIG)"
    add(
        "data scripted on a full disk",
        g,
        error(
            ["data", "scripted", "--episodes", "20", "--root", "fresh"],
            "file too large",
            fsize=200_000,
            check=_root_unchanged_or_fresh,
            timeout=TRAIN_TIMEOUT,
        ),
        True,
    )
    add(
        "data scripted --overwrite on a full disk (the old dataset must stay)",
        g,
        functools.partial(overwrite_on_full_disk, fsize=200_000),
        True,
    )
    add(
        "data import-d4rl on a full disk",
        g,
        error(
            ["data", "import-d4rl", "{tmp}/hopper_medium-v2.hdf5", "--root", "fresh"],
            "file too large",
            fsize=20_000,
            setup=d4rl("hopper_medium-v2.hdf5", "valid"),
            check=_root_unchanged_or_fresh,
        ),
        True,
    )
    add(
        "run --out on a full disk",
        g,
        train([*SMALL, *TINY], fsize=20_000, expect="file too large"),
        True,
    )
    add(
        "run --out on a full disk over a previous output set",
        g,
        functools.partial(full_disk_over_previous, fsize=20_000),
        True,
    )
    for what, fsize, expect in (
        ("checkpoints cannot be written", 4_000, "File too large"),
        ("not even a record can be written", 1_000, "file too large: "),
    ):
        add(
            f"bench on a full disk ({what})",
            g,
            functools.partial(
                simple,
                argv=[*BENCH, *BENCH_DIRS],
                suites=SUITE,
                fsize=fsize,
                expect=expect,
                timeout=TRAIN_TIMEOUT,
            ),
            True,
        )
    return out


def _mkdir(ctx: Ctx, rel: str) -> None:
    (ctx.dir / rel).mkdir(parents=True, exist_ok=True)


def _remove_glob(ctx: Ctx, pattern: str) -> None:
    for path in ctx.dir.glob(pattern):
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _make_file(ctx: Ctx) -> None:
    ctx.file()


def lambda_file() -> Callable[[Ctx], None]:
    return _make_file


def _bench_may_fail(ctx: Ctx, suites: dict[str, str]) -> None:
    filled = ctx.fill([*BENCH, *BENCH_DIRS], suites)
    done = run_cli(filled, ctx.dir, timeout=TRAIN_TIMEOUT)
    if done.rc not in (0, 1):
        raise NotExercised(f"setup bench ended with exit {done.rc}: {_tail(done)}")


def simple_bench_missing_dataset() -> Callable:
    other = "iwbc/inverted-double-pendulum/absent-v0"
    return functools.partial(
        simple,
        argv=[*BENCH, *BENCH_DIRS],
        suites=suite_variant(f'datasets = ["{DATASET}"]', f'datasets = ["{other}"]'),
        expect=None,
        timeout=TRAIN_TIMEOUT,
    )


def double_interrupt(ctx: Ctx, argv: Sequence[str]) -> Outcome:
    """Two Ctrl-C a fraction of a second apart (an impatient user): still one line, exit 130."""
    filled = ctx.fill(argv)
    before = snapshot(ctx.dir)
    started = time.monotonic()
    process = start(filled, ctx.dir)
    ready = _first("runs/*/*/checkpoint.msgpack", ctx.dir)
    while not ready():
        if process.poll() is not None or time.monotonic() - started > TRAIN_TIMEOUT:
            done = finish(process, filled, started, 1)
            raise NotExercised(f"the run ended or stalled before its checkpoint: {_tail(done)}")
        time.sleep(0.05)
    _kill_group(process, signal.SIGINT)
    time.sleep(0.3)
    _kill_group(process, signal.SIGINT)
    done = finish(process, filled, started, TRAIN_TIMEOUT)
    outcome = Outcome(f"{ctx.show(filled)}  # SIGINT twice, 0.3 s apart", done)
    outcome.lost = losses(before, snapshot(ctx.dir)) + leftovers(ctx.dir)
    outcome.wrong = output_problems(ctx.dir, before, done)
    return outcome


# ---------------------------------------------------------------------------------------------
# The sweep


def run_case(index: int, case: Case, base: Path) -> dict:
    """One case in its own folder (run in a worker process)."""
    folder = base / "cases" / f"{index:03d}"
    folder.mkdir(parents=True)
    ctx = Ctx(base, folder)
    started = time.monotonic()
    try:
        outcome = case.fn(ctx)
        kind, message, notes = classify(outcome)
        done = outcome.done
        result = {
            "command": outcome.command,
            "exit": done.rc,
            "class": kind,
            "message": message,
            "notes": notes,
            "problems": outcome.wrong + outcome.lost,
            "stdout_tail": done.out[-2000:],
            "stderr_tail": done.err[-4000:],
        }
    except NotExercised as error:
        result = {
            "command": "",
            "exit": None,
            "class": NOT_EXERCISED,
            "message": str(error),
            "notes": [],
            "problems": [str(error)],
            "stdout_tail": "",
            "stderr_tail": "",
        }
    for key in ("message", "stdout_tail", "stderr_tail"):
        result[key] = ctx.hide(result[key])
    result["notes"] = [ctx.hide(note) for note in result["notes"]]
    result["problems"] = [ctx.hide(problem) for problem in result["problems"]]
    result |= {
        "index": index,
        "case": case.name,
        "group": case.group,
        "seconds": round(time.monotonic() - started, 1),
    }
    # The read-only folder would keep the case's folder from being removed.
    with contextlib.suppress(OSError):
        (folder / "read-only").chmod(0o755)
    return result


def make_dataset(base: Path) -> dict:
    """The dataset every case copies, made once as a new user would."""
    argv = ["data", "scripted", "--episodes", "20", "--root", str(base / "R")]
    done = run_cli(argv, base, timeout=TRAIN_TIMEOUT)
    info = run_cli(["data", "info", DATASET, "--root", str(base / "R")], base)
    if done.rc != 0 or info.rc != 0:
        sys.exit(f"could not make the sweep's dataset: {_tail(done)} {_tail(info)}")
    return {
        "index": 0,
        "case": "make the sweep's dataset (then data info)",
        "group": "setup",
        "command": "iwbc " + shlex.join(argv).replace(str(base), "$SWEEP"),
        "exit": done.rc,
        "class": WELL,
        "message": done.out.strip().splitlines()[0],
        "notes": [info.out.strip().splitlines()[1].strip()],
        "problems": [],
        "stdout_tail": done.out + info.out,
        "stderr_tail": done.err + info.err,
        "seconds": round(done.seconds + info.seconds, 1),
    }


def markdown(results: list[dict], totals: dict[str, int], meta: dict) -> str:
    def cell(text: object) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = [
        "# Bad-input sweep of the `iwbc` command",
        "",
        f"{len(results)} cases, run as a new user would: `python -m iwbc ...` as a "
        "subprocess, each in a fresh folder with its own copy of a 20-episode dataset made by "
        "`iwbc data scripted --episodes 20`, at tiny budgets. How the cases are built and "
        "classified: the docstring of `benchmarks/bad_input_sweep.py`.",
        "",
        "## Totals",
        "",
        "| class | cases |",
        "|---|---:|",
        *[f"| {kind} | {totals[kind]} |" for kind in CLASSES],
        f"| **all** | {len(results)} |",
        "",
    ]
    bad = [r for r in results if r["class"] not in (CLEAR, WELL)]
    lines += ["## Cases neither a clear error nor behaved well", ""]
    if not bad:
        lines += ["None.", ""]
    for r in bad:
        lines += [
            f"- **{r['case']}** ({r['class']}): `{r['command']}` exited {r['exit']}: "
            f"{cell(r['message'])}",
            *[f"  - {cell(p)}" for p in r["problems"]],
            "",
        ]
    noted = [r for r in results if r["notes"] and r["class"] == CLEAR]
    if noted:
        lines += ["## Notes on clear errors", ""]
        lines += [f"- {r['case']}: {cell('; '.join(r['notes']))}" for r in noted]
        lines += [""]
    lines += [
        "## Every case",
        "",
        "`$CASE` is the case's own folder (the commands' working directory), `$SWEEP` the "
        "sweep's; the message is the error line for an error, the first line of output "
        "otherwise.",
        "",
        "| # | group | case | command | exit | class | message |",
        "|---:|---|---|---|---:|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['index']} | {cell(r['group'])} | {cell(r['case'])} | `{cell(r['command'])}` "
            f"| {r['exit']} | {r['class']} | {cell(r['message'][:300])} |"
        )
    machine = ", ".join(f"{k} {v}" for k, v in meta["machine"].items())
    lines += [
        "",
        "## Machine",
        "",
        f"- {machine}",
        f"- iwbc imported from {meta['iwbc_imported_from']}; git {meta['git']}",
        f"- {meta['jobs']} cases at a time; wall time {meta['wall_seconds'] / 60:.1f} min "
        f"(started {meta['started']})",
        "",
        "## Regenerate",
        "",
        f"`{meta['regenerate']}`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="cases at a time (default 2)")
    parser.add_argument("--only", default=None, help="a regular expression: the cases it finds")
    parser.add_argument("--out", default=str(RESULTS), help="where the .md and .json go")
    parser.add_argument("--keep", action="store_true", help="keep the cases' folders")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error("--jobs must be ≥ 1")

    all_cases = cases()
    chosen = list(enumerate(all_cases, start=1))
    if args.only:
        chosen = [(i, c) for i, c in chosen if re.search(args.only, c.name)]
    if args.list:
        for index, case in chosen:
            print(f"{index:3d} {'*' if case.heavy else ' '} {case.group} | {case.name}")
        print(f"{len(chosen)} of {len(all_cases)} cases")
        return

    from iwbc.machine import machine_record

    # The option table's import brought in JAX; every process started here execs at once.
    warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)

    base = Path(tempfile.mkdtemp(prefix="iwbc-bad-input-sweep-"))
    started_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    started = time.monotonic()
    imported = subprocess.run(
        [sys.executable, "-c", "import iwbc; print(iwbc.__file__)"],
        env=cli_env(base),
        cwd=base,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not imported.startswith(str(REPO)):
        sys.exit(f"the commands would import iwbc from {imported}, not from {REPO}")
    print(f"{len(chosen)} cases, {args.jobs} at a time, under {base}", flush=True)
    results = [make_dataset(base)]
    pristine = snapshot(base / "R")
    order = sorted(chosen, key=lambda item: not item[1].heavy)  # the long ones first
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
        futures = {pool.submit(run_case, i, c, base): (i, c) for i, c in order}
        for future in concurrent.futures.as_completed(futures):
            index, case = futures[future]
            try:
                result = future.result()
            except Exception as error:  # a bug of the sweep itself: say so, keep going
                result = {
                    "index": index,
                    "case": case.name,
                    "group": case.group,
                    "command": "",
                    "exit": None,
                    "class": NOT_EXERCISED,
                    "message": f"the sweep failed: {error!r}",
                    "notes": [],
                    "problems": [repr(error)],
                    "stdout_tail": "",
                    "stderr_tail": "",
                    "seconds": 0.0,
                }
            results.append(result)
            print(
                f"[{len(results) - 1}/{len(chosen)}] {result['class']:20s} "
                f"{result['seconds']:6.1f}s  {case.name}",
                flush=True,
            )
    if snapshot(base / "R") != pristine:
        sys.exit("the sweep's own dataset changed: a case wrote into it")
    results.sort(key=lambda r: r["index"])
    totals = {kind: sum(r["class"] == kind for r in results) for kind in CLASSES}
    git = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    meta = {
        "machine": machine_record(("iwbc", "jax", "jaxlib", "mujoco", "minari", "h5py", "numpy")),
        "iwbc_imported_from": imported.replace(str(REPO), "<repo>"),
        "git": git,
        "jobs": args.jobs,
        "started": started_at,
        "wall_seconds": round(time.monotonic() - started, 1),
        "regenerate": "PYTHONPATH=. python benchmarks/bad_input_sweep.py --jobs 2"
        + (f" --only {shlex.quote(args.only)}" if args.only else ""),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bad_input_sweep.md").write_text(markdown(results, totals, meta))
    payload = {"totals": totals, "cases": results, **meta}
    (out / "bad_input_sweep.json").write_text(json.dumps(payload, indent=1, ensure_ascii=False))
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    print(f"{len(results)} cases: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    print(f"wrote {out / 'bad_input_sweep.md'} and .json")


if __name__ == "__main__":
    main()
