"""EpisodeData construction, subset and transitions on hand-made episodes (no Minari)."""

from __future__ import annotations

import hashlib

import jax.numpy as jnp
import numpy as np
import pytest

from iwbc.core.sampling import locomotion_reward_scale
from iwbc.data import DatasetError, EpisodeData, episodes, stack_episodes


def _episodes(lengths: list[int], obs_dim: int = 3, act_dim: int = 2, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    fields: dict[str, list[np.ndarray]] = {
        "observations": [],
        "actions": [],
        "rewards": [],
        "terminations": [],
        "truncations": [],
    }
    for n in lengths:
        fields["observations"].append(rng.normal(size=(n + 1, obs_dim)))
        fields["actions"].append(rng.normal(size=(n, act_dim)))
        fields["rewards"].append(rng.normal(size=n))
        fields["terminations"].append(np.eye(1, n, n - 1, dtype=bool)[0])
        fields["truncations"].append(np.zeros(n, bool))
    return fields


@pytest.fixture
def data() -> EpisodeData:
    return stack_episodes(**_episodes([4, 1, 6]))


def test_stack_lays_episodes_one_after_another(data: EpisodeData) -> None:
    raw = _episodes([4, 1, 6])
    assert data.observations.shape == (11, 3) and data.next_observations.shape == (11, 3)
    assert data.actions.shape == (11, 2)
    for name in ("rewards", "terminations", "truncations"):
        assert getattr(data, name).shape == (11,)
    for field in data[:-2]:
        assert field.dtype == np.float32
    assert data.lengths.dtype == np.int32 and data.returns.dtype == np.float64
    np.testing.assert_array_equal(data.lengths, [4, 1, 6])
    np.testing.assert_array_equal(data.starts, [0, 4, 5])
    np.testing.assert_array_equal(data.step_episodes, [0] * 4 + [1] + [2] * 6)
    for i, start in enumerate(data.starts):
        steps = slice(start, start + data.lengths[i])
        np.testing.assert_allclose(data.observations[steps], raw["observations"][i][:-1], 1e-6)
        np.testing.assert_allclose(data.next_observations[steps], raw["observations"][i][1:], 1e-6)
        np.testing.assert_allclose(data.actions[steps], raw["actions"][i], 1e-6)
        assert data.returns[i] == pytest.approx(raw["rewards"][i].sum(), rel=1e-12)
    assert (data.num_episodes, data.max_length, data.num_steps) == (3, 6, 11)


def test_subset_with_repeats(data: EpisodeData) -> None:
    sub = data.subset([2, 0, 2])
    assert sub.num_episodes == 3 and sub.max_length == data.max_length
    np.testing.assert_array_equal(sub.lengths, [6, 4, 6])
    np.testing.assert_array_equal(sub.starts, [0, 6, 10])
    for name in ("observations", "actions", "rewards", "next_observations", "terminations"):
        field, whole = getattr(sub, name), getattr(data, name)
        np.testing.assert_array_equal(field[:6], whole[5:11])
        np.testing.assert_array_equal(field[6:10], whole[:4])
        np.testing.assert_array_equal(field[10:], whole[5:11])
    np.testing.assert_array_equal(sub.returns, data.returns[[2, 0, 2]])
    assert data.subset([0, 1, 2]) is data
    empty = sub.subset(np.array([], dtype=int))
    assert (empty.num_episodes, empty.num_steps, empty.max_length) == (0, 0, 0)
    assert empty.starts.shape == (0,) and empty.step_episodes.shape == (0,)


def test_fingerprints_hash_the_padded_layout_runs_were_keyed_by(data: EpisodeData) -> None:
    """Records and caches made when episodes were kept padded keep their keys: the digest is
    that of the padded arrays, rebuilt here with NumPy from the raw episodes."""
    raw = _episodes([4, 1, 6])
    padded = {
        name: np.zeros((3, 6, *np.shape(raw[name][0])[1:]), np.float32)
        for name in ("observations", "actions", "rewards", "terminations", "truncations")
    }
    next_observations = np.zeros((3, 6, 3), np.float32)
    mask = np.zeros((3, 6), np.float32)
    for i, n in enumerate([4, 1, 6]):
        padded["observations"][i, :n] = raw["observations"][i][:-1]
        next_observations[i, :n] = raw["observations"][i][1:]
        for name in ("actions", "rewards", "terminations", "truncations"):
            padded[name][i, :n] = raw[name][i]
        mask[i, :n] = 1
    returns = np.array([np.sum(r, dtype=np.float64) for r in raw["rewards"]])
    expected = hashlib.blake2b(digest_size=16)
    layout = (
        padded["observations"],
        padded["actions"],
        padded["rewards"],
        next_observations,
        padded["terminations"],
        padded["truncations"],
        mask,
        np.array([4, 1, 6], np.int32),
        returns,
    )
    for array in layout:
        expected.update(repr((array.dtype.str, array.shape)).encode())
        expected.update(array.tobytes())
    digest = hashlib.blake2b(digest_size=16)
    data.update_digest(digest)
    assert digest.hexdigest() == expected.hexdigest()


def test_a_padded_layout_past_the_limit_hashes_the_flat_arrays(
    data: EpisodeData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3 episodes x 6 steps x (3 + 2 + 1 + 3 + 1 + 1 + 1) float32 = 864 padded bytes: at a
    limit below that the flat arrays are hashed, tagged, and the digest differs."""
    padded = hashlib.blake2b(digest_size=16)
    data.update_digest(padded)
    monkeypatch.setattr(episodes, "PADDED_DIGEST_LIMIT", 864)
    same = hashlib.blake2b(digest_size=16)
    data.update_digest(same)
    assert same.hexdigest() == padded.hexdigest()
    monkeypatch.setattr(episodes, "PADDED_DIGEST_LIMIT", 863)
    flat = hashlib.blake2b(digest_size=16)
    data.update_digest(flat)
    expected = hashlib.blake2b(b"flat episodes", digest_size=16)
    for array in data:
        expected.update(repr((array.dtype.str, array.shape)).encode())
        expected.update(array.tobytes())
    assert flat.hexdigest() == expected.hexdigest() != padded.hexdigest()


def test_the_fingerprint_digest_builds_the_padded_layout_a_block_at_a_time(
    data: EpisodeData, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = hashlib.blake2b(digest_size=16)
    data.update_digest(whole)
    monkeypatch.setattr(episodes, "_DIGEST_BLOCK_BYTES", 1)
    blocks = hashlib.blake2b(digest_size=16)
    data.update_digest(blocks)
    assert blocks.hexdigest() == whole.hexdigest()


@pytest.mark.parametrize("bad", [[3], [-1], [[0, 1]], [0.5]])
def test_subset_rejects_bad_indices(data: EpisodeData, bad: list) -> None:
    with pytest.raises(ValueError, match="subset indices"):
        data.subset(bad)


def test_transitions_cover_valid_steps_in_order(data: EpisodeData) -> None:
    raw = _episodes([4, 1, 6])
    tr = data.to_transitions()
    assert tr.obs.shape == (11, 3) and tr.next_obs.shape == (11, 3) and tr.actions.shape == (11, 2)
    np.testing.assert_allclose(
        tr.obs, np.concatenate([o[:-1] for o in raw["observations"]]), rtol=1e-6
    )
    np.testing.assert_allclose(
        tr.next_obs, np.concatenate([o[1:] for o in raw["observations"]]), rtol=1e-6
    )
    np.testing.assert_allclose(tr.rewards, np.concatenate(raw["rewards"]), rtol=1e-6)
    assert tr.terminals.sum() == 3 and tr.timeouts.sum() == 0


def test_an_episode_whose_recording_stopped_ends_its_transitions_in_a_timeout() -> None:
    """Episode 1 ends unflagged (its recording stopped): its flat steps end in a timeout, so
    whole-episode returns (CORL's reward scaling) do not run it into episode 2."""
    fields = _episodes([4, 3, 5])
    fields["terminations"][1][:] = False
    fields["truncations"][2][-1], fields["terminations"][2][-1] = True, False
    data = stack_episodes(**fields)
    tr = data.to_transitions()
    np.testing.assert_array_equal(np.flatnonzero(tr.terminals), [3])
    np.testing.assert_array_equal(np.flatnonzero(tr.timeouts), [6, 11])
    assert tr.timeouts.dtype == data.truncations.dtype
    spread = data.returns.max() - data.returns.min()
    assert locomotion_reward_scale(tr) == pytest.approx(1000 / spread, rel=1e-5)


def test_many_short_episodes_beside_a_long_one_take_only_their_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A weak policy's Humanoid data: padded to the longest episode it would take 4 GiB; kept
    flat it takes its 38,500 steps, and loads with 1 GiB available."""
    fields = _episodes([1000] + [25] * 1500, obs_dim=348, act_dim=17)
    monkeypatch.setattr(episodes, "available_memory", lambda: 2**30)
    data = stack_episodes(**fields)
    assert data.observations.shape == (38_500, 348) and data.num_episodes == 1501
    assert sum(field.nbytes for field in data) < 0.11 * 2**30


def test_episodes_that_would_not_fit_in_memory_are_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refused with the sizes, before allocating, where twice the arrays exceed the memory
    available."""
    fields = _episodes([1000] + [25] * 1500, obs_dim=348, act_dim=17)
    size = 38_500 * (2 * 348 + 17 + 3) * 4
    monkeypatch.setattr(episodes, "available_memory", lambda: 2 * size - 1)
    with pytest.raises(DatasetError) as error:
        stack_episodes(**fields)
    message = str(error.value)
    assert message == (
        "38,500 steps take 0.1 GiB, and loading and training need about twice that, with 0.2 "
        "GiB of memory available: load it on a machine with more memory"
    )
    monkeypatch.setattr(episodes, "available_memory", lambda: 2 * size)
    monkeypatch.setattr(episodes.np, "zeros", _no_allocation)
    with pytest.raises(_Allocated):
        stack_episodes(**fields)


class _Allocated(Exception):
    pass


def _no_allocation(*args: object, **kwargs: object) -> None:
    raise _Allocated


def test_stack_rejects_inconsistent_episodes() -> None:
    fields = _episodes([3, 2])
    fields["observations"][1] = fields["observations"][1][:-1]
    with pytest.raises(DatasetError, match="episode 1 has observations of shape"):
        stack_episodes(**fields)
    with pytest.raises(DatasetError, match="0 episodes"):
        stack_episodes([], [], [], [], [])


def test_jax_arrays_sum_their_returns_in_float64() -> None:
    """Episodes handed over as JAX arrays (float32 without x64) keep float64 returns: 1,000
    rewards of 0.1 sum to 100 to float64 precision, not float32's 99.99997."""
    n = 1000
    data = stack_episodes(
        [jnp.zeros((n + 1, 2))],
        [jnp.zeros((n, 1))],
        [jnp.full(n, 0.1, jnp.float32)],
        [jnp.zeros(n, bool)],
        [jnp.eye(1, n, n - 1, dtype=bool)[0]],
    )
    expected = np.sum(np.full(n, 0.1, np.float32), dtype=np.float64)
    assert data.returns[0] == expected and abs(data.returns[0] - 100) < 1e-5
