"""The one trainer: any agent, all seeds vmapped, one ``jax.jit`` around a ``lax.scan`` of updates.

:func:`create_agents` builds one agent per seed in one compiled call. :class:`Training` runs a
seed-stacked agent on device-resident data in chunks, jit(vmap over seeds(scan over a chunk of
``sample`` + ``update``)), so no Python runs between the updates of a chunk. Between chunks it
shows progress, checks the chunk for divergence and writes a checkpoint; a fresh agent resumes
from an existing checkpoint, and an agent trained on in memory (to evaluate along a learning
curve) never reads it again. Updates that take seconds each on a CPU (the paper's batches of
whole episodes) run a chunk as several compiled pieces, so that progress shows and a kill
loses at most about a minute, with the agent and history a whole chunk gives.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from iwbc.core.agent import Agent, DataSpec
from iwbc.errors import TrainingDiverged, UserError, one_line
from iwbc.files import write_atomic
from iwbc.machine import available_memory
from iwbc.options import SEED_LIMIT


def check_seeds(seeds: Any) -> tuple[int, ...]:
    """``seeds`` as a tuple of ints, or a one-line error: at least one, each an integer (a
    NumPy one too; not a bool) in [0, 2**32), none twice (a repeat trains an identical copy,
    and seeds 2**32 apart share a JAX key)."""
    if isinstance(seeds, str | bytes) or not isinstance(seeds, Iterable):
        raise UserError(f"seeds must be a list of integers, got {seeds!r}")
    seeds = tuple(seeds)
    if not seeds:
        raise UserError("no seeds given; pass at least one training seed")
    if not all(
        isinstance(s, int | np.integer) and not isinstance(s, bool) for s in seeds
    ) or not all(0 <= s < SEED_LIMIT for s in seeds):
        raise UserError(f"seeds must be integers in [0, 2**32), got {list(seeds)!r}")
    seeds = tuple(int(s) for s in seeds)
    if len(set(seeds)) != len(seeds):
        raise UserError(
            f"seeds must be distinct (a repeat trains the same run twice), got {list(seeds)}"
        )
    return seeds


def check_chunk_size(chunk_size: Any) -> int:
    """``chunk_size`` as an int, or a one-line error: a chunk of no updates never advances."""
    if (
        not isinstance(chunk_size, int | np.integer)
        or isinstance(chunk_size, bool)
        or chunk_size < 1
    ):
        raise UserError(f"chunk_size must be an integer ≥ 1, got {chunk_size!r}")
    return int(chunk_size)


def create_agents(
    agent_cls: type[Agent],
    config: Any,
    spec: DataSpec,
    seeds: list[int] | tuple[int, ...],
    init: Agent | None = None,
) -> Agent:
    """One ``agent_cls`` per seed (key ``PRNGKey(seed)``), stacked on a leading axis; ``init``
    (seed-stacked too) is what each starts from. Compiled once per class, config and shapes:
    initializing networks op by op takes seconds (results/perf/run_path.md)."""
    seeds = check_seeds(seeds)
    if init is not None and not agent_cls.accepts_init:
        raise ValueError(f"{agent_cls.__name__} trains from scratch; it takes no init agent")
    keys = jnp.stack([jax.random.PRNGKey(seed) for seed in seeds])
    return _create(agent_cls, config, keys, spec, init)


def agents_structure(
    agent_cls: type[Agent],
    config: Any,
    observation_dim: int,
    action_dim: int,
    seeds: list[int] | tuple[int, ...],
) -> Agent:
    """What :func:`create_agents` (without ``init``) returns, as shapes and dtypes: nothing is
    computed or compiled. It is the template a saved seed-stacked agent is read back into,
    where building the agent itself would cost its data's preparation and a compile."""
    shape = jax.ShapeDtypeStruct((observation_dim,), jnp.float32)
    keys = jax.eval_shape(lambda: jnp.stack([jax.random.PRNGKey(seed) for seed in seeds]))
    return _create.eval_shape(agent_cls, config, keys, DataSpec(shape, shape, action_dim), None)


def create_agent(agent_cls: type[Agent], config: Any, spec: DataSpec, seed: int) -> Agent:
    """One ``agent_cls`` for ``seed`` (key ``PRNGKey(seed)``), without a seed axis, compiled."""
    return _create_one(agent_cls, config, jax.random.PRNGKey(seed), spec)


# Programs that run once per training, or once per chunk on a few numbers (creating agents,
# preparing data, the finiteness check), compile with LLVM at optimization level 1: in about half
# XLA's default time (a baseline's creation, 3-5 s on CPU, is most of a short run's start), with
# bit-identical results (tests/test_train.py checks). The update chunks keep the default: they are
# the hot path.
ONE_SHOT_COMPILE = {"xla_backend_optimization_level": 1}


@functools.partial(
    jax.jit, static_argnames=("agent_cls", "config"), compiler_options=ONE_SHOT_COMPILE
)
def _create_one(agent_cls: type[Agent], config: Any, key: jax.Array, spec: DataSpec) -> Any:
    return agent_cls.create(key, spec, config)


@functools.partial(
    jax.jit, static_argnames=("agent_cls", "config"), compiler_options=ONE_SHOT_COMPILE
)
def _create(agent_cls: type[Agent], config: Any, keys: jax.Array, spec: DataSpec, init: Any) -> Any:
    return jax.vmap(lambda key, start: agent_cls.create(key, spec, config, start))(keys, init)


@functools.partial(jax.jit, compiler_options=ONE_SHOT_COMPILE)
def _prepare(agent: Agent, data: Any) -> Agent:
    return jax.vmap(lambda one: one.prepare(data))(agent)


def updates(agent: Agent, data: Any, start: jax.Array, length: int) -> tuple[Agent, dict]:
    """``length`` updates of one agent, a ``lax.scan`` of (sample, update); the metrics are
    per update. ``start`` is the index of the first update (an agent may branch on it: iw-BC
    refreshes its trajectory tables every few updates)."""

    def step(one: Agent, index: jax.Array) -> tuple[Agent, dict]:
        rng, key = jax.random.split(one.rng)
        one, batch = one.replace(rng=rng).sample(key, data, index)
        return one.update(batch)

    return jax.lax.scan(step, agent, start + jnp.arange(length))


@functools.partial(jax.jit, static_argnames="length")
def run_chunk(agent: Agent, data: Any, start: jax.Array, length: int) -> tuple[Agent, dict]:
    """``length`` updates of every seed: vmap over seeds of :func:`updates`, ``start`` the same
    for every seed. Compiled once per agent type, config (static fields of the agent), data
    shapes and length."""
    return jax.vmap(lambda one: updates(one, data, start, length))(agent)


# One agent's chunk, for an online learner that interleaves it with acting (datagen's SAC).
run_updates = jax.jit(updates, static_argnames="length")


@functools.partial(jax.jit, compiler_options=ONE_SHOT_COMPILE)
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


def save_checkpoint(
    path: Path,
    state: Any,
    history: list[dict],
    pending: dict[str, np.ndarray] | None = None,
    trained_on: dict[str, Any] | None = None,
) -> None:
    """Write state and history as one file, atomically: a kill leaves the old one or the new one.
    ``pending`` holds the per-update metrics ([seeds, updates]) of a chunk saved part-way, which
    its history record is made of once the chunk ends; ``trained_on`` (JSON) what the training
    is, which :func:`load_checkpoint` compares before resuming.

    Not orbax: a checkpoint here is one small seed-stacked pytree and its JSON history, rewritten
    every chunk to resume from; flax's msgpack of the state dict and one atomic rename cover it,
    without orbax's folder per step and asynchronous writer."""
    payload = {
        "state": flax.serialization.to_state_dict(state),
        "history": json.dumps(history),
        "pending": dict(pending or {}),
    }
    if trained_on is not None:
        payload["trained_on"] = json.dumps(trained_on, sort_keys=True)
    write_atomic(path, flax.serialization.msgpack_serialize(payload))


def checkpoint_history(path: Path) -> list[dict] | None:
    """The per-chunk history saved in the checkpoint at ``path`` (no template needed), or None
    when there is no readable checkpoint there."""
    try:
        payload = flax.serialization.msgpack_restore(path.read_bytes())
        return json.loads(payload["history"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_checkpoint(
    path: Path, template: Any, trained_on: dict[str, Any] | None = None
) -> tuple[Any, list[dict], dict[str, np.ndarray]]:
    """Restore a checkpoint (state, history and the pending metrics of a chunk saved part-way;
    none in one written before chunks were saved part-way), refusing one written for other
    seeds or another network, and, given ``trained_on``, one whose training differs from it
    (shapes alone let a run on other data or another config resume as this one)."""
    try:
        payload = flax.serialization.msgpack_restore(path.read_bytes())
        saved = json.loads(payload["trained_on"]) if "trained_on" in payload else None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"checkpoint {path} is unreadable ({type(error).__name__}); delete it to start over"
        ) from error
    if trained_on is not None:
        check_trained_on(path, saved, trained_on)
    try:
        state = flax.serialization.from_state_dict(template, payload["state"])
        history = json.loads(payload["history"])
        pending = {name: np.asarray(v) for name, v in payload.get("pending", {}).items()}
    except (ValueError, KeyError, TypeError) as error:
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
    return state, history, pending


def check_trained_on(path: Path, saved: dict | None, trained_on: dict[str, Any]) -> None:
    """A one-line error naming what differs between the training a checkpoint records (None:
    it records none) and the one about to resume from it."""
    wanted = json.loads(json.dumps(trained_on, sort_keys=True))
    differ = list(wanted) if saved is None else [k for k in wanted if saved.get(k) != wanted[k]]
    if differ:
        what = "unrecorded" if saved is None else "other"
        raise UserError(
            f"checkpoint {path} was trained on {what} {'/'.join(differ)}: use another "
            "checkpoint_dir or delete it"
        )


# Batch rows (transitions, or steps of episodes and windows), summed over the seeds, that one
# compiled piece of a chunk holds at most on a CPU: about 5-10 s of a 2-core box's matrix
# products for the paper's 3x256 policy (4 s an update for 5 seeds x 128 episodes of 1,000
# steps). The quick suite's updates (5 x 256 rows) stay whole chunks; an accelerator runs whole
# chunks, as a chunk of the paper's updates takes seconds there.
CPU_PIECE_ROWS = 2**20
# How often a chunk run in pieces is saved part-way.
CHECKPOINT_EVERY_S = 60.0


def batch_rows(agent: Agent, data: Any) -> int:
    """Rows of one update's batches over all seeds: the largest batch leaf's leading axes
    (seeds, episodes, window steps), read from shapes, nothing computed."""
    key = jax.random.PRNGKey(0)
    batch = jax.eval_shape(
        lambda a: jax.vmap(lambda one: one.sample(key, data, jnp.zeros((), jnp.int32))[1])(a),
        agent,
    )
    return max(
        (int(np.prod(leaf.shape[:-1])) for leaf in jax.tree.leaves(batch) if leaf.ndim >= 2),
        default=1,
    )


def piece_size(chunk_size: int, rows: int, backend: str | None = None) -> int:
    """Updates per compiled call within a chunk of ``chunk_size``: the whole chunk, except on a
    CPU where it would hold more than :data:`CPU_PIECE_ROWS` batch rows, then the largest
    divisor of ``chunk_size`` that fits (a divisor, so a chunk compiles one length)."""
    if (backend or jax.default_backend()) != "cpu" or rows * chunk_size <= CPU_PIECE_ROWS:
        return chunk_size
    limit = max(1, CPU_PIECE_ROWS // rows)
    return max(d for d in range(1, limit + 1) if chunk_size % d == 0)


def free_memory(device: jax.Device | None = None) -> int | None:
    """Bytes a new allocation on ``device`` (default: JAX's first) can take: the host's
    available memory for a CPU, the limit less what is in use for an accelerator that reports
    them; None where unknown."""
    device = device or jax.devices()[0]
    if device.platform == "cpu":
        return available_memory()
    stats = device.memory_stats() or {}
    if "bytes_limit" not in stats:
        return None
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


SHRINK = (
    "train fewer seeds at once (--seeds, a suite's seeds), on windows (--window 1, window) or "
    "with a smaller batch (--bc-batch-size, --finetune-batch-size, batch_size)"
)


def check_memory(description: str, needed: int, free: int | None) -> None:
    """A one-line UserError if a compiled chunk needs more working memory than is free: without
    it, a CPU run is killed by the kernel with no message, part-way into compiling or later."""
    if free is None or needed <= free:
        return
    raise UserError(
        f"{description} needs {needed / 2**30:.1f} GiB of working memory for its updates "
        f"(XLA's estimate) and {free / 2**30:.1f} GiB is free; {SHRINK}"
    )


class Training:
    """A seed-stacked agent trained on device ``data``, chunk by chunk, resumable.

    ``history`` holds one record per chunk: the update reached and the per-seed mean of each
    metric over the chunk. With ``checkpoint`` the agent and history are saved after every
    chunk, and an existing checkpoint is resumed from when the training starts. A chunk whose
    losses or resulting state hold a NaN or infinity raises :class:`TrainingDiverged` naming
    ``description`` (method and stage) and the update, before it is checkpointed: checked on
    the host once per chunk, never per update.

    A chunk runs as pieces of :func:`piece_size` updates (on a CPU, when its batches are
    large), each checked and shown as it ends, and saved part-way every ``checkpoint_every_s``
    seconds with its metrics so far: a run resumed from there ends the chunk with the agent and
    history record an uninterrupted one has (a chunk's record is the mean of its per-update
    metrics however many pieces made them).

    ``trained_on`` (JSON: the data's fingerprint, config, seeds, ...) is saved with every
    checkpoint, and a checkpoint that records another is refused rather than resumed.
    """

    def __init__(
        self,
        agent: Agent,
        data: Any,
        *,
        checkpoint: str | Path | None = None,
        chunk_size: int = 500,
        description: str = "train",
        progress: bool = True,
        piece: int | None = None,
        checkpoint_every_s: float = CHECKPOINT_EVERY_S,
        trained_on: dict[str, Any] | None = None,
    ) -> None:
        self.data = data
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.chunk_size = check_chunk_size(chunk_size)
        self.trained_on = trained_on
        self.description = description
        self.progress = progress
        self.checkpoint_every_s = checkpoint_every_s
        self.history: list[dict] = []
        self.pending: dict[str, np.ndarray] = {}
        self._programs: dict[int, Any] = {}  # per chunk length, compiled and memory-checked
        if self.checkpoint is not None and self.checkpoint.exists():
            # The prepared agent's structure is the template; the checkpoint holds its state
            # (iw-BC's trajectory tables included), so preparing would be a wasted data pass.
            template = jax.eval_shape(_prepare, agent, data)
            self.agent, self.history, self.pending = load_checkpoint(
                self.checkpoint, template, trained_on
            )
        else:
            self.agent = _prepare(agent, data)
        self.piece = piece or piece_size(chunk_size, batch_rows(self.agent, data))

    @property
    def step(self) -> int:
        """Updates done so far (the same for every seed)."""
        return int(np.asarray(self.agent.step)[0])

    def to(self, until: int) -> Agent:
        """Train on to ``until`` updates and return the agent; refuses to go back in time, and
        to go past ``config.steps``, over which the learning-rate schedules run."""
        steps = self.agent.config.steps
        if not 0 < until <= steps:
            raise ValueError(
                f"until must be in [1, config.steps={steps}], got {until}; raise config.steps "
                "for a longer run"
            )
        done = self.step
        if done > until:
            if self.checkpoint is None:
                raise UserError(f"the agent is at update {done}, past {until}")
            raise UserError(
                f"checkpoint {self.checkpoint} is at update {done}, past {until}; delete it "
                "(or use another checkpoint path) to train a shorter run"
            )
        bar = tqdm(
            total=until, initial=done, desc=self.description, disable=not self.progress, unit="step"
        )
        saved = time.monotonic()
        with bar:
            while done < until:
                # A chunk saved part-way began before the updates its pending metrics hold.
                begun = done - next((v.shape[1] for v in self.pending.values()), 0)
                end = min(begun + self.chunk_size, until)
                length = min(self.piece, end - done)
                agent, metrics = self._run(done, length)
                values = {name: np.asarray(value) for name, value in metrics.items()}
                finite = np.asarray(finite_state(agent))
                check_chunk(self.description, done, done + length, values, finite)
                self.agent, done = agent, done + length
                self.pending = {
                    name: np.concatenate([self.pending[name], v], axis=1)
                    if name in self.pending
                    else v
                    for name, v in values.items()
                }
                bar.update(length)
                shown = "loss" if "loss" in values else next(iter(values), None)
                if shown is not None:
                    bar.set_postfix({shown: f"{np.mean(values[shown]):.3f}"})
                if done == end:
                    means = {name: v.mean(axis=1).tolist() for name, v in self.pending.items()}
                    self.history.append({"step": done, **means})
                    self.pending = {}
                elif time.monotonic() - saved < self.checkpoint_every_s:
                    continue
                if self.checkpoint is not None:
                    save_checkpoint(
                        self.checkpoint, self.agent, self.history, self.pending, self.trained_on
                    )
                    saved = time.monotonic()
        return self.agent

    def _run(self, done: int, length: int) -> tuple[Agent, dict]:
        """``length`` updates from update ``done`` by :func:`run_chunk`, compiled ahead once per
        length and checked against the free memory before its first run, so a batch too large
        for the machine is a one-line error, as is running out of an accelerator's memory."""
        start = jnp.asarray(done)
        try:
            if length not in self._programs:
                program = run_chunk.lower(self.agent, self.data, start, length).compile()
                stats = program.memory_analysis()
                if stats is not None:
                    check_memory(
                        self.description,
                        stats.temp_size_in_bytes + stats.output_size_in_bytes,
                        free_memory(),
                    )
                self._programs[length] = program
            return self._programs[length](self.agent, self.data, start)
        except jax.errors.JaxRuntimeError as error:
            if "RESOURCE_EXHAUSTED" not in str(error):
                raise
            raise UserError(
                f"{self.description} ran out of memory at update {done + 1} "
                f"({one_line(error)[:200]}); {SHRINK}"
            ) from error


def train(agent: Agent, data: Any, until: int, **options: Any) -> tuple[Agent, list[dict]]:
    """Train ``agent`` to ``until`` updates (see :class:`Training` for ``options``); returns the
    agent and the per-chunk history."""
    training = Training(agent, data, **options)
    return training.to(until), training.history
