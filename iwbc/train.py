"""Training engine: one ``jax.jit`` around a ``lax.scan`` over a chunk of updates, seeds vmapped.

A stage (BC pre-training, or an iw-BC fine-tune started from BC) is described by a frozen
:class:`StageConfig`. The train state is an immutable pytree with a leading seed axis; the
episodes stay on the device and every update samples its batch there, so no Python runs between
the updates of a chunk. Between chunks the loop shows progress and writes a checkpoint from which
a killed run resumes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import flax.serialization
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from iwbc import losses
from iwbc.errors import TrainingDiverged, UserError
from iwbc.files import write_atomic
from iwbc.losses import WEIGHTINGS, Weighting
from iwbc.policies import GaussianPolicy, policy_log_prob, with_statistics
from iwbc.sampling import FLAT_BLOCK, DeviceEpisodes, EpisodeBatch, sample_episodes

LossName = Literal["bc", "iw_trajectory", "iw_step", "iw_quality"]
LOSSES: tuple[str, ...] = ("bc", "iw_trajectory", "iw_step", "iw_quality")
# Steps between exact recomputations of log q_iw(τ)/|τ| under windows (see StageConfig).
REFRESH_EVERY = 10


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """Hyperparameters of one optimisation stage.

    Defaults are the authors' BC pre-training (10k steps, Adam 1e-3, 128 episodes) except the
    ``weighting`` of the steps, which is CORL's transition-uniform one (the authors' code weighs
    episodes; see :mod:`iwbc.losses` and METHOD.md). The iw-BC fine-tune of the paper is
    ``StageConfig.iw_finetune()``.
    """

    loss: LossName = "bc"
    steps: int = 10_000
    batch_size: int = 128
    learning_rate: float = 1e-3
    # None: constant learning rate; else linear warm-up from 0, then cosine decay to 0 at `steps`.
    warmup_steps: int | None = None
    temperature: float = 10.0
    normalize: bool = True
    # q_iw ← ema_decay · q_iw + (1 − ema_decay) · θ, every step before the loss. Below 1: at 1
    # q_iw stays at its start (q_ref in the pipeline), all weights are equal and iw-BC is BC.
    ema_decay: float = 0.9
    # Steps per sampled episode (a random window); None uses whole episodes.
    window: int | None = None
    # "transition": every step of the data weighs the same (CORL); "episode": every episode
    # does, whatever its length (the authors' code).
    weighting: Weighting = "transition"
    # With windows, iw-BC's trajectory weight needs log q_iw(τ)/|τ| over whole trajectories: it
    # is recomputed for every episode each `refresh_every` steps (log q_ref(τ) once, q_ref is
    # frozen). Measured in benchmarks/iw_refresh.py.
    refresh_every: int = REFRESH_EVERY

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise UserError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.steps <= 0 or self.batch_size <= 0:
            raise UserError("steps and batch_size must be positive")
        for name in ("learning_rate", "temperature"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise UserError(f"{name} must be a positive finite number, got {value}")
        if self.warmup_steps is not None and not 0 <= self.warmup_steps < self.steps:
            raise UserError(f"warmup_steps must be in [0, steps={self.steps})")
        if not 0.0 <= self.ema_decay < 1.0:
            raise UserError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.window is not None and self.window <= 0:
            raise UserError("window must be a positive number of steps or None")
        if self.weighting not in WEIGHTINGS:
            raise UserError(
                f"unknown weighting {self.weighting!r}; choose one of {', '.join(WEIGHTINGS)}"
            )
        if self.refresh_every <= 0:
            raise UserError(
                f"refresh_every must be a positive step count, got {self.refresh_every}"
            )

    @classmethod
    def iw_finetune(cls, **overrides: Any) -> StageConfig:
        """The paper's fine-tune: Adam 4e-5, 300 warm-up steps, cosine to 0 over 2,000 steps,
        256 episodes a batch, temperature 10, normalized weights, EMA 0.9."""
        base = dict(
            loss="iw_trajectory",
            steps=2_000,
            batch_size=256,
            learning_rate=4e-5,
            warmup_steps=300,
            temperature=10.0,
            normalize=True,
            ema_decay=0.9,
        )
        return cls(**{**base, **overrides})

    @property
    def importance_weighted(self) -> bool:
        return self.loss != "bc"

    @property
    def trajectory_table(self) -> bool:
        """Whether trajectory weights come from whole-episode tables (windows of a trajectory
        loss) rather than from the batch, which then holds whole episodes."""
        return self.loss in ("iw_trajectory", "iw_quality") and self.window is not None


class TrainState(flax.struct.PyTreeNode):
    """Per-seed training state; every leaf has a leading seed axis.

    ``ref_params`` is the frozen q_ref and ``iw_params`` the EMA proposal q_iw; both are None
    for plain BC. ``ref_log_q`` and ``iw_log_q`` [E] are log q(τ)/|τ| of every training episode
    under q_ref and under q_iw as of its last refresh; they exist only where the batch holds
    windows of a trajectory-weighted loss (``StageConfig.trajectory_table``).
    """

    step: jax.Array
    params: Any
    opt_state: Any
    rng: jax.Array
    ref_params: Any = None
    iw_params: Any = None
    ref_log_q: Any = None
    iw_log_q: Any = None


def make_optimizer(config: StageConfig) -> optax.GradientTransformation:
    """Adam with the stage's schedule; optax's warm-up cosine is the authors' WarmupCosineLR."""
    if config.warmup_steps is None:
        return optax.adam(config.learning_rate)
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=config.warmup_steps,
        decay_steps=config.steps,
        end_value=0.0,
    )
    return optax.adam(schedule)


def init_policy_params(
    policy: GaussianPolicy,
    observation_dim: int,
    seeds: Sequence[int],
    statistics: tuple[np.ndarray, np.ndarray] | None = None,
) -> Any:
    """Fresh network parameters for each seed, stacked on a leading axis.

    A standardizing policy needs the dataset's observation ``statistics`` (mean, std), from
    :func:`iwbc.data.statistics.normalization_stats`; they are stored in its ``normalizer``.
    """
    keys = jnp.stack([jax.random.PRNGKey(seed) for seed in seeds])
    dummy = jnp.zeros((1, observation_dim), jnp.float32)
    params = jax.vmap(lambda key: policy.init(key, dummy))(keys)
    if not policy.standardize:
        if statistics is not None:
            raise ValueError(
                "observation statistics given for a policy built with "
                "standardize=False; drop them or standardize"
            )
        return params
    if statistics is None:
        raise ValueError(
            "a standardizing policy needs the dataset's observation statistics: pass "
            "statistics=normalization_stats(observations), or build it with standardize=False"
        )
    return with_statistics(params, *statistics)


def ema(iw_params: Any, params: Any, decay: float) -> Any:
    """q_iw ← decay · q_iw + (1 − decay) · θ over the trainable ``params`` collection; the
    observation statistics are the same for both and stay exactly as they are."""
    average = jax.tree.map(
        lambda q, p: decay * q + (1.0 - decay) * p, iw_params["params"], params["params"]
    )
    return {**iw_params, "params": average}


def episode_log_probs(policy: GaussianPolicy, params: Any, data: DeviceEpisodes) -> jax.Array:
    """log q(τ)/|τ| of every episode of ``data`` [E], from all its steps, in fixed-size blocks."""
    observations = data.flat_observations.reshape(-1, FLAT_BLOCK, data.flat_observations.shape[-1])
    actions = data.flat_actions.reshape(-1, FLAT_BLOCK, data.flat_actions.shape[-1])
    log_probs = jax.lax.map(
        lambda block: policy_log_prob(policy, params, *block), (observations, actions)
    ).reshape(-1)
    sums = jax.ops.segment_sum(log_probs, data.flat_episode, num_segments=data.num_episodes + 1)
    return sums[: data.num_episodes] / jnp.maximum(data.lengths, 1)


def init_train_state(
    config: StageConfig, params: Any, seeds: Sequence[int], ref_params: Any = None
) -> TrainState:
    """Start a stage from ``params`` (seed-stacked). For iw losses q_ref defaults to ``params``."""
    optimizer = make_optimizer(config)
    rngs = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(seed), 1) for seed in seeds])
    if config.importance_weighted:
        ref_params = params if ref_params is None else ref_params
        iw_params = params
    else:
        ref_params = iw_params = None
    return TrainState(
        step=jnp.zeros(len(seeds), jnp.int32),
        params=params,
        opt_state=jax.vmap(optimizer.init)(params),
        rng=rngs,
        ref_params=ref_params,
        iw_params=iw_params,
    )


def stage_loss(policy: GaussianPolicy, config: StageConfig) -> Any:
    """loss_fn(params, batch, iw_params, ref_params, mean_log_ratio) -> (loss, metrics).

    ``mean_log_ratio`` [B] is log q_iw(τ)/|τ| − log q_ref(τ)/|τ| of each batch row's whole
    trajectory where the batch holds windows (``config.trajectory_table``); else None, and the
    trajectory losses compute it from the batch's whole episodes.
    """
    weighting = config.weighting

    def loss_fn(
        params: Any,
        batch: EpisodeBatch,
        iw_params: Any,
        ref_params: Any,
        mean_log_ratio: jax.Array | None = None,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        log_probs = policy_log_prob(policy, params, batch.observations, batch.actions)
        if config.loss == "bc":
            return losses.bc_loss(log_probs, batch.mask, weighting), {}
        if config.loss == "iw_step":
            log_probs_iw = policy_log_prob(policy, iw_params, batch.observations, batch.actions)
            log_probs_ref = policy_log_prob(policy, ref_params, batch.observations, batch.actions)
            weights = losses.step_weights(
                log_probs_iw,
                log_probs_ref,
                batch.mask,
                temperature=config.temperature,
                normalize=config.normalize,
            )
            loss = losses.weighted_step_loss(log_probs, batch.mask, weights, weighting)
            valid = batch.mask > 0
            spread = jnp.max(jnp.where(valid, weights, -jnp.inf)) - jnp.min(
                jnp.where(valid, weights, jnp.inf)
            )
            mean_weight = jnp.sum(weights) / jnp.maximum(jnp.sum(batch.mask), 1.0)
            return loss, {"weight_mean": mean_weight, "weight_spread": spread}
        if mean_log_ratio is None:
            log_probs_iw = policy_log_prob(policy, iw_params, batch.observations, batch.actions)
            log_probs_ref = policy_log_prob(policy, ref_params, batch.observations, batch.actions)
            mean_log_ratio = losses.episode_mean(log_probs_iw - log_probs_ref, batch.mask)
        weights = losses.weights_from_log_ratios(
            mean_log_ratio,
            temperature=config.temperature,
            normalize=config.normalize,
            quality=batch.quality if config.loss == "iw_quality" else None,
        )
        loss = losses.weighted_trajectory_loss(log_probs, batch.mask, weights, weighting)
        return loss, {
            "weight_mean": jnp.mean(weights),
            "weight_spread": jnp.max(weights) - jnp.min(weights),
        }

    return loss_fn


def make_update(policy: GaussianPolicy, config: StageConfig) -> Any:
    """One gradient step of one seed: sample a batch on device, EMA q_iw, Adam update.

    ``step`` is the update's index, the same for every seed (not vmapped), so that the refresh of
    the trajectory tables under windows is a real branch rather than a select of both.
    """
    optimizer = make_optimizer(config)
    loss_fn = stage_loss(policy, config)

    def update(state: TrainState, data: DeviceEpisodes, step: jax.Array) -> tuple[TrainState, dict]:
        rng, key = jax.random.split(state.rng)
        batch = sample_episodes(key, data, config.batch_size, config.window, config.weighting)
        iw_params, iw_log_q, mean_log_ratio = state.iw_params, state.iw_log_q, None
        if config.importance_weighted:
            iw_params = ema(state.iw_params, state.params, config.ema_decay)
        if config.trajectory_table:
            iw_log_q = jax.lax.cond(
                step % config.refresh_every == 0,
                lambda: episode_log_probs(policy, iw_params, data),
                lambda: state.iw_log_q,
            )
            mean_log_ratio = iw_log_q[batch.index] - state.ref_log_q[batch.index]
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, batch, iw_params, state.ref_params, mean_log_ratio
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        new_state = state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, updates),
            opt_state=opt_state,
            rng=rng,
            iw_params=iw_params,
            iw_log_q=iw_log_q,
        )
        return new_state, {"loss": loss, **aux}

    return update


@functools.cache
def make_chunk(policy: GaussianPolicy, config: StageConfig, length: int) -> Any:
    """``length`` updates of every seed in one compiled call: jit(vmap(scan(update))).

    The call is ``chunk(state, data, start)`` with ``start`` the index of its first update.
    Cached, so stages with the same policy, configuration and chunk length share one compilation.
    """
    update = make_update(policy, config)

    def chunk(state: TrainState, data: DeviceEpisodes, start: jax.Array) -> tuple[TrainState, dict]:
        steps = start + jnp.arange(length)
        return jax.lax.scan(lambda carry, step: update(carry, data, step), state, steps)

    return jax.jit(jax.vmap(chunk, in_axes=(0, None, None)))


@functools.cache
def _trajectory_tables(policy: GaussianPolicy) -> Any:
    """jit(vmap over seeds) of (log q_ref(τ)/|τ|, log q_iw(τ)/|τ|) for every episode."""

    def tables(state: TrainState, data: DeviceEpisodes) -> tuple[jax.Array, jax.Array]:
        return (
            episode_log_probs(policy, state.ref_params, data),
            episode_log_probs(policy, state.iw_params, data),
        )

    return jax.jit(jax.vmap(tables, in_axes=(0, None)))


def with_trajectory_tables(
    policy: GaussianPolicy, config: StageConfig, state: TrainState, data: DeviceEpisodes
) -> TrainState:
    """``state`` with its whole-trajectory tables filled in, where the stage needs them and
    they are missing (a new stage; a resumed one reads them from its checkpoint)."""
    if not config.trajectory_table or state.ref_log_q is not None:
        return state
    ref_log_q, iw_log_q = _trajectory_tables(policy)(state, data)
    return state.replace(ref_log_q=ref_log_q, iw_log_q=iw_log_q)


def _save_checkpoint(path: Path, state: Any, history: list[dict]) -> None:
    """Write state and history as one file, atomically: a kill leaves the old one or the new one."""
    payload = {
        "state": flax.serialization.to_state_dict(state),
        "history": json.dumps(history),
    }
    write_atomic(path, flax.serialization.msgpack_serialize(payload))


def _load_checkpoint(path: Path, template: Any) -> tuple[Any, list[dict]]:
    """Restore a checkpoint, refusing one written for other seeds or another network."""
    try:
        payload = flax.serialization.msgpack_restore(path.read_bytes())
        state = flax.serialization.from_state_dict(template, payload["state"])
        history = json.loads(payload["history"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"checkpoint {path} is unreadable ({type(error).__name__}); delete it to start over"
        ) from error
    expected = [np.shape(leaf) for leaf in jax.tree.leaves(template)]
    found = [np.shape(leaf) for leaf in jax.tree.leaves(state)]
    if expected != found:
        raise UserError(
            f"checkpoint {path} was written for other seeds or another network; "
            "delete it or use another checkpoint path"
        )
    return state, history


@jax.jit
def finite_state(state: Any) -> jax.Array:
    """[seeds] bool: whether every floating-point leaf of seed-stacked ``state`` (parameters,
    optimizer moments, targets) is finite. One reduction on the device, read once per chunk."""
    leaves = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.inexact)]
    per_leaf = [jnp.all(jnp.isfinite(x.reshape(x.shape[0], -1)), axis=1) for x in leaves]
    return jnp.all(jnp.stack(per_leaf), axis=0)


def check_chunk(
    description: str, start: int, end: int, metrics: dict[str, np.ndarray], finite: np.ndarray
) -> None:
    """Raise TrainingDiverged if the chunk of updates ``start + 1`` … ``end`` made a loss or
    the state non-finite, naming the first update whose loss was (losses are per update).

    ``metrics`` are the chunk's [seeds, updates] values; those named ``*loss`` are checked (the
    others, e.g. a weight spread, may be infinite by construction). ``finite`` is
    :func:`finite_state` of the state after the chunk.
    """
    bad = {name: ~np.isfinite(v) for name, v in metrics.items() if name.endswith("loss")}
    bad = {name: mask for name, mask in bad.items() if mask.any()}
    if not bad and finite.all():
        return
    chunk = f"(chunk of updates {start + 1}-{end})"
    fix = "lower the learning rate and rerun"
    if not bad:
        seeds = ", ".join(map(str, np.flatnonzero(~finite)))
        raise TrainingDiverged(
            f"{description} diverged: non-finite parameters after update {end} {chunk}, "
            f"seed index {seeds}; {fix}"
        )
    first = min(int(np.argmax(mask.any(axis=0))) for mask in bad.values())
    names = ", ".join(name for name, mask in bad.items() if mask[:, first].any())
    seeds = ", ".join(
        map(str, sorted({s for mask in bad.values() for s in np.flatnonzero(mask[:, first])}))
    )
    raise TrainingDiverged(
        f"{description} diverged: non-finite {names} at update {start + first + 1} {chunk}, "
        f"seed index {seeds}; {fix}"
    )


def run_chunks(
    chunk_for_length: Callable[[int], Any],
    state: Any,
    data: Any,
    steps: int,
    *,
    chunk_size: int = 500,
    checkpoint: str | Path | None = None,
    description: str = "train",
    progress: bool = True,
) -> tuple[Any, list[dict]]:
    """Run ``state`` to ``steps`` updates with ``chunk_for_length(n)(state, data)`` calls.

    Any seed-stacked state with a ``step`` leaf works, so the offline-RL agents share this loop;
    a chunk is called as ``chunk(state, data, start)``, ``start`` the index of its first update.
    Returns the final state and one record per chunk: the step reached and the per-seed mean of
    each metric over the chunk. With ``checkpoint`` the state is saved after every chunk and an
    existing checkpoint is resumed from. A chunk whose losses or resulting state hold a NaN or
    infinity raises :class:`TrainingDiverged` naming ``description`` (method and stage) and the
    update, before it is checkpointed: checked on the host once per chunk, never per update.
    """
    history: list[dict] = []
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and checkpoint.exists():
        state, history = _load_checkpoint(checkpoint, state)
    done = int(np.asarray(state.step)[0])
    chunk_size = max(1, min(chunk_size, steps))
    bar = tqdm(total=steps, initial=done, desc=description, disable=not progress, unit="step")
    with bar:
        while done < steps:
            length = min(chunk_size, steps - done)
            state, metrics = chunk_for_length(length)(state, data, done)
            values = {name: np.asarray(value) for name, value in metrics.items()}
            check_chunk(description, done, done + length, values, np.asarray(finite_state(state)))
            done += length
            record = {"step": done}
            record.update({name: value.mean(axis=1).tolist() for name, value in values.items()})
            history.append(record)
            if checkpoint is not None:
                _save_checkpoint(checkpoint, state, history)
            bar.update(length)
            shown = "loss" if "loss" in record else next(iter(metrics), None)
            if shown is not None:
                bar.set_postfix({shown: f"{np.mean(record[shown]):.3f}"})
    return state, history


def train_stage(
    policy: GaussianPolicy,
    config: StageConfig,
    state: TrainState,
    data: DeviceEpisodes,
    *,
    chunk_size: int = 500,
    checkpoint: str | Path | None = None,
    description: str = "train",
    progress: bool = True,
    until: int | None = None,
) -> tuple[TrainState, list[dict]]:
    """Run the stage to ``until`` (default ``config.steps``) updates, in jitted chunks (see
    :func:`run_chunks`).

    The learning-rate schedule always spans ``config.steps``, so training to successive
    ``until`` targets on one checkpoint (to evaluate along the way) gives the same run as one
    call to the end.
    """
    until = config.steps if until is None else until
    if not 0 < until <= config.steps:
        raise ValueError(f"until must be in [1, config.steps={config.steps}], got {until}")
    state = with_trajectory_tables(policy, config, state, data)
    return run_chunks(
        lambda length: make_chunk(policy, config, length),
        state,
        data,
        until,
        chunk_size=chunk_size,
        checkpoint=checkpoint,
        description=description,
        progress=progress,
    )
