"""EpisodeData construction, subset and transitions on hand-made episodes (no Minari)."""

from __future__ import annotations

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


def test_stack_pads_to_longest_episode(data: EpisodeData) -> None:
    assert data.observations.shape == (3, 6, 3)
    assert data.actions.shape == (3, 6, 2)
    for name in ("rewards", "terminations", "truncations", "mask"):
        assert getattr(data, name).shape == (3, 6)
    for field in data[:-2]:
        assert field.dtype == np.float32
    assert data.lengths.dtype == np.int32 and data.returns.dtype == np.float64
    np.testing.assert_array_equal(data.lengths, [4, 1, 6])
    np.testing.assert_array_equal(data.mask.sum(axis=1), [4, 1, 6])
    assert (data.observations[1, 1:] == 0).all() and (data.rewards[0, 4:] == 0).all()
    assert (data.num_episodes, data.max_length, data.num_steps) == (3, 6, 11)


def test_subset_with_repeats(data: EpisodeData) -> None:
    sub = data.subset([2, 0, 2])
    assert sub.num_episodes == 3 and sub.max_length == data.max_length
    np.testing.assert_array_equal(sub.lengths, [6, 4, 6])
    np.testing.assert_array_equal(sub.observations[0], sub.observations[2])
    np.testing.assert_array_equal(sub.returns, data.returns[[2, 0, 2]])
    assert sub.subset(np.array([], dtype=int)).num_episodes == 0


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


def test_padding_that_would_not_fit_in_memory_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many short episodes beside one long one pad to far more than their steps: refused with
    the sizes, before allocating, where twice the padded arrays exceed the memory available."""
    fields = _episodes([1000] + [25] * 1500, obs_dim=348, act_dim=17)
    padded = 1501 * 1000 * (2 * 348 + 17 + 4) * 4
    monkeypatch.setattr(episodes, "available_memory", lambda: 2 * padded - 1)
    with pytest.raises(DatasetError) as error:
        stack_episodes(**fields)
    message = str(error.value)
    assert message.startswith(
        "1,501 episodes padded to the longest one's 1,000 steps take 4.0 GiB (0.10 GiB of real "
        "steps, 38,500), and loading and training need about twice that, with 8.0 GiB of memory "
        "available: iwbc keeps episodes padded to the longest"
    )
    assert "\n" not in message
    monkeypatch.setattr(episodes, "available_memory", lambda: 2 * padded)
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
