"""The training engine: seed independence, chunking, checkpoint resume and that BC learns."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

import iwbc.files
import iwbc.train
from iwbc.policies import GaussianPolicy, policy_mean_action
from iwbc.sampling import DeviceEpisodes
from iwbc.train import (
    StageConfig,
    TrainState,
    init_policy_params,
    init_train_state,
    make_chunk,
    train_stage,
)

OBS_DIM, ACT_DIM, HIDDEN = 4, 2, (32, 32)
LENGTHS = (12, 5, 9, 12, 3, 7)
POLICY = GaussianPolicy(action_dim=ACT_DIM, hidden_dims=HIDDEN, standardize=False)
# A fixed target the BC data follows: a = tanh(s W).
TARGET = np.random.default_rng(1).normal(scale=0.7, size=(OBS_DIM, ACT_DIM)).astype(np.float32)


def padded_data(noise: float = 0.3, seed: int = 0) -> DeviceEpisodes:
    """Padded episodes of varied lengths whose actions are tanh(s W) plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    horizon = max(LENGTHS)
    mask = (np.arange(horizon)[None, :] < np.array(LENGTHS)[:, None]).astype(np.float32)
    observations = rng.normal(size=(len(LENGTHS), horizon, OBS_DIM)).astype(np.float32)
    actions = np.tanh(observations @ TARGET)
    actions += noise * rng.normal(size=actions.shape).astype(np.float32)
    observations *= mask[..., None]
    actions *= mask[..., None]
    return DeviceEpisodes.from_numpy(observations, actions, mask)


def bc_config(**overrides: Any) -> StageConfig:
    return StageConfig(**{"steps": 20, "batch_size": 4, **overrides})


def iw_config(**overrides: Any) -> StageConfig:
    return StageConfig.iw_finetune(**{"steps": 20, "batch_size": 4, "warmup_steps": 5, **overrides})


def run(
    config: StageConfig, seeds: list[int], data: DeviceEpisodes, **kwargs: Any
) -> tuple[TrainState, list[dict]]:
    state = init_train_state(config, init_policy_params(POLICY, OBS_DIM, seeds), seeds)
    return train_stage(POLICY, config, state, data, progress=False, **kwargs)


def assert_trees_close(a: Any, b: Any, atol: float = 0.0) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=atol)


def row(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda x: x[i], tree)


@pytest.fixture(scope="module")
def data() -> DeviceEpisodes:
    return padded_data()


@pytest.fixture(scope="module")
def straight_iw(data: DeviceEpisodes) -> tuple[TrainState, list[dict]]:
    """An uninterrupted 20-step iw stage of seeds 0 and 1 in chunks of 5, the reference run."""
    return run(iw_config(), [0, 1], data, chunk_size=5)


@pytest.mark.parametrize("make_config", [bc_config, iw_config], ids=["bc", "iw_trajectory"])
def test_vmapped_seeds_equal_each_seed_trained_alone(
    data: DeviceEpisodes, make_config: Any
) -> None:
    config = make_config(steps=10)
    together, _ = run(config, [0, 1, 2], data, chunk_size=10)
    one_seed_chunk = make_chunk(POLICY, config, 10)  # compiled once, reused for every seed
    for i, seed in enumerate([0, 1, 2]):
        params = init_policy_params(POLICY, OBS_DIM, [seed])
        alone, _ = one_seed_chunk(init_train_state(config, params, [seed]), data, 0)
        assert_trees_close(row(together, i), row(alone, 0), atol=1e-6)
    # The seeds really differ, so the equalities above are not vacuous.
    kernels = np.asarray(together.params["params"]["Dense_0"]["kernel"])
    assert not np.allclose(kernels[0], kernels[1])


def test_chunk_size_does_not_change_the_result(
    data: DeviceEpisodes, straight_iw: tuple[TrainState, list[dict]]
) -> None:
    chunked, chunked_history = straight_iw
    whole, whole_history = run(iw_config(), [0, 1], data, chunk_size=20)
    assert_trees_close(chunked, whole)
    assert [r["step"] for r in chunked_history] == [5, 10, 15, 20]
    assert [r["step"] for r in whole_history] == [20]
    chunk_losses = np.array([r["loss"] for r in chunked_history])  # [chunks, seeds]
    np.testing.assert_allclose(chunk_losses.mean(axis=0), whole_history[0]["loss"], rtol=1e-5)


class Killed(Exception):
    """Stands in for the process being killed right after a checkpoint was written."""


def test_resume_after_a_kill_equals_an_uninterrupted_run(
    data: DeviceEpisodes,
    straight_iw: tuple[TrainState, list[dict]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = iw_config()  # warm-up + cosine: the resumed optimizer must continue the schedule
    path = tmp_path / "stage.msgpack"
    save = iwbc.train._save_checkpoint
    saves = 0

    def save_then_die_after_two(*args: Any) -> None:
        nonlocal saves
        save(*args)
        saves += 1
        if saves == 2:
            raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(iwbc.train, "_save_checkpoint", save_then_die_after_two)
        with pytest.raises(Killed):
            run(config, [0, 1], data, chunk_size=5, checkpoint=path)
    resumed, history = run(config, [0, 1], data, chunk_size=5, checkpoint=path)
    straight, straight_history = straight_iw

    assert_trees_close(resumed, straight)
    assert [r["step"] for r in history] == [5, 10, 15, 20]
    assert history == straight_history
    # Resuming a finished stage runs nothing and returns the saved state.
    again, again_history = run(config, [0, 1], data, chunk_size=5, checkpoint=path)
    assert_trees_close(again, straight)
    assert again_history == history


def test_shorter_stage_then_longer_stage_continues_from_the_checkpoint(
    data: DeviceEpisodes, tmp_path: Path
) -> None:
    """BC's constant learning rate makes a 10-step stage a prefix of the 20-step one."""
    path = tmp_path / "bc.msgpack"
    run(bc_config(steps=10), [3], data, chunk_size=5, checkpoint=path)
    resumed, history = run(bc_config(steps=20), [3], data, chunk_size=5, checkpoint=path)
    straight, straight_history = run(bc_config(steps=20), [3], data, chunk_size=5)
    assert_trees_close(resumed, straight)
    assert history == straight_history


@pytest.fixture(scope="module")
def good_checkpoint(data: DeviceEpisodes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 5-step BC stage of seed 0, written once and copied by the tests using it."""
    path = tmp_path_factory.mktemp("checkpoint") / "stage.msgpack"
    run(bc_config(steps=5), [0], data, checkpoint=path)
    return path


def copy_checkpoint(source: Path, directory: Path) -> Path:
    """A private copy of a checkpoint that a test may damage."""
    path = directory / source.name
    path.write_bytes(source.read_bytes())
    return path


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_checkpoint_is_a_clear_error(
    data: DeviceEpisodes, good_checkpoint: Path, tmp_path: Path, damage: str
) -> None:
    path = copy_checkpoint(good_checkpoint, tmp_path)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"checkpoint .* is unreadable.*delete it to start over"):
        run(bc_config(steps=10), [0], data, checkpoint=path)


def test_kill_while_writing_a_checkpoint_loses_no_chunk(
    data: DeviceEpisodes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "stage.msgpack"
    replace = os.replace
    calls = 0

    def replace_then_die_on_second_checkpoint(src: Any, dst: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # chunk 2's checkpoint is written but not yet in place
            raise Killed
        replace(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(iwbc.files.os, "replace", replace_then_die_on_second_checkpoint)
        with pytest.raises(Killed):
            run(bc_config(), [0], data, chunk_size=5, checkpoint=path)
    _, history = run(bc_config(), [0], data, chunk_size=5, checkpoint=path)
    assert [r["step"] for r in history] == [5, 10, 15, 20]


def test_resuming_a_checkpoint_of_other_seeds_is_refused(
    data: DeviceEpisodes, good_checkpoint: Path, tmp_path: Path
) -> None:
    path = copy_checkpoint(good_checkpoint, tmp_path)
    with pytest.raises(ValueError, match="written for other seeds or another network"):
        run(bc_config(steps=10), [0, 1, 2], data, checkpoint=path)


def test_bc_learns_a_fixed_observation_to_action_map() -> None:
    data = padded_data(noise=0.05, seed=2)
    config = bc_config(steps=400, batch_size=6, learning_rate=3e-3)
    state, history = run(config, [0], data, chunk_size=100)
    losses = [r["loss"][0] for r in history]
    assert losses[-1] < losses[0] - 1.0

    valid = np.asarray(data.mask) > 0
    observations = np.asarray(data.observations)[valid]
    target = np.tanh(observations @ TARGET)
    start = init_policy_params(POLICY, OBS_DIM, [0])
    before = np.asarray(policy_mean_action(POLICY, row(start, 0), observations))
    after = np.asarray(policy_mean_action(POLICY, row(state.params, 0), observations))
    error_before = np.mean((before - target) ** 2)
    error_after = np.mean((after - target) ** 2)
    assert error_after < 0.02
    assert error_after < 0.1 * error_before


@pytest.mark.parametrize("loss", ["iw_trajectory", "iw_step"])
def test_weights_are_uniform_when_q_iw_equals_q_ref(data: DeviceEpisodes, loss: str) -> None:
    """Step 1 starts with q_iw = q_ref = θ, so every ratio is 1 and the normalized weights equal."""
    config = iw_config(loss=loss, steps=1, warmup_steps=None)
    _, history = run(config, [0, 1], data)
    (record,) = history
    np.testing.assert_allclose(record["weight_spread"], 0.0, atol=1e-7)
    if loss == "iw_trajectory":
        expected = 1 / config.batch_size
        np.testing.assert_allclose(record["weight_mean"], expected, rtol=1e-6)
    else:
        # Per-step weights are 1 / (valid steps in the batch) each, between these bounds.
        batch = config.batch_size
        for mean in record["weight_mean"]:
            assert 1 / (batch * max(LENGTHS)) <= mean <= 1 / (batch * min(LENGTHS))
