"""Engine factory and fixed-seed evaluation rollouts shared by all methods."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from iwbc.envs.batch import BatchEngine
from iwbc.envs.engine import Engine, check_num_envs
from iwbc.envs.gymnasium_engine import GymnasiumEngine, check_env_id
from iwbc.envs.specs import Env, env_name, spec_for
from iwbc.errors import UserError

ENGINES = ("auto", "batch", "gymnasium", "mjx")
DEFAULT_MAX_ENVS = 128


def resolve_engine(env: Env, engine: str = "auto") -> str:
    """The engine ``auto`` stands for, or ``engine`` itself when it is named.

    ``auto`` takes MJX when JAX runs on a GPU and ``mujoco.mjx`` is installed (MJX pays
    off only there) and MJX can run the task's model, else the CPU batch engine, for envs a
    built-in spec reproduces (``spec_for``: the id, and any arguments a dataset's EnvSpec
    records); Gymnasium for the others. Name an engine to override.
    """
    if engine not in ENGINES:
        raise UserError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "mjx":
        reason = spec_for(env).mjx_unsupported
        if reason is not None:
            raise UserError(
                f"{env_name(env)} cannot run on MJX: {reason}; evaluate it with engine 'batch' "
                "(or 'auto', which picks it)"
            )
    if engine != "auto":
        return engine
    try:
        spec = spec_for(env)
    except UserError:
        if isinstance(env, str):
            check_env_id(env)
        return "gymnasium"
    return "mjx" if spec.mjx_unsupported is None and _gpu_with_mjx() else "batch"


def _gpu_with_mjx() -> bool:
    import jax

    return jax.default_backend() == "gpu" and importlib.util.find_spec("mujoco.mjx") is not None


def require_mjx() -> None:
    """Raise the install hint when ``mujoco.mjx`` (an optional extra) is missing."""
    if importlib.util.find_spec("mujoco.mjx") is None:
        raise UserError(
            "engine 'mjx' is not available yet in this install: pip install 'iwbc[mjx]'"
        )


def make_engine(env: Env, num_envs: int, engine: str = "auto") -> Engine:
    """Build ``num_envs`` envs of ``env`` on ``engine`` (see ``resolve_engine``)."""
    engine = resolve_engine(env, engine)
    if engine == "batch":
        return BatchEngine(spec_for(env), num_envs)
    if engine == "mjx":
        require_mjx()
        from iwbc.envs.mjx_engine import MjxEngine

        return MjxEngine(spec_for(env), num_envs)
    return GymnasiumEngine(env, num_envs)


class RolloutResult(NamedTuple):
    """Per-seed episode returns and lengths, in the order of the seeds."""

    returns: np.ndarray
    lengths: np.ndarray


ActFn = Callable[[np.ndarray], np.ndarray]


def rollout_returns(
    env: Env,
    act_fn: ActFn,
    seeds: Sequence[int] | np.ndarray,
    *,
    engine: str = "auto",
    num_envs: int | None = None,
) -> RolloutResult:
    """Run one episode per seed and return its undiscounted return and length.

    Seed ``seeds[i]`` fixes episode i's reset noise, so every method is scored on the
    same initial states. At most ``num_envs`` (default ``min(len(seeds), 128)``) episodes
    run at once; a finished env is refilled with the next seed. ``act_fn`` maps float32
    observations [num_envs, obs_dim] to actions [num_envs, act_dim] once per step;
    actions of envs with no running episode are ignored. An episode ends when it
    terminates or after ``max_episode_steps`` steps.
    """
    seeds = [int(s) for s in np.asarray(seeds).reshape(-1)]
    n = len(seeds)
    returns = np.zeros(n)
    lengths = np.zeros(n, dtype=np.int64)
    if n == 0:
        return RolloutResult(returns, lengths)
    if num_envs is not None:
        check_num_envs(num_envs)
    width = min(n, DEFAULT_MAX_ENVS) if num_envs is None else min(n, num_envs)
    engines = make_engine(env, width, engine)
    try:
        _run_episodes(engines, act_fn, seeds, returns, lengths)
    finally:
        engines.close()
    return RolloutResult(returns, lengths)


def _run_episodes(
    env: Engine, act_fn: ActFn, seeds: list[int], returns: np.ndarray, lengths: np.ndarray
) -> None:
    if env.max_episode_steps is None:
        raise UserError(f"{env.env_id} has no max_episode_steps; episodes might never end")
    n, width = len(seeds), env.num_envs
    episode = np.arange(width)  # episode index run by each env, -1 once idle
    obs = env.reset(seeds[:width])
    next_episode = width
    running = np.arange(width)
    while running.size:
        actions = np.asarray(act_fn(obs.astype(np.float32)))
        step_ids = None if running.size == width else running
        obs, reward, terminated, truncated = env.step(actions, ids=step_ids)
        ep = episode[running]
        returns[ep] += reward[running]
        lengths[ep] += 1
        done = running[terminated[running] | truncated[running]]
        if done.size == 0:
            continue
        refill = done[: max(0, min(done.size, n - next_episode))]
        if refill.size:
            episode[refill] = np.arange(next_episode, next_episode + refill.size)
            obs = env.reset(seeds[next_episode : next_episode + refill.size], ids=refill)
            next_episode += refill.size
        episode[done[refill.size :]] = -1
        running = np.flatnonzero(episode >= 0)
