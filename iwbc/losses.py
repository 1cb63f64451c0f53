"""Episode-level imitation losses of METHOD.md, on masked ``[B, T]`` log-probability arrays.

All functions take per-step log-probabilities ``log π(a_t|s_t)`` of a batch of padded episodes and
the validity mask, so that the maths stays separate from networks and sampling and can be checked
against a plain NumPy computation.

Two weightings of the steps, named by ``weighting``:
- ``"episode"`` (the iw-SFT authors' code): each episode's log-probability is averaged over its
  valid steps, then the batch is averaged, so a 20-step episode weighs as much as a 1,000-step one.
- ``"transition"`` (CORL's BC and most readers' "BC"): every valid step of the batch weighs the
  same, −Σ_bt m_bt w_b log π_bt / Σ_bt m_bt. With whole episodes, drawn uniformly, dividing by
  the batch's valid steps makes every transition count once; with windows the sampler draws
  starts so that each transition of the dataset is equally likely.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

TRAJECTORY_MAX_WEIGHT = 1000.0
STEP_MAX_WEIGHT = 2.0
WEIGHTINGS: tuple[str, ...] = ("transition", "episode")
Weighting = Literal["transition", "episode"]


def episode_lengths(mask: jax.Array) -> jax.Array:
    """|τ| per episode; at least 1 so that an all-padding row cannot divide by zero."""
    return jnp.maximum(jnp.sum(mask, axis=-1), 1.0)


def episode_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
    """(1/|τ|) Σ_t values_t over each episode's valid steps."""
    return jnp.sum(values * mask, axis=-1) / episode_lengths(mask)


def _normalize(weights: jax.Array) -> jax.Array:
    total = jnp.sum(weights)
    return jnp.where(total > 0, weights / jnp.where(total > 0, total, 1.0), 0.0)


def batch_mean(values: jax.Array, mask: jax.Array, weighting: Weighting = "episode") -> jax.Array:
    """Mean of per-step ``values`` over a batch: episode means averaged, or all valid steps."""
    if weighting == "episode":
        return jnp.mean(episode_mean(values, mask))
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def bc_loss(log_probs: jax.Array, mask: jax.Array, weighting: Weighting = "episode") -> jax.Array:
    """BC: −mean_batch[(1/|τ|) Σ_t log π(a_t|s_t)] (episode), −Σ m log π / Σ m (transition)."""
    return -batch_mean(log_probs, mask, weighting)


def trajectory_weights(
    log_probs_iw: jax.Array,
    log_probs_ref: jax.Array,
    mask: jax.Array,
    *,
    temperature: float,
    normalize: bool,
    quality: jax.Array | None = None,
    max_weight: float = TRAJECTORY_MAX_WEIGHT,
) -> jax.Array:
    """w(τ) = clip(exp(temp · (log q_iw(τ) − log q_ref(τ)) / |τ|), 0, max_weight).

    The batch holds whole episodes here; :func:`weights_from_log_ratios` takes per-episode mean
    log-ratios computed elsewhere (from whole trajectories when the batch holds windows).
    """
    mean_log_ratio = episode_mean(log_probs_iw - log_probs_ref, mask)
    return weights_from_log_ratios(
        mean_log_ratio,
        temperature=temperature,
        normalize=normalize,
        quality=quality,
        max_weight=max_weight,
    )


def weights_from_log_ratios(
    mean_log_ratio: jax.Array,
    *,
    temperature: float,
    normalize: bool,
    quality: jax.Array | None = None,
    max_weight: float = TRAJECTORY_MAX_WEIGHT,
) -> jax.Array:
    """clip(exp(temp · ℓ̄), 0, max_weight) of each trajectory's mean log-ratio ℓ̄ [B].

    With ``quality`` (one score per trajectory, e.g. min-max normalized return) the weight is
    multiplied by it, which is the paper's quality-scored generalization of the hard filter.
    With ``normalize`` the batch weights sum to one (all-zero weights stay zero).
    """
    weights = jnp.clip(jnp.exp(temperature * mean_log_ratio), 0.0, max_weight)
    if quality is not None:
        weights = weights * quality
    weights = _normalize(weights) if normalize else weights
    return jax.lax.stop_gradient(weights)


def step_weights(
    log_probs_iw: jax.Array,
    log_probs_ref: jax.Array,
    mask: jax.Array,
    *,
    temperature: float,
    normalize: bool,
    max_weight: float = STEP_MAX_WEIGHT,
) -> jax.Array:
    """Per-step w_t = clip(exp(temp · (log q_iw(a_t|s_t) − log q_ref(a_t|s_t))), 0, max_weight).

    Padding steps get weight 0. Normalization sums over valid steps only; the authors' code also
    counted padding steps (each with weight exp(0) = 1), which makes the scale depend on padding.
    """
    weights = jnp.clip(jnp.exp(temperature * (log_probs_iw - log_probs_ref)), 0.0, max_weight)
    weights = weights * mask
    weights = _normalize(weights) if normalize else weights
    return jax.lax.stop_gradient(weights)


def effective_sample_fraction(weights: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Kish's effective sample size of importance weights over the batch's n weighted units
    (its rows: trajectories, or windows weighted by their trajectory; or the valid steps under
    ``mask``), as a fraction: (Σw)² / (n Σw²) in
    [1/n, 1]; 1 when all weights are equal, 1/n when one carries them all, 0 when all are 0.

    Why it is logged: iw-BC's temperature-sharpened ratios can put a batch's whole weight on a
    few trajectories, which the loss alone does not show."""
    valid = jnp.ones_like(weights) if mask is None else mask
    weights = weights * valid
    total, squares = jnp.sum(weights), jnp.sum(weights**2)
    count = jnp.maximum(jnp.sum(valid), 1.0)
    return jnp.where(squares > 0, total**2 / (count * jnp.where(squares > 0, squares, 1.0)), 0.0)


def trajectory_weight_fraction(
    weights: jax.Array, mask: jax.Array, weighting: Weighting = "episode"
) -> jax.Array:
    """``effective_sample_fraction`` of per-row trajectory weights as the loss applies them:
    over rows under episode weighting (each row's mean counts once), over valid steps under
    transition weighting (a row counts once per valid step, so a window cut short by its
    episode's end counts less than a full one)."""
    if weighting == "episode":
        return effective_sample_fraction(weights)
    return effective_sample_fraction(jnp.broadcast_to(weights[:, None], mask.shape), mask)


def weighted_trajectory_loss(
    log_probs: jax.Array, mask: jax.Array, weights: jax.Array, weighting: Weighting = "episode"
) -> jax.Array:
    """iw-BC: −mean_batch[sg(w(τ)) · (1/|τ|) Σ_t log π_θ(a_t|s_t)] (episode weighting), or
    −Σ_bt m_bt sg(w_b) log π_θ / Σ_bt m_bt (transition weighting)."""
    weights = jax.lax.stop_gradient(weights)
    if weighting == "episode":
        return -jnp.mean(weights * episode_mean(log_probs, mask))
    return -batch_mean(weights[:, None] * log_probs, mask, weighting)


def weighted_step_loss(
    log_probs: jax.Array, mask: jax.Array, weights: jax.Array, weighting: Weighting = "episode"
) -> jax.Array:
    """Per-step iw-BC: −mean_batch[(1/|τ|) Σ_t sg(w_t) · log π_θ(a_t|s_t)] (episode), or
    −Σ_bt m_bt sg(w_bt) log π_θ / Σ_bt m_bt (transition)."""
    return -batch_mean(jax.lax.stop_gradient(weights) * log_probs, mask, weighting)
