"""The one interface every trained method implements, BC family, offline-RL baselines and the
data-generation SAC alike (the shape of ogbench's and fql's agents).

An agent is a ``flax.struct.PyTreeNode`` holding one seed's train state (parameters, optimizer
states, targets, the observation statistics it acts with) and its config as a static field:

- ``create(key, spec, config, init=None)`` builds one seed's agent for data described by
  ``spec``; ``init`` is an agent to start from (a fine-tune starts from BC), only for agents
  that ``accepts_init`` (the trainer refuses it for the others);
- ``prepare(data)`` fills whatever state needs the whole training data once before training
  (iw-BC's whole-trajectory tables); most agents need nothing;
- ``sample(key, data, step)`` draws one batch on the device (transitions here; episodes for the
  BC family) and may refresh state that is computed from the data;
- ``update(batch) -> (agent, info)`` is one gradient step, ``info`` holding scalar metrics;
- ``act(observations)`` is the deterministic action for raw environment observations.

:mod:`iwbc.core.trainer` vmaps ``create`` over seeds and runs jit(vmap(scan(sample, update)))
for any agent.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from iwbc.core.sampling import sample_transitions
from iwbc.errors import UserError

DataKind = Literal["episodes", "transitions"]


class DataSpec(flax.struct.PyTreeNode):
    """The training data as an agent's ``create`` needs it: its dimensions, the whole
    dataset's observation mean and std (used by agents that standardize observations) and,
    per action dimension, the half-width of the env's action box its [-1, 1] actions were
    mapped from (None: not mapped, 1 on every dimension)."""

    obs_mean: jax.Array
    obs_std: jax.Array
    action_dim: int = flax.struct.field(pytree_node=False)
    action_scale: tuple[float, ...] | None = flax.struct.field(pytree_node=False, default=None)

    @property
    def observation_dim(self) -> int:
        return int(np.shape(self.obs_mean)[-1])

    @property
    def example_observations(self) -> jax.Array:
        """A batch of one zero observation, to initialize networks with."""
        return jnp.zeros((1, self.observation_dim), jnp.float32)

    @property
    def example_actions(self) -> jax.Array:
        return jnp.zeros((1, self.action_dim), jnp.float32)


class Agent(flax.struct.PyTreeNode):
    """Base of every agent: the update counter and the random key the trainer splits; the
    default ``prepare`` and ``sample`` (uniform transitions) of the offline-RL agents."""

    step: jax.Array
    rng: jax.Array

    # What ``sample`` draws from: the trainer prepares this kind of device data for the agent.
    data_kind: ClassVar[DataKind] = "transitions"
    # Whether ``create`` can start from another agent (``init``); the trainer refuses it else.
    accepts_init: ClassVar[bool] = False

    @property
    def observation_dim(self) -> int:
        """The observations it acts on (an evaluation checks them against the environment)."""
        raise NotImplementedError

    def act(self, observations: jax.Array) -> jax.Array:
        """The deterministic action for raw observations ([batch, obs_dim]) of one seed's
        agent. A seed-stacked agent (what ``train_methods`` returns) is refused: its
        parameters would broadcast against a batch of as many observations as it has seeds and
        answer wrongly instead of failing."""
        if jnp.ndim(self.step) != 0:
            raise UserError(
                f"act is one seed's, and this agent holds {jnp.shape(self.step)[0]} seeds "
                "stacked: act with one, jax.tree.map(lambda x: x[i], agent).act(obs), or all, "
                "jax.vmap(type(agent).act, in_axes=(0, None))(agent, obs)"
            )
        return self._act(observations)

    def _act(self, observations: jax.Array) -> jax.Array:
        raise NotImplementedError

    def acting(self) -> tuple[Any, Any]:
        """(act_fn, params) with ``act_fn(params, observations)`` = ``act``: what evaluation
        compiles. ``act_fn`` is compared by value, so agents that act alike (the BC family's
        methods share one policy network) share one compiled MJX evaluation."""
        return type(self).act, self

    def prepare(self, data: Any) -> Agent:
        return self

    def sample(self, key: jax.Array, data: Any, step: jax.Array) -> tuple[Agent, Any]:
        return self, sample_transitions(key, data, self.config.batch_size)
