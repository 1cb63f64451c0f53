"""Minari's own MuJoCo datasets made usable like D4RL's: reference scores and a medium-expert tier.

Minari's ``mujoco/<task>/{simple,medium,expert}-v0`` (SB3 SAC/TQC policies on Gymnasium v5)
carry no reference scores and no medium-expert tier. ``iwbc data generate`` computes its
references as the mean returns of 100 uniform-random and 100 deterministic expert episodes; the
policy behind Minari's ``expert-v0`` is not available here, so the rule for a Minari namespace is:

- ``ref_min_score``: the mean return of ``episodes`` (100) uniform-random episodes, reset seeds
  ``REFERENCE_SEED_BASE + i`` and the action stream of the generator's ``reference_scores``
  (``numpy.random.default_rng([seed, 4])``) on the CPU batch engine, so for the same task and
  seed it is the number ``iwbc data generate`` writes;
- ``ref_max_score``: the mean undiscounted return of every episode of ``<namespace>/expert-v0``
  (the expert's own stochastic rollouts, not a deterministic evaluation).

Where ``expert-v0``'s own metadata carries reference scores (Minari computes them from the
expert policy when a publisher passes it), those serve the whole namespace instead, so that no
tier is normalized otherwise than the expert.

They are stored per namespace beside the root (:mod:`iwbc.data.reference_cache`), so every
dataset of the namespace loads with them. ``medium-expert-v0`` is ``medium-v0``'s episodes then
``expert-v0``'s, as D4RL concatenated its medium and expert files, with the scores in its metadata.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from gymnasium.envs.registration import EnvSpec
from minari.data_collector import EpisodeBuffer

from iwbc.data.errors import DatasetError
from iwbc.data.minari_io import (
    METADATA_SCORES,
    datasets_root,
    fetch_if_missing,
    load_dataset,
    minari_root,
    open_dataset,
)
from iwbc.data.minari_write import dataset_exists, write_dataset
from iwbc.data.reference_cache import (
    CACHE_FILE,
    cached_entry,
    drop_reference_scores,
    expert_change,
    namespace_of,
    store_reference_scores,
    stored_counts,
    tier_id,
)
from iwbc.envs import rollout_returns
from iwbc.envs.gymnasium_engine import make_env
from iwbc.envs.specs import Env, spec_for
from iwbc.errors import UserError

# The generator's reset seeds and action-stream tag for reference episodes
# (iwbc.datagen.generate.REFERENCE_SEED_BASE and its "reference-random" tag); a test checks
# that both give the same ref_min.
REFERENCE_SEED_BASE = 1_000_000_000
_RANDOM_TAG = 4


def resolve_namespace(name: str) -> str:
    """``hopper`` -> ``mujoco/hopper``; a namespace with a slash is taken as it is."""
    name = name.strip().strip("/")
    if not name:
        raise DatasetError("empty namespace; pass e.g. mujoco/hopper")
    return name if "/" in name else f"mujoco/{name}"


def random_policy_engine(env: Env) -> str:
    """The engine uniform-random episodes run on: iwbc's batch engine where it has the task,
    else Gymnasium's; never MJX, since reference scores come from MuJoCo's C engine."""
    try:
        spec_for(env)
    except UserError:
        return "gymnasium"
    return "batch"


def uniform_random_return(env: Env, episodes: int = 100, seed: int = 0) -> float:
    """Mean return of ``episodes`` uniform-random episodes on fixed reset seeds.

    ``env`` is an id or the expert's recorded EnvSpec (its arguments apply), run on
    ``random_policy_engine(env)``; actions are drawn uniformly in the action bounds from one
    stream, as ``iwbc.datagen.generate.reference_scores`` does.
    """
    if episodes < 1:
        raise UserError(f"episodes must be at least 1, got {episodes}")
    rng = np.random.default_rng([seed, _RANDOM_TAG])
    engine = random_policy_engine(env)
    if engine == "batch":
        low, high = spec_for(env).action_bounds()
    else:
        made = make_env(env)
        low, high = made.action_space.low, made.action_space.high
        made.close()

    def act(obs: np.ndarray) -> np.ndarray:
        return rng.uniform(low, high, (obs.shape[0], np.size(low)))

    seeds = REFERENCE_SEED_BASE + np.arange(episodes)
    return float(rollout_returns(env, act, seeds, engine=engine).returns.mean())


ENGINE_NAMES = {"batch": "iwbc batch engine", "gymnasium": "Gymnasium engine"}


@dataclasses.dataclass(frozen=True)
class TierResult:
    """What ``prepare_namespace`` found or made."""

    namespace: str
    env_id: str
    ref_min_score: float
    ref_max_score: float
    reference: dict
    medium_expert: str | None  # the id written, None if it existed and was kept (or not made)
    # Why no medium-expert was made (its medium tier is not local and no download was asked),
    # else None: the scores serve the namespace without it.
    medium_expert_skipped: str | None = None


def episode_buffers(dataset_id: str, root: str | Path | None) -> list[EpisodeBuffer]:
    """A dataset's episodes as stored (float64 observations and rewards kept)."""
    with minari_root(root):
        dataset = open_dataset(dataset_id)
        attrs = dataset.storage.get_episode_metadata(dataset.episode_indices)
        return [
            EpisodeBuffer(
                # The reset seed (and options) each episode was recorded with: replayable.
                seed=meta.get("seed"),
                options=meta.get("options"),
                observations=np.asarray(e.observations),
                actions=np.asarray(e.actions),
                rewards=[float(r) for r in e.rewards],
                terminations=[bool(t) for t in e.terminations],
                truncations=[bool(t) for t in e.truncations],
            )
            for e, meta in zip(dataset.iterate_episodes(), attrs, strict=True)
        ]


def stored_env_spec(dataset_id: str, root: str | Path | None) -> EnvSpec | None:
    with minari_root(root):
        return open_dataset(dataset_id).env_spec


def stored_reference_scores(dataset_id: str, root: str | Path | None) -> tuple[float, float] | None:
    """The reference scores in a dataset's own metadata (not the namespace cache's), if any:
    None too where they are no numbers, so a damaged medium-expert is rewritten, not a crash."""
    with minari_root(root):
        metadata = open_dataset(dataset_id).storage.metadata
    try:
        return float(metadata["ref_min_score"]), float(metadata["ref_max_score"])
    except (KeyError, TypeError, ValueError):
        return None


def reference_entry(
    namespace: str,
    *,
    root: str | Path | None = None,
    download: bool = False,
    episodes: int = 100,
    seed: int = 0,
) -> dict:
    """The namespace's reference scores, with how they were made: those the expert tier's own
    metadata carries (Minari computes them when its publisher passes the expert policy), so
    that every tier of the namespace is normalized as the expert is; else by the module's rule.
    """
    expert_id = tier_id(namespace, "expert")
    if not download and not dataset_exists(expert_id, root):
        raise DatasetError(
            f"{namespace}'s reference scores come from its expert tier, {expert_id}, which is not "
            "in the local root: rerun with --download to fetch it, or give the scores yourself "
            '(iwbc run --ref-min/--ref-max, a suite\'s [reference_scores."<id>"])'
        )
    expert = load_dataset(expert_id, root=root, download=download)
    if expert.env_id is None:
        raise DatasetError(f"{expert.id} records no env, so no random policy can be run on it")
    started = time.perf_counter()
    if expert.ref_source == METADATA_SCORES:  # its own metadata's, checked on loading
        ref_min, ref_max = expert.ref_min_score, expert.ref_max_score
        min_rule = max_rule = f"{expert.id}'s own metadata"
    else:
        ref_min = uniform_random_return(expert.env, episodes, seed)
        ref_max = float(expert.returns.mean())
        if ref_max <= ref_min:
            raise DatasetError(
                f"{expert.id}'s mean return {ref_max:.1f} is not above the random policy's "
                f"{ref_min:.1f}; normalized scores would be meaningless"
            )
        min_rule = (
            f"mean return of {episodes} uniform-random episodes, reset seeds "
            f"{REFERENCE_SEED_BASE} + i, action seed {seed}, "
            f"{ENGINE_NAMES[random_policy_engine(expert.env)]}"
        )
        max_rule = (
            f"mean return of the {expert.num_episodes} episodes of {expert.id} "
            f"({expert.num_steps} steps)"
        )
    return {
        "ref_min_score": ref_min,
        "ref_max_score": ref_max,
        "env_id": expert.env_id,
        # What the expert tier held: a replaced one makes these scores stale (expert_change).
        "expert_episodes": expert.num_episodes,
        "expert_steps": expert.num_steps,
        "episodes": episodes,
        "seed": seed,
        "ref_min_rule": min_rule,
        "ref_max_rule": max_rule,
        "seconds": round(time.perf_counter() - started, 2),
        "made_by": "iwbc data minari-tiers",
    }


def derive_missing_scores(
    dataset_id: str,
    root: str | Path | None,
    note: Callable[[str], object],
    *,
    download: bool = False,
) -> bool:
    """Make and cache the reference scores of ``dataset_id``'s namespace, as ``iwbc data
    minari-tiers`` does (its medium-expert aside), when the dataset's metadata has none, the
    namespace has none cached and its ``expert-v0`` on the same env is local; ``note`` says what
    was made. True if it made them; anything else is left to loading to report.

    So ``iwbc run`` and ``iwbc bench`` work on a Minari ``mujoco/<task>`` tier as they come,
    at the cost of 100 random episodes once per namespace. With ``download`` (``iwbc run
    --download``) the dataset is fetched first if missing and, when it has no scores, its
    namespace's ``expert-v0`` too; a namespace with no such tier remotely is left to loading.
    """
    namespace = namespace_of(dataset_id)
    expert_id = tier_id(namespace, "expert")
    base = datasets_root(root)  # found without Minari's lookup, which would create it
    if namespace and download:
        fetch_if_missing(dataset_id, root)
    if (
        not namespace
        or not (base / dataset_id).is_dir()
        or cached_entry(base, namespace) is not None
        or stored_reference_scores(dataset_id, root) is not None
    ):
        return False
    if download:
        try:
            downloaded = fetch_if_missing(expert_id, root)
        except DatasetError:
            return False
        if downloaded:
            note(f"{dataset_id} has no reference scores: downloaded {expert_id} to make them")
    if not (base / expert_id).is_dir():
        return False
    recorded, expert = stored_env_spec(dataset_id, root), stored_env_spec(expert_id, root)
    if recorded is None or expert is None or recorded.id != expert.id:
        return False
    entry = reference_entry(namespace, root=root)
    store_reference_scores(base, namespace, entry)
    note(
        f"{dataset_id} has no reference scores: made {namespace}'s as `iwbc data minari-tiers "
        f"{namespace}` does, ref_min_score {entry['ref_min_score']:.2f} "
        f"({entry['ref_min_rule']}), ref_max_score {entry['ref_max_score']:.2f} "
        f"({entry['ref_max_rule']}); cached in {base / CACHE_FILE}"
    )
    return True


def _joins(base: Path, target: str, medium_id: str, expert_id: str) -> bool:
    """Whether medium-expert holds as many episodes and steps as its two tiers do now (one of
    them replaced since it was joined would leave it stale); True where a count is unknown."""
    counts = [stored_counts(base, dataset_id) for dataset_id in (target, medium_id, expert_id)]
    if any(count is None for count in counts):
        return True
    joined, medium, expert = counts
    return joined == (medium[0] + expert[0], medium[1] + expert[1])


def prepare_namespace(
    name: str,
    *,
    root: str | Path | None = None,
    download: bool = False,
    episodes: int = 100,
    seed: int = 0,
    overwrite: bool = False,
) -> TierResult:
    """Reference scores (computed once, cached) and ``medium-expert-v0`` for one namespace
    (made only where ``medium-v0`` is local or ``download`` may fetch it: the scores need only
    ``expert-v0``).

    ``overwrite`` recomputes the scores and rewrites medium-expert; without it both are kept
    when they already exist (so a second call costs nothing), unless ``episodes`` or ``seed``
    differ from the cached scores', or the tiers they were made from changed since (their
    episode and step counts).
    """
    namespace = resolve_namespace(name)
    base = datasets_root(root)  # not Minari's lookup, which would create it
    entry = None if overwrite else cached_entry(base, namespace)
    if (
        entry is None
        or (entry.get("episodes"), entry.get("seed")) != (episodes, seed)
        or expert_change(base, namespace, entry) is not None
    ):
        drop_reference_scores(base, namespace)
        entry = reference_entry(
            namespace, root=root, download=download, episodes=episodes, seed=seed
        )
        store_reference_scores(base, namespace, entry)
    medium_id, expert_id = tier_id(namespace, "medium"), tier_id(namespace, "expert")
    target = tier_id(namespace, "medium-expert")
    written = skipped = None
    # Rewritten too when its scores are not the namespace's (recomputed with another seed or
    # episode count): its own metadata would otherwise outrank the cache.
    scores = (entry["ref_min_score"], entry["ref_max_score"])
    due = (
        overwrite
        or not dataset_exists(target, root)
        or stored_reference_scores(target, root) != scores
        or not _joins(base, target, medium_id, expert_id)
    )
    if due and not download and not dataset_exists(medium_id, root):
        skipped = (
            f"{medium_id} is not in the local root; rerun with --download (or download it) to "
            "make it"
        )
    elif due:
        medium = load_dataset(medium_id, root=root, download=download)
        expert = load_dataset(expert_id, root=root, download=download)
        if (medium.env_id, medium.observation_dim, medium.action_dim) != (
            expert.env_id,
            expert.observation_dim,
            expert.action_dim,
        ):
            raise DatasetError(
                f"{medium_id} and {expert_id} differ in env or dimensions; cannot join them"
            )
        buffers = episode_buffers(medium_id, root) + episode_buffers(expert_id, root)
        write_dataset(
            target,
            buffers,
            env_id=expert.env_spec or expert.env_id,
            ref_min_score=entry["ref_min_score"],
            ref_max_score=entry["ref_max_score"],
            description=(
                f"{medium_id}'s {medium.num_episodes} episodes then {expert_id}'s "
                f"{expert.num_episodes}, as D4RL built medium-expert. ref_min_score: "
                f"{entry['ref_min_rule']}; ref_max_score: {entry['ref_max_rule']}. Made by "
                "`iwbc data minari-tiers`."
            ),
            algorithm_name="medium and expert tiers joined (iwbc)",
            root=root,
            overwrite=True,
        )
        written = target
    return TierResult(
        namespace=namespace,
        env_id=entry["env_id"],
        ref_min_score=float(entry["ref_min_score"]),
        ref_max_score=float(entry["ref_max_score"]),
        reference=entry,
        medium_expert=written,
        medium_expert_skipped=skipped,
    )
