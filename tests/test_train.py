"""The trainer: seed independence, chunking, checkpoint resume, training on in memory, the
fine-tune's start, and that BC learns."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import iwbc.core.trainer
import iwbc.files
from iwbc.agents.bc import BCAgent, BCConfig
from iwbc.agents.cql import CQLAgent, CQLConfig
from iwbc.core.agent import DataSpec
from iwbc.core.sampling import DeviceEpisodes
from iwbc.core.trainer import (
    Training,
    agents_structure,
    batch_rows,
    check_memory,
    create_agents,
    finite_state,
    piece_size,
    run_chunk,
    train,
)
from iwbc.errors import UserError

OBS_DIM, ACT_DIM, HIDDEN = 4, 2, (32, 32)
LENGTHS = (12, 5, 9, 12, 3, 7)
# The policy acts on raw observations, so the statistics of the spec are never read.
SPEC = DataSpec(jnp.zeros(OBS_DIM), jnp.ones(OBS_DIM), ACT_DIM)
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
    return DeviceEpisodes.from_padded(observations, actions, mask)


NETWORK = {"hidden_dims": HIDDEN, "standardize": False}


def bc_config(**overrides: Any) -> BCConfig:
    return BCConfig(**{"steps": 20, "batch_size": 4, **NETWORK, **overrides})


def iw_config(**overrides: Any) -> BCConfig:
    base = {"steps": 20, "batch_size": 4, "warmup_steps": 5, **NETWORK}
    return BCConfig.iw_finetune(**{**base, **overrides})


def agents(config: BCConfig, seeds: list[int], init: BCAgent | None = None) -> BCAgent:
    return create_agents(BCAgent, config, SPEC, seeds, init)


def run(
    config: BCConfig, seeds: list[int], data: DeviceEpisodes, **kwargs: Any
) -> tuple[BCAgent, list[dict]]:
    """Fresh agents for ``seeds`` trained to ``config.steps`` updates."""
    return train(agents(config, seeds), data, config.steps, progress=False, **kwargs)


def assert_trees_close(a: Any, b: Any, atol: float = 0.0) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=atol)


def row(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda x: x[i], tree)


@pytest.fixture(scope="module")
def data() -> DeviceEpisodes:
    return padded_data()


@pytest.fixture(scope="module")
def straight_iw(data: DeviceEpisodes) -> tuple[BCAgent, list[dict]]:
    """An uninterrupted 20-step iw fine-tune of seeds 0 and 1 in chunks of 5, the reference."""
    return run(iw_config(), [0, 1], data, chunk_size=5)


@pytest.mark.parametrize("make_config", [bc_config, iw_config], ids=["bc", "iw_trajectory"])
def test_vmapped_seeds_equal_each_seed_trained_alone(
    data: DeviceEpisodes, make_config: Any
) -> None:
    config = make_config(steps=10)
    together, _ = run(config, [0, 1, 2], data, chunk_size=10)
    for i, seed in enumerate([0, 1, 2]):
        # One seed's agent and one compiled chunk of 10 updates, compiled once for every seed.
        alone, _ = run_chunk(agents(config, [seed]), data, jnp.asarray(0), 10)
        assert_trees_close(row(together, i), row(alone, 0), atol=1e-6)
    # The seeds really differ, so the equalities above are not vacuous.
    kernels = np.asarray(together.params["params"]["Dense_0"]["kernel"])
    assert not np.allclose(kernels[0], kernels[1])
    assert np.asarray(together.step).tolist() == [10, 10, 10]


# Other values than the defaults for every field some loss never reads.
_INERT_CHANGES = {"temperature": 3.0, "normalize": False, "ema_decay": 0.5, "refresh_every": 3}


def test_inert_fields_by_loss() -> None:
    """Plain BC reads none of iw-BC's fields; refresh_every acts only on a trajectory table
    (windows of iw_trajectory or iw_quality), never for iw_step, whose weights are per step."""
    iw_only = ("temperature", "normalize", "ema_decay", "refresh_every")
    assert bc_config().inert_fields == bc_config(window=4).inert_fields == iw_only
    for loss in ("iw_trajectory", "iw_quality", "iw_step"):
        assert iw_config(loss=loss).inert_fields == ("refresh_every",)
        table = loss != "iw_step"
        assert iw_config(loss=loss, window=4).inert_fields == (() if table else ("refresh_every",))


@pytest.mark.parametrize(
    ("config", "inert"),
    [
        (bc_config(steps=6), ("temperature", "normalize", "ema_decay", "refresh_every")),
        (iw_config(steps=6, learning_rate=0.03), ("refresh_every",)),
        (iw_config(steps=6, learning_rate=0.03, window=4, refresh_every=2), ()),
    ],
    ids=["bc", "iw_trajectory", "iw_trajectory-windows"],
)
def test_fields_a_loss_never_reads_change_nothing(
    data: DeviceEpisodes, config: BCConfig, inert: tuple[str, ...]
) -> None:
    """Reports leave out ``inert_fields``: setting them all otherwise trains the same parameters
    to the bit, where another temperature does not (at a learning rate at which six updates
    move the weights' tables beyond float32's rounding, and windows' tables refreshed within
    them)."""
    assert config.inert_fields == inert
    trained, _ = run(config, [0], data)
    changed, _ = run(
        dataclasses.replace(config, **{k: _INERT_CHANGES[k] for k in inert}), [0], data
    )
    assert_trees_close(changed.params, trained.params)
    if config.importance_weighted:
        other, _ = run(dataclasses.replace(config, temperature=3.0), [0], data)
        kernel = trained.params["params"]["Dense_0"]["kernel"]
        assert not np.array_equal(other.params["params"]["Dense_0"]["kernel"], kernel)


def test_chunk_size_does_not_change_the_result(
    data: DeviceEpisodes, straight_iw: tuple[BCAgent, list[dict]]
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
    straight_iw: tuple[BCAgent, list[dict]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = iw_config()  # warm-up + cosine: the resumed optimizer must continue the schedule
    path = tmp_path / "stage.msgpack"
    save = iwbc.core.trainer.save_checkpoint
    saves = 0

    def save_then_die_after_two(*args: Any) -> None:
        nonlocal saves
        save(*args)
        saves += 1
        if saves == 2:
            raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(iwbc.core.trainer, "save_checkpoint", save_then_die_after_two)
        with pytest.raises(Killed):
            run(config, [0, 1], data, chunk_size=5, checkpoint=path)
    resumed, history = run(config, [0, 1], data, chunk_size=5, checkpoint=path)
    straight, straight_history = straight_iw

    assert_trees_close(resumed, straight)
    assert [r["step"] for r in history] == [5, 10, 15, 20]
    assert history == straight_history
    # Resuming a finished run runs nothing and returns the saved agent.
    again, again_history = run(config, [0, 1], data, chunk_size=5, checkpoint=path)
    assert_trees_close(again, straight)
    assert again_history == history


@pytest.mark.parametrize("piece", [1, 2, 3])
def test_a_chunk_run_in_pieces_gives_the_whole_chunk_s_agent_and_history(
    data: DeviceEpisodes, straight_iw: tuple[BCAgent, list[dict]], piece: int
) -> None:
    """Pieces of 1, 2 (a divisor of nothing here: 2 + 2 + 1) and 3 updates within chunks of 5:
    the same agent and history records to the bit, as a record is the mean of the chunk's
    per-update metrics however many calls made them."""
    straight, straight_history = straight_iw
    pieces, history = run(iw_config(), [0, 1], data, chunk_size=5, piece=piece)
    assert_trees_close(pieces, straight)
    assert history == straight_history


def test_pieces_keep_the_trajectory_table_refreshes_in_step(data: DeviceEpisodes) -> None:
    """Under windows, iw-BC refreshes its q_iw table at updates 0, 3, 6, ... (``refresh_every``
    3): pieces of 2 start at other indices, and must refresh where a whole chunk does."""
    config = iw_config(window=4, refresh_every=3)
    straight, straight_history = run(config, [0, 1], data, chunk_size=10)
    pieces, history = run(config, [0, 1], data, chunk_size=10, piece=2)
    assert_trees_close(pieces, straight)
    assert history == straight_history


def test_a_kill_part_way_through_a_chunk_resumes_from_the_part_saved(
    data: DeviceEpisodes,
    straight_iw: tuple[BCAgent, list[dict]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Saved after every piece (checkpoint_every_s=0), killed after update 9 of the chunk of
    updates 6-10: the resumed run trains update 10 only and ends with the uninterrupted history."""
    path = tmp_path / "stage.msgpack"
    options = dict(chunk_size=5, piece=2, checkpoint=path, checkpoint_every_s=0.0)
    save = iwbc.core.trainer.save_checkpoint
    saved_at = []

    def save_then_die_at_update_9(state: Any, *args: Any) -> None:
        save(state, *args)
        saved_at.append(int(np.asarray(args[0].step)[0]))
        if saved_at[-1] == 9:
            raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(iwbc.core.trainer, "save_checkpoint", save_then_die_at_update_9)
        with pytest.raises(Killed):
            run(iw_config(), [0, 1], data, **options)
    assert saved_at == [2, 4, 5, 7, 9]  # part-way saves, and every chunk's end
    resumed_run = Training(agents(iw_config(), [0, 1]), data, progress=False, **options)
    assert resumed_run.step == 9
    assert [r["step"] for r in resumed_run.history] == [5]
    assert {name: v.shape for name, v in resumed_run.pending.items()}["loss"] == (2, 4)
    calls = []
    run_updates = Training._run
    monkeypatch.setattr(
        Training,
        "_run",
        lambda self, done, length: calls.append((done, length)) or run_updates(self, done, length),
    )
    resumed = resumed_run.to(20)
    assert calls[0] == (9, 1)  # update 10 alone: nothing trained twice
    straight, straight_history = straight_iw
    assert_trees_close(resumed, straight)
    assert resumed_run.history == straight_history


def test_a_checkpoint_without_pending_metrics_still_loads(
    data: DeviceEpisodes, good_checkpoint: Path, tmp_path: Path
) -> None:
    """Checkpoints written before chunks were saved part-way hold no pending metrics."""
    path = copy_checkpoint(good_checkpoint, tmp_path)
    payload = flax.serialization.msgpack_restore(path.read_bytes())
    del payload["pending"]
    path.write_bytes(flax.serialization.msgpack_serialize(payload))
    resumed = Training(agents(bc_config(), [0]), data, checkpoint=path, progress=False)
    assert resumed.step == 5
    assert resumed.pending == {}


def test_piece_size_splits_only_large_batches_on_a_cpu() -> None:
    rows = iwbc.core.trainer.CPU_PIECE_ROWS
    assert piece_size(500, 5 * 256, "cpu") == 500  # the quick suite's updates: whole chunks
    assert piece_size(500, 5 * 128 * 1000, "gpu") == 500  # an accelerator: whole chunks
    assert piece_size(500, 5 * 128 * 1000, "cpu") == 1  # the paper's BC, 5 seeds
    assert piece_size(500, rows // 30, "cpu") == 25  # the largest divisor of 500 up to 30
    assert piece_size(7, rows // 3, "cpu") == 1  # 7 is prime
    assert piece_size(500, 10 * rows, "cpu") == 1


def test_a_batch_larger_than_the_free_memory_is_a_clear_error_before_any_update(
    data: DeviceEpisodes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """XLA's own estimate of the compiled updates' working memory against what is free: on a
    CPU the kernel would otherwise kill the run without a word."""
    path = tmp_path / "stage.msgpack"
    training = Training(
        agents(bc_config(), [0, 1]),
        data,
        checkpoint=path,
        description="bc pre-training",
        progress=False,
    )
    monkeypatch.setattr(iwbc.core.trainer, "free_memory", lambda: 1024)
    message = (
        r"^bc pre-training needs \d+\.\d GiB of working memory for its updates \(XLA's "
        r"estimate\) and 0\.0 GiB is free; train fewer seeds at once \(--seeds"
    )
    with pytest.raises(UserError, match=message) as error:
        training.to(10)
    assert "\n" not in str(error.value)
    assert training.step == 0 and not path.exists()
    monkeypatch.setattr(iwbc.core.trainer, "free_memory", lambda: None)  # unknown: no check
    assert np.asarray(training.to(10).step).tolist() == [10, 10]


def test_check_memory_compares_the_estimate_with_the_free_memory() -> None:
    check_memory("x", 2**30, 2**31)
    check_memory("x", 2**31, None)
    with pytest.raises(UserError, match=r"^x needs 2\.0 GiB .* and 1\.0 GiB is free; "):
        check_memory("x", 2**31, 2**30)


def test_running_out_of_an_accelerator_s_memory_is_a_clear_error(
    data: DeviceEpisodes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def exhausted(*args: Any, **kwargs: Any) -> None:
        raise jax.errors.JaxRuntimeError(
            "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 9262080448 bytes.\nmore"
        )

    exhausted.lower = exhausted  # type: ignore[attr-defined]
    training = Training(agents(bc_config(), [0]), data, description="iw_bc fine-tune")
    monkeypatch.setattr(iwbc.core.trainer, "run_chunk", exhausted)
    message = r"^iw_bc fine-tune ran out of memory at update 1 "
    with pytest.raises(UserError, match=message) as error:
        training.to(5)
    assert "allocate 9262080448 bytes" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("window", [None, 4], ids=["episodes", "windows"])
def test_batch_rows_counts_every_seed_s_batch_steps(data: DeviceEpisodes, window: Any) -> None:
    config = bc_config(window=window, batch_size=3)
    training = Training(agents(config, [0, 1]), data, progress=False)
    steps = max(LENGTHS) if window is None else window
    assert batch_rows(training.agent, data) == 2 * 3 * steps


def test_shorter_run_then_longer_run_continues_from_the_checkpoint(
    data: DeviceEpisodes, tmp_path: Path
) -> None:
    """BC's constant learning rate makes a 10-step run a prefix of the 20-step one."""
    path = tmp_path / "bc.msgpack"
    run(bc_config(steps=10), [3], data, chunk_size=5, checkpoint=path)
    resumed, history = run(bc_config(steps=20), [3], data, chunk_size=5, checkpoint=path)
    straight, straight_history = run(bc_config(steps=20), [3], data, chunk_size=5)
    assert_trees_close(resumed, straight)
    assert history == straight_history


def test_training_on_in_memory_equals_one_straight_run_without_rereading_the_checkpoint(
    data: DeviceEpisodes,
    straight_iw: tuple[BCAgent, list[dict]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A learning curve: train to 5, evaluate, on to 12, evaluate, on to 20; the schedule spans
    the config's 20 steps whatever the targets. The checkpoint is read once, on construction
    (it holds update 5 of a killed run), and never again."""
    path = tmp_path / "curve.msgpack"
    train(agents(iw_config(), [0, 1]), data, 5, chunk_size=5, checkpoint=path, progress=False)
    training = Training(
        agents(iw_config(), [0, 1]), data, checkpoint=path, chunk_size=5, progress=False
    )
    assert training.step == 5  # resumed from the checkpoint

    def no_second_read(*args: Any) -> None:
        raise AssertionError("the checkpoint was read again")

    monkeypatch.setattr(iwbc.core.trainer, "load_checkpoint", no_second_read)
    straight, straight_history = straight_iw
    points = {}
    for until in (5, 12, 20):
        agent = training.to(until)
        assert training.step == until
        assert np.asarray(agent.step).tolist() == [until, until]
        points[until] = agent
    assert_trees_close(points[20], straight)
    assert [r["step"] for r in training.history] == [5, 10, 12, 17, 20]
    assert training.history[:2] == straight_history[:2]
    # Every chunk was checkpointed: a fresh training from the file is at the end too.
    monkeypatch.undo()
    resumed = Training(agents(iw_config(), [0, 1]), data, checkpoint=path, progress=False)
    assert resumed.step == 20
    assert_trees_close(resumed.agent, straight)
    assert resumed.history == training.history


@pytest.mark.parametrize("checkpointed", [False, True], ids=["in_memory", "checkpoint"])
def test_training_to_an_earlier_update_is_refused(
    data: DeviceEpisodes, tmp_path: Path, checkpointed: bool
) -> None:
    path = tmp_path / "bc.msgpack" if checkpointed else None
    training = Training(
        agents(bc_config(), [0]), data, checkpoint=path, chunk_size=5, progress=False
    )
    agent = training.to(10)
    assert training.to(10) is agent  # already there: nothing runs
    expected = (
        rf"^checkpoint {path} is at update 10, past 5; delete it"
        if checkpointed
        else r"^the agent is at update 10, past 5$"
    )
    with pytest.raises(UserError, match=expected):
        training.to(5)
    assert training.step == 10
    assert [r["step"] for r in training.history] == [5, 10]


def test_fine_tune_starts_from_the_bc_agent(data: DeviceEpisodes) -> None:
    """params, q_ref and q_iw all start as the BC agent's parameters; steps restart at 0."""
    bc_agent, _ = run(bc_config(steps=10), [0, 1, 2], data, chunk_size=10)
    finetune = agents(iw_config(), [0, 1, 2], init=bc_agent)
    for params in (finetune.params, finetune.ref_params, finetune.iw_params):
        for got, want in zip(
            jax.tree.leaves(params), jax.tree.leaves(bc_agent.params), strict=True
        ):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert np.asarray(finetune.step).tolist() == [0, 0, 0]
    assert finetune.config == iw_config()
    with pytest.raises(UserError, match="must standardize observations as the agent it starts"):
        agents(iw_config(standardize=True), [0, 1, 2], init=bc_agent)
    # The BC agent really moved from its own start, so the equalities above are not vacuous.
    fresh = agents(bc_config(steps=10), [0, 1, 2])
    assert not np.allclose(
        np.asarray(fresh.params["params"]["Dense_0"]["kernel"]),
        np.asarray(finetune.params["params"]["Dense_0"]["kernel"]),
    )


@pytest.fixture(scope="module")
def good_checkpoint(data: DeviceEpisodes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BC of seed 0 at update 5, written once and copied by the tests using it."""
    path = tmp_path_factory.mktemp("checkpoint") / "stage.msgpack"
    train(agents(bc_config(), [0]), data, 5, checkpoint=path, progress=False)
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
    with pytest.raises(UserError, match=r"checkpoint .* is unreadable.*delete it to start over"):
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
    with pytest.raises(UserError, match="written for other seeds or another network"):
        run(bc_config(steps=10), [0, 1, 2], data, checkpoint=path)


def test_bc_learns_a_fixed_observation_to_action_map() -> None:
    data = padded_data(noise=0.05, seed=2)
    config = bc_config(steps=400, batch_size=6, learning_rate=3e-3)
    agent, history = run(config, [0], data, chunk_size=100)
    losses = [r["loss"][0] for r in history]
    assert losses[-1] < losses[0] - 1.0

    observations = np.asarray(data.flat_observations)[: int(np.asarray(data.lengths).sum())]
    target = np.tanh(observations @ TARGET)
    start = agents(config, [0])
    before = np.asarray(row(start, 0).act(observations))
    after = np.asarray(row(agent, 0).act(observations))
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
    np.testing.assert_allclose(record["weight_ess"], 1.0, rtol=1e-5)
    if loss == "iw_trajectory":
        expected = 1 / config.batch_size
        np.testing.assert_allclose(record["weight_mean"], expected, rtol=1e-6)
    else:
        # Per-step weights are 1 / (valid steps in the batch) each, between these bounds.
        batch = config.batch_size
        for mean in record["weight_mean"]:
            assert 1 / (batch * max(LENGTHS)) <= mean <= 1 / (batch * min(LENGTHS))


@pytest.mark.parametrize(
    ("agent_cls", "config"),
    [(BCAgent, iw_config()), (CQLAgent, CQLConfig(hidden_dims=HIDDEN))],
    ids=["iw_bc", "cql"],
)
def test_one_shot_programs_compile_to_the_default_numbers(
    agent_cls: Any, config: Any, data: DeviceEpisodes
) -> None:
    """Creating agents and preparing data compile with ONE_SHOT_COMPILE; the numbers are those of
    XLA's default compile, bit for bit (level 0 would move truncated-normal and orthogonal
    initial weights by an ulp or more). CQL's orthogonal critic init is the most sensitive."""
    spec = DataSpec(jnp.linspace(-1.0, 1.0, OBS_DIM), jnp.linspace(0.5, 2.0, OBS_DIM), ACT_DIM)
    seeds = [0, 1, 7]
    keys = jnp.stack([jax.random.PRNGKey(seed) for seed in seeds])
    by_default = jax.jit(jax.vmap(lambda key: agent_cls.create(key, spec, config)))(keys)
    created = create_agents(agent_cls, config, spec, seeds)
    jax.tree.map(np.testing.assert_array_equal, created, by_default)
    if agent_cls is BCAgent:  # iw-BC's trajectory tables
        prepared = iwbc.core.trainer._prepare(created, data)
        by_default = jax.jit(jax.vmap(lambda one: one.prepare(data)))(created)
        jax.tree.map(np.testing.assert_array_equal, prepared, by_default)
    np.testing.assert_array_equal(finite_state(created), [True] * len(seeds))


@pytest.mark.parametrize(
    ("agent_cls", "config"),
    [(BCAgent, bc_config()), (CQLAgent, CQLConfig(hidden_dims=HIDDEN))],
    ids=["bc", "cql"],
)
def test_a_saved_agent_reads_back_into_its_structure(agent_cls: Any, config: Any) -> None:
    """agents_structure is create_agents' tree, shapes and dtypes with nothing computed, and a
    saved agent read into it equals the agent (how a BC snapshot starts its fine-tunes)."""
    seeds = [0, 3]
    created = create_agents(agent_cls, config, SPEC, seeds)
    structure = agents_structure(agent_cls, config, OBS_DIM, ACT_DIM, seeds)
    assert jax.tree.structure(structure) == jax.tree.structure(created)
    for want, got in zip(jax.tree.leaves(created), jax.tree.leaves(structure), strict=True):
        assert (got.shape, got.dtype) == (want.shape, want.dtype)
    restored = flax.serialization.from_bytes(structure, flax.serialization.to_bytes(created))
    jax.tree.map(np.testing.assert_array_equal, restored, created)
    assert restored.config == created.config
