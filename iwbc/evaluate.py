"""Policy → evaluation engine → episode returns → normalized scores.

Every method and every training seed is scored on the same episodes: episode i of an evaluation
starts from the reset noise of seed ``EVAL_SEED_BASE + i``. All training seeds are evaluated in
one batched rollout, the policy's mean action computed for all of them in one jitted call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from iwbc.envs import make_engine, rollout_returns
from iwbc.policies import GaussianPolicy, policy_mean_action

EVAL_SEED_BASE = 1_000_000


def evaluation_seeds(num_episodes: int, base: int = EVAL_SEED_BASE) -> np.ndarray:
    """The fixed reset seeds of an evaluation of ``num_episodes`` episodes."""
    if num_episodes <= 0:
        raise ValueError(f"num_episodes must be positive, got {num_episodes}")
    return base + np.arange(num_episodes)


def _check_dimensions(env_id: str, engine: str, observation_dim: int, action_dim: int) -> None:
    env = make_engine(env_id, 1, engine)
    try:
        if env.obs_dim != observation_dim or env.act_dim != action_dim:
            raise ValueError(
                f"the policy maps {observation_dim}-dim observations to {action_dim}-dim actions "
                f"but {env_id} has {env.obs_dim}-dim observations and {env.act_dim}-dim "
                "actions; evaluate on the environment the dataset was collected in"
            )
    finally:
        env.close()


def evaluate_actor(
    act_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    env_id: str,
    *,
    observation_dim: int,
    action_dim: int,
    num_episodes: int = 100,
    engine: str = "auto",
    seed_base: int = EVAL_SEED_BASE,
) -> np.ndarray:
    """Returns [num_seeds, num_episodes] of the deterministic actor ``act_fn(params, obs)``.

    ``params`` is any pytree with a leading training-seed axis, so Gaussian policies and the
    offline-RL agents are scored by the same batched rollout on the same seeds.
    """
    num_seeds = jax.tree.leaves(params)[0].shape[0]
    _check_dimensions(env_id, engine, observation_dim, action_dim)
    seeds = np.tile(evaluation_seeds(num_episodes, seed_base), num_seeds)

    @jax.jit
    def act(observations: jax.Array) -> jax.Array:
        per_seed = observations.reshape(num_seeds, num_episodes, observation_dim)
        actions = jax.vmap(act_fn)(params, per_seed)
        return actions.reshape(num_seeds * num_episodes, -1)

    result = rollout_returns(
        env_id,
        lambda obs: np.asarray(act(jnp.asarray(obs))),
        seeds,
        engine=engine,
        num_envs=len(seeds),
    )
    return result.returns.reshape(num_seeds, num_episodes)


def evaluate_policies(
    policy: GaussianPolicy,
    params: Any,
    env_id: str,
    *,
    num_episodes: int = 100,
    engine: str = "auto",
    seed_base: int = EVAL_SEED_BASE,
) -> np.ndarray:
    """Returns [num_seeds, num_episodes] of the deterministic (mean-action) policies.

    ``params`` carries a leading training-seed axis, as produced by the trainer.
    """
    observation_dim = params["params"]["Dense_0"]["kernel"].shape[1]
    return evaluate_actor(
        functools.partial(policy_mean_action, policy),
        params,
        env_id,
        observation_dim=observation_dim,
        action_dim=policy.action_dim,
        num_episodes=num_episodes,
        engine=engine,
        seed_base=seed_base,
    )
