"""The imitation methods compared by iwbc, as (data selection, starting point, loss).

- ``bc``: BC on all trajectories (also the q_ref and the starting point of the fine-tunes).
- ``filtered_bc``: the authors' SFT on curated data: BC fine-tuned from ``bc`` on the stratified
  union of the trajectories above the 90th, 95th and 98th return percentiles.
- ``top10_bc``: CORL's 10%BC: BC from scratch on the top 10% of trajectories by return.
- ``iw_bc``: importance-weighted BC (trajectory ratios) fine-tuned from ``bc`` on the same
  curated data as ``filtered_bc``, with q_ref = ``bc`` frozen and q_iw an EMA of the policy.
- ``iw_bc_step``: the per-step importance-weight variant.
- ``iw_bc_quality``: the quality-scored generalization: all trajectories, each weight multiplied
  by the trajectory's min-max normalized return instead of a hard filter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from iwbc.data import EpisodeData, quality_scores, stratified_top, top_fraction
from iwbc.data.statistics import normalization_stats
from iwbc.errors import UserError
from iwbc.policies import GaussianPolicy
from iwbc.sampling import DeviceEpisodes
from iwbc.train import LossName, StageConfig, init_policy_params, init_train_state, train_stage

Selection = Literal["all", "stratified", "top_fraction"]


@dataclasses.dataclass(frozen=True)
class Method:
    """How one method picks its data, where it starts and what it minimizes."""

    name: str
    selection: Selection
    start: Literal["scratch", "bc"]
    loss: LossName

    @property
    def stage_name(self) -> str:
        """The method and its stage, as progress bars and divergence errors name them."""
        if self.name == "bc":
            return "bc pre-training"
        return f"{self.name} {'fine-tune' if self.start == 'bc' else 'training from scratch'}"


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("bc", "all", "scratch", "bc"),
        Method("filtered_bc", "stratified", "bc", "bc"),
        Method("top10_bc", "top_fraction", "scratch", "bc"),
        Method("iw_bc", "stratified", "bc", "iw_trajectory"),
        Method("iw_bc_step", "stratified", "bc", "iw_step"),
        Method("iw_bc_quality", "all", "bc", "iw_quality"),
    )
}


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything that defines a training run besides the data and the seeds.

    Defaults are the paper's: BC pre-training (10k steps, Adam 1e-3, 128 episodes), fine-tunes
    of 2k steps (Adam 4e-5, warm-up 300, cosine; 256 episodes; temperature 10; normalized),
    a 3×256 policy, percentiles 90/95/98 and a 10% top fraction; except two choices made on
    evidence (METHOD.md, README): observations standardized with the dataset's statistics, as
    CORL does for BC and every baseline (``standardize_observations=False`` is the authors'
    raw input), and transition-uniform step weighting (``StageConfig.weighting``).
    """

    pretrain: StageConfig = dataclasses.field(default_factory=StageConfig)
    finetune: StageConfig = dataclasses.field(default_factory=StageConfig.iw_finetune)
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    percentiles: tuple[float, ...] = (90.0, 95.0, 98.0)
    top_fraction: float = 0.1
    chunk_size: int = 500
    standardize_observations: bool = True

    def __post_init__(self) -> None:
        dims = self.hidden_dims
        if not dims or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
            raise UserError(f"hidden_dims must be a non-empty list of integers, got {dims!r}")
        if min(dims) < 1:
            raise UserError(f"hidden_dims must be positive layer widths, got {dims!r}")
        if not self.percentiles or not all(0.0 <= p <= 100.0 for p in self.percentiles):
            raise UserError(
                f"percentiles must be a non-empty list in [0, 100], got {self.percentiles!r}"
            )
        if not 0.0 < self.top_fraction <= 1.0:
            raise UserError(f"top_fraction must be in (0, 1], got {self.top_fraction}")
        if self.chunk_size < 1:
            raise UserError(f"chunk_size must be at least 1, got {self.chunk_size}")

    def policy(self, action_dim: int) -> GaussianPolicy:
        """The policy network every method of the pipeline trains."""
        return GaussianPolicy(
            action_dim=action_dim,
            hidden_dims=self.hidden_dims,
            standardize=self.standardize_observations,
        )

    def statistics(self, episodes: EpisodeData) -> tuple[np.ndarray, np.ndarray] | None:
        """The observation statistics of the whole dataset (every method's, q_ref's and q_iw's
        alike), or None without standardization."""
        if not self.standardize_observations:
            return None
        return normalization_stats(episodes.observations[episodes.mask > 0])

    def stage(self, method: Method) -> StageConfig:
        """The stage a method trains with: pre-training from scratch, else the fine-tune."""
        base = self.pretrain if method.start == "scratch" else self.finetune
        return dataclasses.replace(base, loss=method.loss)


@dataclasses.dataclass(frozen=True)
class TrainedMethod:
    """Seed-stacked parameters of one method, the policy they belong to and the per-chunk
    training history."""

    method: str
    policy: GaussianPolicy
    params: Any
    history: list[dict]
    num_episodes: int


def resolve_methods(names: Sequence[str]) -> list[Method]:
    """Look up method names, with a one-line error listing the known ones."""
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise UserError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    return [METHODS[n] for n in names]


def select_episodes(
    episodes: EpisodeData, method: Method, config: PipelineConfig
) -> DeviceEpisodes:
    """The method's training episodes, on the device, with quality scores attached."""
    returns = episodes.returns
    if method.selection == "stratified":
        index = stratified_top(returns, config.percentiles)
    elif method.selection == "top_fraction":
        index = top_fraction(returns, config.top_fraction)
    else:
        index = np.arange(episodes.num_episodes)
    chosen = episodes.subset(index)
    # Quality is relative to the whole dataset, so a subset keeps its episodes' scores.
    quality = quality_scores(returns)[index]
    return DeviceEpisodes.from_numpy(chosen.observations, chosen.actions, chosen.mask, quality)


def train_methods(
    episodes: EpisodeData,
    action_dim: int,
    method_names: Sequence[str],
    seeds: Sequence[int],
    config: PipelineConfig | None = None,
    *,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, TrainedMethod]:
    """Train the named methods for all seeds at once (vmapped), sharing one BC pre-training.

    With ``checkpoint_dir`` every stage checkpoints after each chunk and resumes from there.
    """
    config = PipelineConfig() if config is None else config
    methods = resolve_methods(method_names)
    policy = config.policy(action_dim)
    observation_dim = episodes.observations.shape[-1]
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None

    def run(method: Method, start_params: Any, ref_params: Any = None) -> TrainedMethod:
        stage = config.stage(method)
        data = select_episodes(episodes, method, config)
        state = init_train_state(stage, start_params, seeds, ref_params=ref_params)
        checkpoint = None if checkpoint_dir is None else checkpoint_dir / f"{method.name}.msgpack"
        state, history = train_stage(
            policy,
            stage,
            state,
            data,
            chunk_size=config.chunk_size,
            checkpoint=checkpoint,
            description=method.stage_name,
            progress=progress,
        )
        return TrainedMethod(method.name, policy, state.params, history, data.num_episodes)

    results: dict[str, TrainedMethod] = {}
    fresh = init_policy_params(policy, observation_dim, seeds, config.statistics(episodes))
    if any(m.name == "bc" or m.start == "bc" for m in methods):
        results["bc"] = run(METHODS["bc"], fresh)
    for method in methods:
        if method.name in results:
            continue
        if method.start == "bc":
            bc_params = results["bc"].params
            results[method.name] = run(method, bc_params, ref_params=bc_params)
        else:
            results[method.name] = run(method, fresh)
    return {m.name: results[m.name] for m in methods}
