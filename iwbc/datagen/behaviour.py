"""Online SAC training of a behaviour policy, keeping everything the D4RL tiers are cut from.

The run keeps its whole replay stream in order (medium-replay is that stream up to the medium
checkpoint), an evaluation of the deterministic policy every ``eval_every`` env steps, and the
actor parameters of each evaluation (the medium policy is one of them). It checkpoints the
agent, the stream, the simulator's full state and its counters, so a killed run resumes and
finishes bit for bit as if it had never stopped.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from iwbc.core.agent import DataSpec
from iwbc.core.sampling import TransitionBatch
from iwbc.core.trainer import create_agent, run_updates
from iwbc.datagen.sac import (
    ReplayBuffer,
    SACAgent,
    SACConfig,
    buffer_append,
    mean_actions,
    sample_actions,
    upgrade_state_dict,
)
from iwbc.envs import BatchEngine, get_spec, rollout_returns
from iwbc.errors import UserError
from iwbc.files import write_atomic

# Reset seeds of the periodic evaluations: fixed, and apart from the training episodes' seeds.
EVAL_RESET_SEED_BASE = 500_000_000


@dataclasses.dataclass(frozen=True)
class BehaviourConfig:
    """How long and how SAC trains, and how often it is evaluated and checkpointed."""

    env_steps: int = 1_000_000
    # Uniform-random actions for the first steps, as SAC implementations warm up the buffer.
    start_steps: int = 10_000
    # Env steps collected between two compiled chunks of updates (a multiple of num_envs).
    # SAC proper alternates one step and one update; 50 keeps the policy nearly as fresh
    # while paying the host-device round trip once per 50 updates.
    update_every: int = 50
    updates_per_step: float = 1.0
    eval_every: int = 10_000
    eval_episodes: int = 10
    checkpoint_every: int = 50_000
    num_envs: int = 1
    sac: SACConfig = dataclasses.field(default_factory=SACConfig)

    def __post_init__(self) -> None:
        if self.update_every % self.num_envs:
            raise UserError(
                f"update_every ({self.update_every}) must be a multiple of num_envs "
                f"({self.num_envs})"
            )
        for name in ("eval_every", "checkpoint_every", "env_steps"):
            if getattr(self, name) % self.update_every:
                raise UserError(
                    f"{name} ({getattr(self, name)}) must be a multiple of update_every "
                    f"({self.update_every})"
                )


@dataclasses.dataclass
class TransitionLog:
    """Every env step of the run in the order it happened, with the env that took it."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    env: np.ndarray
    size: int = 0

    @classmethod
    def create(cls, capacity: int, observation_dim: int, action_dim: int) -> TransitionLog:
        return cls(
            observations=np.zeros((capacity, observation_dim), np.float64),
            actions=np.zeros((capacity, action_dim), np.float32),
            rewards=np.zeros(capacity, np.float64),
            next_observations=np.zeros((capacity, observation_dim), np.float64),
            terminated=np.zeros(capacity, bool),
            truncated=np.zeros(capacity, bool),
            env=np.zeros(capacity, np.int32),
        )

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "size"}

    def append(self, **rows: np.ndarray) -> None:
        count = len(rows["rewards"])
        for name, value in rows.items():
            getattr(self, name)[self.size : self.size + count] = value
        self.size += count

    def device_batch(self, start: int, stop: int) -> TransitionBatch:
        """Rows [start, stop) as float32 replay-buffer transitions (done = true termination)."""
        return TransitionBatch(
            observations=jnp.asarray(self.observations[start:stop], jnp.float32),
            actions=jnp.asarray(self.actions[start:stop], jnp.float32),
            rewards=jnp.asarray(self.rewards[start:stop], jnp.float32),
            next_observations=jnp.asarray(self.next_observations[start:stop], jnp.float32),
            dones=jnp.asarray(self.terminated[start:stop], jnp.float32),
        )


@dataclasses.dataclass
class BehaviourRun:
    """What a finished (or resumed) training run hands to the tier generation."""

    env_id: str
    seed: int
    config: BehaviourConfig
    agent: SACAgent
    log: TransitionLog
    # (env steps, mean evaluation return) and the actor parameters at each evaluation.
    evaluations: list[tuple[int, float]]
    snapshots: dict[int, Any]
    wall_seconds: float
    # Env steps restored from the checkpoint this call resumed (0: it started afresh).
    resumed_from: int = 0


def episode_seed(seed: int, episode: int) -> int:
    """Reset seed of training episode ``episode`` of run ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


def evaluate_actor_params(
    env_id: str, actor_params: Any, config: SACConfig, action_dim: int, episodes: int
) -> float:
    """Mean return of the deterministic policy over ``episodes`` fixed-seed episodes."""
    hidden = tuple(config.hidden_dims)

    def act(obs: np.ndarray) -> np.ndarray:
        return np.asarray(mean_actions(actor_params, jnp.asarray(obs), action_dim, hidden))

    seeds = EVAL_RESET_SEED_BASE + np.arange(episodes)
    return float(rollout_returns(env_id, act, seeds, engine="batch").returns.mean())


class _Trainer:
    """The mutable loop state of one run; :func:`train_behaviour` drives it."""

    def __init__(self, env_id: str, seed: int, config: BehaviourConfig) -> None:
        self.env_id, self.seed, self.config = env_id, seed, config
        spec = get_spec(env_id)
        self.engine = BatchEngine(spec, config.num_envs)
        self.low, self.high = spec.action_bounds()
        self.obs_dim, self.act_dim = spec.obs_dim, int(self.low.size)
        if np.any(self.low != -1.0) or np.any(self.high != 1.0):
            raise ValueError(f"{env_id} actions are not in [-1, 1]; SAC's tanh policy assumes so")
        spec = DataSpec(jnp.zeros(self.obs_dim), jnp.ones(self.obs_dim), self.act_dim)
        self.agent = create_agent(SACAgent, config.sac, spec, seed)
        self.buffer = ReplayBuffer.create(config.env_steps, self.obs_dim, self.act_dim)
        self.log = TransitionLog.create(config.env_steps, self.obs_dim, self.act_dim)
        self.evaluations: list[tuple[int, float]] = []
        self.snapshots: dict[int, Any] = {}
        self.episodes_started = config.num_envs
        self.obs = self.engine.reset([episode_seed(seed, i) for i in range(config.num_envs)])
        self.action_key = jax.random.fold_in(jax.random.PRNGKey(seed), 1)
        self.wall_seconds = 0.0

    @property
    def steps(self) -> int:
        return self.log.size

    def collect(self) -> None:
        """``update_every`` env steps of the current policy (uniform before ``start_steps``)."""
        config, hidden = self.config, tuple(self.config.sac.hidden_dims)
        for _ in range(config.update_every // config.num_envs):
            if self.steps < config.start_steps:
                rng = np.random.default_rng([self.seed, self.steps])
                actions = rng.uniform(self.low, self.high, (config.num_envs, self.act_dim))
            else:
                key = jax.random.fold_in(self.action_key, self.steps)
                actions = np.asarray(
                    sample_actions(
                        self.agent.actor.params,
                        jnp.asarray(self.obs, jnp.float32),
                        key,
                        self.act_dim,
                        hidden,
                    )
                )
            result = self.engine.step(actions)
            self.log.append(
                observations=self.obs,
                actions=actions,
                rewards=result.reward,
                next_observations=result.obs,
                terminated=result.terminated,
                truncated=result.truncated,
                env=np.arange(config.num_envs),
            )
            self.obs = result.obs
            done = np.flatnonzero(result.terminated | result.truncated)
            if done.size:
                seeds = [
                    episode_seed(self.seed, self.episodes_started + i) for i in range(done.size)
                ]
                self.episodes_started += done.size
                self.obs = self.engine.reset(seeds, ids=done)

    def learn(self, start: int) -> None:
        """Append the new rows to the device buffer and run their share of updates."""
        self.buffer = buffer_append(self.buffer, self.log.device_batch(start, self.steps))
        if self.steps >= self.config.start_steps:
            count = round(self.config.update_every * self.config.updates_per_step)
            if count:
                self.agent, _ = run_updates(self.agent, self.buffer, self.agent.step, count)

    def on_evaluation_schedule(self, steps: int) -> bool:
        """Whether a run of this length evaluates after ``steps`` env steps."""
        return steps % self.config.eval_every == 0 or steps == self.config.env_steps

    def evaluate(self) -> float:
        params = jax.device_get(self.agent.actor.params)
        mean_return = evaluate_actor_params(
            self.env_id, params, self.config.sac, self.act_dim, self.config.eval_episodes
        )
        self.evaluations.append((self.steps, mean_return))
        self.snapshots[self.steps] = params
        return mean_return

    def state_dict(self) -> dict:
        return {
            "agent": flax.serialization.to_state_dict(jax.device_get(self.agent)),
            "log": {**self.log.arrays(), "size": self.log.size},
            "engine": self.engine.save_state(),
            "episodes_started": self.episodes_started,
            "evaluations": np.asarray(self.evaluations, np.float64).reshape(-1, 2),
            "snapshots": {str(step): params for step, params in self.snapshots.items()},
            "wall_seconds": self.wall_seconds,
        }

    def load_state_dict(self, saved: dict) -> None:
        log = saved["log"]
        size = int(log["size"])
        if size > self.config.env_steps:
            raise UserError(
                f"the SAC checkpoint already holds {size} env steps, more than the "
                f"{self.config.env_steps} asked for; pass --env-steps {size} or more"
            )
        agent = upgrade_state_dict(saved["agent"])
        self.agent = flax.serialization.from_state_dict(self.agent, agent)
        for name in self.log.arrays():
            getattr(self.log, name)[:size] = np.asarray(log[name])[:size]
        self.log.size = size
        self.buffer = buffer_append(
            ReplayBuffer.create(self.config.env_steps, self.obs_dim, self.act_dim),
            self.log.device_batch(0, size),
        )
        self.obs = self.engine.load_state(saved["engine"])
        self.episodes_started = int(saved["episodes_started"])
        # A shorter run also evaluated at its own last step, off the grid of this one: dropped,
        # or the tiers could pick a checkpoint that a fresh run of this length never has.
        self.evaluations = [
            (int(s), float(r))
            for s, r in np.asarray(saved["evaluations"])
            if self.on_evaluation_schedule(int(s))
        ]
        template = jax.device_get(self.agent.actor.params)
        self.snapshots = {
            int(step): flax.serialization.from_state_dict(template, params)
            for step, params in saved["snapshots"].items()
            if self.on_evaluation_schedule(int(step))
        }
        self.wall_seconds = float(saved["wall_seconds"])


def train_behaviour(
    env_id: str,
    seed: int,
    config: BehaviourConfig,
    *,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    on_evaluation: Callable[[int, float], None] | None = None,
) -> BehaviourRun:
    """Train SAC on ``env_id`` for ``config.env_steps`` env steps, resuming from ``checkpoint``.

    A checkpoint of a shorter run of the same config is extended: nothing before
    ``env_steps`` reads it (sampling draws from the filled rows only, the action and update
    keys fold in the step), so the result is bit for bit that of one run of the longer length.

    ``stop_after`` ends the call early (after that many env steps, at a checkpoint) as if the
    process had been killed there; the tests use it to check that resuming changes nothing.
    """
    trainer = _Trainer(env_id, seed, config)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and checkpoint.exists():
        saved = flax.serialization.msgpack_restore(checkpoint.read_bytes())
        trainer.load_state_dict(saved)
    resumed_from = trainer.steps
    bar = tqdm(
        total=config.env_steps,
        initial=trainer.steps,
        desc=f"SAC {env_id}",
        unit="step",
        disable=not progress,
    )
    with bar:
        while trainer.steps < config.env_steps:
            started = time.perf_counter()
            start = trainer.steps
            trainer.collect()
            trainer.learn(start)
            if trainer.on_evaluation_schedule(trainer.steps):
                mean_return = trainer.evaluate()
                bar.set_postfix({"return": f"{mean_return:.0f}"})
                if on_evaluation is not None:
                    on_evaluation(trainer.steps, mean_return)
            trainer.wall_seconds += time.perf_counter() - started
            bar.update(trainer.steps - start)
            at_checkpoint = trainer.steps % config.checkpoint_every == 0
            if checkpoint is not None and (at_checkpoint or trainer.steps == config.env_steps):
                write_atomic(checkpoint, flax.serialization.msgpack_serialize(trainer.state_dict()))
            if stop_after is not None and trainer.steps >= stop_after and at_checkpoint:
                break
    return BehaviourRun(
        env_id=env_id,
        seed=seed,
        config=config,
        agent=trainer.agent,
        log=trainer.log,
        evaluations=trainer.evaluations,
        snapshots=trainer.snapshots,
        wall_seconds=trainer.wall_seconds,
        resumed_from=resumed_from,
    )
