"""Load Minari datasets into OfflineDataset, failing early with one-line DatasetErrors."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gymnasium as gym
import minari
import numpy as np
from gymnasium.envs.registration import EnvSpec, WrapperSpec
from gymnasium.wrappers import FlattenObservation
from minari.dataset.minari_dataset import parse_dataset_id
from minari.storage import get_dataset_path

from iwbc.data.episodes import EpisodeData, OfflineDataset, stack_episodes
from iwbc.data.errors import DatasetError, DatasetWarning, one_line
from iwbc.data.reference_cache import cached_reference_scores, stored_metadata
from iwbc.envs.action_box import rescaled, to_unit
from iwbc.envs.gymnasium_engine import make_env, registered

ROOT_ENV_VAR = "MINARI_DATASETS_PATH"
REMOTE_ENV_VAR = "MINARI_REMOTE"
_HDF5_FILE = "main_data.hdf5"
# Where a loaded dataset's reference scores came from (OfflineDataset.ref_source).
METADATA_SCORES = "the dataset's metadata"
CACHED_SCORES = "`iwbc data minari-tiers`, stored under the Minari root"
GIVEN_SCORES = "--ref-min/--ref-max"


@contextmanager
def minari_root(root: str | Path | None) -> Iterator[None]:
    """Point Minari at `root` for the duration of a call.

    Minari only reads its root from MINARI_DATASETS_PATH, so the variable is set and restored;
    this is not thread-safe, like Minari's own root handling.
    """
    if root is None:
        yield
        return
    previous = os.environ.get(ROOT_ENV_VAR)
    os.environ[ROOT_ENV_VAR] = str(Path(root).expanduser().resolve())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ROOT_ENV_VAR, None)
        else:
            os.environ[ROOT_ENV_VAR] = previous


def datasets_root(root: str | Path | None = None) -> Path:
    """The local Minari root a call with `root` uses, found without Minari's lookup, which
    creates the directory: read-only commands must not leave an empty root behind a typo."""
    if root is not None:
        return Path(root).expanduser().resolve()
    configured = os.environ.get(ROOT_ENV_VAR)
    return Path(configured) if configured else Path.home() / ".minari" / "datasets"


def list_datasets(root: str | Path | None = None) -> list[str]:
    """Ids of the datasets in the local Minari root (`root`, else MINARI_DATASETS_PATH/default);
    none for a root that does not exist.

    Minari leaves out a dataset it cannot open with a warning of its own; each becomes a
    one-line DatasetWarning naming the dataset's folder and the fix.
    """
    if not datasets_root(root).is_dir():
        return []
    with minari_root(root):
        return _local_datasets()


def _local_datasets() -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = _listed("")
    for warning in caught:
        unusable = _MISCONFIGURED.fullmatch(str(warning.message))
        if unusable is None:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
            continue
        dataset_id, reason = unusable.groups()
        path = get_dataset_path(dataset_id)
        moved = _MOVED.fullmatch(reason)
        right_root = None if moved is None else _root_listing(path, moved.group(2))
        if right_root is not None:
            message = (
                f"dataset '{moved.group(2)}' at {path} is not listed: under the root "
                f"{get_dataset_path()} its path reads '{dataset_id}'; pass --root {right_root} "
                "(MINARI_DATASETS_PATH from Python), the folder that holds its id's path"
            )
        elif moved is not None:
            # A copied or renamed folder: its data is fine (load_dataset opens it by path).
            message = (
                f"dataset '{dataset_id}' at {path} is not listed: its data/metadata.json names it "
                f"'{moved.group(2)}'; set dataset_id there to '{dataset_id}' (or move the folder "
                "to that id's) for Minari to list it"
            )
        else:
            message = (
                f"dataset '{dataset_id}' at {path} cannot be opened ({one_line(reason)}), so it "
                f"is not listed: delete {path} and regenerate or re-download it"
            )
        warnings.warn(message, DatasetWarning, stacklevel=3)
    return ids


def _listed(prefix: str) -> list[str]:
    """``minari.list_local_datasets`` under ``prefix``, skipping with a DatasetWarning each
    folder holding data whose path is no dataset id (a backup copy named ``old``): Minari's
    listing fails as a whole on one, so the subtree it is in is listed folder by folder."""
    try:
        return list(minari.list_local_datasets(prefix=prefix or None))
    except (TypeError, ValueError):
        folder = get_dataset_path() / prefix
        if (folder / "data").is_dir():
            right_root = _root_listing(folder, _recorded_id(folder))
            fix = (
                f"pass --root {right_root}, the folder that holds its id's path"
                if right_root is not None
                else "move it to its id's folder, or out of the root"
            )
            warnings.warn(
                f"{folder} holds a dataset but its path under the root is no Minari id "
                f"(namespace/name-vN), so it is not listed: {fix}",
                DatasetWarning,
                stacklevel=4,
            )
            return []
        children = sorted(c.name for c in folder.iterdir() if c.is_dir() and c.name[0] != ".")
        return [i for child in children for i in _listed(f"{prefix}/{child}".lstrip("/"))]


def _recorded_id(folder: Path) -> str | None:
    """The dataset_id a dataset folder's data/metadata.json records, if it can be read."""
    recorded = (stored_metadata(folder) or {}).get("dataset_id")
    return recorded if isinstance(recorded, str) else None


def _root_listing(folder: Path, dataset_id: str | None) -> Path | None:
    """The root under which ``folder`` is the path of ``dataset_id``: a root given one level
    too deep (``--root ~/.minari/datasets/mujoco`` for ``mujoco/hopper/medium-v0``) or
    too shallow; None where the folder's path does not end in the id."""
    if not dataset_id:
        return None
    parts = tuple(part for part in dataset_id.split("/") if part)
    if len(folder.parts) <= len(parts) or folder.parts[-len(parts) :] != parts:
        return None
    return folder.parents[len(parts) - 1]


# How minari.list_local_datasets warns of a dataset it cannot open, and of one whose folder
# is not the id its metadata gives.
_MISCONFIGURED = re.compile(r"Misconfigured dataset named (\S+): (.*)", re.DOTALL)
_MOVED = re.compile(r"Namespace location '(.+)' does not match id '(.+)'\.?")


def load_dataset(
    dataset_id: str,
    *,
    root: str | Path | None = None,
    download: bool = False,
    check_env: bool = True,
    reference_scores: tuple[float, float] | None = None,
    env: str | None = None,
) -> OfflineDataset:
    """Load a Minari dataset with continuous Box spaces into flat episode arrays.

    `root` overrides MINARI_DATASETS_PATH (else Minari's default root). With `download=True`
    an id missing locally is fetched through `minari.download_dataset` (remote taken from
    MINARI_REMOTE, else Farama's). With `check_env=True` the observation/action shapes are
    compared with `gymnasium.make(env_spec)` when that env can be built here, catching data
    recorded for another env version. Reference scores are `reference_scores` (ref_min,
    ref_max) if given (`iwbc run --ref-min/--ref-max`), else the dataset's metadata's, else
    those `iwbc data minari-tiers` stored for its namespace under the root. `env` (`iwbc run
    --env`) names the Gymnasium id of a dataset that records no env (one recording another id
    is an error). Every unusable dataset raises a one-line DatasetError.
    """
    _check_id_syntax(dataset_id)
    if not download and not datasets_root(root).is_dir():
        raise DatasetError(_missing_root_message(dataset_id, root))
    with minari_root(root):
        if not _is_local(dataset_id):
            if not download:
                raise DatasetError(_not_local_message(dataset_id))
            _download(dataset_id)
        dataset = open_dataset(dataset_id)
        obs_space, act_space = _check_spaces(dataset)
        if dataset.total_episodes == 0:
            raise DatasetError(
                f"dataset '{dataset_id}' has 0 episodes; regenerate it with at least one episode"
            )
        env_spec = _with_flat_observations(dataset, _env_spec(dataset, env))
        observation_order = dataset.observation_space
        if check_env:
            observation_order = _check_env_shapes(dataset, env_spec, obs_space, act_space)
        episodes = _read_episodes(dataset, observation_order)
        if reference_scores is not None:
            ref_min, ref_max = _given_scores(reference_scores)
            ref_source = GIVEN_SCORES
        else:
            ref_min, ref_max, ref_source = _metadata_scores(dataset_id, dataset.storage.metadata)
        if ref_min is None or ref_max is None:
            # Minari's MuJoCo sets have none; `iwbc data minari-tiers` stores them beside the root.
            env_id = env_spec.id if env_spec is not None else None
            cached = cached_reference_scores(get_dataset_path(), dataset_id, env_id)
            if cached is not None:
                (ref_min, ref_max), ref_source = cached, CACHED_SCORES

    _check_data_shapes(dataset_id, episodes, obs_space, act_space)
    episode_ids = np.asarray(dataset.episode_indices)
    _check_time_limit(dataset_id, dataset.env_spec, episodes, episode_ids)
    _check_finite(dataset_id, episodes, episode_ids)
    episodes, clipped = _clip_to_box(dataset_id, episodes, act_space, episode_ids)
    _check_reachable(dataset_id, episodes, act_space, episode_ids)
    if rescaled(act_space.low, act_space.high):
        # Policies act in [-1, 1]; evaluation maps their actions back into the box.
        low, high = (np.asarray(b, np.float64) for b in (act_space.low, act_space.high))
        unit = to_unit(episodes.actions.astype(np.float64), low, high)
        episodes = episodes._replace(actions=unit.astype(np.float32))
    return OfflineDataset(
        id=dataset_id,
        env_id=env_spec.id if env_spec is not None else None,
        observation_dim=int(obs_space.shape[0]),
        action_dim=int(act_space.shape[0]),
        ref_min_score=ref_min,
        ref_max_score=ref_max,
        episodes=episodes,
        action_low=np.asarray(act_space.low, np.float32),
        action_high=np.asarray(act_space.high, np.float32),
        env_spec=env_spec,
        ref_source=ref_source,
        clipped_actions=clipped,
    )


def dataset_id_problem(dataset_id: str) -> str | None:
    """What makes ``dataset_id`` no Minari id (None if it is one), in words: Minari's own error
    restates the whole pattern, which leaves a user to guess, e.g., that a namespace needs two
    characters."""
    try:
        parse_dataset_id(dataset_id)
        return None
    except (ValueError, TypeError):
        pass
    text = str(dataset_id)
    if not re.search(r"-v\d+$", text):
        return "it does not end in a version such as -v0"
    if re.search(r"[^-\w/]", text):
        return "only letters, digits, '-', '_' and '/' may appear in it"
    if text.startswith("/") or "//" in text:
        return "it has an empty part between slashes"
    namespace = text.rpartition("/")[0]
    if len(namespace) == 1:
        return f"Minari needs a namespace of two characters or more, and {namespace!r} has one"
    return "Minari's pattern is (namespace/)name-v<version>"


def _check_id_syntax(dataset_id: str) -> None:
    problem = dataset_id_problem(dataset_id)
    if problem is not None:
        hint = (
            f"; a D4RL HDF5 file is imported first (`iwbc data import-d4rl {dataset_id}`), then "
            "run by the id that prints"
            if str(dataset_id).lower().endswith((".hdf5", ".h5"))
            else ""
        )
        raise DatasetError(
            f"'{dataset_id}' is not a Minari dataset id ({problem}); ids look like "
            f"'namespace/name-v0', e.g. 'mujoco/hopper/expert-v0'{hint}"
        )


def _missing_root_message(dataset_id: str, root: str | Path | None) -> str:
    if root is not None:
        named = "--root"
    elif ROOT_ENV_VAR in os.environ:
        named = ROOT_ENV_VAR
    else:
        named = "Minari's default root"
    return (
        f"{named} {datasets_root(root)} does not exist; pass --root with the directory that "
        f"holds dataset '{dataset_id}', or --download to fetch it there"
    )


def fetch_if_missing(dataset_id: str, root: str | Path | None) -> bool:
    """Download ``dataset_id`` into ``root`` unless it is there, as ``load_dataset(...,
    download=True)`` would (the same one-line errors); True if it downloaded."""
    _check_id_syntax(dataset_id)
    with minari_root(root):
        if _is_local(dataset_id):
            return False
        _download(dataset_id)
    return True


def _is_local(dataset_id: str) -> bool:
    """Same test minari.load_dataset uses: the dataset's data directory exists."""
    return get_dataset_path(dataset_id).joinpath("data").is_dir()


def _not_local_message(dataset_id: str) -> str:
    local = _local_datasets()
    listing = ", ".join(local) if local else "none"
    return (
        f"dataset '{dataset_id}' is not in the local Minari root {get_dataset_path()} "
        f"(local datasets: {listing}); pass --download (download=True from Python) to fetch it, "
        "or fix the id or root"
    )


def _download(dataset_id: str) -> None:
    remote = os.environ.get(REMOTE_ENV_VAR, "Farama's default remote")
    try:
        minari.download_dataset(dataset_id)
    except ImportError as err:  # the remote's client library (huggingface_hub for hf://)
        raise DatasetError(
            f"could not download dataset '{dataset_id}' from {remote}: {one_line(err)} (it is "
            "among iwbc's dependencies: reinstall iwbc, e.g. make install)"
        ) from err
    except Exception as err:  # network, auth and "no such remote dataset" errors all land here
        raise DatasetError(
            f"could not download dataset '{dataset_id}' from {remote}: {one_line(err)}; check "
            f"the id (minari.list_remote_datasets()) and the network, or copy the dataset into "
            f"{get_dataset_path()}"
        ) from err
    if not _is_local(dataset_id):
        raise DatasetError(
            f"downloading dataset '{dataset_id}' from {remote} left no data at "
            f"{get_dataset_path(dataset_id)}; delete that directory and retry"
        )


def open_dataset(dataset_id: str) -> minari.MinariDataset:
    """``minari.load_dataset`` under the current root, any failure to open a one-line
    DatasetError naming the dataset's path and the fix."""
    try:
        return minari.load_dataset(dataset_id)
    except ImportError as err:  # an optional format's reader: Arrow needs pyarrow
        raise DatasetError(
            f"dataset '{dataset_id}' at {get_dataset_path(dataset_id)} needs a package not "
            f"installed here ({one_line(err)})"
        ) from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        path = get_dataset_path(dataset_id)
        raise DatasetError(
            f"dataset '{dataset_id}' at {path} cannot be opened ({one_line(err)}); its metadata "
            f"is corrupt or from an unsupported Minari version: regenerate it, or delete {path} "
            "and re-download it with --download (download=True from Python)"
        ) from err


def _check_spaces(dataset: minari.MinariDataset) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    """The observation and action Boxes the policy sees: a Dict observation space (goal-
    conditioned data, e.g. Minari's D4RL mazes and Kitchen) as Gymnasium's ``flatten_space``."""
    hints = {
        "observation": "gymnasium.spaces.Box observation space, or a Dict of them (record the "
        "dataset through gymnasium.wrappers.FlattenObservation)",
        "action": "continuous gymnasium.spaces.Box action space (pick a continuous-control "
        "dataset)",
    }
    observation_space = dataset.observation_space
    if isinstance(observation_space, gym.spaces.Dict):
        _check_dict_leaves(dataset.id, observation_space, "")
        observation_space = gym.spaces.flatten_space(observation_space)
    checked = []
    for kind, space in (
        ("observation", observation_space),
        ("action", dataset.action_space),
    ):
        if not isinstance(space, gym.spaces.Box):
            raise DatasetError(
                f"dataset '{dataset.id}' has a {type(space).__name__} {kind} space; iwbc needs "
                f"a {hints[kind]}"
            )
        if len(space.shape) != 1:
            raise DatasetError(
                f"dataset '{dataset.id}': its {kind} space has shape {space.shape}; iwbc needs "
                f"a 1-D Box {kind} space (flatten it when recording the dataset)"
            )
        checked.append(space)
    return checked[0], checked[1]


def _check_dict_leaves(dataset_id: str, space: gym.spaces.Dict, path: str) -> None:
    for key, sub in space.spaces.items():
        name = f"{path}{key}"
        if isinstance(sub, gym.spaces.Dict):
            _check_dict_leaves(dataset_id, sub, f"{name}.")
        elif not isinstance(sub, gym.spaces.Box) or len(sub.shape) > 1:
            raise DatasetError(
                f"dataset '{dataset_id}': its Dict observation space has {name} = {sub}; iwbc "
                "flattens Dicts of 1-D Boxes only (a policy here takes one flat vector)"
            )


def _flat_observations(space: gym.Space, observations: Any) -> np.ndarray:
    """An episode's observations (a Dict space's: nested dicts of [steps, ...] arrays) as
    [steps, dim] rows, concatenated in the order ``gymnasium.spaces.flatten`` uses, which is
    what ``FlattenObservation`` feeds the policy at evaluation. Minari stores a Dict space's
    observations key by key, so flattening them one step at a time would cost a Python call
    per step: this does it per key."""
    if not isinstance(space, gym.spaces.Dict):
        values = np.asarray(observations)
        return values.reshape(len(values), -1)
    return np.concatenate(
        [_flat_observations(sub, observations[key]) for key, sub in space.spaces.items()], axis=1
    )


def _with_flat_observations(dataset: minari.MinariDataset, spec: EnvSpec | None) -> EnvSpec | None:
    """``spec`` evaluated through ``FlattenObservation`` when the data's observations are a
    Dict, so the env hands the policy the rows it trained on."""
    if spec is None or not isinstance(dataset.observation_space, gym.spaces.Dict):
        return spec
    flatten = WrapperSpec("FlattenObservation", "gymnasium.wrappers:FlattenObservation", {})
    return dataclasses.replace(spec, additional_wrappers=(*spec.additional_wrappers, flatten))


def _env_spec(dataset: minari.MinariDataset, env: str | None) -> EnvSpec | None:
    """The env to evaluate on: the dataset's evaluation env (Minari's ``eval_env_spec``, on
    which Minari computes reference scores), else the env it was recorded on, else the
    registered ``env`` the caller names.

    Minari parses ``eval_env_spec`` on loading but exposes it only by building the env
    (``recover_environment(eval_env=True)``), so its parsed attribute is read instead. A
    dataset made without an ``eval_env`` stores its recording env there (Minari's MuJoCo sets
    and every dataset iwbc writes), so for them nothing changes.
    """
    recorded = getattr(dataset, "_eval_env_spec", None) or dataset.env_spec
    if env is None:
        return recorded
    if recorded is not None:
        if recorded.id != env:
            raise DatasetError(
                f"dataset '{dataset.id}' records env {recorded.id}, not {env}; drop --env (it "
                "names the env of a dataset that records none)"
            )
        return recorded
    registered(env)  # registers Gymnasium-Robotics' ids where env is one
    try:
        return gym.spec(env)
    except gym.error.Error as error:
        raise DatasetError(
            f"--env {env}: not a registered Gymnasium env ({one_line(error)}); name the id the "
            "dataset was recorded on, e.g. Hopper-v5"
        ) from None


def _check_env_shapes(
    dataset: minari.MinariDataset,
    spec: EnvSpec | None,
    obs_space: gym.spaces.Box,
    act_space: gym.spaces.Box,
) -> gym.Space:
    """Check the data's shapes and action box against the env's; return the observation space
    whose order the data is flattened in: the env's own Dict space where the data's is a Dict,
    since ``FlattenObservation`` concatenates in the env's key order, which may not be the
    order Minari reads back (it sorts a stored Dict's keys)."""
    dataset_id = dataset.id
    if spec is None:
        return dataset.observation_space
    try:
        env = make_env(spec)
    except Exception:  # env not installed/registered here: nothing to compare against
        return dataset.observation_space
    try:
        env_obs, env_act = env.observation_space, env.action_space
        order = _flattened_space(env, dataset_id, dataset.observation_space)
    finally:
        env.close()
    for kind, ours, theirs in (
        ("observation", obs_space.shape, env_obs.shape),
        ("action", act_space.shape, env_act.shape),
    ):
        if ours != theirs:
            raise DatasetError(
                f"dataset '{dataset_id}' has {kind} shape {ours} but its env {spec.id} has "
                f"{kind} shape {theirs}; the data was recorded for another env version or "
                "config: use a matching dataset (from Python, check_env=False skips this check)"
            )
    # Actions are mapped out of the dataset's box on loading and into the env's on evaluation.
    if isinstance(env_act, gym.spaces.Box) and not (
        np.allclose(act_space.low, env_act.low) and np.allclose(act_space.high, env_act.high)
    ):
        raise DatasetError(
            f"dataset '{dataset_id}' has action bounds [{_bounds(act_space)}] but its env "
            f"{spec.id} has [{_bounds(env_act)}]; the data was recorded for another env version "
            "or through an action wrapper: use a matching dataset (from Python, check_env=False "
            "skips this check)"
        )
    return order


def _flattened_space(env: gym.Env, dataset_id: str, stored: gym.Space) -> gym.Space:
    """The space the env's ``FlattenObservation`` (the last wrapper, for Dict data) flattens,
    when the data's is a Dict: same keys and shapes as the data's, else a one-line error."""
    if not isinstance(stored, gym.spaces.Dict):
        return stored
    inner = env.env.observation_space if isinstance(env, FlattenObservation) else None
    if not isinstance(inner, gym.spaces.Dict) or _structure(inner) != _structure(stored):
        shown = inner if inner is not None else env.observation_space
        raise DatasetError(
            f"dataset '{dataset_id}' has Dict observations {_structure(stored)} but its env "
            f"{env.spec.id if env.spec else env} observes {_structure(shown)}; evaluate it on "
            "the env the data was recorded on (from Python, check_env=False skips this check)"
        )
    return inner


def _structure(space: gym.Space) -> Any:
    """A space's keys and leaf shapes, order apart: what two spaces must share for data of one
    to be flattened as the other."""
    if isinstance(space, gym.spaces.Dict):
        return {key: _structure(sub) for key, sub in sorted(space.spaces.items())}
    return tuple(space.shape) if space.shape is not None else type(space).__name__


def _bounds(space: gym.spaces.Box) -> str:
    low, high = np.ravel(space.low), np.ravel(space.high)
    if np.all(low == low[0]) and np.all(high == high[0]):
        return f"{low[0]:g}, {high[0]:g}"
    return f"{low.tolist()}, {high.tolist()}"


def _data_file(dataset: minari.MinariDataset) -> Path:
    data_path = Path(dataset.storage.data_path)
    hdf5 = data_path / _HDF5_FILE
    return hdf5 if hdf5.exists() else data_path


def _read_episodes(dataset: minari.MinariDataset, observation_order: gym.Space) -> EpisodeData:
    """Stream episodes through Minari's reader, keeping only the arrays training needs, the
    observations flattened in ``observation_order``'s key order (the evaluation env's)."""
    fields: dict[str, list[np.ndarray]] = {
        "observations": [],
        "actions": [],
        "rewards": [],
        "terminations": [],
        "truncations": [],
    }
    file = _data_file(dataset)
    stored, listed = _stored_episodes(file), dataset.total_episodes
    if stored is not None and stored != listed:
        # Minari reads the first total_episodes episodes: fewer listed would drop the rest.
        raise DatasetError(
            f"dataset '{dataset.id}': {file} holds {stored} episodes where data/metadata.json's "
            f"total_episodes says {listed}; set total_episodes to {stored} there, or regenerate "
            "the dataset"
        )
    try:
        for episode in dataset.iterate_episodes():
            for name, values in fields.items():
                value = getattr(episode, name)
                flat = name == "observations"
                values.append(
                    _flat_observations(observation_order, value) if flat else np.asarray(value)
                )
    except (OSError, KeyError, RuntimeError, ValueError, TypeError) as err:
        raise DatasetError(
            f"dataset '{dataset.id}': cannot read {file} ({one_line(err)}); the file is "
            f"corrupted or truncated: regenerate the dataset, or delete "
            f"{get_dataset_path(dataset.id)} and re-download it with --download (download=True "
            "from Python)"
        ) from err
    try:
        return stack_episodes(**fields)
    except DatasetError as err:
        raise DatasetError(f"dataset '{dataset.id}': {err}") from err


def _stored_episodes(file: Path) -> int | None:
    """How many ``episode_*`` groups an HDF5 data file holds; None where it cannot be read."""
    import h5py

    try:
        with h5py.File(file, "r") as f:
            return sum(1 for name in f if name.startswith("episode_"))
    except (OSError, ValueError):
        return None


def _check_data_shapes(
    dataset_id: str, episodes: EpisodeData, obs_space: gym.spaces.Box, act_space: gym.spaces.Box
) -> None:
    for kind, stored, declared in (
        ("observations", episodes.observations.shape[-1], obs_space.shape[0]),
        ("actions", episodes.actions.shape[-1], act_space.shape[0]),
    ):
        if stored != declared:
            raise DatasetError(
                f"dataset '{dataset_id}' stores {kind} of width {stored} but declares a space of "
                f"width {declared}; regenerate the dataset"
            )


def _check_time_limit(
    dataset_id: str, recorded: EnvSpec | None, episodes: EpisodeData, episode_ids: np.ndarray
) -> None:
    """Warn of episodes longer than the time limit of the env they were recorded on: either
    the data's timeouts were lost (several episodes run together, so returns, percentile
    selection and quality scores are over merged episodes), or the data is longer by design
    (Minari's D4RL Adroit human demonstrations run past their env's 200 steps); evaluation
    episodes stop at the limit either way. Only the recording env's limit is compared: Minari's
    mazes record a long one and evaluate on a shorter ``eval_env_spec``."""
    limit = None if recorded is None else recorded.max_episode_steps
    if limit is None or episodes.max_length <= limit:
        return
    longest = int(np.argmax(episodes.lengths))
    warnings.warn(
        f"dataset '{dataset_id}': {int(np.sum(episodes.lengths > limit))} episode(s) are longer "
        f"than the {limit}-step time limit of {recorded.id}, the env it records (episode "
        f"{int(episode_ids[longest])}: {episodes.max_length} steps), where evaluation episodes "
        "stop; if the data's timeouts were lost they are episodes run together: store a "
        "truncation at each time limit and regenerate the dataset",
        DatasetWarning,
        stacklevel=3,
    )


def _check_finite(dataset_id: str, episodes: EpisodeData, episode_ids: np.ndarray) -> None:
    """NaN/inf would silently poison every gradient, so name the field and episode instead."""
    for name, values in (
        ("observations", episodes.observations),
        ("observations", episodes.next_observations),
        ("actions", episodes.actions),
        ("rewards", episodes.rewards),
    ):
        bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        if bad.any():
            rows = np.unique(episodes.step_episodes[bad])
            more = f" and {rows.size - 1} more episode(s)" if rows.size > 1 else ""
            raise DatasetError(
                f"dataset '{dataset_id}' has NaN/inf {name} in episode {int(episode_ids[rows[0]])}"
                f"{more}; clean or regenerate the dataset"
            )


def _check_reachable(
    dataset_id: str, episodes: EpisodeData, act_space: gym.spaces.Box, episode_ids: np.ndarray
) -> None:
    """Under a box with an unbounded side there is nothing to map actions from, so they stay as
    recorded: ones beyond [-1, 1], where no policy here acts (tanh), are a one-line error, not
    data BC silently cannot fit."""
    low, high = (np.asarray(b, np.float64) for b in (act_space.low, act_space.high))
    if np.isfinite(low).all() and np.isfinite(high).all():
        return
    beyond = (np.abs(episodes.actions) > 1.0 + 1e-6).any(axis=-1)
    if not beyond.any():
        return
    first = int(episode_ids[int(episodes.step_episodes[np.argmax(beyond)])])
    raise DatasetError(
        f"dataset '{dataset_id}' has an unbounded action box [{_bounds(act_space)}] and actions "
        f"up to {np.abs(episodes.actions).max():.3g} in size (first in episode {first}), beyond "
        "the [-1, 1] every policy here acts in; record actions in [-1, 1], or on an env with a "
        "bounded action box (Gymnasium's ClipAction unbounds it: put minari.DataCollector "
        "inside ClipAction, not around it)"
    )


def _clip_to_box(
    dataset_id: str, episodes: EpisodeData, act_space: gym.spaces.Box, episode_ids: np.ndarray
) -> tuple[EpisodeData, float]:
    """Actions clipped to the box, and the fraction of steps that had one outside it.

    The env clamps such an action to the box (MuJoCo clamps a control to its range, other
    tasks clip), so the box's edge is what acted, and all a policy acting in the box can
    learn; the data is changed, so a warning says how much. Float rounding (a millionth of
    the box's width) is clipped without one.
    """
    low, high = (np.asarray(b, np.float64) for b in (act_space.low, act_space.high))
    actions = episodes.actions
    clipped = np.clip(actions, low, high).astype(actions.dtype)
    if np.array_equal(clipped, actions):
        return episodes, 0.0
    width = np.where(np.isfinite(high - low), high - low, 0.0)
    excess = np.maximum(actions - high, low - actions)
    outside = (excess > 1e-6 * width).any(axis=-1)
    fraction = float(outside.mean())
    if fraction:
        first = int(episodes.step_episodes[np.argmax(outside)])
        warnings.warn(
            f"dataset '{dataset_id}': {fraction:.1%} of its steps have actions outside the "
            f"action box [{_bounds(act_space)}] (by up to {excess.max():.3g}, first in episode "
            f"{int(episode_ids[first])}); they are clipped to the box, as the env clamps them: "
            "clip them when recording the dataset to silence this",
            DatasetWarning,
            stacklevel=3,
        )
    return episodes._replace(actions=clipped), fraction


def _metadata_scores(
    dataset_id: str, metadata: dict
) -> tuple[float | None, float | None, str | None]:
    """(ref_min, ref_max, source) from the metadata, (None, None, None) where one is absent;
    a value that is no finite number, or a pair with ref_max <= ref_min, is a one-line error,
    since every score of the dataset would be meaningless."""
    fix = (
        "fix the dataset's metadata, or pass --ref-min and --ref-max to `iwbc run` "
        "(reference_scores= from Python)"
    )
    keys = ("ref_min_score", "ref_max_score")
    present = [key for key in keys if metadata.get(key) is not None]
    if not present:
        return None, None, None
    if len(present) == 1:
        (missing,) = set(keys) - set(present)
        raise DatasetError(
            f"dataset '{dataset_id}' has {present[0]} but no {missing} in its metadata; {fix}"
        )
    scores = [
        _finite_score(metadata[key], f"dataset '{dataset_id}' has {key}", "in its metadata", fix)
        for key in keys
    ]
    _check_order(scores, f"dataset '{dataset_id}' has", " in its metadata", fix)
    return scores[0], scores[1], METADATA_SCORES


def _given_scores(scores: Any) -> tuple[float, float]:
    """``load_dataset``'s ``reference_scores`` checked as the metadata's are."""
    fix = "pass reference_scores=(ref_min, ref_max), two finite numbers with ref_min < ref_max"
    if not isinstance(scores, tuple | list) or len(scores) != 2:
        raise DatasetError(f"reference_scores = {scores!r} is not a (ref_min, ref_max) pair; {fix}")
    pair = [
        _finite_score(value, f"reference_scores' {key}", "", fix)
        for key, value in zip(("ref_min", "ref_max"), scores, strict=True)
    ]
    _check_order(pair, "reference_scores has", "", fix)
    return pair[0], pair[1]


def _finite_score(value: Any, what: str, where: str, fix: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or isinstance(value, bool):
        where = f" {where}" if where else ""
        raise DatasetError(f"{what} = {value!r}{where}, not a finite number; {fix}")
    return number


def _check_order(scores: list[float], what: str, where: str, fix: str) -> None:
    if scores[1] <= scores[0]:
        raise DatasetError(
            f"{what} ref_max_score {scores[1]:g} <= ref_min_score {scores[0]:g}{where}, so "
            f"normalized scores are meaningless; {fix}"
        )
