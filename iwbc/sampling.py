"""Episodes resident on the device and the batches of whole (or windowed) episodes drawn from them.

The iw-SFT losses are per-trajectory, so batches are episodes (padded, with a mask), drawn
uniformly with replacement as in the authors' code. A filtered dataset that lists a trajectory
several times (the stratified union of percentiles) is sampled in proportion to its copies.

``window`` bounds the cost of an update on CPU: each sampled episode contributes a random
contiguous window of that many steps instead of all of its steps; the per-episode mean over the
window is an unbiased estimate of the per-episode mean over the whole episode.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


class DeviceEpisodes(flax.struct.PyTreeNode):
    """Padded episodes as device arrays: observations/actions [E, T, ·], mask [E, T]."""

    observations: jax.Array
    actions: jax.Array
    mask: jax.Array
    lengths: jax.Array
    quality: jax.Array

    @classmethod
    def from_numpy(
        cls,
        observations: np.ndarray,
        actions: np.ndarray,
        mask: np.ndarray,
        quality: np.ndarray | None = None,
    ) -> DeviceEpisodes:
        """Move padded numpy episodes to the default device (float32)."""
        mask = np.asarray(mask, dtype=np.float32)
        num_episodes = mask.shape[0]
        if num_episodes == 0:
            raise ValueError("no episodes to train on: the selection is empty")
        quality = np.ones(num_episodes, np.float32) if quality is None else quality
        return cls(
            observations=jnp.asarray(observations, jnp.float32),
            actions=jnp.asarray(actions, jnp.float32),
            mask=jnp.asarray(mask),
            lengths=jnp.asarray(mask.sum(axis=1), jnp.int32),
            quality=jnp.asarray(quality, jnp.float32),
        )

    @property
    def num_episodes(self) -> int:
        return self.mask.shape[0]

    @property
    def max_length(self) -> int:
        return self.mask.shape[1]


class EpisodeBatch(flax.struct.PyTreeNode):
    """A batch of episodes: observations/actions [B, L, ·], mask [B, L], quality [B]."""

    observations: jax.Array
    actions: jax.Array
    mask: jax.Array
    quality: jax.Array


def sample_episodes(
    key: jax.Array, data: DeviceEpisodes, batch_size: int, window: int | None = None
) -> EpisodeBatch:
    """Draw ``batch_size`` episodes uniformly with replacement (optionally a window of each)."""
    index_key, start_key = jax.random.split(key)
    index = jax.random.randint(index_key, (batch_size,), 0, data.num_episodes)
    quality = data.quality[index]
    if window is None or window >= data.max_length:
        return EpisodeBatch(
            observations=data.observations[index],
            actions=data.actions[index],
            mask=data.mask[index],
            quality=quality,
        )
    slack = jnp.maximum(data.lengths[index] - window, 0)
    start = jnp.floor(jax.random.uniform(start_key, (batch_size,)) * (slack + 1)).astype(jnp.int32)

    def take(array: jax.Array, row: jax.Array, first: jax.Array) -> jax.Array:
        starts = (row, first) + (0,) * (array.ndim - 2)
        sizes = (1, window, *array.shape[2:])
        return jax.lax.dynamic_slice(array, starts, sizes)[0]

    def windows(array: jax.Array) -> jax.Array:
        return jax.vmap(take, in_axes=(None, 0, 0))(array, index, start)

    return EpisodeBatch(
        observations=windows(data.observations),
        actions=windows(data.actions),
        mask=windows(data.mask),
        quality=quality,
    )
