"""A NaN or infinity in training stops the run with one line naming the method, stage and
update; the benchmark runner records that unit as failed (never evaluated) and goes on, and no
NaN reaches a record or scores.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_scripted_dataset
from test_benchmark_runner import tiny_suite_toml, write_suite
from test_train import bc_config, padded_data, run

from iwbc.bench.records import load_records, records_dir
from iwbc.bench.runner import run_suite
from iwbc.bench.units import _read_snapshot, cached_evaluation
from iwbc.cli import main
from iwbc.core.agent import Agent
from iwbc.core.trainer import Training, train
from iwbc.errors import TrainingDiverged, UserError

DATASET = "iwbc-test/idp/diverge-v0"


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    """Where the toy agent's loss (seed index 1 only, from that update on) or its parameter
    (every seed, at that update) turns NaN; None: never."""

    nan_loss_at: int | None = None
    nan_params_at: int | None = None
    # The run's length, as every agent config states it.
    steps: int = 1000


class Toy(Agent):
    """An agent as the trainer sees any: a parameter per seed and a 1-based update count, with
    a loss and a metric that is infinite by construction throughout."""

    w: jax.Array
    seed_index: jax.Array
    config: ToyConfig = flax.struct.field(pytree_node=False, default_factory=ToyConfig)

    def sample(self, key: jax.Array, data: Any, step: jax.Array) -> tuple[Toy, None]:
        return self, None

    def update(self, batch: None) -> tuple[Toy, dict]:
        update, config = self.step + 1, self.config
        loss, w = jnp.float32(1.0), self.w
        if config.nan_loss_at is not None:
            loss = jnp.where((self.seed_index == 1) & (update >= config.nan_loss_at), jnp.nan, loss)
        if config.nan_params_at is not None:
            w = jnp.where(update == config.nan_params_at, jnp.nan, w)
        metrics = {"loss": loss, "weight_spread": jnp.float32(jnp.inf)}
        return self.replace(step=update, w=w), metrics


def toy(**config: int) -> Toy:
    """Two seeds of the toy agent, seed-stacked as ``create_agents`` returns them."""
    return Toy(
        step=jnp.zeros(2, jnp.int32),
        rng=jnp.stack([jax.random.PRNGKey(seed) for seed in (0, 1)]),
        w=jnp.ones((2, 3)),
        seed_index=jnp.arange(2),
        config=ToyConfig(**config),
    )


def test_nan_loss_names_the_first_update_and_is_never_checkpointed(tmp_path: Path) -> None:
    checkpoint = tmp_path / "toy.msgpack"
    options = dict(chunk_size=5, checkpoint=checkpoint, description="iw_bc fine-tune")
    message = (
        r"^iw_bc fine-tune diverged: non-finite loss at update 13 \(chunk of updates 11-15\), "
        r"seed index 1; lower the learning rate and rerun$"
    )
    with pytest.raises(TrainingDiverged, match=message):
        train(toy(nan_loss_at=13), None, 20, progress=False, **options)
    # The checkpoint holds the last finite chunk: a clean rerun continues from update 10.
    training = Training(toy(), None, progress=False, **options)
    assert training.step == 10
    agent = training.to(20)
    assert [record["step"] for record in training.history] == [5, 10, 15, 20]
    assert np.isfinite(np.asarray(agent.w)).all()


def test_non_finite_parameters_with_finite_losses() -> None:
    message = (
        r"^td3_bc training diverged: non-finite parameters after update 10 \(chunk of updates "
        r"6-10\), seed index 0, 1; lower the learning rate and rerun$"
    )
    with pytest.raises(TrainingDiverged, match=message):
        train(
            toy(nan_params_at=7),
            None,
            20,
            chunk_size=5,
            description="td3_bc training",
            progress=False,
        )


def test_infinite_non_loss_metrics_are_not_divergence() -> None:
    _, history = train(toy(), None, 10, progress=False)
    assert history[-1]["weight_spread"] == [np.inf, np.inf]


def test_absurd_learning_rate_stops_bc_at_the_second_update() -> None:
    assert issubclass(TrainingDiverged, UserError)
    with pytest.raises(TrainingDiverged, match=r"^bc pre-training diverged: .* at update 2 \("):
        run(
            bc_config(learning_rate=1e30),
            [0, 1],
            padded_data(),
            chunk_size=5,
            description="bc pre-training",
        )


def test_a_non_finite_evaluation_is_a_failure_never_cached(tmp_path: Path) -> None:
    def evaluate(params: Any, episodes: int) -> np.ndarray:
        return np.array([[1.0, 2.0], [np.nan, 3.0]])

    message = (
        r"^bc diverged: its policy after update 20 scored a non-finite return \(seed index 1\)"
    )
    with pytest.raises(TrainingDiverged, match=message):
        cached_evaluation(tmp_path, "bc", 20, 2, lambda step: None, evaluate)
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_cached_evaluation_is_made_again(tmp_path: Path) -> None:
    """Evaluations are deterministic: a cache file damaged on disk (garbage, truncated, another
    shape) is evaluated again and rewritten, never read as returns nor a crash."""
    calls = []

    def evaluate(params: Any, episodes: int) -> np.ndarray:
        calls.append(episodes)
        return np.array([[1.0, 2.0], [3.0, 4.0]])

    first = cached_evaluation(tmp_path, "bc", 20, 2, lambda step: None, evaluate)
    cache = tmp_path / "eval-20-2ep.npy"
    good = cache.read_bytes()
    for damaged in (b"garbage", good[: len(good) // 2], b""):
        cache.write_bytes(damaged)
        again = cached_evaluation(tmp_path, "bc", 20, 2, lambda step: None, evaluate)
        np.testing.assert_array_equal(again, first)
        assert cache.read_bytes() == good
    np.save(cache, np.zeros((2, 3)))  # another episode count than the file's name
    np.testing.assert_array_equal(
        cached_evaluation(tmp_path, "bc", 20, 2, lambda step: None, evaluate), first
    )
    assert len(calls) == 5
    cached_evaluation(tmp_path, "bc", 20, 2, lambda step: None, evaluate)
    assert len(calls) == 5  # read back, not evaluated


def test_a_damaged_snapshot_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "agent-20.msgpack"
    path.write_bytes(b"\x93garbage")
    with pytest.raises(UserError, match=r"snapshot .*agent-20.msgpack is unreadable") as error:
        _read_snapshot(path, lambda: {"params": np.zeros(2)})
    assert "delete it and the checkpoint.msgpack beside it" in str(error.value)
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_scripted_dataset(DATASET, tmp_path_factory.mktemp("minari"))


def test_sweep_records_diverged_units_as_failed_and_goes_on(root: Path, tmp_path: Path) -> None:
    """The fine-tune and TD3+BC get an absurd learning rate, BC a sane one."""
    text = tiny_suite_toml(("bc", "iw_bc", "td3_bc"), (DATASET,), scripted=None)
    text = text.replace("learning_rate = 1e-3", "learning_rate = 1e30")
    text += "actor_lr = 1e30\ncritic_lr = 1e30\n"
    suite = write_suite(tmp_path, "diverge", text)
    records, work = records_dir("diverge", tmp_path / "results"), tmp_path / "runs"
    summary = run_suite(suite, records, work_dir=work, data_root=root, progress=False)
    assert (summary.total, summary.ok, summary.failed) == (6, 2, 4)
    assert [line.split(": ", 2)[:2] for line in summary.errors] == [
        [f"{DATASET} iw_bc", "TrainingDiverged"],
        [f"{DATASET} td3_bc", "TrainingDiverged"],
    ]
    assert "iw_bc fine-tune diverged: non-finite loss at update" in summary.errors[0]
    assert "td3_bc training diverged: non-finite" in summary.errors[1]
    for record in load_records("diverge", tmp_path / "results"):
        failed = record["method"] != "bc"
        assert record["status"] == ("failed" if failed else "ok")
        assert (record["final"] is None) == failed
    # Strict JSON everywhere: no NaN token in any record.
    for path in records.rglob("*.json"):
        json.loads(path.read_text(), parse_constant=pytest.fail)
    # Never evaluated: the failed units cached no evaluation.
    for method in ("iw_bc", "td3_bc"):
        assert not list(work.rglob(f"{method}-*/eval-*.npy"))
    assert list(work.rglob("bc-*/eval-*.npy"))


def test_run_command_stops_in_one_line_and_writes_no_scores(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["run", DATASET, "--root", str(root), "--methods", "bc", "--seeds", "1"]
    argv += ["--bc-steps", "20", "--bc-lr", "1e30", "--bc-batch-size", "4", "--hidden", "16,16"]
    argv += ["--eval-episodes", "2", "--out", str(out), "--work-dir", str(tmp_path / "runs")]
    assert main([*argv, "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "1 of 1 runs failed" in error
    assert "TrainingDiverged: bc pre-training diverged: non-finite loss at update 2 " in error
    assert not (out / "scores.json").exists()
