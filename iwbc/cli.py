"""The ``iwbc`` command: ``demo``, ``run``, ``bench``, ``report`` and ``data``.

Errors a user can fix (unknown dataset, bad data, bad option, unwritable folder) are printed as
one line and exit with status 2 rather than as a traceback; every option is checked before
anything is trained. Any other exception is a bug and keeps its traceback; ``--debug`` shows it
for a user's error too. Ctrl-C exits with status 130 and says how to resume.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import re
import shlex
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import numpy as np

from iwbc.agents.bc import BCConfig
from iwbc.agents.registry import BASELINES, METHODS
from iwbc.bench.records import records_dir
from iwbc.bench.suites import PipelineConfig, parse_settings
from iwbc.data import list_datasets, load_dataset
from iwbc.data.command import add_data_parsers
from iwbc.data.errors import DatasetWarning
from iwbc.datagen.command import add_generate_parser
from iwbc.envs.action_box import box_text, rescaled
from iwbc.envs.mujoco_warnings import forward_warning, mujoco_warnings_as_python
from iwbc.envs.rollout import ENGINES, require_mjx
from iwbc.errors import UserError, one_line
from iwbc.losses import WEIGHTINGS
from iwbc.options import (
    ROOT_HELP,
    SEED_LIMIT,
    check_directory,
    check_writable,
    dataset_id,
    decay,
    finite_float,
    jax_seed,
    layer_widths,
    name_list,
    nonnegative_int,
    positive_float,
    positive_int,
)

# Options naming folders a command writes into or reads from: a file there is refused at once.
_FOLDER_OPTIONS = ("root", "work_dir", "results", "out")


def _demo(args: argparse.Namespace) -> None:
    from iwbc.bench.demo import SUITE, run_demo

    check_writable(records_dir(SUITE, args.results), "--results")
    check_writable(args.work_dir, "--work-dir")
    written = run_demo(
        args.results, data_root=args.root, work_dir=args.work_dir, progress=not args.quiet
    )
    print(f"wrote {len(written)} files under {args.results}/demo (table.md, stats.md, figures/)")


def _pipeline(args: argparse.Namespace) -> PipelineConfig:
    if args.warmup_steps >= args.finetune_steps:
        raise UserError(
            f"--warmup-steps must be less than --finetune-steps ({args.finetune_steps}), "
            f"got {args.warmup_steps}"
        )
    pretrain = BCConfig(
        steps=args.bc_steps,
        batch_size=args.bc_batch_size,
        learning_rate=args.bc_lr,
        window=args.window,
        weighting=args.weighting,
    )
    finetune = BCConfig.iw_finetune(
        steps=args.finetune_steps,
        warmup_steps=args.warmup_steps,
        batch_size=args.finetune_batch_size,
        learning_rate=args.finetune_lr,
        temperature=args.temperature,
        normalize=not args.no_normalize,
        ema_decay=args.ema_decay,
        window=args.window,
        weighting=args.weighting,
    )
    return PipelineConfig(
        pretrain=pretrain,
        finetune=finetune,
        hidden_dims=args.hidden or PipelineConfig.hidden_dims,
        standardize_observations=not args.raw_observations,
        layer_init=args.layer_init,
    )


def _methods(text: str) -> tuple[str, ...]:
    """``--methods``: known methods, each once."""
    from iwbc.bench.experiment import method_names

    try:
        return method_names(text)
    except UserError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _settings(args: argparse.Namespace) -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    """Each method's own fields: ``--layer-init`` for the baselines (the BC family takes it
    from the pipeline), then ``--set``, which wins."""
    given = parse_settings(args.set)
    settings: dict[str, dict[str, Any]] = {}
    if args.layer_init != "flax":
        settings = {m: {"layer_init": args.layer_init} for m in args.methods if m in BASELINES}
    for method, fields in given.items():
        settings[method] = {**settings.get(method, {}), **fields}
    return tuple((m, tuple(v.items())) for m, v in settings.items())


def _run(args: argparse.Namespace) -> None:
    from iwbc.bench.experiment import ExperimentConfig, run_experiment

    if (args.ref_min is None) != (args.ref_max is None):
        raise UserError("--ref-min and --ref-max go together; pass both or neither")
    if args.ref_min is not None and args.ref_max <= args.ref_min:
        raise UserError(
            f"--ref-max must be greater than --ref-min, got --ref-min {args.ref_min:g} and "
            f"--ref-max {args.ref_max:g}"
        )
    if args.seed + args.seeds > SEED_LIMIT:
        raise UserError(
            f"--seed {args.seed} with --seeds {args.seeds} goes past 2**32 - 1, and JAX keys "
            "keep 32 bits; start lower"
        )
    if args.hidden and all(m in BASELINES for m in args.methods):
        raise UserError(
            "--hidden sets the BC family's widths and --methods has none of it; set a "
            "baseline's with --set METHOD.hidden_dims=[...], e.g. --set td3_bc.hidden_dims=[64,64]"
        )
    config = ExperimentConfig(
        methods=args.methods,
        seeds=tuple(range(args.seed, args.seed + args.seeds)),
        pipeline=_pipeline(args),
        eval_episodes=args.eval_episodes,
        engine=args.engine,
        algorithm_steps=args.algo_steps,
        settings=_settings(args),
    )
    if args.engine == "mjx":
        require_mjx()
    given = None if args.ref_min is None else (args.ref_min, args.ref_max)
    if given is None:
        from iwbc.data.minari_tiers import derive_missing_scores

        derive_missing_scores(
            args.dataset,
            args.root,
            lambda line: print(f"iwbc: note: {line}", file=sys.stderr),
            download=args.download,
        )
    dataset = load_dataset(
        args.dataset,
        root=args.root,
        download=args.download,
        reference_scores=given,
        env=args.env,
    )
    out = args.out or f"results/{args.dataset.replace('/', '__')}"
    check_writable(out, "--out")
    check_writable(args.work_dir, "--work-dir")
    command = "iwbc " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    _, critics = run_experiment(
        dataset,
        config,
        out,
        work_dir=args.work_dir,
        command=command,
        progress=not args.quiet,
        note=lambda line: print(f"iwbc: note: {line}", file=sys.stderr),
    )
    print(f"wrote {out}/table.md, table.csv, scores.json and returns.png")
    for end in critics:
        if end.approaching.any():
            print(
                f"iwbc: warning: {end.method}'s critic (mean Q) ended outside every value TD "
                "targets of the data's rewards can reach, still approaching them, on "
                f"{int(end.approaching.sum())} of {len(end.q)} seeds: more --algo-steps may "
                "change its score (table.md)",
                file=sys.stderr,
            )
        elif end.still_learning:
            print(
                f"iwbc: warning: {end.method}'s critic (mean Q) still moved {end.moved:.1%} over "
                f"updates {end.steps[0]:,} to {end.steps[1]:,}: more --algo-steps may change its "
                "score (table.md)",
                file=sys.stderr,
            )
        if end.diverged:
            print(
                f"iwbc: warning: {end.method}'s critic diverged: its final mean Q lies outside "
                "every value TD targets of the data's rewards can reach on "
                f"{int(end.diverging.sum())} of {len(end.q)} seeds (table.md)",
                file=sys.stderr,
            )


def _suite_name(suite: str) -> str:
    """The name records are kept under: a suite file's stem, as ``load_suite`` names it."""
    return Path(suite).stem if suite.endswith(".toml") else suite


def _report(args: argparse.Namespace) -> None:
    from iwbc.report.suite_report import report_main

    out = Path(args.results) / _suite_name(args.suite)
    if out.is_dir():
        check_writable(out, "--results")
    line, warnings = report_main(args.suite, args.results, args.reps)
    print(line)
    for warning in warnings:
        print(f"iwbc: warning: {warning}", file=sys.stderr)


def _bench(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from iwbc.bench.runner import run_suite, select
    from iwbc.bench.suites import load_suite

    suite = load_suite(args.suite)
    select(suite, args.only_datasets, args.only_methods)
    if suite.engine == "mjx":
        require_mjx()
    records = records_dir(suite.name, args.results)
    check_writable(records, "--results")
    check_writable(args.work_dir, "--work-dir")
    summary = run_suite(
        suite,
        records,
        work_dir=args.work_dir,
        data_root=args.root,
        executor=args.executor,
        num_cpus=args.num_cpus,
        address=args.address,
        only_datasets=args.only_datasets,
        only_methods=args.only_methods,
        progress=not args.quiet,
        note=lambda line: tqdm.write(f"iwbc: note: {line}", file=sys.stderr),
    )
    print(
        f"{suite.name}: {summary.ok} runs done now, {summary.skipped} already done, "
        f"{summary.failed} failed, of {summary.total}; records in {records}"
    )
    for line in summary.errors:
        print(f"failed: {line}", file=sys.stderr)
    return 1 if summary.failed else 0


def _data_list(args: argparse.Namespace) -> None:
    if args.root is not None and not Path(args.root).expanduser().exists():
        # A typo, most likely: an empty listing would read as "no datasets there".
        raise UserError(
            f"--root {args.root} does not exist; pass the directory that holds your Minari datasets"
        )
    ids = list_datasets(args.root)
    print("\n".join(ids) if ids else "no local Minari datasets (try `iwbc data scripted`)")


def _data_info(args: argparse.Namespace) -> None:
    dataset = load_dataset(args.dataset, root=args.root, download=args.download)
    returns = dataset.episodes.returns
    p10, p50, p90 = np.percentile(returns, [10, 50, 90])
    env = dataset.env_label if dataset.env is not None else "none recorded (`iwbc run --env`)"
    print(f"{dataset.id}: env {env}")
    print(f"  episodes {dataset.num_episodes}, steps {dataset.num_steps}")
    print(f"  obs dim {dataset.observation_dim}, action dim {dataset.action_dim}")
    if rescaled(dataset.action_low, dataset.action_high):
        box = box_text(dataset.action_low, dataset.action_high)
        print(f"  action box {box} (mapped into [-1, 1] to train, back to act)")
    print(f"  return p10/p50/p90 {p10:.1f} / {p50:.1f} / {p90:.1f}")
    if dataset.clipped_actions:
        print(f"  actions outside the box (clipped to it): {dataset.clipped_actions:.1%} of steps")
    if dataset.ref_source:
        source = f" (from {dataset.ref_source})"
    else:
        from iwbc.data.reference_cache import namespace_of, tier_id

        namespace = namespace_of(dataset.id)
        derived = (
            f"where {tier_id(namespace, 'expert')} is local, `iwbc run` makes them from it, as "
            f"`iwbc data minari-tiers {namespace}` does; else "
            if namespace
            else ""
        )
        source = f" (none recorded; {derived}pass --ref-min and --ref-max to iwbc run)"
    print(f"  ref_min_score {dataset.ref_min_score}, ref_max_score {dataset.ref_max_score}{source}")


def _data_scripted(args: argparse.Namespace) -> None:
    from iwbc.data.scripted import DEFAULT_DATASET_ID, generate_mixed_dataset

    dataset_id = generate_mixed_dataset(
        args.dataset or DEFAULT_DATASET_ID,
        num_episodes=args.episodes,
        seed=args.seed,
        root=args.root,
        overwrite=args.overwrite,
    )
    print(f"wrote {dataset_id}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = _Parser(
        prog="iwbc",
        description="Behaviour cloning, filtered BC and iw-BC on Minari datasets, beside "
        "offline-RL baselines: train, evaluate, benchmark, report.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="the built-in default run (offline, CPU, minutes)")
    demo.add_argument(
        "--results",
        default="results",
        help="the report goes to RESULTS/demo/ (default: %(default)s)",
    )
    demo.add_argument(
        "--root",
        default="data/minari",
        help="local Minari root of the demo's dataset, made if missing (default: %(default)s)",
    )
    demo.add_argument(
        "--work-dir",
        default="runs",
        help="records, checkpoints and cached evaluations (default: %(default)s)",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_demo)

    defaults = BCConfig()
    paper = BCConfig.iw_finetune()
    run = commands.add_parser("run", help="train and evaluate methods on a Minari dataset")
    run.add_argument("dataset", help="Minari dataset id, e.g. mujoco/hopper/medium-v0")
    run.add_argument("--root", default=None, help=ROOT_HELP)
    run.add_argument("--download", action="store_true", help="download the dataset if missing")
    run.add_argument(
        "--methods",
        type=_methods,
        default="bc,filtered_bc,top10_bc,iw_bc",
        help=f"comma-separated, from {','.join(METHODS)} (default: %(default)s)",
    )
    run.add_argument(
        "--seeds",
        type=positive_int,
        default=5,
        help="number of training seeds, vmapped (default: %(default)s)",
    )
    run.add_argument(
        "--seed",
        type=jax_seed,
        default=0,
        help="first training seed; --seeds N trains SEED … SEED+N−1 (default: %(default)s)",
    )
    # Every option states its default: the authors' BC pre-training and iw-BC fine-tune.
    for flag, kind, default, text in (
        ("--bc-steps", positive_int, defaults.steps, "BC pre-training updates"),
        ("--bc-batch-size", positive_int, defaults.batch_size, "BC batch: episodes or windows"),
        ("--bc-lr", positive_float, defaults.learning_rate, "BC's constant Adam learning rate"),
        ("--finetune-steps", positive_int, paper.steps, "updates of each fine-tune from BC"),
        ("--finetune-batch-size", positive_int, paper.batch_size, "fine-tunes' batch"),
        ("--finetune-lr", positive_float, paper.learning_rate, "fine-tunes' peak learning rate"),
        ("--warmup-steps", nonnegative_int, paper.warmup_steps, "linear warm-up, then cosine"),
        ("--temperature", positive_float, paper.temperature, "iw-BC's ratio temperature"),
        ("--ema-decay", decay, paper.ema_decay, "q_iw <- decay q_iw + (1 - decay) policy"),
    ):
        run.add_argument(flag, type=kind, default=default, help=f"{text} (default: %(default)s)")
    run.add_argument("--no-normalize", action="store_true", help="unnormalized iw weights")
    run.add_argument(
        "--window",
        type=positive_int,
        default=None,
        help="steps per sampled episode window (default: whole episodes)",
    )
    run.add_argument(
        "--weighting",
        default=defaults.weighting,
        choices=WEIGHTINGS,
        help="how BC-family losses weigh the data: 'transition' = every step of the dataset "
        "weighs the same (CORL's BC; the default); 'episode' = every episode weighs the same "
        "whatever its length, its steps averaged first (the iw-SFT authors' code)",
    )
    run.add_argument(
        "--raw-observations",
        action="store_true",
        help="train the BC family on raw observations, as the authors' code does (default: "
        "standardized with the dataset's mean and std, as the baselines are)",
    )
    run.add_argument(
        "--layer-init",
        default="flax",
        choices=("flax", "torch"),
        help="how every method's layers start: 'flax' = LeCun-normal kernels, zero biases; "
        "'torch' = PyTorch's nn.Linear default, kernels and biases uniform in ±1/√fan_in, as "
        "in the authors' code and CORL's (CQL keeps CORL's own output layers) "
        "(default: %(default)s)",
    )
    run.add_argument(
        "--hidden",
        type=layer_widths,
        default=None,
        help="the BC family's hidden layer widths; the baselines keep CORL's, set with --set "
        "METHOD.hidden_dims=[...] (default: "
        f"{','.join(map(str, PipelineConfig.hidden_dims))})",
    )
    run.add_argument(
        "--algo-steps",
        type=positive_int,
        default=None,
        help="updates of the offline-RL baselines (default: CORL's 1M)",
    )
    run.add_argument(
        "--eval-episodes",
        type=positive_int,
        default=100,
        help="evaluation episodes of each final policy (default: %(default)s)",
    )
    run.add_argument(
        "--engine",
        default="auto",
        choices=ENGINES,
        help="evaluation engine; auto: MJX on a GPU, else the CPU batch engine, for tasks with "
        "a built-in spec (Humanoid: always the batch engine), Gymnasium for the others "
        "(default: %(default)s)",
    )
    run.add_argument(
        "--ref-min",
        type=finite_float,
        default=None,
        help="reference score of a random policy (0 normalized) (default: the dataset's)",
    )
    run.add_argument(
        "--ref-max",
        type=finite_float,
        default=None,
        help="reference score of an expert (100 normalized) (default: the dataset's)",
    )
    run.add_argument(
        "--env",
        default=None,
        metavar="ID",
        help="Gymnasium id to evaluate on, for a dataset that records no env (default: the "
        "env the dataset records)",
    )
    run.add_argument(
        "--out",
        default=None,
        help="folder of its tables and figure (default: results/<dataset id, / as __>)",
    )
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="METHOD.FIELD=VALUE",
        help="set any field of one method's config, e.g. iql.expectile=0.9, bc.window=16 or "
        "bc.window=none (repeatable; fields: iwbc/agents/*.py configs; default: the configs as "
        "they are)",
    )
    run.add_argument(
        "--work-dir",
        default="runs",
        help="checkpoints and cached evaluations (default: %(default)s)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=_run)

    report = commands.add_parser(
        "report", help="tables, statistics and figures of a benchmark suite, from its records"
    )
    report.add_argument(
        "--suite", required=True, help="the suite (name or .toml path) `iwbc bench --suite` ran"
    )
    report.add_argument(
        "--results",
        default="results",
        help="reads RESULTS/<suite>/records, writes the report beside them (default: %(default)s)",
    )
    report.add_argument(
        "--reps",
        type=positive_int,
        default=2000,
        help="bootstrap resamples of the CIs (default: %(default)s)",
    )
    report.set_defaults(func=_report)

    bench = commands.add_parser(
        "bench", help="run a benchmark suite (datasets × methods × seeds), resumably"
    )
    bench.add_argument("--suite", required=True, help="a shipped suite (iwbc/suites) or a path")
    bench.add_argument(
        "--executor",
        default="local",
        choices=("local", "ray"),
        help="local: one unit after another in this process; ray: units in parallel on a Ray "
        "cluster (default: %(default)s)",
    )
    bench.add_argument(
        "--results", default="results", help="records go to RESULTS/<suite>/ (default: %(default)s)"
    )
    bench.add_argument(
        "--work-dir",
        default="runs",
        help="checkpoints and cached evaluations (default: %(default)s)",
    )
    bench.add_argument("--root", default=None, help=ROOT_HELP)
    bench.add_argument(
        "--only-datasets",
        type=name_list,
        default=None,
        help="comma-separated subset of the suite's datasets (default: all)",
    )
    bench.add_argument(
        "--only-methods",
        type=name_list,
        default=None,
        help="comma-separated subset of the suite's methods (default: all)",
    )
    bench.add_argument(
        "--num-cpus",
        type=positive_int,
        default=None,
        help="a local Ray instance's CPUs (default: all of this machine's)",
    )
    bench.add_argument("--address", default=None, help="Ray cluster address (default: local)")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    bench.set_defaults(func=_bench)

    data = commands.add_parser("data", help="local datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    listing = data_commands.add_parser("list", help="local Minari dataset ids")
    listing.add_argument("--root", default=None, help=ROOT_HELP)
    listing.set_defaults(func=_data_list)
    info = data_commands.add_parser("info", help="size, returns and reference scores")
    info.add_argument("dataset", help="Minari dataset id, e.g. mujoco/hopper/medium-v0")
    info.add_argument("--root", default=None, help=ROOT_HELP)
    info.add_argument(
        "--download", action="store_true", help="fetch it from Minari's remote if not local"
    )
    info.set_defaults(func=_data_info)
    scripted = data_commands.add_parser(
        "scripted", help="make the mixed-quality InvertedDoublePendulum dataset"
    )
    scripted.add_argument(
        "--dataset",
        type=dataset_id,
        default=None,
        # The id is spelled out here: importing it would load the LQR solver into every command.
        help="dataset id (default: iwbc/inverted-double-pendulum/mixed-v0, the demo's)",
    )
    scripted.add_argument(
        "--episodes", type=positive_int, default=200, help="episodes (default: %(default)s)"
    )
    scripted.add_argument(
        "--seed",
        type=nonnegative_int,
        default=0,
        help="seed of the episodes' resets and action biases (default: %(default)s)",
    )
    scripted.add_argument("--root", default=None, help=ROOT_HELP)
    scripted.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    scripted.set_defaults(func=_data_scripted)
    add_generate_parser(data_commands)
    add_data_parsers(data_commands)
    _add_debug(parser, top=True)
    return parser


class _Parser(argparse.ArgumentParser):
    """Parse errors as UserErrors, printed in one line like any other mistake (argparse would
    print the usage and exit), phrased ``--flag must be ...`` for the option checks."""

    def error(self, message: str) -> NoReturn:
        match = re.fullmatch(r"argument ([^:]+): (.*)", message, flags=re.DOTALL)
        if match is None:
            raise UserError(message)
        separator = " " if match[2].startswith("must ") else ": "
        raise UserError(f"{match[1]}{separator}{match[2]}")


def _add_debug(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``--debug`` on the command and every subcommand, so it may come anywhere in the line."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                _add_debug(subparser, top=False)
    parser.add_argument(
        "--debug",
        action="store_true",
        # A subcommand without the flag must not reset the top level's.
        default=False if top else argparse.SUPPRESS,
        help="show the traceback of an error",
    )


def _describe(error: Exception) -> str:
    """One line for a user's error; an OSError as what happened and to which path."""
    if not isinstance(error, OSError) or error.errno is None:
        return one_line(error)
    where = error.filename if error.filename2 is None else f"{error.filename} → {error.filename2}"
    if error.errno == errno.ENOSPC:
        written = "" if where is None else f" while writing {where}"
        return f"no space left on device{written}; free some space and run the same command again"
    what = {errno.EACCES: "permission denied", errno.EPERM: "permission denied"}.get(
        error.errno, one_line(error.strerror or error).lower()
    )
    return what if where is None else f"{what}: {where}"


def _kept(args: argparse.Namespace | None) -> str:
    """What an interrupted command keeps, and how to resume it."""
    command = None if args is None else (args.command, getattr(args, "data_command", None))
    resume = "run the same command again to resume"
    if command == ("run", None):
        return f"; finished runs and checkpoints are kept under {args.work_dir}; {resume}"
    if command in (("bench", None), ("demo", None)):
        suite = _suite_name(args.suite) if command[0] == "bench" else "demo"
        return (
            f"; finished runs are kept under {records_dir(suite, args.results)} and "
            f"checkpoints under {args.work_dir}; {resume}"
        )
    if command == ("data", "generate"):
        from iwbc.datagen.generate import PRESETS

        preset, taken = PRESETS.get(args.preset), ""
        if preset is not None:
            every = preset.behaviour.checkpoint_every
            taken = f", taken every {min(every, args.env_steps or every):,} env steps,"
        return (
            f"; the behaviour policies' SAC checkpoints{taken} are kept under {args.work_dir} "
            f"(a SAC run stopped before its first starts over); {resume}"
        )
    return ""


def _in_mujoco_warning_handler(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs (inside) the handler that routes MuJoCo's warnings to Python."""
    while frame is not None:
        if frame.f_code is forward_warning.__code__:
            return True
        frame = frame.f_back
    return False


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C: a KeyboardInterrupt, as Python's own handler raises, except inside MuJoCo's
    warning handler, where it would cross C frames and abort the process: there the signal is
    sent again a moment later, once the handler is over. Where Python ignores the exception
    instead, :func:`_unraisable` sends it again."""
    if not _in_mujoco_warning_handler(frame):
        raise KeyboardInterrupt
    _interrupt_again()


def _interrupt_again() -> None:
    """Send Ctrl-C to the main thread again in a moment, unless the command has ended by then."""
    main_thread = threading.main_thread().ident

    def again() -> None:
        if signal.getsignal(signal.SIGINT) is _interrupt:  # the command has not ended
            signal.pthread_kill(main_thread, signal.SIGINT)

    timer = threading.Timer(0.01, again)
    timer.daemon = True
    timer.start()


def _unraisable(previous: Callable[[Any], object]) -> Callable[[Any], None]:
    """A ``sys.unraisablehook`` that interrupts again where Python ignored a KeyboardInterrupt
    and hands every other exception to ``previous``: raised in a garbage-collector callback
    (JAX registers one, which runs often while a command imports and allocates), an
    ``os.register_at_fork`` handler (filelock's, while Minari writes a dataset), a ``__del__``
    or a weakref callback, it is printed as "Exception ignored" and the command runs on to its
    end (exit 0)."""

    def hook(unraisable: Any) -> None:
        if issubclass(unraisable.exc_type, KeyboardInterrupt):
            _interrupt_again()
        else:
            previous(unraisable)

    return hook


@contextlib.contextmanager
def _reliable_ctrl_c() -> Iterator[None]:
    """:func:`_interrupt` handles Ctrl-C while a command runs, where Python's default handler
    would (neither while it is ignored, nor in place of a caller's own handler)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    signal.signal(signal.SIGINT, _interrupt)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _unraisable(previous_hook)
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        signal.signal(signal.SIGINT, signal.default_int_handler)


@contextlib.contextmanager
def _dataset_warnings_in_one_line() -> Iterator[None]:
    """A DatasetWarning prints as one ``iwbc: warning: ...`` line, without Python's source line."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, DatasetWarning):
            print(f"iwbc: warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = default


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``iwbc`` console script: 0 done, 1 some benchmark runs failed, 2 a
    user's error (one line), 130 interrupted; a bug raises with its traceback."""
    args = None
    try:
        with _reliable_ctrl_c(), mujoco_warnings_as_python(), _dataset_warnings_in_one_line():
            args = build_parser().parse_args(argv)
            for name in _FOLDER_OPTIONS:
                check_directory(getattr(args, name, None), f"--{name.replace('_', '-')}")
            return args.func(args) or 0
    except KeyboardInterrupt:
        print(f"iwbc: interrupted{_kept(args)}", file=sys.stderr)
        return 130
    except (UserError, OSError) as error:
        if args is not None and args.debug:
            traceback.print_exc()
        print(f"iwbc: error: {_describe(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
