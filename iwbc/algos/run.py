"""One entry point for every offline-RL baseline: train by name, resume, evaluate every seed.

The benchmark harness draws learning curves by calling :func:`train_algorithm` again with the
same checkpoint and a larger ``until``: training continues where it stopped, and because every
learning-rate schedule runs over ``config.steps`` (never over ``until``) the result is the same
agent a straight run to that step gives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from iwbc.algos import ALGORITHMS
from iwbc.algos.common import prepare_data, train_agent
from iwbc.data.episodes import Transitions
from iwbc.errors import UserError
from iwbc.evaluate import EVAL_SEED_BASE, evaluate_actor


def algorithm_classes(name: str) -> tuple[type, type]:
    """(agent class, config class) of ``name``, or a one-line error listing the known names."""
    if name not in ALGORITHMS:
        raise UserError(
            f"unknown offline-RL algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}"
        )
    return ALGORITHMS[name]


def train_algorithm(
    name: str,
    transitions: Transitions,
    seeds: Sequence[int],
    *,
    config: Any | None = None,
    until: int | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    chunk_size: int = 1000,
) -> tuple[Any, list[dict]]:
    """Train algorithm ``name`` on ``transitions``, one agent per seed, to ``until`` updates.

    ``config`` defaults to the algorithm's CORL D4RL config and ``until`` to ``config.steps``.
    With ``checkpoint`` an existing run resumes from it, so calling again with a larger
    ``until`` continues the same run. Returns the seed-stacked agent and the per-chunk history.
    """
    agent_cls, config_cls = algorithm_classes(name)
    config = config_cls() if config is None else config
    if not isinstance(config, config_cls):
        raise ValueError(f"{name} needs a {config_cls.__name__}, got a {type(config).__name__}")
    until = config.steps if until is None else until
    if not 0 < until <= config.steps:
        raise ValueError(
            f"until must be in [1, config.steps={config.steps}], got {until}; "
            "raise config.steps for a longer run (learning-rate schedules run over it)"
        )
    if not seeds:
        raise ValueError("no seeds given; pass at least one training seed")
    data, mean, std = prepare_data(transitions, config)
    observation_dim, action_dim = np.shape(transitions.obs)[1], np.shape(transitions.actions)[1]
    agent = agent_cls.create(list(seeds), observation_dim, action_dim, mean, std, config)
    agent, history = train_agent(
        agent,
        data,
        until,
        chunk_size=chunk_size,
        checkpoint=checkpoint,
        description=f"{name} training",
        progress=progress,
    )
    reached = int(np.asarray(agent.step)[0])
    if reached > until:
        raise ValueError(
            f"checkpoint {checkpoint} is at update {reached}, past until={until}; "
            "use another checkpoint path to train a shorter run"
        )
    return agent, history


def algorithm_actor(agent: Any) -> Callable[[Any, jax.Array], jax.Array]:
    """``act_fn(agent, raw_observations)`` for :func:`iwbc.evaluate.evaluate_actor`.

    The agent itself is the ``params`` pytree: its leading seed axis is vmapped and its state
    statistics normalize the environment's raw observations.
    """
    return type(agent).act


def evaluate_agent(
    agent: Any,
    env_id: str,
    *,
    num_episodes: int = 100,
    engine: str = "auto",
    seed_base: int = EVAL_SEED_BASE,
) -> np.ndarray:
    """Returns [num_seeds, num_episodes] of every seed of ``agent`` on the shared eval seeds."""
    return evaluate_actor(
        algorithm_actor(agent),
        agent,
        env_id,
        observation_dim=int(np.shape(agent.obs_mean)[-1]),
        action_dim=agent.action_dim,
        num_episodes=num_episodes,
        engine=engine,
        seed_base=seed_base,
    )
