"""Every method iwbc trains, by name: its agent, config, training data and starting point.

One table serves the CLI, suites, the benchmark harness and reports. A method is
(agent class, config class, episodes it trains on, the method it starts from):

- ``bc``: BC on all trajectories (also the q_ref and the starting point of the fine-tunes).
- ``filtered_bc``: the authors' SFT on curated data: BC fine-tuned from ``bc`` on the stratified
  union of the trajectories above the 90th, 95th and 98th return percentiles.
- ``top10_bc``: CORL's 10%BC: BC from scratch on the top 10% of trajectories by return.
- ``iw_bc``: importance-weighted BC (trajectory ratios) fine-tuned from ``bc`` on the same
  curated data as ``filtered_bc``, with q_ref = ``bc`` frozen and q_iw an EMA of the policy.
- ``iw_bc_step``: the per-step importance-weight variant.
- ``iw_bc_quality``: the quality-scored generalization: all trajectories, each weight multiplied
  by the trajectory's min-max normalized return instead of a hard filter.
- ``td3_bc``, ``iql``, ``cql``, ``awac``: the offline-RL baselines, CORL's D4RL defaults.

Adding a method is one agent module and one line here.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import jax.numpy as jnp
import numpy as np

from iwbc.agents.awac import AWACAgent, AWACConfig
from iwbc.agents.bc import BCAgent, BCConfig, check_start
from iwbc.agents.common import stated_fields
from iwbc.agents.cql import CQLAgent, CQLConfig
from iwbc.agents.iql import IQLAgent, IQLConfig
from iwbc.agents.td3_bc import TD3BCAgent, TD3BCConfig
from iwbc.core.agent import Agent, DataSpec
from iwbc.core.sampling import (
    DeviceEpisodes,
    prepare_data,
    return_spread,
    returns_reward_scale,
    value_bounds,
)
from iwbc.core.trainer import check_chunk_size, check_seeds, create_agents, train
from iwbc.data import EpisodeData, OfflineDataset, quality_scores, stratified_top, top_fraction
from iwbc.data.statistics import normalization_stats
from iwbc.errors import UserError

Selection = Literal["all", "stratified", "top_fraction"]
Family = Literal["bc", "offline_rl"]


@dataclasses.dataclass(frozen=True)
class Method:
    """How one method trains: agent and config class, which episodes, where it starts.

    ``loss`` is the BC family's loss (None for the baselines, whose agent is the algorithm);
    ``start`` names the method whose final agent this one is created from (``init``).
    """

    name: str
    agent: type[Agent]
    config: type
    family: Family
    selection: Selection = "all"
    start: str | None = None
    loss: str | None = None

    @property
    def stage_name(self) -> str:
        """The method and its stage, as progress bars and divergence errors name them."""
        if self.family == "offline_rl":
            return f"{self.name} training"
        if self.name == "bc":
            return "bc pre-training"
        return f"{self.name} {'fine-tune' if self.start else 'training from scratch'}"


def _bc(name: str, selection: Selection, start: str | None, loss: str) -> Method:
    return Method(name, BCAgent, BCConfig, "bc", selection, start, loss)


def _baseline(name: str, agent: type[Agent], config: type) -> Method:
    return Method(name, agent, config, "offline_rl")


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        _bc("bc", "all", None, "bc"),
        _bc("filtered_bc", "stratified", "bc", "bc"),
        _bc("top10_bc", "top_fraction", None, "bc"),
        _bc("iw_bc", "stratified", "bc", "iw_trajectory"),
        _bc("iw_bc_step", "stratified", "bc", "iw_step"),
        _bc("iw_bc_quality", "all", "bc", "iw_quality"),
        _baseline("td3_bc", TD3BCAgent, TD3BCConfig),
        _baseline("iql", IQLAgent, IQLConfig),
        _baseline("cql", CQLAgent, CQLConfig),
        _baseline("awac", AWACAgent, AWACConfig),
    )
}
# The offline-RL baselines: each is its own algorithm and config (``--algo-steps`` sets them).
BASELINES: tuple[str, ...] = tuple(m.name for m in METHODS.values() if m.family == "offline_rl")
# Methods others start from: they train once per dataset and are shared by their dependents.
STARTS: frozenset[str] = frozenset(m.start for m in METHODS.values() if m.start is not None)


def resolve_methods(names: Sequence[str]) -> list[Method]:
    """Look up method names, with a one-line error listing the known ones."""
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise UserError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    return [METHODS[n] for n in names]


@dataclasses.dataclass(frozen=True)
class SelectionConfig:
    """How the curated subsets are chosen: the paper's percentiles and CORL's top fraction."""

    percentiles: tuple[float, ...] = (90.0, 95.0, 98.0)
    top_fraction: float = 0.1

    def __post_init__(self) -> None:
        if not self.percentiles or not all(0.0 <= p <= 100.0 for p in self.percentiles):
            raise UserError(
                f"percentiles must be a non-empty list in [0, 100], got {self.percentiles!r}"
            )
        if not 0.0 < self.top_fraction <= 1.0:
            raise UserError(f"top_fraction must be in (0, 1], got {self.top_fraction}")

    def index(self, selection: Selection, returns: np.ndarray) -> np.ndarray:
        """Indices of the episodes ``selection`` keeps (with repeats for the stratified union)."""
        if selection == "stratified":
            return stratified_top(returns, self.percentiles)
        if selection == "top_fraction":
            return top_fraction(returns, self.top_fraction)
        return np.arange(len(returns))


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """A method's training data on the device, the spec its agent is created for, and how many
    of the dataset's episodes it trains on."""

    data: Any
    spec: DataSpec
    num_episodes: int


def training_data(
    method: Method, data: OfflineDataset | EpisodeData, config: Any, selection: SelectionConfig
) -> TrainingData:
    """The data ``method`` trains on, on the device, as its agent samples it.

    From a loaded dataset the spec carries its action box's scale (agents whose loss is stated
    in the env's action units need it); bare episodes are taken to be a [-1, 1] box's.

    Episodes (BC family): the selected episodes with their quality scores (relative to the whole
    dataset, so a subset keeps its episodes' scores), and the whole dataset's observation
    statistics, which every method, q_ref and q_iw standardize with alike. Transitions
    (baselines): every step, normalized and reward-scaled as the config asks.
    """
    episodes, action_scale = _episodes_and_scale(data)
    if method.agent.data_kind == "episodes":
        returns = episodes.returns
        index = selection.index(method.selection, returns)
        chosen = episodes.subset(index)
        device = DeviceEpisodes.from_episodes(
            chosen, quality_scores(returns)[index], max_length=episodes.max_length
        )
        mean, std = normalization_stats(episodes.observations)
        spec = _spec(mean, std, episodes.actions.shape[-1], action_scale)
        return TrainingData(device, spec, device.num_episodes)
    transitions = episodes.to_transitions()
    prepared, mean, std = prepare_data(transitions, config)
    spec = _spec(mean, std, np.shape(transitions.actions)[1], action_scale)
    return TrainingData(prepared, spec, episodes.num_episodes)


def _episodes_and_scale(
    data: OfflineDataset | EpisodeData,
) -> tuple[EpisodeData, tuple[float, ...] | None]:
    if isinstance(data, OfflineDataset):
        return data.episodes, data.action_scale
    return data, None


def training_episodes(method: Method, episodes: EpisodeData, selection: SelectionConfig) -> int:
    """How many of the dataset's episodes ``method`` trains on (counting repeats), without
    preparing its data."""
    if method.agent.data_kind == "episodes":
        return len(selection.index(method.selection, episodes.returns))
    return episodes.num_episodes


def critic_value_bounds(
    method: Method, episodes: EpisodeData, config: Any
) -> tuple[float, float] | None:
    """The range a critic of ``method`` trained on ``episodes`` can reach by TD on them, in the
    units of the rewards it trains on (scaled where ``config`` says so): see
    :func:`iwbc.core.sampling.value_bounds`. None for methods without a critic."""
    if method.agent.data_kind == "episodes":
        return None
    scaled = getattr(config, "normalize_rewards", False)
    scale = returns_reward_scale(episodes.returns) if scaled else 1.0
    rewards = np.asarray(episodes.rewards, np.float64) * scale
    return value_bounds(rewards, config.discount)


def _spec(
    mean: np.ndarray, std: np.ndarray, action_dim: int, action_scale: tuple[float, ...] | None
) -> DataSpec:
    return DataSpec(
        jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32), action_dim, action_scale
    )


@dataclasses.dataclass(frozen=True)
class TrainedMethod:
    """One method's seed-stacked agent, its per-chunk training history and its data size."""

    method: str
    agent: Agent
    history: list[dict]
    num_episodes: int


def train_methods(
    data: OfflineDataset | EpisodeData,
    method_names: Sequence[str],
    seeds: Sequence[int],
    configs: dict[str, Any] | None = None,
    *,
    selection: SelectionConfig | None = None,
    checkpoint_dir: str | Path | None = None,
    chunk_size: int = 500,
    progress: bool = True,
) -> dict[str, TrainedMethod]:
    """Train the named methods for all seeds at once (vmapped), each start trained once, on a
    loaded dataset (or its bare episodes, taken to be a [-1, 1] action box's: see
    :func:`training_data`).

    ``configs`` maps a method trained (a fine-tune's start ``bc`` included) to its config
    (default: its config class's defaults; the BC fine-tunes default to ``BCConfig.iw_finetune``
    with their loss). A BC-family method's name fixes its loss: its config's ``loss`` is
    replaced with the method's, as suites do. Seeds, configs, chunk size and every method's
    data requirements are checked before anything trains. With ``checkpoint_dir`` every method
    checkpoints after each chunk and resumes from there; a checkpoint records the data's
    fingerprint, config, seeds and selection it was trained with, and one trained otherwise is
    refused rather than returned.
    """
    seeds = check_seeds(seeds)
    chunk_size = check_chunk_size(chunk_size)
    methods = resolve_methods(method_names)
    selection = SelectionConfig() if selection is None else selection
    checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
    chosen = method_configs(methods, configs or {})
    episodes, _ = _episodes_and_scale(data)
    for name, config in chosen.items():
        if getattr(config, "normalize_rewards", False):
            return_spread(episodes.returns, name)  # IQL's (and CQL's) scaling, refused up front
    data_fingerprint = None if checkpoint_dir is None else _training_fingerprint(data)
    results: dict[str, TrainedMethod] = {}
    trained_on: dict[str, dict[str, Any]] = {}

    def run(method: Method) -> TrainedMethod:
        if method.name in results:
            return results[method.name]
        init = None if method.start is None else run(METHODS[method.start]).agent
        config = chosen[method.name]
        prepared = training_data(method, data, config, selection)
        checkpoint = None if checkpoint_dir is None else checkpoint_dir / f"{method.name}.msgpack"
        trained_on[method.name] = {
            "method": method.name,
            "data": data_fingerprint,
            "config": stated_fields(config),
            "seeds": list(seeds),
            "selection": dataclasses.asdict(selection),
            "start": trained_on.get(method.start),
        }
        agent, history = train(
            create_agents(method.agent, config, prepared.spec, seeds, init),
            prepared.data,
            config.steps,
            chunk_size=chunk_size,
            checkpoint=checkpoint,
            description=method.stage_name,
            progress=progress,
            trained_on=None if checkpoint is None else trained_on[method.name],
        )
        results[method.name] = TrainedMethod(method.name, agent, history, prepared.num_episodes)
        return results[method.name]

    for method in methods:
        run(method)
    return {m.name: results[m.name] for m in methods}


def method_configs(methods: Sequence[Method], configs: dict[str, Any]) -> dict[str, Any]:
    """The config each of ``methods`` and the starts they need trains with: ``configs``' (its
    loss the method's) or :func:`default_config`. One-line errors for a key naming no method
    trained, a config of another class, and a fine-tune whose network its start's is not."""
    needed: list[Method] = []
    for method in methods:
        chain = [method]
        while chain[-1].start is not None:
            chain.append(METHODS[chain[-1].start])
        needed += [m for m in reversed(chain) if m not in needed]
    unused = [name for name in configs if name not in {m.name for m in needed}]
    if unused:
        raise UserError(
            f"configs given for {', '.join(map(str, unused))}, which this call does not train; "
            f"it trains {', '.join(m.name for m in needed)}"
        )
    chosen: dict[str, Any] = {}
    for method in needed:
        config = configs.get(method.name) or default_config(method)
        if not isinstance(config, method.config):
            raise ValueError(
                f"{method.name} needs a {method.config.__name__}, got a {type(config).__name__}"
            )
        if method.loss is not None and config.loss != method.loss:
            config = dataclasses.replace(config, loss=method.loss)
        if method.start is not None:
            check_start(config, chosen[method.start])
        chosen[method.name] = config
    return chosen


def _training_fingerprint(data: OfflineDataset | EpisodeData) -> str:
    """What a checkpoint's training read of ``data``: a loaded dataset's training fingerprint,
    or a hash of bare episodes (as a [-1, 1] box's)."""
    if isinstance(data, OfflineDataset):
        return data.training_fingerprint
    digest = hashlib.blake2b(digest_size=16)
    data.update_digest(digest)
    return digest.hexdigest()


def default_config(method: Method) -> Any:
    """The config a method trains with when none is given: the paper's BC pre-training for
    methods from scratch, its fine-tune for those started from BC, CORL's for baselines."""
    if method.family == "offline_rl":
        return method.config()
    base = BCConfig.iw_finetune() if method.start else BCConfig()
    return dataclasses.replace(base, loss=method.loss)
