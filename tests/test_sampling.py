"""Episode sampling on the device: uniform with replacement, copies weighted, unbiased windows."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from iwbc.core.sampling import DeviceEpisodes, EpisodeBatch, sample_episodes
from iwbc.data import EpisodeData, stack_episodes

# Jitted once per (batch_size, window), as the trainer uses it.
sample = jax.jit(sample_episodes, static_argnums=(2, 3, 4))

LENGTHS = (3, 10, 25, 40)
OBS_DIM, ACT_DIM = 3, 2


def tagged_episodes(lengths: tuple[int, ...] = LENGTHS) -> EpisodeData:
    """Episodes whose observations carry (step index, episode id) so a draw names its source."""
    rng = np.random.default_rng(0)
    observations, actions = [], []
    for episode, n in enumerate(lengths):
        obs = rng.normal(size=(n + 1, OBS_DIM)).astype(np.float32)
        obs[:, 0] = np.arange(n + 1)
        obs[:, 1] = episode
        observations.append(obs)
        actions.append(rng.uniform(-1, 1, size=(n, ACT_DIM)).astype(np.float32))
    zeros = [np.zeros(n, np.float32) for n in lengths]
    return stack_episodes(observations, actions, zeros, zeros, zeros)


def to_device(episodes: EpisodeData, max_length: int | None = None) -> DeviceEpisodes:
    """Quality = source episode id, so every sampled row says which episode it came from."""
    ids = episodes.observations[episodes.starts, 1]
    return DeviceEpisodes.from_episodes(episodes, ids, max_length=max_length)


def padded(episodes: EpisodeData, values: np.ndarray | None = None) -> np.ndarray:
    """``values`` (flat, one row per step) as [E, T, ...], zero after each episode's end; the
    mask without ``values``."""
    if values is None:
        values = np.ones(episodes.num_steps, np.float32)
    out = np.zeros((episodes.num_episodes, episodes.max_length, *values.shape[1:]), values.dtype)
    for i, (start, n) in enumerate(zip(episodes.starts, episodes.lengths, strict=True)):
        out[i, :n] = values[start : start + n]
    return out


def drawn_ids(batch: EpisodeBatch) -> np.ndarray:
    return np.asarray(batch.quality).astype(int)


def test_draws_are_uniform_with_replacement() -> None:
    data = to_device(tagged_episodes())
    draws = 40_000
    ids = drawn_ids(sample(jax.random.PRNGKey(0), data, draws, None))
    frequencies = np.bincount(ids, minlength=len(LENGTHS)) / draws
    # One binomial standard deviation is ~0.002 here; 0.01 is five of them.
    np.testing.assert_allclose(frequencies, 1 / len(LENGTHS), atol=0.01)
    small = drawn_ids(sample(jax.random.PRNGKey(1), data, len(LENGTHS), None))
    assert small.min() >= 0 and small.max() < len(LENGTHS)


def test_whole_episode_draws_are_the_source_rows() -> None:
    episodes = tagged_episodes()
    batch = sample(jax.random.PRNGKey(2), to_device(episodes), 16, None)
    ids = drawn_ids(batch)
    observations = padded(episodes, episodes.observations)
    np.testing.assert_array_equal(np.asarray(batch.observations), observations[ids])
    np.testing.assert_array_equal(
        np.asarray(batch.actions), padded(episodes, episodes.actions)[ids]
    )
    np.testing.assert_array_equal(np.asarray(batch.mask), padded(episodes)[ids])


def test_repeated_episodes_are_drawn_in_proportion_to_their_copies() -> None:
    """A stratified union lists good episodes several times; each copy is one more ticket."""
    subset = tagged_episodes().subset([0, 0, 0, 1, 2, 2])
    draws = 60_000
    ids = drawn_ids(sample(jax.random.PRNGKey(3), to_device(subset), draws, None))
    frequencies = np.bincount(ids, minlength=len(LENGTHS)) / draws
    np.testing.assert_allclose(frequencies, [3 / 6, 1 / 6, 2 / 6, 0.0], atol=0.01)


def test_episode_windows_wrap_around_their_episode() -> None:
    """Episode weighting: a window is the window steps from a uniform start, modulo the episode's
    length; an episode no longer than the window is taken whole, in order, the rest masked."""
    episodes = tagged_episodes()
    window = 8
    batch = sample(jax.random.PRNGKey(4), to_device(episodes), 2_000, window)
    observations = np.asarray(batch.observations)
    actions, mask = np.asarray(batch.actions), np.asarray(batch.mask)
    assert observations.shape == (2_000, window, OBS_DIM)
    source_observations = padded(episodes, episodes.observations)
    source_actions = padded(episodes, episodes.actions)
    starts: dict[int, set[int]] = {e: set() for e in range(len(LENGTHS))}
    for row, episode in enumerate(drawn_ids(batch)):
        n = LENGTHS[episode]
        start = int(observations[row, 0, 0])  # step index tag of the window's first step
        valid = min(window, n)
        steps = (start + np.arange(valid)) % n
        source = source_observations[episode, steps]
        np.testing.assert_array_equal(observations[row, :valid], source)
        np.testing.assert_array_equal(actions[row, :valid], source_actions[episode, steps])
        np.testing.assert_array_equal(mask[row], np.arange(window) < n)
        assert not observations[row, valid:].any() and not actions[row, valid:].any()
        starts[episode].add(start)
    assert starts[0] == {0}
    # Every step of a longer episode starts some window, its last ones included.
    for episode in (1, 2, 3):
        assert starts[episode] == set(range(LENGTHS[episode]))


@pytest.mark.parametrize("window", [1, 4, 16])
def test_episode_windows_estimate_episode_means_without_bias(window: int) -> None:
    """Within an episode every step is equally likely, so the mean over draws of the windows'
    means of any per-step value equals the mean over episodes of its episode means (NumPy)."""
    episodes = tagged_episodes()
    draws = 60_000
    batch = sample(jax.random.PRNGKey(5), to_device(episodes), draws, window, "episode")
    obs, mask = np.asarray(batch.observations), np.asarray(batch.mask)
    ids = drawn_ids(batch)
    counts = np.zeros((len(LENGTHS), max(LENGTHS)))
    np.add.at(counts, (obs[..., 1][mask > 0].astype(int), obs[..., 0][mask > 0].astype(int)), 1)
    for episode, n in enumerate(LENGTHS):
        expected = counts[episode, :n].sum() / n
        # 375 hits a step at the fewest: 4.5 standard deviations of the count either way.
        np.testing.assert_allclose(counts[episode, :n], expected, atol=4.5 * np.sqrt(expected))
    value = obs[..., 0] ** 2  # a per-step value that differs across an episode's steps
    window_means = (value * mask).sum(axis=1) / mask.sum(axis=1)
    exact = np.mean([np.mean(np.arange(n) ** 2) for n in LENGTHS])
    per_episode = np.array([window_means[ids == e].mean() for e in range(len(LENGTHS))])
    reference = np.array([np.mean(np.arange(n) ** 2) for n in LENGTHS])
    np.testing.assert_allclose(per_episode, reference, rtol=0.03)
    assert window_means.mean() == pytest.approx(exact, rel=0.03)


def test_short_episode_window_covers_the_whole_episode() -> None:
    episodes = tagged_episodes()
    data = to_device(episodes.subset([0]), max_length=max(LENGTHS))
    assert data.max_length == max(LENGTHS)
    batch = sample(jax.random.PRNGKey(5), data, 4, 8)
    np.testing.assert_array_equal(np.asarray(batch.mask), np.tile([1, 1, 1, 0, 0, 0, 0, 0], (4, 1)))
    np.testing.assert_array_equal(
        np.asarray(batch.observations)[:, :3], np.tile(episodes.observations[:3], (4, 1, 1))
    )


def test_window_at_least_the_padded_length_gives_whole_episodes() -> None:
    data = to_device(tagged_episodes())
    key = jax.random.PRNGKey(6)
    whole, windowed = sample(key, data, 8, None), sample(key, data, 8, max(LENGTHS))
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(windowed), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_empty_selection_is_refused() -> None:
    with pytest.raises(ValueError, match="no episodes to train on"):
        DeviceEpisodes.from_steps(np.zeros((0, OBS_DIM)), np.zeros((0, ACT_DIM)), [])


@pytest.mark.parametrize("window", [1, 4, 16])
def test_transition_windows_cover_every_step_equally(window: int) -> None:
    """Transition weighting: each valid step of the dataset is equally likely to be in a batch,
    whatever its episode's length or its place in the episode."""
    episodes = tagged_episodes()
    draws = 60_000
    batch = sample(jax.random.PRNGKey(5), to_device(episodes), draws, window, "transition")
    obs, mask = np.asarray(batch.observations), np.asarray(batch.mask) > 0
    episode_ids, steps = obs[..., 1][mask].astype(int), obs[..., 0][mask].astype(int)
    counts = np.zeros((len(LENGTHS), max(LENGTHS)))
    np.add.at(counts, (episode_ids, steps), 1)
    mask_of_steps = padded(episodes)
    per_step = counts[mask_of_steps > 0]
    expected = draws * window / sum(n + window - 1 for n in LENGTHS)
    assert per_step.size == sum(LENGTHS)
    # ~1,500-8,000 expected hits per step: 8% is over 3 binomial standard deviations.
    np.testing.assert_allclose(per_step, expected, rtol=0.08)
    assert (counts[mask_of_steps == 0] == 0).all()
    assert not obs[~mask].any()


def test_transition_windows_are_contiguous_slices_of_one_episode() -> None:
    episodes = tagged_episodes()
    batch = sample(jax.random.PRNGKey(6), to_device(episodes), 64, 8, "transition")
    index = np.asarray(batch.index)
    for row in range(64):
        valid = np.asarray(batch.mask[row]) > 0
        steps = np.asarray(batch.observations[row, valid, 0]).astype(int)
        assert valid.any()
        np.testing.assert_array_equal(np.diff(steps), 1)
        assert np.flatnonzero(valid).tolist() == list(
            range(valid.argmax(), valid.argmax() + len(steps))
        )
        np.testing.assert_array_equal(
            np.asarray(batch.actions[row, valid]),
            episodes.actions[episodes.starts[index[row]] + steps],
        )
        assert float(batch.quality[row]) == index[row]


def test_episode_weighting_with_whole_episodes_ignores_transition_option() -> None:
    """Whole episodes are drawn uniformly under both weightings (the loss differs, not the draw)."""
    data = to_device(tagged_episodes())
    a = sample(jax.random.PRNGKey(7), data, 32, None, "episode")
    b = sample(jax.random.PRNGKey(7), data, 32, None, "transition")
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_flat_view_lists_every_valid_step_with_its_episode() -> None:
    episodes = tagged_episodes()
    data = to_device(episodes)
    flat_episode = np.asarray(data.flat_episode)
    total = sum(LENGTHS)
    assert flat_episode.size % 4096 == 0 and flat_episode.size >= 2 * 4096
    np.testing.assert_array_equal(flat_episode[:total], np.repeat(np.arange(4), LENGTHS))
    assert (flat_episode[total:] == len(LENGTHS)).all()
    np.testing.assert_array_equal(np.asarray(data.flat_observations[:total]), episodes.observations)
    np.testing.assert_array_equal(np.asarray(data.starts), episodes.starts)
    assert data.max_length == max(LENGTHS)


def test_flat_view_holds_a_trajectory_listed_several_times_once() -> None:
    """The stratified union lists the best episodes up to three times: rows 0, 2 and 4 below are
    copies of episode 1 of the data and row 3 of episode 3. Every copy keeps its row (rows are
    what is sampled); the flat view holds each distinct trajectory once, ``starts`` sends each
    row to the flat steps of its trajectory, and ``episode_source`` to its first row."""
    episodes = tagged_episodes()
    rows = np.array([1, 3, 1, 3, 1, 0])
    data = DeviceEpisodes.from_episodes(episodes.subset(rows))
    np.testing.assert_array_equal(np.asarray(data.episode_source), [0, 1, 0, 1, 0, 5])
    lengths = [LENGTHS[1], LENGTHS[3], LENGTHS[0]]
    flat_episode = np.asarray(data.flat_episode)
    np.testing.assert_array_equal(flat_episode[: sum(lengths)], np.repeat([0, 1, 5], lengths))
    assert (flat_episode[sum(lengths) :] == len(rows)).all()
    np.testing.assert_array_equal(
        np.asarray(data.flat_observations[: sum(lengths)]),
        episodes.subset([1, 3, 0]).observations,
    )
    np.testing.assert_array_equal(np.asarray(data.starts), [0, 10, 0, 10, 0, 50])
    assert data.num_episodes == len(rows)


@pytest.mark.parametrize("field", ["observations", "actions"])
def test_nan_training_data_is_a_one_line_error(field: str) -> None:
    """Raw-observation training has no statistics to catch a NaN: the device view does."""
    episodes = tagged_episodes()
    values = getattr(episodes, field).copy()
    values[episodes.starts[2] + 5, 0] = np.nan
    episodes = episodes._replace(**{field: values})
    with pytest.raises(
        ValueError,
        match=rf"{field} hold NaN or infinite values \(first in "
        r"episode 2 of the training selection\)",
    ):
        to_device(episodes)


def test_padded_episodes_are_taken_as_the_same_flat_steps() -> None:
    episodes = tagged_episodes()
    quality = np.arange(len(LENGTHS), dtype=np.float32)
    flat = DeviceEpisodes.from_episodes(episodes, quality)
    from_padded = DeviceEpisodes.from_padded(
        padded(episodes, episodes.observations),
        padded(episodes, episodes.actions),
        padded(episodes),
        quality,
    )
    assert from_padded.max_length == flat.max_length
    for a, b in zip(jax.tree.leaves(flat), jax.tree.leaves(from_padded), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_mask_with_holes_is_refused() -> None:
    mask = np.array([[1, 0, 1], [1, 1, 0]], np.float32)
    with pytest.raises(ValueError, match="mask must mark a prefix"):
        DeviceEpisodes.from_padded(np.zeros((2, 3, OBS_DIM)), np.zeros((2, 3, ACT_DIM)), mask)
    mask[0] = 0
    with pytest.raises(ValueError, match="episode 0 of the selection has no steps"):
        DeviceEpisodes.from_padded(np.zeros((2, 3, OBS_DIM)), np.zeros((2, 3, ACT_DIM)), mask)


def test_a_selection_is_drawn_from_as_wide_as_its_dataset() -> None:
    """Whole episodes of a selection come as wide as the dataset's longest (window reads alike
    for every method); a max_length below the selection's longest is refused."""
    episodes = tagged_episodes()
    data = to_device(episodes.subset([0, 1]), max_length=max(LENGTHS))
    batch = sample(jax.random.PRNGKey(8), data, 4, None)
    assert np.asarray(batch.observations).shape == (4, max(LENGTHS), OBS_DIM)
    assert to_device(episodes.subset([0, 1])).max_length == LENGTHS[1]
    with pytest.raises(ValueError, match="max_length 5 is below the longest episode's 10"):
        to_device(episodes.subset([0, 1]), max_length=5)
