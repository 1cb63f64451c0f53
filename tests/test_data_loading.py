"""load_dataset against tiny local Minari datasets: views, roots, downloads and bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import h5py
import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from iwbc import cli
from iwbc.data import DatasetError, OfflineDataset, list_datasets, load_dataset
from iwbc.data.errors import DatasetWarning
from iwbc.data.minari_io import dataset_id_problem
from iwbc.envs import BatchEngine, make_engine
from iwbc.envs.evaluate import check_evaluable

MakeDataset = Callable[..., list[EpisodeBuffer]]
Pendulum = tuple[str, list[EpisodeBuffer]]


def _lengths(buffers: list[EpisodeBuffer]) -> list[int]:
    return [len(b.rewards) for b in buffers]


def _raises_one_line(match: str, *args: object, **kwargs: object) -> str:
    with pytest.raises(DatasetError, match=match) as info:
        load_dataset(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def _main_file(root: Path, dataset_id: str) -> Path:
    return root / dataset_id / "data" / "main_data.hdf5"


def test_metadata_fields(make_minari_dataset: MakeDataset) -> None:
    dataset_id = "iwbc-test/pendulum/refs-v0"
    make_minari_dataset(dataset_id, ref_min_score=-10.0, ref_max_score=50.0)
    ds = load_dataset(dataset_id)
    assert isinstance(ds, OfflineDataset)
    assert ds.id == dataset_id and ds.env_id == "InvertedPendulum-v5"
    assert (ds.observation_dim, ds.action_dim) == (4, 1)
    assert (ds.ref_min_score, ds.ref_max_score) == (-10.0, 50.0)
    np.testing.assert_array_equal(ds.action_low, [-3.0])
    np.testing.assert_array_equal(ds.action_high, [3.0])
    assert ds.env_spec is not None and gym.make(ds.env_spec).observation_space.shape == (4,)


def test_fingerprint_follows_an_action_box_other_than_one(pendulum_dataset: Pendulum) -> None:
    """Evaluation maps actions into the box and TD3+BC's loss reads it: the same [-1, 1] arrays
    under another box are other data (runs made when TD3+BC ignored the box are not reused)."""
    dataset_id, _ = pendulum_dataset
    ds = load_dataset(dataset_id)
    assert ds.action_scale == (3.0,)

    def boxed(half_width: float) -> OfflineDataset:
        bound = np.full(1, half_width, np.float32)
        return dataclasses.replace(ds, action_low=-bound, action_high=bound)

    assert boxed(3.0).content_fingerprint == ds.content_fingerprint
    fingerprints = {boxed(w).content_fingerprint for w in (3.0, 2.0, 1.0)}
    assert len(fingerprints) == 3
    assert boxed(1.0).action_scale == (1.0,) and boxed(2.0).action_scale == (2.0,)


def test_reference_scores_count_for_records_not_for_training(
    pendulum_dataset: Pendulum,
) -> None:
    """Records hold normalized scores, so the content fingerprint follows the reference scores;
    trained agents and returns do not depend on them, so the training fingerprint does not,
    while it follows everything else the content fingerprint does (here: the episodes)."""
    dataset_id, _ = pendulum_dataset
    ds = load_dataset(dataset_id)
    rescored = dataclasses.replace(ds, ref_min_score=0.0, ref_max_score=1.0)
    assert rescored.content_fingerprint != ds.content_fingerprint
    assert rescored.training_fingerprint == ds.training_fingerprint != ds.content_fingerprint
    rewarded = dataclasses.replace(
        ds, episodes=ds.episodes._replace(rewards=ds.episodes.rewards * 2)
    )
    assert rewarded.training_fingerprint != ds.training_fingerprint


def test_fingerprint_follows_the_recorded_env(pendulum_dataset: Pendulum) -> None:
    """Scores depend on the env a dataset records: other arguments or another time limit give
    another fingerprint (no cached evaluation is reused), the default env leaves it as it was
    before env arguments were hashed (so records of default-env datasets stay valid)."""
    dataset_id, _ = pendulum_dataset
    ds = load_dataset(dataset_id)
    assert ds.env_spec.kwargs == {} and ds.env == ds.env_spec
    without = dataclasses.replace(ds, env_spec=None)
    assert without.env == ds.env_id and without.content_fingerprint == ds.content_fingerprint
    fingerprints = {
        dataclasses.replace(
            ds, env_spec=dataclasses.replace(ds.env_spec, **change)
        ).content_fingerprint
        for change in (
            {"kwargs": {"reset_noise_scale": 0.1}},
            {"kwargs": {"reset_noise_scale": 0.2}},
            {"max_episode_steps": 50},
        )
    }
    assert len(fingerprints) == 3 and ds.content_fingerprint not in fingerprints
    assert ds.env_label == ds.env_id == "InvertedPendulum-v5"
    limited = dataclasses.replace(
        ds.env_spec, max_episode_steps=50, kwargs={"reset_noise_scale": 0.1}
    )
    assert dataclasses.replace(ds, env_spec=limited).env_label == (
        "InvertedPendulum-v5 (reset_noise_scale=0.1, max_episode_steps=50)"
    )
    # gym.make(id, render_mode=None) records the argument; how an env renders is not named.
    rendered = dataclasses.replace(ds.env_spec, kwargs={"render_mode": None, "width": 64})
    assert dataclasses.replace(ds, env_spec=rendered).env_label == "InvertedPendulum-v5"
    rendered.kwargs["reset_noise_scale"] = 0.1
    assert dataclasses.replace(ds, env_spec=rendered).env_label == (
        "InvertedPendulum-v5 (reset_noise_scale=0.1)"
    )


def test_evaluation_env_is_minaris_eval_env_spec(make_minari_dataset: MakeDataset) -> None:
    """Minari computes reference scores on a dataset's ``eval_env_spec``: data recorded under a
    short time limit is evaluated (and fingerprinted) on the evaluation env it names."""
    short = dataclasses.replace(gym.spec("InvertedPendulum-v5"), max_episode_steps=20)
    make_minari_dataset("iwbc-test/pendulum/short-v0", env=short, eval_env="InvertedPendulum-v5")
    ds = load_dataset("iwbc-test/pendulum/short-v0")
    assert ds.env_spec.max_episode_steps == 1000 and ds.env_label == "InvertedPendulum-v5"
    make_minari_dataset("iwbc-test/pendulum/evalshort-v0", eval_env=short)
    ds = load_dataset("iwbc-test/pendulum/evalshort-v0")
    assert ds.env_label == "InvertedPendulum-v5 (max_episode_steps=20)"


def test_an_arrow_dataset_loads_as_its_hdf5_twin(
    make_minari_dataset: MakeDataset, minari_root: Path
) -> None:
    """Minari writes Arrow as well as HDF5 (``data_format="arrow"``): the same episodes in
    either format load to the same arrays and content fingerprint, so one's runs serve both."""
    make_minari_dataset("iwbc-test/pendulum/hdf5-v0")
    make_minari_dataset("iwbc-test/pendulum/arrow-v0", data_format="arrow")
    assert list((minari_root / "iwbc-test/pendulum/arrow-v0/data").glob("*/*.arrow"))
    hdf5, arrow = (load_dataset(f"iwbc-test/pendulum/{name}-v0") for name in ("hdf5", "arrow"))
    assert hdf5.episodes.num_episodes == 5
    for name in hdf5.episodes._fields:
        np.testing.assert_array_equal(getattr(arrow.episodes, name), getattr(hdf5.episodes, name))
    assert arrow.content_fingerprint == hdf5.content_fingerprint


def test_views_match_per_episode_python(pendulum_dataset: Pendulum) -> None:
    dataset_id, buffers = pendulum_dataset
    ep = load_dataset(dataset_id).episodes
    lengths = _lengths(buffers)
    terminated = [bool(b.terminations[-1]) for b in buffers]
    assert 0 < sum(terminated) < len(terminated) and len(set(lengths)) > 1
    assert ep.observations.shape == (sum(lengths), 4) and ep.actions.shape == (sum(lengths), 1)
    np.testing.assert_array_equal(ep.lengths, lengths)
    np.testing.assert_array_equal(ep.starts, np.cumsum([0, *lengths[:-1]]))
    for i, buf in enumerate(buffers):
        n = lengths[i]
        steps = slice(ep.starts[i], ep.starts[i] + n)
        assert ep.returns[i] == pytest.approx(sum(float(r) for r in buf.rewards), rel=1e-12)
        np.testing.assert_array_equal(ep.step_episodes[steps], i)
        np.testing.assert_allclose(ep.observations[steps], buf.observations[:-1], rtol=1e-6)
        np.testing.assert_allclose(ep.next_observations[steps], buf.observations[1:], rtol=1e-6)
        # InvertedPendulum's box is [-3, 3]: actions are loaded mapped into [-1, 1].
        np.testing.assert_allclose(ep.actions[steps], np.asarray(buf.actions) / 3.0, rtol=1e-6)
        np.testing.assert_allclose(ep.rewards[steps], buf.rewards, rtol=1e-6)
        assert ep.terminations[steps][-1] == float(terminated[i])
        assert ep.truncations[steps][-1] == float(not terminated[i])
        assert ep.terminations[steps].sum() + ep.truncations[steps].sum() == 1.0
    tr = ep.to_transitions()
    assert tr.obs.shape == (sum(lengths), 4)
    assert tr.terminals.sum() == sum(terminated)
    assert tr.timeouts.sum() == len(terminated) - sum(terminated)
    np.testing.assert_allclose(tr.next_obs[: lengths[0]], buffers[0].observations[1:], rtol=1e-6)


def test_subset_with_repeats_on_loaded_data(pendulum_dataset: Pendulum) -> None:
    dataset_id, buffers = pendulum_dataset
    lengths = _lengths(buffers)
    sub = load_dataset(dataset_id).episodes.subset([2, 2, 4])
    np.testing.assert_array_equal(sub.lengths, [lengths[2], lengths[2], lengths[4]])
    assert sub.to_transitions().obs.shape == (2 * lengths[2] + lengths[4], 4)


def test_root_argument_and_listing(
    make_minari_dataset: MakeDataset, minari_root: Path, tmp_path: Path
) -> None:
    other_root = tmp_path / "other_root"
    buffers = make_minari_dataset("iwbc-test/pendulum/elsewhere-v0", root=other_root)
    make_minari_dataset("iwbc-test/pendulum/here-v0")
    assert list_datasets() == ["iwbc-test/pendulum/here-v0"]
    assert list_datasets(root=other_root) == ["iwbc-test/pendulum/elsewhere-v0"]
    ds = load_dataset("iwbc-test/pendulum/elsewhere-v0", root=other_root)
    assert ds.episodes.num_episodes == len(buffers)
    assert os.environ["MINARI_DATASETS_PATH"] == str(minari_root)


def test_read_only_commands_leave_a_missing_root_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --root that does not exist is a typo, most likely: one line, nothing created."""
    missing = tmp_path / "typo" / "minari"
    assert cli.main(["data", "list", "--root", str(missing)]) == 2
    assert capsys.readouterr().err == (
        f"iwbc: error: --root {missing} does not exist; pass the directory that holds your "
        "Minari datasets\n"
    )
    assert cli.main(["data", "minari-tiers", "hopper", "--root", str(missing)]) == 2
    assert "mujoco/hopper/expert-v0, which is not in the local root" in capsys.readouterr().err
    hint = "pass --root with the directory that holds dataset 'iwbc/some/data-v0', or --download"
    for argv in (["data", "info", "iwbc/some/data-v0"], ["run", "iwbc/some/data-v0"]):
        assert cli.main([*argv, "--root", str(missing)]) == 2
        err = capsys.readouterr().err
        assert err == f"iwbc: error: --root {missing} does not exist; {hint} to fetch it there\n"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(missing))
    assert list_datasets() == []
    _raises_one_line(f"^MINARI_DATASETS_PATH {missing} does not exist; {hint}", "iwbc/some/data-v0")
    assert not (tmp_path / "typo").exists()


def test_unknown_id_lists_local_ids(pendulum_dataset: Pendulum) -> None:
    message = _raises_one_line("not in the local Minari root", "iwbc-test/pendulum/missing-v0")
    assert pendulum_dataset[0] in message and "download=True" in message
    _raises_one_line("is not a Minari dataset id", "no version!")


@pytest.mark.parametrize(
    ("dataset_id", "problem"),
    [
        ("mujoco/hopper/medium", "does not end in a version such as -v0"),
        ("d4rl/hopper/med ium-v2", "only letters, digits, '-', '_' and '/'"),
        ("d4rl//medium-v2", "an empty part between slashes"),
        ("/mujoco/hopper-v0", "an empty part between slashes"),
        ("x/hopper-v0", "a namespace of two characters or more, and 'x' has one"),
        ("-v0", "Minari's pattern is (namespace/)name-v<version>"),
    ],
)
def test_a_malformed_id_names_what_is_wrong(dataset_id: str, problem: str) -> None:
    start = re.escape(f"'{dataset_id}' is not a Minari dataset id (")
    message = _raises_one_line(start, dataset_id)
    assert problem in message


@pytest.mark.parametrize("dataset_id", ["xy/hopper-v0", "hopper-v3", "d4rl/pen/human-v2"])
def test_minari_ids_have_no_problem(dataset_id: str) -> None:
    assert dataset_id_problem(dataset_id) is None


def test_truncated_hdf5(pendulum_dataset: Pendulum, minari_root: Path):
    dataset_id, _ = pendulum_dataset
    main = _main_file(minari_root, dataset_id)
    with open(main, "r+b") as f:
        f.truncate(main.stat().st_size // 2)
    message = _raises_one_line("corrupted or truncated", dataset_id)
    assert str(main) in message and "re-download" in message


@pytest.mark.parametrize("extra", [3, -2])
def test_metadata_listing_other_episodes_than_the_file_holds(
    pendulum_dataset: Pendulum, minari_root: Path, extra: int
) -> None:
    """More listed would fail in Minari's reader, fewer would silently drop the rest (Minari
    reads the first total_episodes): either is an error giving both counts."""
    dataset_id, buffers = pendulum_dataset
    metadata = _main_file(minari_root, dataset_id).parent / "metadata.json"
    listed = len(buffers) + extra
    metadata.write_text(json.dumps({**json.loads(metadata.read_text()), "total_episodes": listed}))
    _raises_one_line(
        rf"holds {len(buffers)} episodes where data/metadata.json's total_episodes says "
        rf"{listed}; set total_episodes to {len(buffers)} there",
        dataset_id,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("observations", np.nan), ("actions", np.inf), ("rewards", np.nan), ("observations", -np.inf)],
)
def test_non_finite_values(
    pendulum_dataset: Pendulum, minari_root: Path, field: str, value: float
) -> None:
    dataset_id, _ = pendulum_dataset
    with h5py.File(_main_file(minari_root, dataset_id), "r+") as f:
        data = f[f"episode_2/{field}"]
        data[1] = value
    _raises_one_line(rf"NaN/inf {field} in episode 2;", dataset_id)


def test_final_observation_nan_is_caught(pendulum_dataset: Pendulum, minari_root: Path) -> None:
    dataset_id, _ = pendulum_dataset
    with h5py.File(_main_file(minari_root, dataset_id), "r+") as f:
        f["episode_4/observations"][-1] = np.nan
    _raises_one_line("NaN/inf observations in episode 4", dataset_id)


def test_discrete_actions_rejected(make_minari_dataset: MakeDataset) -> None:
    make_minari_dataset("iwbc-test/cartpole/discrete-v0", env="CartPole-v1")
    _raises_one_line(
        "Discrete action space; iwbc needs a continuous", "iwbc-test/cartpole/discrete-v0"
    )


def test_dict_observations_are_flattened_as_gymnasium_flattens_them(
    make_minari_dataset: MakeDataset,
) -> None:
    """Goal-conditioned data (Minari's D4RL mazes and Kitchen) stores Dict observations; each
    row is ``gymnasium.spaces.flatten`` of that step's dict, nested dicts included."""
    obs_space = gym.spaces.Dict(
        {
            "observation": gym.spaces.Box(-1, 1, (3,)),
            "goal": gym.spaces.Dict({"xy": gym.spaces.Box(-5, 5, (2,)), "z": gym.spaces.Box(0, 1)}),
        }
    )
    buffers = make_minari_dataset(
        "iwbc-test/dict/obs-v0",
        env=None,
        observation_space=obs_space,
        action_space=gym.spaces.Box(-1, 1, (1,)),
    )
    ds = load_dataset("iwbc-test/dict/obs-v0")
    assert ds.observation_dim == 6
    for i, buffer in enumerate(buffers):
        rows = ds.episodes.observations[
            ds.episodes.starts[i] : ds.episodes.starts[i] + len(buffer.rewards)
        ]
        dicts = [
            {
                "observation": buffer.observations["observation"][t],
                "goal": {k: v[t] for k, v in buffer.observations["goal"].items()},
            }
            for t in range(len(buffer.rewards) + 1)
        ]
        expected = np.stack([gym.spaces.flatten(obs_space, d) for d in dicts]).astype(np.float32)
        np.testing.assert_array_equal(rows, expected[:-1])
        np.testing.assert_array_equal(
            ds.episodes.next_observations[ds.episodes.starts[i] + len(buffer.rewards) - 1],
            expected[-1],
        )


def test_a_dict_with_other_than_flat_boxes_is_refused(make_minari_dataset: MakeDataset) -> None:
    obs_space = gym.spaces.Dict(
        {"observation": gym.spaces.Box(-1, 1, (3,)), "goal": gym.spaces.Discrete(4)}
    )
    make_minari_dataset(
        "iwbc-test/dict/discrete-v0",
        env=None,
        observation_space=obs_space,
        action_space=gym.spaces.Box(-1, 1, (1,)),
    )
    _raises_one_line(
        r"^dataset 'iwbc-test/dict/discrete-v0': its Dict observation space has goal = "
        r"Discrete\(4\); iwbc flattens Dicts of 1-D Boxes only",
        "iwbc-test/dict/discrete-v0",
    )


def test_a_dict_observation_env_is_evaluated_through_flatten_observation(
    make_minari_dataset: MakeDataset,
) -> None:
    """The env hands the policy the rows it trained on: its spec gains FlattenObservation."""
    from gymnasium.envs.registration import WrapperSpec

    from iwbc.envs.evaluate import check_evaluable
    from iwbc.envs.gymnasium_engine import GymnasiumEngine

    spec = dataclasses.replace(
        gym.spec("InvertedPendulum-v5"),
        additional_wrappers=(WrapperSpec("DictObservation", "conftest:DictObservation", {}),),
    )
    make_minari_dataset("iwbc-test/dict/pendulum-v0", env=spec)
    ds = load_dataset("iwbc-test/dict/pendulum-v0")
    assert [w.name for w in ds.env_spec.additional_wrappers] == [
        "DictObservation",
        "FlattenObservation",
    ]
    assert check_evaluable(ds.env_spec, "auto", ds.id) == "gymnasium"
    engine = GymnasiumEngine(ds.env_spec, 2)
    observations = engine.reset([5, 6])
    plain = gym.make("InvertedPendulum-v5")
    for row, seed in zip(observations, [5, 6], strict=True):
        raw, _ = plain.reset(seed=seed)
        # Dict spaces order their keys: position before velocity, as the data's rows are.
        np.testing.assert_array_equal(row, raw)
    assert ds.observation_dim == engine.obs_dim == 4


def test_dict_rows_follow_the_evaluation_envs_key_order(make_minari_dataset: MakeDataset) -> None:
    """An env whose Dict keeps its own key order (velocity first) flattens in that order, while
    Minari reads the stored space back sorted (position first): the data's rows are built in
    the env's order, so training and evaluation see the same columns."""
    from gymnasium.envs.registration import WrapperSpec

    wrapper = WrapperSpec("OrderedDictObservation", "conftest:OrderedDictObservation", {})
    spec = dataclasses.replace(gym.spec("InvertedPendulum-v5"), additional_wrappers=(wrapper,))
    buffers = make_minari_dataset("iwbc-test/dict/ordered-v0", env=spec)
    ds = load_dataset("iwbc-test/dict/ordered-v0")
    first = buffers[0].observations
    np.testing.assert_array_equal(
        ds.episodes.observations[0],
        np.concatenate([first["velocity"][0], first["position"][0]]).astype(np.float32),
    )
    env = gym.make(ds.env_spec)
    row, _ = env.reset(seed=3)
    raw, _ = gym.make("InvertedPendulum-v5").reset(seed=3)
    np.testing.assert_array_equal(row, np.concatenate([raw[2:], raw[:2]]))


def test_dict_data_named_a_box_env_is_refused(make_minari_dataset: MakeDataset) -> None:
    """Dict data recording no env, named a Box env of the same width: its flattened columns
    need not be that env's, so it is refused rather than trained on swapped halves."""
    obs_space = gym.spaces.Dict(
        {"position": gym.spaces.Box(-1, 1, (2,)), "velocity": gym.spaces.Box(-1, 1, (2,))}
    )
    make_minari_dataset(
        "iwbc-test/dict/noenv-v0",
        env=None,
        observation_space=obs_space,
        action_space=gym.spaces.Box(-3, 3, (1,)),
    )
    _raises_one_line(
        r"has Dict observations \{'position': \(2,\), 'velocity': \(2,\)\} but its env "
        r"InvertedPendulum-v5 observes \(4,\); evaluate it on the env the data was recorded on",
        "iwbc-test/dict/noenv-v0",
        env="InvertedPendulum-v5",
    )


def test_episodes_longer_than_the_recorded_time_limit_are_named(
    make_minari_dataset: MakeDataset,
) -> None:
    """An episode past the time limit of the env it records is either several run together
    (lost timeouts) or longer by design (Minari's Adroit human demos): loaded, with a warning."""
    spec = dataclasses.replace(gym.spec("InvertedPendulum-v5"), max_episode_steps=6)
    make_minari_dataset("iwbc-test/pendulum/merged-v0", env=spec)
    with pytest.warns(DatasetWarning) as caught:
        ds = load_dataset("iwbc-test/pendulum/merged-v0")
    assert ds.episodes.max_length == 10
    assert [str(w.message) for w in caught] == [
        "dataset 'iwbc-test/pendulum/merged-v0': 2 episode(s) are longer than the 6-step time "
        "limit of InvertedPendulum-v5, the env it records (episode 2: 10 steps), where "
        "evaluation episodes stop; if the data's timeouts were lost they are episodes run "
        "together: store a truncation at each time limit and regenerate the dataset"
    ]


def test_a_format_whose_reader_is_not_installed_is_one_line(
    pendulum_dataset: Pendulum, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Minari raises ImportError for an Arrow dataset without pyarrow: one line with its fix."""
    dataset_id, _ = pendulum_dataset

    def arrow(dataset_id: str) -> None:
        raise ImportError(
            'pyarrow is not installed. Please install it using pip install "minari[arrow]"'
        )

    monkeypatch.setattr("iwbc.data.minari_io.minari.load_dataset", arrow)
    _raises_one_line(
        r"needs a package not installed here \(pyarrow is not installed.*minari\[arrow\]",
        dataset_id,
    )


def test_image_observations_rejected(make_minari_dataset: MakeDataset) -> None:
    make_minari_dataset(
        "iwbc-test/image/obs-v0",
        env=None,
        observation_space=gym.spaces.Box(-1, 1, (2, 2)),
        action_space=gym.spaces.Box(-1, 1, (1,)),
    )
    _raises_one_line(r"its observation space has shape \(2, 2\)", "iwbc-test/image/obs-v0")


def test_empty_dataset(make_minari_dataset: MakeDataset) -> None:
    make_minari_dataset("iwbc-test/pendulum/empty-v0", lengths=(), terminated=())
    _raises_one_line("has 0 episodes", "iwbc-test/pendulum/empty-v0")


def test_episode_without_steps_is_named(
    pendulum_dataset: Pendulum, minari_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Minari neither records nor writes an episode without steps, so one means a damaged or
    foreign dataset: refused, naming dataset and episode, not a reshape error nor skipped."""
    dataset_id, _ = pendulum_dataset
    with h5py.File(_main_file(minari_root, dataset_id), "r+") as f:
        for episode in ("episode_1", "episode_3"):
            group = f[episode]
            for key in ("actions", "rewards", "terminations", "truncations"):
                data = group[key]
                data.resize((0, *data.shape[1:]))
            group["observations"].resize((1, *group["observations"].shape[1:]))
            group.attrs["total_steps"] = 0
    message = _raises_one_line(
        rf"^dataset '{dataset_id}': episode 1 \(and 1 more\) has no steps", dataset_id
    )
    assert message.endswith("regenerate the dataset without it")
    assert cli.main(["data", "info", dataset_id]) == 2
    assert capsys.readouterr().err == f"iwbc: error: {message}\n"


def test_observation_shape_must_match_env(make_minari_dataset: MakeDataset) -> None:
    dataset_id = "iwbc-test/pendulum/wrongshape-v0"
    make_minari_dataset(dataset_id, observation_space=gym.spaces.Box(-np.inf, np.inf, (3,)))
    message = _raises_one_line(
        r"observation shape \(3,\) but its env InvertedPendulum-v5", dataset_id
    )
    assert "check_env=False" in message
    assert load_dataset(dataset_id, check_env=False).observation_dim == 3


def test_corrupt_metadata(pendulum_dataset: Pendulum, minari_root: Path):
    dataset_id, _ = pendulum_dataset
    (minari_root / dataset_id / "data" / "metadata.json").write_text("{not json")
    _raises_one_line("cannot be opened", dataset_id)


def test_download_from_local_remote(
    make_minari_dataset: MakeDataset, local_minari_remote: Path, minari_root: Path
) -> None:
    dataset_id = "iwbc-test/pendulum/remote-v0"
    buffers = make_minari_dataset(dataset_id, root=local_minari_remote)
    assert list_datasets() == []
    _raises_one_line("download=True", dataset_id)

    ds = load_dataset(dataset_id, download=True)
    assert ds.episodes.num_episodes == len(buffers)
    assert ds.episodes.returns[0] == pytest.approx(float(np.sum(buffers[0].rewards)))
    assert _main_file(minari_root, dataset_id).exists()
    assert list_datasets() == [dataset_id]
    assert load_dataset(dataset_id).episodes.num_steps == sum(_lengths(buffers))


def test_download_of_missing_remote_dataset(local_minari_remote: Path, minari_root: Path) -> None:
    message = _raises_one_line(
        "could not download dataset", "iwbc-test/pendulum/nowhere-v0", download=True
    )
    assert str(local_minari_remote) in message


def test_download_failure_is_one_line(minari_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(dataset_id: str, force_download: bool = False) -> None:
        raise ConnectionError("Max retries exceeded\nwith url: https://huggingface.co")

    monkeypatch.setattr(minari, "download_dataset", unreachable)
    _raises_one_line("Max retries exceeded with url", "mujoco/hopper/expert-v0", download=True)


def test_a_missing_remote_client_says_so_not_to_check_the_network(
    minari_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_client(dataset_id: str, force_download: bool = False) -> None:
        raise ImportError(
            'huggingface_hub is not installed. Please install it using `pip install "minari[hf]"`'
        )

    monkeypatch.setattr(minari, "download_dataset", no_client)
    message = _raises_one_line(
        "huggingface_hub is not installed", "mujoco/hopper/expert-v0", download=True
    )
    assert "reinstall iwbc" in message and "network" not in message


def test_minaris_default_remote_can_download() -> None:
    """Minari's default remote is hf://: its client is installed with iwbc (minari[hf])."""
    from minari.storage.remotes import DEFAULT_REMOTE, get_hfs

    assert DEFAULT_REMOTE.startswith("hf://")
    assert get_hfs().__name__ == "HuggingFaceStorage"  # ImportError without huggingface_hub


def _set_metadata(root: Path, dataset_id: str, **values: object) -> None:
    path = root / dataset_id / "data" / "metadata.json"
    metadata = json.loads(path.read_text())
    path.write_text(json.dumps({**metadata, **values}))


@pytest.mark.parametrize(
    ("scores", "match"),
    [
        ({"ref_min_score": "n/a"}, r"has ref_min_score = 'n/a' in its metadata, not a finite"),
        ({"ref_max_score": None, "ref_min_score": 1.0}, r"has ref_min_score but no ref_max_score"),
        ({"ref_min_score": 50.0}, r"has ref_max_score 50 <= ref_min_score 50 in its metadata"),
    ],
)
def test_reference_scores_from_the_metadata_are_checked(
    pendulum_dataset: Pendulum, minari_root: Path, scores: dict, match: str
) -> None:
    """A score that is no number, one without the other, or a pair that cannot normalize, is
    a one-line error naming --ref-min/--ref-max, which replace the metadata's (and so load such
    a dataset)."""
    dataset_id, _ = pendulum_dataset
    assert load_dataset(dataset_id).ref_source == "the dataset's metadata"
    _set_metadata(minari_root, dataset_id, **scores)
    assert "--ref-min and --ref-max" in _raises_one_line(match, dataset_id)
    given = load_dataset(dataset_id, reference_scores=(0.0, 10.0))
    assert (given.ref_min_score, given.ref_max_score) == (0.0, 10.0)
    assert given.ref_source == "--ref-min/--ref-max"


def test_actions_outside_the_box_are_clipped_with_a_warning(
    pendulum_dataset: Pendulum, minari_root: Path
) -> None:
    """The env clamps an action outside its box, so the box's edge is what acted: clipped on
    loading (in [-1, 1] after the box's map), with a warning saying how much; float rounding
    is clipped without one."""
    dataset_id, buffers = pendulum_dataset
    with h5py.File(_main_file(minari_root, dataset_id), "r+") as f:
        f["episode_2/actions"][1] = 7.5
        f["episode_2/actions"][4] = -3.0000001
    with pytest.warns(DatasetWarning) as caught:
        ds = load_dataset(dataset_id)
    (warning,) = caught
    assert str(warning.message) == (
        f"dataset '{dataset_id}': 3.8% of its steps have actions outside the action box "
        "[-3, 3] (by up to 4.5, first in episode 2); they are clipped to the box, as the env "
        "clamps them: clip them when recording the dataset to silence this"
    )
    assert ds.clipped_actions == pytest.approx(1 / sum(_lengths(buffers)))
    actions = ds.episodes.actions[ds.episodes.starts[2] :]
    assert actions[1, 0] == 1.0 and actions[4, 0] == -1.0
    expected = np.asarray(buffers[2].actions[0], np.float64) / 3.0
    np.testing.assert_allclose(actions[0], expected, rtol=1e-6)


@pytest.mark.parametrize(
    "key, verb", [("terminations", "terminates"), ("truncations", "is truncated")]
)
def test_an_episode_that_goes_on_after_ending_is_refused(
    pendulum_dataset: Pendulum, minari_root: Path, key: str, verb: str
) -> None:
    dataset_id, _ = pendulum_dataset
    with h5py.File(_main_file(minari_root, dataset_id), "r+") as f:
        f[f"episode_2/{key}"][3] = True
    _raises_one_line(
        rf"^dataset '{dataset_id}': episode 2 {verb} at step 3 of its 10 and goes on; an "
        "episode ends at its first termination or truncation",
        dataset_id,
    )


@pytest.mark.parametrize("key", ["rewards", "terminations"])
def test_per_step_values_stored_as_columns_are_named(
    pendulum_dataset: Pendulum, minari_root: Path, key: str
) -> None:
    """[steps, 1] rewards or flags (a common converter's output) are one line, not a
    broadcasting traceback."""
    dataset_id, _ = pendulum_dataset
    with h5py.File(_main_file(minari_root, dataset_id), "r+") as f:
        column = f[f"episode_0/{key}"][()][:, None]
        del f[f"episode_0/{key}"]
        f[f"episode_0/{key}"] = column
    n = len(column)
    _raises_one_line(
        rf"^dataset '{dataset_id}': episode 0 has {key} of shape \({n}, 1\), expected \({n},\): "
        "one value a step",
        dataset_id,
    )


def test_a_value_beyond_float32_is_named(pendulum_dataset: Pendulum, minari_root: Path) -> None:
    """A finite reward of 1e39 would become inf in float32 and read as a NaN/inf reward."""
    dataset_id, _ = pendulum_dataset
    with h5py.File(_main_file(minari_root, dataset_id), "r+") as f:
        assert f["episode_3/rewards"].dtype == np.float64
        f["episode_3/rewards"][0] = 1e39
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stray overflow warning beside the error
        _raises_one_line(
            r"episode 3 has rewards of 1e\+39, beyond the float32 range \(±3.4e\+38\)", dataset_id
        )


def test_the_env_of_a_dataset_that_records_none(make_minari_dataset: MakeDataset) -> None:
    """`iwbc run --env` names the env of a dataset that records none; its shapes are checked
    against it, and a dataset that records another env refuses it."""
    dataset_id = "iwbc-test/pendulum/no-env-v0"
    make_minari_dataset(
        dataset_id,
        env=None,
        observation_space=gym.spaces.Box(-np.inf, np.inf, (4,), np.float32),
        action_space=gym.spaces.Box(-3.0, 3.0, (1,), np.float32),
    )
    assert load_dataset(dataset_id).env is None
    ds = load_dataset(dataset_id, env="InvertedPendulum-v5")
    assert ds.env_id == "InvertedPendulum-v5" and ds.env_spec.max_episode_steps == 1000
    _raises_one_line(r"observation shape \(4,\) but its env Hopper-v5", dataset_id, env="Hopper-v5")
    _raises_one_line(r"^--env Nope-v5: not a registered Gymnasium env", dataset_id, env="Nope-v5")
    make_minari_dataset("iwbc-test/pendulum/env-v0")
    _raises_one_line(
        "records env InvertedPendulum-v5, not Hopper-v5; drop --env",
        "iwbc-test/pendulum/env-v0",
        env="Hopper-v5",
    )


def test_data_recorded_by_minaris_collector_replays_on_the_evaluation_engine(
    minari_root: Path,
) -> None:
    """Minari's own datasets are recorded through ``minari.DataCollector``, not written from
    buffers: such a dataset loads step for step as recorded, its env resolves to the batch
    engine, and that engine, reset from the recorded seeds and fed the recorded actions,
    gives back the recorded observations, rewards and endings."""
    seeds, rng = [3, 7, 11], np.random.default_rng(0)
    collector = minari.DataCollector(gym.make("Hopper-v5"))
    recorded = []
    for seed in seeds:
        obs, _ = collector.reset(seed=seed)
        steps: dict[str, list] = {"obs": [obs], "actions": [], "rewards": [], "terminated": []}
        done = False
        while not done:
            action = rng.uniform(-1, 1, 3).astype(np.float32)
            obs, reward, terminated, truncated, _ = collector.step(action)
            for key, value in zip(steps, (obs, action, reward, terminated), strict=True):
                steps[key].append(value)
            done = terminated or truncated
        recorded.append(steps)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`code_permalink`|`author`|`author_email`")
        collector.create_dataset(
            description="uniform random actions on Hopper-v5",
            dataset_id="iwbc-test/hopper/collected-v0",
            algorithm_name="uniform random",
            eval_env="Hopper-v5",
            ref_min_score=-20.0,
            ref_max_score=3234.3,
        )
    collector.close()

    ds = load_dataset("iwbc-test/hopper/collected-v0")
    assert ds.env_label == "Hopper-v5" and (ds.ref_min_score, ds.ref_max_score) == (-20.0, 3234.3)
    ep = ds.episodes
    np.testing.assert_array_equal(ep.lengths, [len(r["actions"]) for r in recorded])
    for i, steps in enumerate(recorded):
        rows = slice(ep.starts[i], ep.starts[i] + ep.lengths[i])
        observations = np.float32(steps["obs"])  # training data is float32
        np.testing.assert_array_equal(ep.observations[rows], observations[:-1])
        np.testing.assert_array_equal(ep.next_observations[rows], observations[1:])
        np.testing.assert_array_equal(ep.actions[rows], steps["actions"])
        np.testing.assert_array_equal(ep.rewards[rows], np.float32(steps["rewards"]))
        assert ep.terminations[rows][-1] == float(steps["terminated"][-1])

    engine = make_engine(ds.env_spec, 1, check_evaluable(ds.env_spec, "auto", ds.id))
    assert isinstance(engine, BatchEngine)
    for i, seed in enumerate(seeds):
        rows = range(ep.starts[i], ep.starts[i] + ep.lengths[i])
        first = engine.reset([seed])[0]
        np.testing.assert_array_equal(np.float32(first), ep.observations[rows[0]])
        for row in rows:
            step = engine.step(ep.actions[row][None])
            np.testing.assert_array_equal(np.float32(step.obs[0]), ep.next_observations[row])
            np.testing.assert_allclose(step.reward[0], ep.rewards[row], rtol=1e-6)
            assert bool(step.terminated[0]) == bool(ep.terminations[row])
