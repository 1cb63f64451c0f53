"""`iwbc data import-d4rl`: synthetic files with D4RL's exact layout, checked against an
independent re-implementation of D4RL's episode splitting (d4rl.sequence_dataset)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import h5py
import jax.numpy as jnp
import minari
import numpy as np
import pytest

from iwbc.bench.suites import load_suite
from iwbc.cli import main
from iwbc.data import DatasetError, dataset_normalized_score, list_datasets, load_dataset
from iwbc.data.d4rl import import_d4rl, infer_names
from iwbc.envs.evaluate import evaluate_actor
from iwbc.envs.rollout import resolve_engine
from iwbc.envs.specs import spec_for

# D4RL's published constants (d4rl/gym_mujoco/__init__.py, d4rl/infos.py), typed here again.
D4RL_REF = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}
DIMS = {"hopper": (11, 3), "halfcheetah": (17, 6), "walker2d": (17, 6), "ant": (111, 8)}
N = 60
# Episode ends: a terminal, a timeout, both flags on one step, a one-step episode, a terminal;
# the 9 steps after row 50 form no episode (D4RL drops them).
TERMINAL_ROWS = (9, 30, 31, 50)
TIMEOUT_ROWS = (24, 30)


def write_d4rl(
    path: Path,
    task: str = "hopper",
    *,
    n: int = N,
    dtype: type = np.float32,
    next_observations: bool = True,
    seed: int = 0,
    edit=None,
) -> dict[str, np.ndarray]:
    """A file laid out as D4RL's gym-MuJoCo v2 files are; ``edit`` may break the arrays."""
    rng = np.random.default_rng(seed)
    obs_dim, act_dim = DIMS[task]
    obs = rng.normal(size=(n + 1, obs_dim)).astype(dtype)
    if task == "ant":
        obs[:, 27:33] = 0.0  # Ant-v3's worldbody cfrc_ext, always 0
    terminals = np.zeros(n, bool)
    terminals[list(TERMINAL_ROWS)] = True
    timeouts = np.zeros(n, bool)
    timeouts[list(TIMEOUT_ROWS)] = True
    data = {
        "observations": obs[:-1].copy(),
        "next_observations": obs[1:].copy(),
        "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(dtype),
        "rewards": rng.normal(1.0, 2.0, size=n).astype(dtype),
        "terminals": terminals,
        "timeouts": timeouts,
        "infos/action_log_probs": rng.normal(size=n).astype(dtype),
        "infos/qpos": rng.normal(size=(n, 6)).astype(dtype),
        "infos/qvel": rng.normal(size=(n, 6)).astype(dtype),
    }
    if not next_observations:
        del data["next_observations"]
    if edit is not None:
        edit(data)
    with h5py.File(path, "w") as f:
        for key, value in data.items():
            f.create_dataset(key, data=value)
        f.create_dataset("metadata/algorithm", data=np.bytes_("SAC"))
    return data


def sequence_dataset(data: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """D4RL's sequence_dataset loop over the file's rows, written out again in plain NumPy."""
    episodes, current = [], defaultdict(list)
    for i in range(data["rewards"].shape[0]):
        for key in ("observations", "actions", "rewards", "terminals", "timeouts"):
            current[key].append(data[key][i])
        if "next_observations" in data:
            current["next_observations"].append(data["next_observations"][i])
        if bool(data["terminals"][i]) or data["timeouts"][i]:
            episodes.append({k: np.array(v) for k, v in current.items()})
            current = defaultdict(list)
    return episodes


def _only_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.parametrize("next_observations", [True, False])
def test_episodes_returns_and_scores_match_d4rl(tmp_path, minari_root, next_observations):
    file = tmp_path / "hopper_medium_replay-v2.hdf5"
    data = write_d4rl(file, next_observations=next_observations)
    result = import_d4rl(file, root=minari_root)
    expected = sequence_dataset(data)

    assert result.dataset_id == "d4rl/hopper/medium-replay-v2"
    assert (result.episodes, result.dropped_steps) == (len(expected), N - 51)
    ds = load_dataset(result.dataset_id, root=minari_root)
    assert ds.env_id == "Hopper-v5"
    assert ds.num_episodes == len(expected) == 5
    np.testing.assert_array_equal(ds.episodes.lengths, [len(e["rewards"]) for e in expected])
    np.testing.assert_array_equal(ds.episodes.lengths, [10, 15, 6, 1, 19])
    returns = np.array([e["rewards"].astype(np.float64).sum() for e in expected])
    np.testing.assert_array_equal(ds.returns, returns)
    low, high = D4RL_REF["hopper"]
    np.testing.assert_allclose(
        dataset_normalized_score(ds, ds.returns), 100 * (returns - low) / (high - low), rtol=1e-12
    )
    # The fixture points MINARI_DATASETS_PATH at the root, so Minari's own scorer agrees too.
    minari_ds = minari.load_dataset(result.dataset_id)
    np.testing.assert_allclose(
        minari.get_normalized_score(minari_ds, returns), (returns - low) / (high - low)
    )
    for i, episode in enumerate(expected):
        n = len(episode["rewards"])
        steps = slice(ds.episodes.starts[i], ds.episodes.starts[i] + n)
        np.testing.assert_array_equal(ds.episodes.observations[steps], episode["observations"])
        np.testing.assert_array_equal(ds.episodes.actions[steps], episode["actions"])
        np.testing.assert_array_equal(ds.episodes.terminations[steps], episode["terminals"])
        np.testing.assert_array_equal(ds.episodes.truncations[steps], episode["timeouts"])
        next_observations_of = ds.episodes.next_observations[steps]
        np.testing.assert_array_equal(next_observations_of[:-1], episode["observations"][1:])
        # The final observation: the file's next_observations, else the last one repeated.
        final = (
            episode["next_observations"][-1] if next_observations else episode["observations"][-1]
        )
        np.testing.assert_array_equal(next_observations_of[-1], final)


def test_float64_layout_of_medium_replay_imports(tmp_path, minari_root):
    """D4RL's v2 medium-replay files store float64 arrays (the others float32)."""
    file = tmp_path / "walker2d-medium-replay-v2.hdf5"
    data = write_d4rl(file, "walker2d", dtype=np.float64, seed=3)
    result = import_d4rl(file, root=minari_root)
    ds = load_dataset(result.dataset_id, root=minari_root)
    returns = [e["rewards"].sum() for e in sequence_dataset(data)]
    np.testing.assert_allclose(ds.returns, returns, rtol=1e-12)
    assert (ds.ref_min_score, ds.ref_max_score) == D4RL_REF["walker2d"]
    # Evaluated on the model D4RL recorded it on (gym's), on the batch engine.
    assert ds.env_id == "Walker2d-v5" and ds.env_spec.kwargs == {"xml_file": "walker2d.xml"}
    assert ds.env_label == "Walker2d-v5 (xml_file='walker2d.xml')"
    assert resolve_engine(ds.env) == "batch"


def test_ant_drops_the_worldbody_contact_forces(tmp_path, minari_root):
    file = tmp_path / "ant_medium-v2.hdf5"
    data = write_d4rl(file, "ant")
    ds = load_dataset(import_d4rl(file, root=minari_root).dataset_id, root=minari_root)
    assert (ds.env_id, ds.observation_dim) == ("Ant-v5", 105)
    first = sequence_dataset(data)[0]["observations"]
    np.testing.assert_array_equal(
        ds.episodes.observations[: len(first)], np.delete(first, np.s_[27:33], axis=1)
    )
    bad = tmp_path / "ant_expert-v2.hdf5"
    write_d4rl(bad, "ant", edit=lambda d: d["observations"].__setitem__((0, 30), 1.0))
    with pytest.raises(DatasetError, match="worldbody"):
        import_d4rl(bad, root=minari_root)


def test_ant_without_contact_forces_is_evaluated_without_them(tmp_path, minari_root):
    """D4RL's own Ant files: MuJoCo 2.0 never computed Ant-v3's cfrc_ext, so all 84 columns
    are 0. The dataset keeps the 27 others and records Ant-v5 without contact forces, which
    evaluation builds, instead of feeding the policy forces it never saw in training."""
    file = tmp_path / "ant_medium-v2.hdf5"

    def no_forces(d):
        d["observations"][:, 27:] = 0.0
        d["next_observations"][:, 27:] = 0.0

    data = write_d4rl(file, "ant", edit=no_forces)
    result = import_d4rl(file, root=minari_root)
    assert result.env_label == "Ant-v5 (include_cfrc_ext_in_observation=False)"
    ds = load_dataset(result.dataset_id, root=minari_root)
    assert (ds.env_id, ds.observation_dim) == ("Ant-v5", 27)
    assert ds.env_spec.kwargs == {"include_cfrc_ext_in_observation": False}
    first = sequence_dataset(data)[0]["observations"]
    np.testing.assert_array_equal(ds.episodes.observations[: len(first)], first[:, :27])
    assert spec_for(ds.env).obs_dim == 27
    assert ds.env_label == "Ant-v5 (include_cfrc_ext_in_observation=False)"
    scores = evaluate_actor(
        lambda p, obs: jnp.tanh(obs @ p),
        jnp.zeros((1, 27, 8)),
        ds.env,
        observation_dim=27,
        action_dim=8,
        num_episodes=2,
    )
    assert scores.shape == (1, 2)


@pytest.mark.parametrize(
    ("name", "env", "expected"),
    [
        ("hopper_medium_replay-v2.hdf5", None, ("hopper", "d4rl/hopper/medium-replay-v2")),
        ("hopper-medium-replay-v2.hdf5", None, ("hopper", "d4rl/hopper/medium-replay-v2")),
        (
            "halfcheetah_medium_expert-v2.hdf5",
            None,
            ("halfcheetah", "d4rl/halfcheetah/medium-expert-v2"),
        ),
        ("walker2d_medium.hdf5", None, ("walker2d", "d4rl/walker2d/medium-v2")),
        ("/data/ant_random-v2.hdf5", "ant", ("ant", "d4rl/ant/random-v2")),
        ("my_copy.hdf5", "hopper", ("hopper", None)),
        ("hopper_medium-v2.hdf5", "walker2d", ("walker2d", None)),
    ],
)
def test_names_from_the_file_name(name, env, expected):
    assert infer_names(name, env) == expected


def test_unknown_env_and_missing_name_are_one_line_errors(tmp_path, minari_root):
    with pytest.raises(DatasetError, match="pass --env"):
        infer_names("pendulum_medium-v2.hdf5")
    file = tmp_path / "my_copy.hdf5"
    write_d4rl(file)
    with pytest.raises(DatasetError, match="pass --name"):
        import_d4rl(file, env="hopper", root=minari_root)
    result = import_d4rl(file, env="hopper", name="mine/hopper/copy-v0", root=minari_root)
    assert list_datasets(minari_root) == [result.dataset_id]


def _nan_obs(d):
    d["observations"][3, 2] = np.nan


def _inf_reward(d):
    d["rewards"][7] = np.inf


def _short_rewards(d):
    d["rewards"] = d["rewards"][:-1]


def _wide_obs(d):
    d["observations"] = np.zeros((N, 17), np.float32)
    d["next_observations"] = np.zeros((N, 17), np.float32)


def _wide_actions(d):
    d["actions"] = np.zeros((N, 6), np.float32)


def _bad_flags(d):
    d["terminals"] = d["terminals"].astype(np.float32) * 2


def _no_ends(d):
    d["terminals"][:] = False
    d["timeouts"][:] = False


def _merged(d):
    """1,200 steps with their timeouts unset: one episode longer than any Hopper-v5 one."""
    n = 1_200
    for key in ("observations", "next_observations", "actions", "rewards"):
        d[key] = np.resize(d[key], (n, *d[key].shape[1:]))
    d["terminals"] = np.zeros(n, bool)
    d["terminals"][-1] = True
    d["timeouts"] = np.zeros(n, bool)


def _nan_next(d):
    d["next_observations"][5, 0] = np.nan


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("timeouts"), "lacks key.*timeouts"),
        (lambda d: d.pop("observations"), "lacks key.*observations"),
        (_short_rewards, "different numbers of rows"),
        (_nan_obs, "'observations' has NaN/inf.*row 3"),
        (_inf_reward, "'rewards' has NaN/inf.*row 7"),
        (_nan_next, "'next_observations' has NaN/inf"),
        (_wide_obs, "observations are 17 wide but Hopper-v5 needs 11"),
        (_wide_actions, "actions are 6 wide but Hopper-v5 needs 3"),
        (_bad_flags, "'terminals' holds values other than 0/1"),
        (_no_ends, "no whole episode"),
        (_merged, r"steps, more than Hopper-v5's 1000-step time limit, so its timeouts are"),
    ],
)
def test_malformed_file_is_refused_and_writes_nothing(tmp_path, minari_root, edit, message):
    file = tmp_path / "hopper_medium-v2.hdf5"
    write_d4rl(file, edit=edit)
    with pytest.raises(DatasetError, match=message) as error:
        import_d4rl(file, root=minari_root)
    assert "\n" not in str(error.value)
    assert list(minari_root.iterdir()) == []


def test_unreadable_file_is_a_one_line_error(tmp_path, minari_root):
    text = tmp_path / "hopper_medium-v2.hdf5"
    text.write_text("not hdf5")
    for file in (text, tmp_path / "hopper_expert-v2.hdf5"):
        with pytest.raises(DatasetError, match="cannot read"):
            import_d4rl(file, root=minari_root)
    assert list(minari_root.iterdir()) == []


def test_cli_imports_refuses_and_overwrites(tmp_path, minari_root, capsys):
    file = tmp_path / "hopper_medium_replay-v2.hdf5"
    write_d4rl(file)
    assert main(["data", "import-d4rl", str(file), "--root", str(minari_root)]) == 0
    out = _only_line(capsys.readouterr().out)
    assert out.startswith("wrote d4rl/hopper/medium-replay-v2: 5 episodes, 51 steps, 9 trailing")

    assert main(["data", "import-d4rl", str(file), "--root", str(minari_root)]) == 2
    assert "--overwrite" in _only_line(capsys.readouterr().err)
    write_d4rl(file, seed=1)
    args = ["data", "import-d4rl", str(file), "--root", str(minari_root), "--overwrite"]
    assert main(args) == 0
    capsys.readouterr()
    ds = load_dataset("d4rl/hopper/medium-replay-v2", root=minari_root)
    expected = sequence_dataset(write_d4rl(tmp_path / "again.hdf5", seed=1))
    np.testing.assert_array_equal(
        ds.returns, [e["rewards"].astype(np.float64).sum() for e in expected]
    )

    broken = tmp_path / "walker2d_medium-v2.hdf5"
    write_d4rl(broken, "walker2d", edit=_nan_obs)
    assert main(["data", "import-d4rl", str(broken), "--root", str(minari_root)]) == 2
    err = _only_line(capsys.readouterr().err)
    assert err.startswith("iwbc: error: ") and "NaN/inf" in err
    assert list_datasets(minari_root) == ["d4rl/hopper/medium-replay-v2"]


def test_paper_d4rl_suite_names_the_imported_ids():
    suite = load_suite("paper_d4rl")
    assert set(suite.methods) == set(load_suite("paper").methods)
    for task in ("hopper", "halfcheetah", "walker2d"):
        for tier in ("medium", "medium_replay", "medium_expert"):
            assert infer_names(f"{task}_{tier}-v2.hdf5")[1] in suite.datasets


# CORL's D4RL configs (corl-team/CORL configs/offline/<algo>/<env>/<tier>_v2.yaml) where they
# differ from iwbc's defaults: IQL's normalize_reward / iql_deterministic / tau / beta /
# iql_tau, CQL's normalize_reward; AWAC's awac_lambda is 0.3333 on all nine.
CORL_IQL = {
    "hopper/medium": (True, True, 0.001, 3.0, 0.7),
    "hopper/medium-replay": (True, True, 0.001, 3.0, 0.7),
    "hopper/medium-expert": (False, False, 0.005, 6.0, 0.5),
}
CORL_CQL_SCALED = {"hopper/medium"}


def test_paper_d4rl_baselines_are_corls_configs_dataset_by_dataset():
    suite = load_suite("paper_d4rl")
    for dataset in suite.datasets:
        name = dataset.removeprefix("d4rl/").removesuffix("-v2")
        iql = suite.agent_config("iql", dataset)
        got = (iql.normalize_rewards, iql.deterministic_actor, iql.tau, iql.beta, iql.expectile)
        assert got == CORL_IQL.get(name, (False, False, 0.005, 3.0, 0.7)), dataset
        assert suite.agent_config("cql", dataset).normalize_rewards == (name in CORL_CQL_SCALED)
        assert suite.agent_config("awac", dataset).awac_lambda == 0.3333
        assert suite.agent_config("td3_bc", dataset) == suite.agent_config("td3_bc")
        stated = suite.method_config("iql", dataset)["algorithm"]
        assert stated.get("deterministic_actor", False) == got[1]
