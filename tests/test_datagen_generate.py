"""Tier generation at tiny sizes: episode splitting, the five tiers, resume, bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import flax.serialization
import jax
import minari
import numpy as np
import pytest

import iwbc.datagen.generate as generate_module
from iwbc.cli import main
from iwbc.data import list_datasets, load_dataset
from iwbc.data.minari_io import minari_root
from iwbc.data.minari_write import write_dataset
from iwbc.datagen.behaviour import BehaviourConfig, TransitionLog, train_behaviour
from iwbc.datagen.command import sac_curves_figure, summary_markdown
from iwbc.datagen.episodes import replay_episodes, rollout_episodes
from iwbc.datagen.generate import (
    TIERS,
    GenerationResult,
    Preset,
    dataset_id,
    expert_checkpoint,
    generate,
    medium_checkpoint,
    sac_checkpoint,
)
from iwbc.datagen.sac import SACConfig
from iwbc.envs import BatchEngine, get_spec
from iwbc.errors import UserError, WriteError
from iwbc.machine import cpu_identity

TINY = Preset(
    behaviour=BehaviourConfig(
        env_steps=3_000,
        start_steps=1_000,
        update_every=500,
        eval_every=1_000,
        checkpoint_every=1_000,
        eval_episodes=3,
        sac=SACConfig(hidden_dims=(32, 32), batch_size=64),
    ),
    tier_steps=1_500,
    random_steps=800,
    reference_episodes=5,
    rollout_envs=4,
)


def test_replay_episodes_split_each_envs_stream() -> None:
    # Two envs interleaved: env 0 ends an episode at its 2nd step, env 1 at its 3rd; both are
    # mid-episode at the cut.
    log = TransitionLog.create(10, 1, 1)
    for t in range(4):
        for env in range(2):
            value = 10 * env + t
            log.append(
                observations=np.array([[value]]),
                actions=np.array([[value]]),
                rewards=np.array([float(value)]),
                next_observations=np.array([[value + 0.5]]),
                terminated=np.array([(env, t) == (0, 1)]),
                truncated=np.array([(env, t) == (1, 2)]),
                env=np.array([env]),
            )
    episodes = replay_episodes(log, 8)
    assert [e.rewards for e in episodes] == [[0.0, 1.0], [10.0, 11.0, 12.0], [2.0, 3.0], [13.0]]
    assert [e.terminations[-1] for e in episodes] == [True, False, False, False]
    assert [e.truncations[-1] for e in episodes] == [False, True, True, True]
    np.testing.assert_array_equal(np.asarray(episodes[0].observations)[:, 0], [0, 1, 1.5])
    with pytest.raises(ValueError, match="outside the stream"):
        replay_episodes(log, 9)


def test_rollout_episodes_are_whole_deterministic_and_seeded() -> None:
    env_id = "Hopper-v5"

    def policy(obs: np.ndarray, step: int) -> np.ndarray:
        return np.random.default_rng(step).uniform(-1, 1, (obs.shape[0], 3))

    first = rollout_episodes(env_id, policy, 300, lambda k: 100 + k, num_envs=4)
    again = rollout_episodes(env_id, policy, 300, lambda k: 100 + k, num_envs=4)
    steps = sum(len(e.rewards) for e in first)
    assert steps >= 300
    assert all(e.terminations[-1] or e.truncations[-1] for e in first)
    assert all(not any(e.terminations[:-1]) for e in first)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.observations, b.observations)
    # Fixed-length episodes: 4 envs, budget 5,500 → 6 episodes of 1,000, not 8 (two waves).
    cheetah = rollout_episodes(
        "HalfCheetah-v5", lambda obs, _: np.zeros((obs.shape[0], 6)), 5_500, lambda k: k, 4
    )
    assert [len(e.rewards) for e in cheetah] == [1000] * 6
    engine = BatchEngine(get_spec(env_id), 1)
    for k in (0, len(first) - 1):
        np.testing.assert_array_equal(first[k].observations[0], engine.reset([100 + k])[0])


def test_medium_checkpoint_is_the_first_to_reach_the_fraction() -> None:
    evaluations = [(1, 10.0), (2, 40.0), (3, 20.0), (4, 150.0), (5, 90.0)]
    assert expert_checkpoint(evaluations, "final") == 5
    assert expert_checkpoint(evaluations, "best") == 4
    assert medium_checkpoint(evaluations, 1 / 3, expert_step=5) == 2
    assert medium_checkpoint(evaluations, 1 / 3, expert_step=4) == 4
    with pytest.raises(ValueError, match="train longer"):
        medium_checkpoint([(1, 5.0), (2, -1.0)], 1 / 3, expert_step=2)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("minari")
    work = tmp_path_factory.mktemp("work")
    result = generate("hopper", TINY, seed=0, root=root, work_dir=work, progress=False)
    return root, work, result.manifest


def test_all_tiers_are_loadable_minari_datasets(generated: tuple[Path, Path, dict]) -> None:
    root, _, manifest = generated
    reference = manifest["reference"]
    loaded = {t: load_dataset(dataset_id("hopper", t), root=root) for t in TIERS}
    for tier, data in loaded.items():
        assert data.env_id == "Hopper-v5"
        assert data.ref_min_score == pytest.approx(reference["ref_min_score"])
        assert data.ref_max_score == pytest.approx(reference["ref_max_score"])
        assert manifest["tiers"][tier]["steps"] == data.num_steps
        assert manifest["tiers"][tier]["episodes"] == data.num_episodes
    assert loaded["random"].num_steps >= TINY.random_steps
    assert loaded["medium"].num_steps >= TINY.tier_steps
    assert loaded["medium-replay"].num_steps == manifest["behaviour"]["medium_step"]
    assert (
        loaded["medium-expert"].num_episodes
        == loaded["medium"].num_episodes + loaded["expert"].num_episodes
    )
    with minari_root(root):
        dataset = minari.load_dataset(dataset_id("hopper", "expert"))
        score = minari.get_normalized_score(dataset, np.array([reference["ref_max_score"]]))
        assert score == pytest.approx(1.0)
        assert "SAC" in dataset.storage.metadata["algorithm_name"]
        made_on = manifest["behaviour"]["finished_on"]
        assert made_on == cpu_identity() and set(made_on) == {"cpu", "cpu_vector_extension"}
        assert f"SAC finished on {made_on['cpu']} (" in dataset.storage.metadata["description"]


def test_rerun_resumes_and_a_foreign_dataset_is_refused(
    generated: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    root, work, manifest = generated
    again = generate("hopper", TINY, seed=0, root=root, work_dir=work, progress=False)
    assert again.manifest["tiers"] == manifest["tiers"]
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate("hopper", TINY, seed=0, root=root, work_dir=tmp_path, progress=False)


def test_a_finished_run_writes_its_tiers_into_another_root(
    generated: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    """The manifest knows the tiers, not the root: a root lacking them gets them written."""
    _, work, manifest = generated
    other = tmp_path / "other"
    again = generate("hopper", TINY, seed=0, root=other, work_dir=work, progress=False)
    assert again.manifest["tiers"] == manifest["tiers"]
    assert sorted(list_datasets(other)) == sorted(dataset_id("hopper", t) for t in TIERS)


def test_an_expert_no_better_than_random_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generate_module, "reference_scores", lambda *a: (20.0, 15.0))
    short = dataclasses.replace(TINY.behaviour, env_steps=1_000, start_steps=500)
    preset = dataclasses.replace(TINY, behaviour=short, random_steps=50)
    with pytest.raises(UserError, match=r"^hopper: the expert policy's mean return 15.0 is not "):
        generate("hopper", preset, root=tmp_path, work_dir=tmp_path / "w", progress=False)
    assert not (tmp_path / "iwbc").exists()


def test_killed_generation_resumes_to_the_same_data(
    generated: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    _, _, manifest = generated
    root, work = tmp_path / "minari", tmp_path / "work"
    # Kill the SAC run after its first checkpoint, then let generate pick it up.
    train_behaviour(
        "Hopper-v5",
        0,
        TINY.behaviour,
        checkpoint=sac_checkpoint(work, "hopper", 0, TINY.behaviour),
        progress=False,
        stop_after=1_000,
    )
    resumed = generate("hopper", TINY, seed=0, root=root, work_dir=work, progress=False)
    assert resumed.manifest["behaviour"]["resumed_from_env_steps"] == 1_000
    assert manifest["behaviour"]["resumed_from_env_steps"] == 0
    assert resumed.manifest["tiers"] == manifest["tiers"]
    assert resumed.manifest["reference"] == manifest["reference"]


def test_a_longer_run_extends_a_finished_shorter_one_bit_for_bit(
    generated: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    _, work, _ = generated
    straight_checkpoint = sac_checkpoint(work, "hopper", 0, TINY.behaviour)
    straight = flax.serialization.msgpack_restore(straight_checkpoint.read_bytes())
    # 1,500 is off the evaluation grid: the shorter run's last evaluation must not survive.
    shorter = dataclasses.replace(TINY.behaviour, env_steps=1_500)
    checkpoint = sac_checkpoint(tmp_path, "hopper", 0, shorter)
    assert checkpoint.name == straight_checkpoint.name
    train_behaviour("Hopper-v5", 0, shorter, checkpoint=checkpoint, progress=False)
    extended = train_behaviour(
        "Hopper-v5", 0, TINY.behaviour, checkpoint=checkpoint, progress=False
    )
    np.testing.assert_array_equal(np.asarray(extended.evaluations), straight["evaluations"])
    for got, want in zip(
        jax.tree.leaves(flax.serialization.to_state_dict(jax.device_get(extended.agent))),
        jax.tree.leaves(straight["agent"]),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)
    too_short = dataclasses.replace(TINY.behaviour, env_steps=1_000)
    with pytest.raises(UserError, match=r"already holds 3000 env steps.*--env-steps 3000"):
        train_behaviour("Hopper-v5", 0, too_short, checkpoint=checkpoint, progress=False)


def test_a_failed_write_leaves_nothing_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(**_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(minari, "create_dataset_from_buffers", disk_full)
    short = dataclasses.replace(TINY.behaviour, env_steps=1_000, start_steps=500)
    preset = dataclasses.replace(TINY, behaviour=short, random_steps=50)
    with pytest.raises(WriteError, match=r"^no space left on device while writing .*nothing was"):
        generate(
            "hopper",
            preset,
            root=tmp_path,
            work_dir=tmp_path / "w",
            tiers=("random",),
            progress=False,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]
    manifest = json.loads(next((tmp_path / "w").glob("*/manifest.json")).read_text())
    assert manifest["tiers"] == {}
    # The reference scores were computed before the failed write: their time is kept.
    assert manifest["tier_seconds"] > 0


def test_cli_rejects_unknown_env_and_tier(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "generate", "humanoid"]) == 2
    assert "unknown env 'humanoid'; available: hopper, halfcheetah, walker2d" in (
        capsys.readouterr().err
    )
    assert main(["data", "generate", "hopper", "--tiers", "medium,best"]) == 2
    assert "unknown tier(s) best" in capsys.readouterr().err


def test_write_dataset_under_a_relative_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    def policy(obs: np.ndarray, step: int) -> np.ndarray:
        return np.zeros((obs.shape[0], 3))

    episodes = rollout_episodes("Hopper-v5", policy, 50, lambda k: k, num_envs=2)
    write_dataset(
        "iwbc/test/tiny-v0",
        episodes,
        env_id="Hopper-v5",
        ref_min_score=0.0,
        ref_max_score=1.0,
        description="test",
        algorithm_name="test",
        root="relative/root",
    )
    loaded = load_dataset("iwbc/test/tiny-v0", root="relative/root")
    assert loaded.num_steps == sum(len(e.rewards) for e in episodes)
    assert sorted(p.name for p in (tmp_path / "relative/root").iterdir()) == ["iwbc"]


def test_summary_table_lists_every_tier(generated: tuple[Path, Path, dict]) -> None:
    _, work, manifest = generated
    result = GenerationResult("hopper", "Hopper-v5", 0, manifest, work)
    text = summary_markdown([result], "tiny", "iwbc data generate hopper")
    rows = [line for line in text.splitlines() if line.startswith("| `iwbc/hopper/")]
    assert len(rows) == len(TIERS)
    tables = [line for line in text.splitlines() if line.startswith("|")]
    header, task_row = tables[len(TIERS) + 2], tables[-1]
    assert header.count("|") == task_row.count("|")
    assert task_row.startswith("| Hopper-v5 | 3,000 |")


def test_summary_sets_each_tier_and_expert_beside_d4rl(
    generated: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    _, work, manifest = generated
    result = GenerationResult("hopper", "Hopper-v5", 0, manifest, work)
    text = summary_markdown([result], "tiny", "iwbc data generate hopper")
    medium_replay = next(r for r in text.splitlines() if "hopper/medium-replay-v0`" in r)
    assert medium_replay.split("|")[4].strip() == "402,000"
    # A tiny run's expert is far below 80% of D4RL's 3,234: the table says so.
    task_row = next(r for r in text.splitlines() if r.startswith("| Hopper-v5 |"))
    assert "| 3,234 (2,587) | **no** |" in task_row
    figure = sac_curves_figure([result], tmp_path / "curves.png")
    assert figure.stat().st_size > 1000
