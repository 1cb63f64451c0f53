"""Pieces the offline-RL agents share: config checks, trained networks, target updates, and
the base holding the dataset's state statistics they act with.

Network modules: :mod:`iwbc.agents.networks`; device data: :mod:`iwbc.core.sampling`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, ClassVar, Literal, get_args

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from iwbc.agents.networks import EnsembleCritic, GaussianPolicy, LayerInit
from iwbc.core.agent import Agent, DataKind, DataSpec
from iwbc.errors import UserError

# Metadata of a config field added after records were committed: a run's record states it only
# where it is set otherwise than its default, so the records made before it existed (with that
# default) still describe their runs, fingerprints included (iwbc.bench.suites).
_STATED_WHEN_SET = "stated_when_set"


def later_option(default: Any) -> Any:
    """A config field added after records were committed (see ``stated_fields``)."""
    return dataclasses.field(default=default, metadata={_STATED_WHEN_SET: True})


def stated_fields(config: Any) -> dict[str, Any]:
    """``config`` as records state it: ``dataclasses.asdict``, except a ``later_option`` at its
    default, in nested dataclasses too."""
    return {
        field.name: _stated(getattr(config, field.name))
        for field in dataclasses.fields(config)
        if not (
            field.metadata.get(_STATED_WHEN_SET) and getattr(config, field.name) == field.default
        )
    }


def _stated(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return stated_fields(value)
    if isinstance(value, list | tuple):
        return type(value)(_stated(v) for v in value)
    if isinstance(value, dict):
        return {k: _stated(v) for k, v in value.items()}
    return value


@dataclasses.dataclass(frozen=True)
class Interval:
    """The values a hyperparameter may take: ``low`` to ``high``, each end open or closed."""

    low: float
    high: float = math.inf
    closed_low: bool = True
    closed_high: bool = False

    def __contains__(self, value: float) -> bool:
        above = value >= self.low if self.closed_low else value > self.low
        below = value <= self.high if self.closed_high else value < self.high
        return above and below

    def __str__(self) -> str:
        high = "∞" if math.isinf(self.high) else f"{self.high:g}"
        return (
            f"{'[' if self.closed_low else '('}{self.low:g}, {high}"
            f"{']' if self.closed_high else ')'}"
        )


NON_NEGATIVE = Interval(0.0)
POSITIVE = Interval(0.0, closed_low=False)


def is_integer(value: object) -> bool:
    """Whether ``value`` is a Python int, not a bool: a float, True or a NumPy integer would
    reach JAX's static shapes, or a record's JSON, as something else."""
    return isinstance(value, int) and not isinstance(value, bool)


def hidden_dims_tuple(config: Any) -> None:
    """Store a list of ``hidden_dims`` as a tuple: the config is a static (hashed) argument of
    every compiled update, and a list is not hashable."""
    if isinstance(config.hidden_dims, list):
        object.__setattr__(config, "hidden_dims", tuple(config.hidden_dims))


def check_config(config: Any) -> None:
    """Refuse, in one line, a config no run could use (a suite typo or a CLI value), before the
    run starts: counts below 1, non-finite numbers, learning rates ≤ 0, a discount outside
    [0, 1], a Polyak rate outside (0, 1], empty or non-positive hidden layers, a log-std range
    that is empty, and any field outside the interval its config class's ``bounds`` give."""
    name = type(config).__name__
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name == "hidden_dims":
            if not value or not all(is_integer(d) and d >= 1 for d in value):
                raise UserError(f"{name}.hidden_dims must be positive layer widths, got {value!r}")
        elif field.type == "int" and not (is_integer(value) and value >= 1):
            raise UserError(f"{name}.{field.name} must be an integer ≥ 1, got {value!r}")
        elif field.type == "float" and not math.isfinite(value):
            raise UserError(f"{name}.{field.name} must be a finite number, got {value!r}")
        elif field.name.endswith(("_lr", "learning_rate")) and value <= 0:
            raise UserError(f"{name}.{field.name} must be > 0, got {value!r}")
    check_layer_init(config.layer_init, f"{name}.layer_init")
    if not 0.0 <= config.discount <= 1.0:
        raise UserError(f"{name}.discount must be in [0, 1], got {config.discount!r}")
    if not 0.0 < config.tau <= 1.0:
        raise UserError(f"{name}.tau must be in (0, 1], got {config.tau!r}")
    for field, interval in getattr(config, "bounds", {}).items():
        if getattr(config, field) not in interval:
            raise UserError(f"{name}.{field} must be in {interval}, got {getattr(config, field)!r}")
    low, high = getattr(config, "log_std_min", None), getattr(config, "log_std_max", None)
    if low is not None and high is not None and not low < high:
        raise UserError(f"{name}.log_std_min must be below log_std_max, got {low!r} and {high!r}")


def check_layer_init(value: object, where: str) -> None:
    """Refuse, in one line, a ``layer_init`` that is not one of :data:`LayerInit`."""
    if value not in get_args(LayerInit):
        raise UserError(f"{where} must be one of {', '.join(get_args(LayerInit))}, got {value!r}")


def optimizer_step(
    optimizer: optax.GradientTransformation, grads: Any, opt_state: Any, params: Any
) -> tuple[Any, Any]:
    """One optimizer update of ``params``; returns the new parameters and optimizer state."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def soft_update(target: Any, online: Any, tau: float) -> Any:
    """Polyak averaging: target ← τ·online + (1 − τ)·target."""
    return jax.tree.map(lambda t, o: tau * o + (1.0 - tau) * t, target, online)


def init_actor_critic(
    key: jax.Array, spec: DataSpec, actor: nn.Module, critic: nn.Module, *, extra_keys: int = 0
) -> tuple[jax.Array, Any, Any, list[jax.Array]]:
    """An actor-critic agent's first draws from its seed key, in the order every agent takes
    them: (its update rng, actor parameters, critic parameters, ``extra_keys`` more keys)."""
    rng, actor_key, critic_key, *extra = jax.random.split(key, 3 + extra_keys)
    actor_params = actor.init(actor_key, spec.example_observations)
    critic_params = critic.init(critic_key, spec.example_observations, spec.example_actions)
    return rng, actor_params, critic_params, extra


def after_update(
    agent: Any, rng: jax.Array, actor_grads: Any, critic: Trained, tau: float, **fields: Any
) -> Any:
    """``agent`` after one update: the step counted, the actor stepped by ``actor_grads``, the
    new ``critic`` and its target moved towards it by τ, and any other ``fields`` replaced."""
    return agent.replace(
        step=agent.step + 1,
        rng=rng,
        actor=agent.actor.apply_gradients(actor_grads),
        critic=critic,
        target_critic_params=soft_update(agent.target_critic_params, critic.params, tau),
        **fields,
    )


@dataclasses.dataclass(frozen=True)
class OfflineRLConfig:
    """What every baseline's config holds, at CORL's D4RL locomotion values; each baseline's
    config adds its own hyperparameters (and CQL's and AWAC's widen the networks)."""

    # Gradient updates of a full run (CORL: 1M).
    steps: int = 1_000_000
    batch_size: int = 256
    hidden_dims: tuple[int, ...] = (256, 256)
    discount: float = 0.99
    # Polyak rate of the target networks.
    tau: float = 5e-3
    # States standardized with the dataset's mean and std (iwbc.core.sampling.prepare_data).
    normalize_states: bool = True
    # How the layers CORL leaves at PyTorch's default start: "flax" (LeCun-normal kernels,
    # zero biases) or "torch" (CORL's nn.Linear default; iwbc.agents.networks.LayerInit).
    layer_init: LayerInit = later_option("flax")
    # The values each of a baseline's own hyperparameters may take (check_config).
    bounds: ClassVar[dict[str, Interval]] = {}

    def __post_init__(self) -> None:
        hidden_dims_tuple(self)
        check_config(self)


@dataclasses.dataclass(frozen=True)
class Adam:
    """An Adam optimizer as a hashable value: ``schedule`` "cosine" decays the learning rate
    to 0 over ``decay_steps`` (IQL's actor), "warmup_cosine" first warms it up from 0 over
    ``warmup_steps`` (the iw-BC fine-tune); the authors' WarmupCosineLR is optax's schedule."""

    learning_rate: float
    schedule: Literal["constant", "cosine", "warmup_cosine"] = "constant"
    decay_steps: int = 0
    warmup_steps: int = 0

    def transform(self) -> optax.GradientTransformation:
        return _adam(self)


@functools.cache
def _adam(spec: Adam) -> optax.GradientTransformation:
    if spec.schedule == "constant":
        return optax.adam(spec.learning_rate)
    if spec.schedule == "cosine":
        return optax.adam(optax.cosine_decay_schedule(spec.learning_rate, spec.decay_steps))
    return optax.adam(
        optax.warmup_cosine_decay_schedule(
            init_value=0.0,
            peak_value=spec.learning_rate,
            warmup_steps=spec.warmup_steps,
            decay_steps=spec.decay_steps,
            end_value=0.0,
        )
    )


class Trained(flax.struct.PyTreeNode):
    """One trained set of parameters and its optimizer state (a network, or a temperature).

    Flax's ``TrainState`` would do, but it holds ``apply_fn`` and ``tx`` as static fields that
    compare by identity, so every newly created agent would compile the trainer anew; here the
    optimizer is a hashable :class:`Adam` and the network module is the agent's to build.
    """

    params: Any
    opt_state: Any
    optimizer: Adam = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, params: Any, optimizer: Adam) -> Trained:
        return cls(params, optimizer.transform().init(params), optimizer)

    def apply_gradients(self, grads: Any) -> Trained:
        params, opt_state = optimizer_step(
            self.optimizer.transform(), grads, self.opt_state, self.params
        )
        return self.replace(params=params, opt_state=opt_state)


class OfflineRLAgent(Agent):
    """Base of the baselines: an actor, an ensemble of critics and its target. They train on
    standardized transitions and act on raw observations with the dataset's state statistics
    (mean 0, std 1 when not standardized)."""

    obs_mean: jax.Array
    obs_std: jax.Array
    actor: Trained
    critic: Trained
    target_critic_params: Any
    action_dim: int = flax.struct.field(pytree_node=False)

    data_kind: ClassVar[DataKind] = "transitions"

    @property
    def observation_dim(self) -> int:
        return int(np.shape(self.obs_mean)[-1])

    @property
    def critic_network(self) -> EnsembleCritic:
        return EnsembleCritic(self.config.hidden_dims)

    def standardize(self, observations: jax.Array) -> jax.Array:
        return (observations - self.obs_mean) / self.obs_std

    @classmethod
    def fresh(
        cls, rng: jax.Array, spec: DataSpec, actor: Trained, critic: Trained, **fields: Any
    ) -> Any:
        """A new agent at update 0 for data ``spec``, its target critic a copy of ``critic``."""
        return cls(
            step=jnp.zeros((), jnp.int32),
            rng=rng,
            obs_mean=spec.obs_mean,
            obs_std=spec.obs_std,
            actor=actor,
            critic=critic,
            target_critic_params=critic.params,
            action_dim=spec.action_dim,
            **fields,
        )


def gaussian_actor(action_dim: int, config: Any, *, tanh_mean: bool) -> GaussianPolicy:
    """IQL's and AWAC's actor (CORL): a Gaussian with a state-independent log-std clipped to
    the config's bounds, on already standardized states (the agent standardizes, in act())."""
    return GaussianPolicy(
        action_dim=action_dim,
        hidden_dims=config.hidden_dims,
        log_std_min=config.log_std_min,
        log_std_max=config.log_std_max,
        standardize=False,
        tanh_mean=tanh_mean,
        layer_init=config.layer_init,
    )
