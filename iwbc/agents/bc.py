"""The BC family as one agent: BC, filtered BC, and iw-BC's trajectory, per-step and quality losses.

The config names the loss; which episodes a method trains on is a data transform before
training (:mod:`iwbc.data.selection`), and a fine-tune is ``create(..., init=bc_agent)``, whose
parameters become the start, q_ref (frozen) and q_iw (an EMA of the policy). The policy is the
authors' Gaussian MLP; with ``standardize`` it maps observations with the training data's
statistics, held in its parameters' ``normalizer`` so that they travel into every checkpoint,
snapshot and evaluation engine.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Literal

import flax.struct
import jax
import jax.numpy as jnp
import optax

from iwbc import losses
from iwbc.agents.common import (
    Adam,
    check_layer_init,
    hidden_dims_tuple,
    is_integer,
    later_option,
)
from iwbc.agents.networks import (
    GaussianPolicy,
    LayerInit,
    policy_log_prob,
    policy_mean_action,
    with_statistics,
)
from iwbc.core.agent import Agent, DataKind, DataSpec
from iwbc.core.sampling import FLAT_BLOCK, DeviceEpisodes, EpisodeBatch, sample_episodes
from iwbc.errors import UserError
from iwbc.losses import WEIGHTINGS, Weighting

LossName = Literal["bc", "iw_trajectory", "iw_step", "iw_quality"]
LOSSES: tuple[str, ...] = ("bc", "iw_trajectory", "iw_step", "iw_quality")
# Steps between exact recomputations of log q_iw(τ)/|τ| under windows (see BCConfig).
REFRESH_EVERY = 10


@dataclasses.dataclass(frozen=True)
class BCConfig:
    """The loss, network and optimisation of one BC-family training run.

    Defaults are the authors' BC pre-training (10k steps, Adam 1e-3, 128 episodes) except the
    ``weighting`` of the steps, which is CORL's transition-uniform one (the authors' code weighs
    episodes; see :mod:`iwbc.losses` and METHOD.md). The iw-BC fine-tune of the paper is
    ``BCConfig.iw_finetune()``.
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
    # The authors' 3 x 256 policy; standardize: observations mapped with the dataset's mean
    # and std (CORL's choice for BC and every baseline); False is the authors' raw input.
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    standardize: bool = True
    # How the policy's layers start: "flax" (LeCun-normal kernels, zero biases) or "torch" (the
    # authors' PyTorch nn.Linear default; iwbc.agents.networks.LayerInit). Only a run from
    # scratch draws them; a fine-tune starts from its BC.
    layer_init: LayerInit = later_option("flax")

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise UserError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if not all(is_integer(n) and n >= 1 for n in (self.steps, self.batch_size)):
            raise UserError(
                "steps and batch_size must be positive integers, got "
                f"{self.steps!r} and {self.batch_size!r}"
            )
        for name in ("learning_rate", "temperature"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise UserError(f"{name} must be a positive finite number, got {value}")
        warmup = self.warmup_steps
        if warmup is not None and not (is_integer(warmup) and 0 <= warmup < self.steps):
            raise UserError(
                f"warmup_steps must be in [0, steps={self.steps}) (an integer), got {warmup!r}"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise UserError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.window is not None and not (is_integer(self.window) and self.window >= 1):
            raise UserError(
                f"window must be a positive number of steps or None, got {self.window!r}"
            )
        if self.weighting not in WEIGHTINGS:
            raise UserError(
                f"unknown weighting {self.weighting!r}; choose one of {', '.join(WEIGHTINGS)}"
            )
        if not (is_integer(self.refresh_every) and self.refresh_every >= 1):
            raise UserError(
                f"refresh_every must be a positive step count, got {self.refresh_every}"
            )
        hidden_dims_tuple(self)
        dims = self.hidden_dims
        if not dims or not all(is_integer(d) for d in dims):
            raise UserError(f"hidden_dims must be a non-empty list of integers, got {dims!r}")
        if min(dims) < 1:
            raise UserError(f"hidden_dims must be positive layer widths, got {dims!r}")
        check_layer_init(self.layer_init, "layer_init")

    @classmethod
    def iw_finetune(cls, **overrides: Any) -> BCConfig:
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

    @property
    def inert_fields(self) -> tuple[str, ...]:
        """The fields this config's loss never reads (BC's: every iw-BC field; refresh_every
        without a trajectory table), left out where a config is shown to a reader. They stay in
        records and fingerprints, which hold whole configs."""
        if not self.importance_weighted:
            return ("temperature", "normalize", "ema_decay", "refresh_every")
        return () if self.trajectory_table else ("refresh_every",)


def check_start(config: BCConfig, start: BCConfig) -> None:
    """A one-line error for a fine-tune (``config``) whose network is not its start's: it takes
    over the start's parameters, so their layer widths and standardization must match."""
    if tuple(config.hidden_dims) != tuple(start.hidden_dims):
        raise UserError(
            f"a fine-tune with hidden_dims {tuple(config.hidden_dims)} cannot start from an agent "
            f"with hidden_dims {tuple(start.hidden_dims)}; give both the same hidden_dims"
        )
    if config.standardize != start.standardize:
        raise UserError(
            "a fine-tune must standardize observations as the agent it starts from does"
        )


def make_optimizer(config: BCConfig) -> optax.GradientTransformation:
    """Adam with the config's schedule: constant, or the fine-tune's warm-up then cosine."""
    if config.warmup_steps is None:
        return Adam(config.learning_rate).transform()
    return Adam(
        config.learning_rate, "warmup_cosine", config.steps, config.warmup_steps
    ).transform()


def ema(iw_params: Any, params: Any, decay: float) -> Any:
    """q_iw ← decay · q_iw + (1 − decay) · θ over the trainable ``params`` collection; the
    observation statistics are the same for both and stay exactly as they are."""
    average = jax.tree.map(
        lambda q, p: decay * q + (1.0 - decay) * p, iw_params["params"], params["params"]
    )
    return {**iw_params, "params": average}


def episode_log_probs(policy: GaussianPolicy, params: Any, data: DeviceEpisodes) -> jax.Array:
    """log q(τ)/|τ| of every episode of ``data`` [E], from all its steps, in fixed-size blocks;
    a trajectory the data lists several times is computed once."""
    observations = data.flat_observations.reshape(-1, FLAT_BLOCK, data.flat_observations.shape[-1])
    actions = data.flat_actions.reshape(-1, FLAT_BLOCK, data.flat_actions.shape[-1])
    log_probs = jax.lax.map(
        lambda block: policy_log_prob(policy, params, *block), (observations, actions)
    ).reshape(-1)
    sums = jax.ops.segment_sum(log_probs, data.flat_episode, num_segments=data.num_episodes + 1)
    return sums[data.episode_source] / jnp.maximum(data.lengths, 1)


def bc_loss(policy: GaussianPolicy, config: BCConfig) -> Any:
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
            return loss, {
                "weight_mean": mean_weight,
                "weight_spread": spread,
                "weight_ess": losses.effective_sample_fraction(weights, batch.mask),
            }
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
            "weight_ess": losses.trajectory_weight_fraction(weights, batch.mask, weighting),
        }

    return loss_fn


class WeightedBatch(flax.struct.PyTreeNode):
    """A batch of episodes and, where it holds windows of a trajectory-weighted loss, each row's
    whole-trajectory log q_iw(τ)/|τ| − log q_ref(τ)/|τ| from the agent's tables (else None)."""

    episodes: EpisodeBatch
    mean_log_ratio: Any = None


class BCAgent(Agent):
    """One seed's policy, optimizer state and, for iw losses, q_ref and q_iw.

    ``ref_params`` is the frozen q_ref and ``iw_params`` the EMA proposal q_iw; both are None
    for plain BC. ``ref_log_q`` and ``iw_log_q`` [E] are log q(τ)/|τ| of every training episode
    under q_ref and under q_iw as of its last refresh; they exist only where the batch holds
    windows of a trajectory-weighted loss (``BCConfig.trajectory_table``).
    """

    params: Any
    opt_state: Any
    ref_params: Any = None
    iw_params: Any = None
    ref_log_q: Any = None
    iw_log_q: Any = None
    action_dim: int = flax.struct.field(pytree_node=False, default=0)
    config: BCConfig = flax.struct.field(pytree_node=False, default_factory=BCConfig)

    data_kind: ClassVar[DataKind] = "episodes"
    accepts_init: ClassVar[bool] = True

    @property
    def policy(self) -> GaussianPolicy:
        return bc_policy(self.action_dim, self.config)

    @property
    def observation_dim(self) -> int:
        return int(self.params["params"]["Dense_0"]["kernel"].shape[-2])

    @classmethod
    def create(
        cls, key: jax.Array, spec: DataSpec, config: BCConfig, init: BCAgent | None = None
    ) -> BCAgent:
        """A fresh policy (with the data's statistics where it standardizes), or ``init``'s
        parameters, which then also become q_ref and the start of q_iw for iw losses."""
        if init is None:
            policy = bc_policy(spec.action_dim, config)
            params = policy.init(key, spec.example_observations)
            if config.standardize:
                params = with_statistics(params, spec.obs_mean, spec.obs_std)
        else:
            check_start(config, init.config)
            params = init.params
        iw = config.importance_weighted
        return cls(
            step=jnp.zeros((), jnp.int32),
            # A fine-tune of the same seed gets its BC start's stream, so its k-th batch is drawn
            # with BC's k-th key: results/finetune-stream measures that this moves no score.
            rng=jax.random.fold_in(key, 1),
            params=params,
            opt_state=make_optimizer(config).init(params),
            ref_params=params if iw else None,
            iw_params=params if iw else None,
            action_dim=spec.action_dim,
            config=config,
        )

    def prepare(self, data: DeviceEpisodes) -> BCAgent:
        """Fill the whole-trajectory tables where the loss needs them and they are missing
        (a new run; a resumed one reads them from its checkpoint)."""
        if not self.config.trajectory_table or self.ref_log_q is not None:
            return self
        return self.replace(
            ref_log_q=episode_log_probs(self.policy, self.ref_params, data),
            iw_log_q=episode_log_probs(self.policy, self.iw_params, data),
        )

    def sample(
        self, key: jax.Array, data: DeviceEpisodes, step: jax.Array
    ) -> tuple[BCAgent, WeightedBatch]:
        """Episodes (or windows) as the weighting asks; under windows of a trajectory loss, the
        q_iw table is recomputed every ``refresh_every`` updates with the q_iw this update
        trains against (the EMA ``update`` applies), and the rows' log-ratios read from it."""
        config = self.config
        batch = sample_episodes(key, data, config.batch_size, config.window, config.weighting)
        if not config.trajectory_table or config.window >= data.max_length:
            # whole episodes (no window, or one as long as the longest episode): the loss
            # takes the exact log-ratios of the batch itself, never a table's stale ones
            return self, WeightedBatch(batch)
        iw_log_q = jax.lax.cond(
            step % config.refresh_every == 0,
            lambda: episode_log_probs(
                self.policy, ema(self.iw_params, self.params, config.ema_decay), data
            ),
            lambda: self.iw_log_q,
        )
        ratio = iw_log_q[batch.index] - self.ref_log_q[batch.index]
        return self.replace(iw_log_q=iw_log_q), WeightedBatch(batch, ratio)

    def update(self, batch: WeightedBatch) -> tuple[BCAgent, dict]:
        """EMA q_iw (iw losses), then one Adam step on the config's loss."""
        config = self.config
        iw_params = self.iw_params
        if config.importance_weighted:
            iw_params = ema(self.iw_params, self.params, config.ema_decay)
        loss_fn = bc_loss(self.policy, config)
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            self.params, batch.episodes, iw_params, self.ref_params, batch.mean_log_ratio
        )
        updates, opt_state = make_optimizer(config).update(grads, self.opt_state, self.params)
        agent = self.replace(
            step=self.step + 1,
            params=optax.apply_updates(self.params, updates),
            opt_state=opt_state,
            iw_params=iw_params,
        )
        return agent, {"loss": loss, **aux}

    def _act(self, observations: jax.Array) -> jax.Array:
        """The Gaussian's mean for raw observations (the policy standardizes them itself)."""
        return policy_mean_action(self.policy, self.params, observations)

    def acting(self) -> tuple[MeanAction, Any]:
        return MeanAction(self.policy), self.params


@dataclasses.dataclass(frozen=True)
class MeanAction:
    """``act`` of every BC-family agent with this policy network, equal by value."""

    policy: GaussianPolicy

    def __call__(self, params: Any, observations: jax.Array) -> jax.Array:
        return policy_mean_action(self.policy, params, observations)


def bc_policy(action_dim: int, config: BCConfig) -> GaussianPolicy:
    """The policy network a BC-family config trains."""
    return GaussianPolicy(
        action_dim=action_dim,
        hidden_dims=config.hidden_dims,
        standardize=config.standardize,
        layer_init=config.layer_init,
    )
