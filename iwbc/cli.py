"""The ``iwbc`` command: ``demo``, ``run``, ``bench``, ``report`` and ``data``.

Errors a user can fix (unknown dataset, bad data, bad option) are printed as one line and exit
with status 2 rather than as a traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

import numpy as np

from iwbc.algos import ALGORITHMS
from iwbc.data import DatasetError, list_datasets, load_dataset
from iwbc.data.command import add_data_parsers
from iwbc.datagen.command import add_generate_parser
from iwbc.envs.rollout import ENGINES
from iwbc.losses import WEIGHTINGS
from iwbc.methods import METHODS, PipelineConfig
from iwbc.train import StageConfig


def _demo(args: argparse.Namespace) -> None:
    from iwbc.demo import run_demo

    written = run_demo(
        args.results, data_root=args.root, work_dir=args.work_dir, progress=not args.quiet
    )
    print(f"wrote {len(written)} files under {args.results}/demo (table.md, stats.md, figures/)")


def _pipeline(args: argparse.Namespace) -> PipelineConfig:
    pretrain = StageConfig(
        steps=args.bc_steps,
        batch_size=args.bc_batch_size,
        learning_rate=args.bc_lr,
        window=args.window,
        weighting=args.weighting,
    )
    finetune = StageConfig.iw_finetune(
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
    hidden = tuple(int(h) for h in args.hidden.split(","))
    return PipelineConfig(
        pretrain=pretrain,
        finetune=finetune,
        hidden_dims=hidden,
        standardize_observations=not args.raw_observations,
    )


def _run(args: argparse.Namespace) -> None:
    from iwbc.experiment import ExperimentConfig, method_names, run_experiment

    dataset = load_dataset(args.dataset, root=args.root, download=args.download)
    config = ExperimentConfig(
        methods=method_names(args.methods),
        seeds=tuple(range(args.seed, args.seed + args.seeds)),
        pipeline=_pipeline(args),
        eval_episodes=args.eval_episodes,
        engine=args.engine,
        algorithm_steps=args.algo_steps,
    )
    out = args.out or f"results/{args.dataset.replace('/', '__')}"
    command = "iwbc " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    run_experiment(
        dataset, config, out, work_dir=args.work_dir, command=command, progress=not args.quiet
    )
    print(f"wrote {out}/table.md, table.csv, scores.json and returns.png")


def _report(args: argparse.Namespace) -> None:
    from iwbc.report.suite_report import report_main

    print(report_main(args.suite, args.results, args.reps))


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [n.strip() for n in text.split(",") if n.strip()]


def _bench(args: argparse.Namespace) -> int:
    from iwbc.benchmark.records import records_dir
    from iwbc.benchmark.runner import run_suite
    from iwbc.benchmark.suites import load_suite

    suite = load_suite(args.suite)
    records = records_dir(suite.name, args.results)
    summary = run_suite(
        suite,
        records,
        work_dir=args.work_dir,
        data_root=args.root,
        executor=args.executor,
        num_cpus=args.num_cpus,
        address=args.address,
        only_datasets=_names(args.only_datasets),
        only_methods=_names(args.only_methods),
        progress=not args.quiet,
    )
    print(
        f"{suite.name}: {summary.ok} runs done now, {summary.skipped} already done, "
        f"{summary.failed} failed, of {summary.total}; records in {records}"
    )
    for line in summary.errors:
        print(f"failed: {line}", file=sys.stderr)
    return 1 if summary.failed else 0


def _data_list(args: argparse.Namespace) -> None:
    ids = list_datasets(args.root)
    print("\n".join(ids) if ids else "no local Minari datasets (try `iwbc data scripted`)")


def _data_info(args: argparse.Namespace) -> None:
    dataset = load_dataset(args.dataset, root=args.root, download=args.download)
    returns = dataset.episodes.returns
    p10, p50, p90 = np.percentile(returns, [10, 50, 90])
    print(f"{dataset.id}: env {dataset.env_id}")
    print(f"  episodes {dataset.num_episodes}, steps {dataset.num_steps}")
    print(f"  obs dim {dataset.observation_dim}, action dim {dataset.action_dim}")
    print(f"  return p10/p50/p90 {p10:.1f} / {p50:.1f} / {p90:.1f}")
    print(f"  ref_min_score {dataset.ref_min_score}, ref_max_score {dataset.ref_max_score}")


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
    parser = argparse.ArgumentParser(prog="iwbc", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="the built-in default run (offline, CPU, minutes)")
    demo.add_argument("--results", default="results", help="the report goes to RESULTS/demo/")
    demo.add_argument("--root", default="data/minari", help="local Minari root for the dataset")
    demo.add_argument("--work-dir", default="runs", help="checkpoints and cached evaluations")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_demo)

    defaults = StageConfig()
    paper = StageConfig.iw_finetune()
    run = commands.add_parser("run", help="train and evaluate methods on a Minari dataset")
    run.add_argument("dataset", help="Minari dataset id, e.g. mujoco/hopper/medium-v0")
    run.add_argument("--root", default=None, help="local Minari root (default: Minari's)")
    run.add_argument("--download", action="store_true", help="download the dataset if missing")
    run.add_argument(
        "--methods",
        default="bc,filtered_bc,top10_bc,iw_bc",
        help=f"comma-separated, from {','.join((*METHODS, *ALGORITHMS))}",
    )
    run.add_argument("--seeds", type=int, default=5, help="number of training seeds (vmapped)")
    run.add_argument("--seed", type=int, default=0, help="first training seed")
    run.add_argument("--bc-steps", type=int, default=defaults.steps)
    run.add_argument("--bc-batch-size", type=int, default=defaults.batch_size)
    run.add_argument("--bc-lr", type=float, default=defaults.learning_rate)
    run.add_argument("--finetune-steps", type=int, default=paper.steps)
    run.add_argument("--finetune-batch-size", type=int, default=paper.batch_size)
    run.add_argument("--finetune-lr", type=float, default=paper.learning_rate)
    run.add_argument("--warmup-steps", type=int, default=paper.warmup_steps)
    run.add_argument("--temperature", type=float, default=paper.temperature)
    run.add_argument("--ema-decay", type=float, default=paper.ema_decay)
    run.add_argument("--no-normalize", action="store_true", help="unnormalized iw weights")
    run.add_argument("--window", type=int, default=None, help="steps per sampled episode")
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
    run.add_argument("--hidden", default="256,256,256", help="hidden layer widths")
    run.add_argument(
        "--algo-steps", type=int, default=None, help="updates of the offline-RL baselines (1M)"
    )
    run.add_argument("--eval-episodes", type=int, default=100)
    run.add_argument(
        "--engine",
        default="auto",
        choices=ENGINES,
        help="evaluation engine; auto: MJX on a GPU, else the CPU batch engine",
    )
    run.add_argument("--out", default=None, help="default: results/<dataset id>")
    run.add_argument("--work-dir", default="runs")
    run.add_argument("--quiet", action="store_true")
    run.set_defaults(func=_run)

    report = commands.add_parser(
        "report", help="tables, statistics and figures of a benchmark suite, from its records"
    )
    report.add_argument("--suite", required=True, help="the suite `iwbc bench --suite` ran")
    report.add_argument("--results", default="results", help="reads RESULTS/<suite>/records")
    report.add_argument("--reps", type=int, default=2000, help="bootstrap resamples of the CIs")
    report.set_defaults(func=_report)

    bench = commands.add_parser(
        "bench", help="run a benchmark suite (datasets × methods × seeds), resumably"
    )
    bench.add_argument("--suite", required=True, help="a shipped suite (iwbc/suites) or a path")
    bench.add_argument("--executor", default="local", choices=("local", "ray"))
    bench.add_argument("--results", default="results", help="records go to RESULTS/<suite>/")
    bench.add_argument("--work-dir", default="runs", help="checkpoints and cached evaluations")
    bench.add_argument("--root", default=None, help="local Minari root (default: Minari's)")
    bench.add_argument("--only-datasets", default=None, help="comma-separated subset")
    bench.add_argument("--only-methods", default=None, help="comma-separated subset")
    bench.add_argument("--num-cpus", type=int, default=None, help="local Ray instance's CPUs")
    bench.add_argument("--address", default=None, help="Ray cluster address (default: local)")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    bench.set_defaults(func=_bench)

    data = commands.add_parser("data", help="local datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    listing = data_commands.add_parser("list", help="local Minari dataset ids")
    listing.add_argument("--root", default=None)
    listing.set_defaults(func=_data_list)
    info = data_commands.add_parser("info", help="size, returns and reference scores")
    info.add_argument("dataset")
    info.add_argument("--root", default=None)
    info.add_argument("--download", action="store_true")
    info.set_defaults(func=_data_info)
    scripted = data_commands.add_parser(
        "scripted", help="make the mixed-quality InvertedDoublePendulum dataset"
    )
    scripted.add_argument("--dataset", default=None)
    scripted.add_argument("--episodes", type=int, default=200)
    scripted.add_argument("--seed", type=int, default=0)
    scripted.add_argument("--root", default=None)
    scripted.add_argument("--overwrite", action="store_true")
    scripted.set_defaults(func=_data_scripted)
    add_generate_parser(data_commands)
    add_data_parsers(data_commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``iwbc`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except (DatasetError, ValueError, OSError, NotImplementedError) as error:
        print(f"iwbc: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
