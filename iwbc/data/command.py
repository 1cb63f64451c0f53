"""``iwbc data import-d4rl`` and ``iwbc data minari-tiers``: outside datasets made ready to run."""

from __future__ import annotations

import argparse
from pathlib import Path

from iwbc.data.d4rl import TASKS
from iwbc.errors import UserError
from iwbc.options import ROOT_HELP, nonnegative_int, positive_int


def _import_d4rl(args: argparse.Namespace) -> None:
    from iwbc.data.d4rl import import_d4rl

    if not Path(args.file).is_file():
        raise UserError(f"{args.file} is not a file; pass the path of a D4RL .hdf5 file")
    result = import_d4rl(
        args.file, name=args.name, env=args.env, root=args.root, overwrite=args.overwrite
    )
    dropped = f", {result.dropped_steps} trailing steps dropped" if result.dropped_steps else ""
    print(
        f"wrote {result.dataset_id}: {result.episodes} episodes, {result.steps} steps{dropped}; "
        f"evaluated on {result.env_label}; ref_min_score {result.ref_min_score}, "
        f"ref_max_score {result.ref_max_score} (D4RL's)"
    )


def _minari_tiers(args: argparse.Namespace) -> None:
    from iwbc.data.minari_tiers import prepare_namespace, resolve_namespace

    for name in args.namespaces:
        resolve_namespace(name)
    for name in args.namespaces:
        result = prepare_namespace(
            name,
            root=args.root,
            download=args.download,
            episodes=args.episodes,
            seed=args.seed,
            overwrite=args.overwrite,
        )
        print(
            f"{result.namespace} ({result.env_id}): ref_min_score {result.ref_min_score:.2f} "
            f"({result.reference['ref_min_rule']}), ref_max_score {result.ref_max_score:.2f} "
            f"({result.reference['ref_max_rule']})"
        )
        medium_expert = result.medium_expert or f"{result.namespace}/medium-expert-v0 (kept)"
        if result.medium_expert_skipped is not None:
            medium_expert = f"not made: {result.medium_expert_skipped}"
        print(f"  medium-expert: {medium_expert}")


def add_data_parsers(commands: argparse._SubParsersAction) -> None:
    """Register ``import-d4rl`` and ``minari-tiers`` under ``iwbc data``."""
    d4rl = commands.add_parser(
        "import-d4rl", help="a D4RL gym-MuJoCo v2 HDF5 file as a local Minari dataset"
    )
    d4rl.add_argument("file", help="e.g. hopper_medium_replay-v2.hdf5")
    d4rl.add_argument("--name", default=None, help="dataset id (default: d4rl/<env>/<tier>-v2)")
    d4rl.add_argument("--env", default=None, help=f"from {', '.join(TASKS)} (default: file name)")
    d4rl.add_argument("--root", default=None, help=ROOT_HELP)
    d4rl.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    d4rl.set_defaults(func=_import_d4rl)

    tiers = commands.add_parser(
        "minari-tiers",
        help="reference scores and a medium-expert tier for Minari's mujoco/<task> datasets",
    )
    tiers.add_argument(
        "namespaces", nargs="+", metavar="NAMESPACE", help="e.g. mujoco/hopper (or hopper)"
    )
    tiers.add_argument("--root", default=None, help=ROOT_HELP)
    tiers.add_argument("--download", action="store_true", help="fetch missing tiers from Minari")
    tiers.add_argument(
        "--episodes",
        type=positive_int,
        default=100,
        help="uniform-random episodes (default: %(default)s)",
    )
    tiers.add_argument(
        "--seed",
        type=nonnegative_int,
        default=0,
        help="seed of the random actions (default: %(default)s)",
    )
    tiers.add_argument(
        "--overwrite", action="store_true", help="recompute the scores, rewrite medium-expert"
    )
    tiers.set_defaults(func=_minari_tiers)
