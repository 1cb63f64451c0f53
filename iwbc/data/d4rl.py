"""Import D4RL's gym-MuJoCo v2 HDF5 files as local Minari datasets, evaluated on Gymnasium v5.

The paper's control table was run on these files, so reproducing it needs them as they are.
What is followed, and where it comes from:

- Episode boundaries: D4RL's ``sequence_dataset`` (``d4rl/__init__.py``, Farama-Foundation/D4RL)
  and CORL's ``load_d4rl_trajectories`` (``algorithms/offline/dt.py``, corl-team/CORL): an
  episode ends at every step whose ``terminals`` or ``timeouts`` flag is set (a flag read as
  ``bool(x)``). Steps after the file's last flag form no episode in either, so they are
  dropped here too (the count is reported and kept in the dataset's description).
- Final observations: Minari stores T+1 observations per episode. With ``next_observations``
  in the file the last one is ``next_observations`` of the episode's last step. Without it,
  ``observations[t+1]`` is the next observation only inside an episode (D4RL issues #31, #34;
  ``qlearning_dataset`` pairs a terminal step with the next episode's reset state and drops
  timeout steps). Every step is kept, so returns stay ``sequence_dataset``'s, and the episode's
  last observation is repeated as its final one: never bootstrapped from after a terminal, and
  one step stale after a timeout.
- Reference scores: D4RL's ``ref_min_score`` / ``ref_max_score``, the constants
  ``d4rl/gym_mujoco/__init__.py`` registers for every dataset of an env (ant's in
  ``d4rl/infos.py``), so normalized scores equal ``100 * d4rl.get_normalized_score``.
- Evaluation env: the Gymnasium v5 task of the same robot. The data came from gym's -v3 envs
  (mujoco-py). Walker2d-v5's model gives the right foot the left's friction (1.9, was 0.9), so
  Walker2d data is evaluated on Walker2d-v5 with ``xml_file="walker2d.xml"``, gym's model,
  which Gymnasium still ships (recorded in the dataset's EnvSpec; the batch and MJX engines
  load it). Ant-v3's 111-wide observation ends with ``cfrc_ext`` of its 14 bodies. Under
  MuJoCo 2.0, which D4RL's mujoco-py used, nothing computes ``cfrc_ext`` (gym issues #1541,
  #2593; D4RL issue #143), so in D4RL's Ant files all 84 columns are 0, while Ant-v5 fills
  them with real forces: such a file is imported with its 27 position and velocity columns and
  evaluated on Ant-v5 with ``include_cfrc_ext_in_observation=False`` (recorded in the
  dataset's EnvSpec), so the policy never meets inputs it was not trained on. A file whose
  forces are recorded keeps 13 bodies' (105 wide, Ant-v5's default) and drops the worldbody's,
  refused if non-zero (Ant-v5 leaves it out).

``infos/*`` and ``metadata/*`` are not imported (nothing in iwbc reads them). A malformed file
raises a one-line DatasetError before anything is written; the write itself is atomic.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np
from gymnasium.envs.registration import EnvSpec
from minari.data_collector import EpisodeBuffer

from iwbc.data.episodes import env_label
from iwbc.data.errors import DatasetError, one_line
from iwbc.data.minari_io import dataset_id_problem
from iwbc.data.minari_write import dataset_exists, write_dataset

# D4RL's name of each robot -> the Gymnasium v5 task its data is evaluated on.
TASKS = {
    "halfcheetah": "HalfCheetah-v5",
    "hopper": "Hopper-v5",
    "walker2d": "Walker2d-v5",
    "ant": "Ant-v5",
}
# (ref_min_score, ref_max_score): d4rl/gym_mujoco/__init__.py (HOPPER_RANDOM_SCORE, ...) and,
# for ant, d4rl/infos.py REF_MIN_SCORE / REF_MAX_SCORE.
REFERENCE_SCORES = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}
REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
# Ant-v3's observation: 13 positions, 14 velocities, then cfrc_ext of 14 bodies (6 each), the
# first being the worldbody, which Ant-v5 leaves out.
_ANT_V3_WIDTH = 111
# Gym's Walker2d-v2 to v4 model, which Gymnasium still ships: D4RL's Walker2d data was recorded
# on it (right foot friction 0.9; Walker2d-v5's own model gives that foot 1.9).
WALKER2D_GYM_MODEL = "walker2d.xml"
_ANT_CFRC = slice(27, _ANT_V3_WIDTH)
_ANT_WORLDBODY_CFRC = slice(27, 33)
_WITHOUT_CONTACT_FORCES = (
    " without contact forces in its observation (all 84 cfrc_ext columns of the file are 0: "
    "MuJoCo 2.0 never computed them for Ant-v3)"
)
_FILE_NAME = re.compile(
    r"^(?P<task>halfcheetah|hopper|walker2d|ant)[-_](?P<tier>[a-z0-9_-]+?)(?:[-_]v(?P<version>\d+))?$"
)


@dataclasses.dataclass(frozen=True)
class D4RLArrays:
    """The arrays of a D4RL file, validated: N rows each, flags as bool."""

    observations: np.ndarray  # [N, obs_dim]
    actions: np.ndarray  # [N, act_dim]
    rewards: np.ndarray  # [N]
    terminals: np.ndarray  # [N] bool
    timeouts: np.ndarray  # [N] bool
    next_observations: np.ndarray | None  # [N, obs_dim]


@dataclasses.dataclass(frozen=True)
class ImportResult:
    """What ``import_d4rl`` wrote."""

    dataset_id: str
    env_id: str
    path: Path
    episodes: int
    steps: int
    dropped_steps: int
    ref_min_score: float
    ref_max_score: float
    # The evaluation env with its non-default arguments, e.g. Ant's without contact forces.
    env_label: str


def infer_names(file: str | Path, env: str | None = None) -> tuple[str, str | None]:
    """(D4RL robot name, default dataset id or None) from a file name like
    ``hopper_medium_replay-v2.hdf5`` or ``hopper-medium-replay-v2.hdf5``; ``env`` overrides the
    robot. The default id is ``d4rl/<robot>/<tier>-v<version>`` (version 2 if the name has none).
    """
    stem = Path(file).name.removesuffix(".hdf5").removesuffix(".h5").lower()
    match = _FILE_NAME.match(stem)
    task = env.lower() if env is not None else (match["task"] if match else None)
    if task not in TASKS:
        shown = f"--env {env!r}" if env is not None else f"file name {Path(file).name!r}"
        raise DatasetError(
            f"cannot tell the env from {shown}; pass --env with one of {', '.join(TASKS)}"
        )
    if match is None or match["task"] != task:
        return task, None
    tier = match["tier"].replace("_", "-")
    return task, f"d4rl/{task}/{tier}-v{match['version'] or 2}"


def read_d4rl_file(file: str | Path) -> D4RLArrays:
    """Read and check the arrays ``sequence_dataset`` uses (one-line DatasetError if malformed)."""
    path = Path(file)
    try:
        with h5py.File(path, "r") as handle:
            missing = [k for k in REQUIRED_KEYS if not isinstance(handle.get(k), h5py.Dataset)]
            if missing:
                raise DatasetError(
                    f"{path} lacks key(s) {', '.join(missing)}; a D4RL gym-MuJoCo v2 file holds "
                    f"{', '.join(REQUIRED_KEYS)} (and optionally next_observations, infos/*)"
                )
            raw = {k: handle[k][()] for k in REQUIRED_KEYS}
            has_next = isinstance(handle.get("next_observations"), h5py.Dataset)
            raw["next_observations"] = handle["next_observations"][()] if has_next else None
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise DatasetError(
            f"cannot read {path} as a D4RL HDF5 file ({one_line(err)}); check the path and "
            "that the download finished"
        ) from err
    return _check_arrays(path, raw)


def _check_arrays(path: Path, raw: dict[str, np.ndarray | None]) -> D4RLArrays:
    for key, value in raw.items():
        if value is not None and not (
            np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_
        ):
            raise DatasetError(f"{path}: '{key}' has dtype {value.dtype}; expected numbers")
    columns = {}
    for key in ("rewards", "terminals", "timeouts"):
        value = np.asarray(raw[key])
        # D4RL's get_dataset accepts [N, 1] for these and squeezes them.
        if value.ndim == 2 and value.shape[1] == 1:
            value = value[:, 0]
        if value.ndim != 1:
            raise DatasetError(f"{path}: '{key}' has shape {value.shape}; expected [N] or [N, 1]")
        columns[key] = value
    for key in ("observations", "actions", "next_observations"):
        value = raw[key]
        if value is not None and np.ndim(value) != 2:
            raise DatasetError(f"{path}: '{key}' has shape {np.shape(value)}; expected [N, dim]")
    n = raw["observations"].shape[0]
    lengths = {
        "observations": n,
        "actions": raw["actions"].shape[0],
        **{k: v.shape[0] for k, v in columns.items()},
    }
    if raw["next_observations"] is not None:
        lengths["next_observations"] = raw["next_observations"].shape[0]
        if raw["next_observations"].shape[1] != raw["observations"].shape[1]:
            raise DatasetError(
                f"{path}: next_observations are {raw['next_observations'].shape[1]} wide but "
                f"observations {raw['observations'].shape[1]}; the file is corrupt"
            )
    if len(set(lengths.values())) != 1:
        listed = ", ".join(f"{k} {v}" for k, v in lengths.items())
        raise DatasetError(
            f"{path}: keys hold different numbers of rows ({listed}); the file "
            "is corrupt or truncated"
        )
    if n == 0:
        raise DatasetError(f"{path} holds 0 steps")
    for key in ("observations", "actions", "rewards", "next_observations"):
        value = columns.get(key, raw[key])
        if value is not None and not np.isfinite(value).all():
            row = int(np.flatnonzero(~np.isfinite(value.reshape(n, -1)).all(axis=1))[0])
            raise DatasetError(
                f"{path}: '{key}' has NaN/inf (first at row {row}); the file is corrupt"
            )
    flags = {}
    for key in ("terminals", "timeouts"):
        value = columns[key]
        if value.dtype != np.bool_ and not np.isin(value, (0, 1)).all():
            raise DatasetError(f"{path}: '{key}' holds values other than 0/1 (or True/False)")
        flags[key] = value.astype(bool)
    return D4RLArrays(
        observations=raw["observations"],
        actions=raw["actions"],
        rewards=columns["rewards"],
        terminals=flags["terminals"],
        timeouts=flags["timeouts"],
        next_observations=raw["next_observations"],
    )


def episode_bounds(terminals: np.ndarray, timeouts: np.ndarray) -> tuple[np.ndarray, int]:
    """([E, 2] start/stop rows of each episode, steps dropped after the last one), as
    ``sequence_dataset``: an episode ends at each step flagged terminal or timeout."""
    stops = np.flatnonzero(np.asarray(terminals, bool) | np.asarray(timeouts, bool)) + 1
    starts = np.concatenate([[0], stops[:-1]]).astype(np.int64)
    dropped = len(terminals) - (int(stops[-1]) if stops.size else 0)
    return np.stack([starts[: stops.size], stops], axis=1), dropped


def evaluation_env(task: str, arrays: D4RLArrays) -> str | EnvSpec:
    """The Gymnasium v5 env that ``task``'s data is evaluated on: Walker2d-v5 on gym's model
    of the data (``walker2d.xml``), Ant-v5 without contact forces in its observation when the
    file holds none (see the module doc)."""
    env_id = TASKS[task]
    if task == "walker2d":
        return _recorded_spec(env_id, xml_file=WALKER2D_GYM_MODEL)
    if task != "ant" or arrays.observations.shape[1] != _ANT_V3_WIDTH:
        return env_id
    observed = [arrays.observations] + (
        [] if arrays.next_observations is None else [arrays.next_observations]
    )
    if any(np.any(o[:, _ANT_CFRC] != 0) for o in observed):
        return env_id
    return _recorded_spec(env_id, include_cfrc_ext_in_observation=False)


def _recorded_spec(env_id: str, **kwargs: object) -> EnvSpec:
    """The EnvSpec Gymnasium records for ``env_id`` made with ``kwargs``."""
    env = gym.make(env_id, **kwargs)
    try:
        return env.spec
    finally:
        env.close()


def to_env_observations(
    task: str, observations: np.ndarray, where: str, env: str | EnvSpec
) -> np.ndarray:
    """The observations as ``env`` (``evaluation_env``) lays them out: only Ant's differ."""
    if task != "ant" or observations.shape[1] != _ANT_V3_WIDTH:
        return observations
    if not isinstance(env, str):  # no contact forces recorded: positions and velocities only
        return observations[:, : _ANT_CFRC.start]
    worldbody = observations[:, _ANT_WORLDBODY_CFRC]
    if np.any(worldbody != 0):
        raise DatasetError(
            f"{where}: Ant observation columns 27-32 (the worldbody's contact forces, always 0 "
            "in Ant-v3) are non-zero, so these are not Ant-v3 observations"
        )
    return np.delete(observations, _ANT_WORLDBODY_CFRC, axis=1)


def d4rl_episodes(arrays: D4RLArrays) -> list[EpisodeBuffer]:
    """Minari episode buffers of ``arrays``, split as ``episode_bounds`` says."""
    obs, next_obs = arrays.observations, arrays.next_observations
    bounds, _ = episode_bounds(arrays.terminals, arrays.timeouts)
    episodes = []
    for start, stop in bounds:
        last = (next_obs if next_obs is not None else obs)[stop - 1 : stop]
        episodes.append(
            EpisodeBuffer(
                observations=np.concatenate([obs[start:stop], last]).astype(np.float64),
                actions=np.asarray(arrays.actions[start:stop], np.float32),
                rewards=[float(r) for r in arrays.rewards[start:stop]],
                terminations=[bool(t) for t in arrays.terminals[start:stop]],
                truncations=[bool(t) for t in arrays.timeouts[start:stop]],
            )
        )
    return episodes


def _env_dims(env_id: str | EnvSpec) -> tuple[int, int]:
    env = gym.make(env_id)
    try:
        return int(env.observation_space.shape[0]), int(env.action_space.shape[0])
    finally:
        env.close()


def import_d4rl(
    file: str | Path,
    *,
    name: str | None = None,
    env: str | None = None,
    root: str | Path | None = None,
    overwrite: bool = False,
) -> ImportResult:
    """Write D4RL file ``file`` as local Minari dataset ``name`` (default from the file name)."""
    task, default_id = infer_names(file, env)
    dataset_id = name or default_id
    if dataset_id is None:
        raise DatasetError(
            f"cannot derive a dataset id from {Path(file).name!r}; pass --name, e.g. "
            f"d4rl/{task}/medium-replay-v2"
        )
    problem = dataset_id_problem(dataset_id)
    if problem is not None:
        raise DatasetError(
            f"{dataset_id!r} is not a Minari dataset id ({problem}); ids look like "
            "'d4rl/hopper/medium-v2'"
        )
    if dataset_exists(dataset_id, root) and not overwrite:
        raise DatasetError(
            f"dataset {dataset_id!r} already exists; pass --overwrite to replace it, or --name"
        )
    arrays = read_d4rl_file(file)
    env_id = TASKS[task]
    env = evaluation_env(task, arrays)
    obs_dim, act_dim = _env_dims(env)
    where = str(file)
    next_obs = arrays.next_observations
    arrays = dataclasses.replace(
        arrays,
        observations=to_env_observations(task, arrays.observations, where, env),
        next_observations=(
            None if next_obs is None else to_env_observations(task, next_obs, where, env)
        ),
    )
    for kind, width, expected in (
        ("observations", arrays.observations.shape[1], obs_dim),
        ("actions", arrays.actions.shape[1], act_dim),
    ):
        if width != expected:
            raise DatasetError(
                f"{where}: {kind} are {width} wide but {env_id} needs {expected}; is this a "
                f"{task} file? (pass --env to name the env)"
            )
    bounds, dropped = episode_bounds(arrays.terminals, arrays.timeouts)
    if bounds.shape[0] == 0:
        raise DatasetError(
            f"{where}: no step is flagged in terminals or timeouts, so it holds no whole episode"
        )
    lengths = bounds[:, 1] - bounds[:, 0]
    limit = gym.spec(env_id).max_episode_steps
    if limit is not None and lengths.max() > limit:
        # As load_dataset would refuse it: returns and selection over merged episodes.
        raise DatasetError(
            f"{where}: episode {int(np.argmax(lengths))} has {int(lengths.max())} steps, more "
            f"than {env_id}'s {limit}-step time limit, so its timeouts are missing or unset "
            "and episodes run together; import a file that flags them (D4RL's -v2 files do)"
        )
    episodes = d4rl_episodes(arrays)
    ref_min, ref_max = REFERENCE_SCORES[task]
    final = (
        "next_observations of the last step"
        if next_obs is not None
        else "the last observation repeated (the file has no next_observations)"
    )
    description = (
        f"D4RL file {Path(file).name} imported by `iwbc data import-d4rl`: {len(episodes)} "
        f"episodes split at terminals and timeouts as d4rl.sequence_dataset does; {dropped} "
        f"trailing step(s) after the last episode end dropped; final observation: {final}. "
        f"Recorded on gym's {env_id.replace('-v5', '-v3')} (mujoco-py), evaluated on {env_id}"
        f"{'' if isinstance(env, str) else _WITHOUT_CONTACT_FORCES}. "
        f"ref_min_score / ref_max_score: D4RL's for {task}."
    )
    path = write_dataset(
        dataset_id,
        episodes,
        env_id=env,
        ref_min_score=ref_min,
        ref_max_score=ref_max,
        description=description,
        algorithm_name="D4RL (imported)",
        root=root,
        overwrite=overwrite,
    )
    return ImportResult(
        dataset_id=dataset_id,
        env_id=env_id,
        path=path,
        episodes=len(episodes),
        steps=int(bounds[-1, 1]),
        dropped_steps=dropped,
        ref_min_score=ref_min,
        ref_max_score=ref_max,
        env_label=env_label(env_id, None if isinstance(env, str) else env),
    )
