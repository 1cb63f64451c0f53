"""Policy → evaluation engine → episode returns → normalized scores.

Every method and every training seed is scored on the same episodes: episode i of an evaluation
starts from the reset noise of seed ``EVAL_SEED_BASE + i``. All training seeds are evaluated in
one batched rollout, the policy's mean action computed for all of them in one jitted call.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from gymnasium.envs.registration import EnvSpec

from iwbc.envs import make_engine, resolve_engine, rollout_returns
from iwbc.envs.action_box import from_unit, rescaled
from iwbc.envs.gymnasium_engine import make_env, observations_copied
from iwbc.envs.robotics_compat import ROBOTICS_PACKAGE
from iwbc.envs.rollout import require_mjx
from iwbc.envs.specs import Env, env_name, spec_for
from iwbc.errors import UserError, one_line

EVAL_SEED_BASE = 1_000_000


def evaluation_seeds(num_episodes: int, base: int = EVAL_SEED_BASE) -> np.ndarray:
    """The fixed reset seeds of an evaluation of ``num_episodes`` episodes."""
    if num_episodes <= 0:
        raise UserError(f"num_episodes must be positive, got {num_episodes}")
    return base + np.arange(num_episodes)


def _env_box(env: Env, engine: str) -> tuple[int, np.ndarray, np.ndarray]:
    """The env's observation dimension and action box (low, high)."""
    if engine != "gymnasium":
        spec = spec_for(env)
        return (spec.obs_dim, *spec.action_bounds())
    engines = make_engine(env, 1, engine)
    try:
        return engines.obs_dim, engines.action_low, engines.action_high
    finally:
        engines.close()


def _checked_box(
    env: Env, engine: str, observation_dim: int, action_dim: int
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The action box a policy's [-1, 1] actions are mapped into (None: [-1, 1] itself), after
    checking the policy's dimensions against the env's."""
    obs_dim, low, high = _env_box(env, engine)
    act_dim = int(np.size(low))
    if obs_dim != observation_dim or act_dim != action_dim:
        raise UserError(
            f"the policy maps {observation_dim}-dim observations to {action_dim}-dim actions "
            f"but {env_name(env)} has {obs_dim}-dim observations and {act_dim}-dim "
            "actions; evaluate on the environment the dataset was collected in"
        )
    if not rescaled(low, high):
        return None
    return tuple(map(float, np.ravel(low))), tuple(map(float, np.ravel(high)))


# The packages of the env modules Minari's datasets record beyond Gymnasium's own: its D4RL
# Adroit, Kitchen, Point- and AntMaze datasets' envs (AdroitHandPen-v1, ...) are
# Gymnasium-Robotics'.
ENV_PACKAGES = {ROBOTICS_PACKAGE: "gymnasium-robotics"}


def check_evaluable(env: Env | None, engine: str, dataset_id: str) -> str:
    """The engine that will score a policy of dataset ``dataset_id`` on ``env`` (``auto``
    resolved), once it is known that it can: called before anything trains, so that an env
    no engine here can run costs seconds, not a training run."""
    if env is None:
        raise UserError(
            f"dataset {dataset_id} records no environment, so it cannot be evaluated; name the "
            "env it was recorded on with `iwbc run --env ID`, or record the dataset with its env "
            "(minari.DataCollector, or create_dataset_from_buffers(env=...))"
        )
    if isinstance(env, EnvSpec) and env.max_episode_steps is None:
        raise _no_time_limit(dataset_id, env.id)
    resolved = resolve_engine(env, engine)
    if resolved == "mjx":
        require_mjx()
    if resolved != "gymnasium":
        spec_for(env)  # a one-line error naming what the batch and MJX engines cannot reproduce
        return resolved
    try:
        # Built, reset and stepped once: an env whose code fails on this machine (its package
        # against this MuJoCo, say) is found now rather than after training.
        built = make_env(env)
        try:
            with observations_copied():  # the check's observations are dropped unread
                built.reset(seed=EVAL_SEED_BASE)
                built.action_space.seed(0)
                built.step(built.action_space.sample())
        finally:
            built.close()
    except Exception as error:  # whatever the env's own code raises, said in one line
        missing = error.name if isinstance(error, ModuleNotFoundError) else None
        package = ENV_PACKAGES.get((missing or "").partition(".")[0])
        if package:
            need = f" (`pip install {package}`)"
        else:
            need = "" if missing else f", in versions that run with MuJoCo {mujoco.__version__}"
        raise UserError(
            f"dataset {dataset_id}'s env {env_name(env)} cannot be built or run here "
            f"({_env_failure(error)}); evaluation runs the env the dataset records, so install "
            f"what it needs{need}, or record the dataset on an env (and wrappers) Gymnasium can "
            "rebuild from its spec"
        ) from None
    limit = built.spec.max_episode_steps if built.spec is not None else None
    if limit is None:
        raise _no_time_limit(dataset_id, env_name(env))
    return resolved


def _env_failure(error: Exception) -> str:
    """An env's own exception in one line; a bare one (an assert) as its type and the line
    that raised it, since its message says nothing."""
    text = one_line(error)
    frames = traceback.extract_tb(error.__traceback__)
    if text or not frames:
        return text or type(error).__name__
    return f"{type(error).__name__} at {Path(frames[-1].filename).name}:{frames[-1].lineno}"


def _no_time_limit(dataset_id: str, env_id: str) -> UserError:
    return UserError(
        f"dataset {dataset_id}'s env {env_id} has no time limit (max_episode_steps=None), so "
        "an evaluation episode might never end; record the dataset on an env made with "
        "gymnasium.make(..., max_episode_steps=N), as Gymnasium's registered tasks are"
    )


@dataclass(frozen=True)
class SeedBatchedActor:
    """``act_fn`` over params with a leading training-seed axis, envs laid out seed-major.

    Frozen (hashable, equal by value) so that MJX's compiled rollout, which takes the
    actor as a static argument, is reused by every evaluation of the same method.
    """

    act_fn: Callable[[Any, jax.Array], jax.Array]
    num_seeds: int
    # (low, high) of the env's action box when it is not [-1, 1]: the policy's actions, in
    # [-1, 1] as its training data's were (iwbc.envs.action_box), are mapped into it.
    action_box: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def __call__(self, params: Any, observations: jax.Array) -> jax.Array:
        per_seed = observations.reshape(self.num_seeds, -1, observations.shape[-1])
        actions = jax.vmap(self.act_fn)(params, per_seed)
        actions = actions.reshape(observations.shape[0], -1)
        if self.action_box is None:
            return actions
        low, high = (jnp.asarray(bound, actions.dtype) for bound in self.action_box)
        return from_unit(actions, low, high)


def evaluate_actor(
    act_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    env: Env,
    *,
    observation_dim: int,
    action_dim: int,
    num_episodes: int = 100,
    engine: str = "auto",
    seed_base: int = EVAL_SEED_BASE,
) -> np.ndarray:
    """Returns [num_seeds, num_episodes] of the deterministic actor ``act_fn(params, obs)``.

    ``params`` is any pytree with a leading training-seed axis, so Gaussian policies and the
    offline-RL agents are scored by the same batched rollout on the same seeds. On MJX the
    whole evaluation, policy included, is one compiled call (pass an ``act_fn`` that is
    equal across calls, a plain function or a frozen dataclass, to compile it once).
    ``env`` is an id or the EnvSpec a dataset records (its arguments and time limit apply).
    The actor acts in [-1, 1]; an env with another action box gets its actions mapped into
    that box (:mod:`iwbc.envs.action_box`), as its dataset's were mapped out of it.
    """
    if not isinstance(env, str | EnvSpec):
        raise UserError(
            f"env must be a Gymnasium id or the EnvSpec a dataset records (dataset.env), got "
            f"{type(env).__name__}: a dataset that records no env is given one by "
            "load_dataset(..., env=ID)"
        )
    leading = {np.shape(leaf)[:1] for leaf in jax.tree.leaves(params)}
    if len(leading) != 1 or () in leading:
        raise UserError(
            "the agent's parameters have no leading training-seed axis shared by all of them "
            "(an agent taken out of its seed stack?): evaluate the stacked agent train_methods "
            "returns, or add the axis with jax.tree.map(lambda x: x[None], agent)"
        )
    num_seeds = leading.pop()[0]
    engine = resolve_engine(env, engine)
    box = _checked_box(env, engine, observation_dim, action_dim)
    seeds = np.tile(evaluation_seeds(num_episodes, seed_base), num_seeds)
    actor = SeedBatchedActor(act_fn, num_seeds, box)
    if engine == "mjx":
        require_mjx()
        from iwbc.envs.mjx_engine import mjx_rollout_returns

        result = mjx_rollout_returns(env, actor, params, seeds)
    else:
        act = jax.jit(actor)
        result = rollout_returns(
            env,
            lambda obs: np.asarray(act(params, jnp.asarray(obs))),
            seeds,
            engine=engine,
            num_envs=len(seeds),
        )
    return result.returns.reshape(num_seeds, num_episodes)


def evaluate_agent(
    agent: Any,
    env: Env,
    *,
    num_episodes: int = 100,
    engine: str = "auto",
    seed_base: int = EVAL_SEED_BASE,
) -> np.ndarray:
    """Returns [num_seeds, num_episodes] of every seed of a seed-stacked agent, acting with
    its deterministic ``act`` on the environment's raw observations (each agent applies its
    own observation statistics), on the shared evaluation seeds."""
    if not hasattr(agent, "acting"):
        held = " (its .agent is)" if hasattr(agent, "agent") else ""
        raise UserError(
            f"evaluate_agent takes a trained agent, got a {type(agent).__name__}{held}: pass "
            "e.g. train_methods(...)['bc'].agent"
        )
    act_fn, params = agent.acting()
    return evaluate_actor(
        act_fn,
        params,
        env,
        observation_dim=agent.observation_dim,
        action_dim=agent.action_dim,
        num_episodes=num_episodes,
        engine=engine,
        seed_base=seed_base,
    )
