"""Shared pytest fixtures.

Data fixtures build tiny Minari datasets in a temporary MINARI_DATASETS_PATH (no network), and
`local_minari_remote` serves a directory as Minari's remote so download code runs for real.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import gymnasium as gym
import jax
import minari
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec
from minari.data_collector import EpisodeBuffer
from minari.storage import remotes
from minari.storage.remotes.cloud_storage import CloudStorage

from iwbc.agents.bc import BCConfig
from iwbc.agents.registry import METHODS
from iwbc.bench.suites import PipelineConfig
from iwbc.data.scripted import generate_mixed_dataset

# Tests compile many of the same programs (a tiny BC chunk, an MJX step) in different worker
# and CLI processes: one persistent JAX compilation cache per test session lets each compile
# once. Fresh per session (CI's figure), shared by the xdist workers and subprocesses through
# the environment, which they inherit from the controller.
_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
_CACHE_KEY = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and _CACHE_ENV not in os.environ:
        directory = tempfile.mkdtemp(prefix="iwbc-test-jax-cache-")
        config.stash[_CACHE_KEY] = directory
        os.environ[_CACHE_ENV] = directory
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.2"
    if _CACHE_ENV in os.environ:  # this process imported JAX before the variable was set
        jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE_ENV])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


@pytest.fixture(autouse=True, scope="module")
def _drop_compiled_programs() -> Iterator[None]:
    """XLA:CPU keeps ~6 memory maps per compiled program for as long as JAX's caches hold it:
    the whole suite in one process (plain ``pytest``, without ``-n``) passed Linux's limit of
    65,530 maps near its end and died of a segfault. Each module's programs go when it ends
    (those worth caching come back from the persistent cache above)."""
    yield
    jax.clear_caches()


# Modules with minute-long tests (MJX compiles on CPU, the GPU check's smoke run, BC learning a
# locomotion task, a Ray cluster): they start first, so that with `--dist worksteal` the other
# worker takes the short tests and both end together, instead of one running a long test alone
# at the end.
_LONG_FIRST = (
    "test_envs_mjx.py",
    "test_gpu_check.py",
    "test_learning_locomotion.py",
    "test_standardization.py",
    "test_benchmark_ray.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.path.name not in _LONG_FIRST)


def pytest_unconfigure(config: pytest.Config) -> None:
    directory = config.stash.get(_CACHE_KEY, None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


class DictObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """InvertedPendulum's observation as a Dict (positions, velocities), the layout of
    goal-conditioned datasets; an env spec names it as ``conftest:DictObservation``."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.ObservationWrapper.__init__(self, env)
        box = env.observation_space
        self.observation_space = gym.spaces.Dict(
            {
                "velocity": gym.spaces.Box(box.low[2:], box.high[2:], dtype=box.dtype),
                "position": gym.spaces.Box(box.low[:2], box.high[:2], dtype=box.dtype),
            }
        )

    def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        return {"velocity": observation[2:], "position": observation[:2]}


class OrderedDictObservation(DictObservation):
    """As DictObservation, its keys kept in the env's order (velocity first), as an
    ``OrderedDict`` space keeps them: Minari reads a stored Dict space back with sorted keys."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        spaces = self.observation_space.spaces
        self.observation_space = gym.spaces.Dict(
            collections.OrderedDict((key, spaces[key]) for key in ("velocity", "position"))
        )


PENDULUM_ENV = "InvertedPendulum-v5"
# Varied lengths; episode 1 and 3 terminate, the others are truncated (time limit).
EPISODE_LENGTHS = (7, 3, 10, 1, 5)
TERMINATED = (False, True, False, True, False)
REF_MIN_SCORE = -10.0
REF_MAX_SCORE = 50.0


def _sample(space: gym.Space, rng: np.random.Generator, n: int) -> np.ndarray | dict:
    if isinstance(space, gym.spaces.Box):  # in the box, as an env's actions are
        values = rng.normal(size=(n, *space.shape))
        return np.clip(values, space.low, space.high).astype(space.dtype)
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(space.n, size=n).astype(np.int64)
    if isinstance(space, gym.spaces.Dict):
        return {key: _sample(sub, rng, n) for key, sub in space.spaces.items()}
    raise NotImplementedError(f"no synthetic data for {space}")


def synthetic_episodes(
    observation_space: gym.Space,
    action_space: gym.Space,
    lengths: Sequence[int] = EPISODE_LENGTHS,
    terminated: Sequence[bool] = TERMINATED,
    seed: int = 0,
) -> list[EpisodeBuffer]:
    """Deterministic random episodes; each ends terminated or truncated on its last step."""
    rng = np.random.default_rng(seed)
    buffers = []
    for i, (length, term) in enumerate(zip(lengths, terminated, strict=True)):
        ends = np.zeros(length, bool)
        ends[-1] = True
        buffers.append(
            EpisodeBuffer(
                id=i,
                seed=1000 * seed + i,  # as Minari's DataCollector records reset(seed=...)
                observations=_sample(observation_space, rng, length + 1),
                actions=_sample(action_space, rng, length),
                rewards=rng.normal(loc=1.0, size=length),
                terminations=ends & term,
                truncations=ends & (not term),
            )
        )
    return buffers


@pytest.fixture
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty local Minari root, set as MINARI_DATASETS_PATH for the test."""
    root = tmp_path / "minari_local"
    root.mkdir()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


@pytest.fixture
def make_minari_dataset(
    minari_root: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., list[EpisodeBuffer]]:
    """Factory: write a Minari dataset (default InvertedPendulum, 5 episodes); return its buffers.

    `root` writes into another Minari root (e.g. a fake remote) instead of `minari_root`;
    `env=None` needs explicit spaces and records no env_spec; `eval_env` records an evaluation
    env other than `env` (Minari's `eval_env_spec`); `data_format` is Minari's ("hdf5", its
    default, or "arrow").
    """

    def make(
        dataset_id: str,
        *,
        env: str | EnvSpec | None = PENDULUM_ENV,
        observation_space: gym.Space | None = None,
        action_space: gym.Space | None = None,
        lengths: Sequence[int] = EPISODE_LENGTHS,
        terminated: Sequence[bool] = TERMINATED,
        ref_min_score: float | None = REF_MIN_SCORE,
        ref_max_score: float | None = REF_MAX_SCORE,
        root: Path | None = None,
        seed: int = 0,
        eval_env: str | EnvSpec | None = None,
        data_format: str | None = None,
    ) -> list[EpisodeBuffer]:
        if env is not None:
            made = gym.make(env)
            observation_space = observation_space or made.observation_space
            action_space = action_space or made.action_space
            made.close()
        buffers = synthetic_episodes(observation_space, action_space, lengths, terminated, seed)
        with monkeypatch.context() as patch, warnings.catch_warnings():
            warnings.filterwarnings("ignore", "`eval_env` is set to None|env_spec is None")
            patch.setenv("MINARI_DATASETS_PATH", str(root or minari_root))
            minari.create_dataset_from_buffers(
                dataset_id,
                buffers,
                env=env,
                observation_space=observation_space,
                action_space=action_space,
                ref_min_score=ref_min_score,
                ref_max_score=ref_max_score,
                eval_env=env if eval_env is None else eval_env,
                algorithm_name="synthetic",
                author="iwbc tests",
                author_email="tests@example.invalid",
                code_permalink="https://example.invalid/iwbc",
                description="synthetic episodes for iwbc tests",
                data_format=data_format,
            )
        return buffers

    return make


def save_collected(
    collector: minari.DataCollector, root: Path, dataset_id: str, ref_max_score: float
) -> None:
    """Write the uniform-random episodes ``collector`` recorded as ``dataset_id`` under the
    Minari root ``root``, reference scores 0 and ``ref_max_score``, without Minari's warnings
    on the fields left out; the collector is closed."""
    with warnings.catch_warnings(), pytest.MonkeyPatch.context() as patch:
        warnings.simplefilter("ignore")
        patch.setenv("MINARI_DATASETS_PATH", str(root))
        collector.create_dataset(
            dataset_id=dataset_id,
            algorithm_name="uniform random",
            ref_min_score=0.0,
            ref_max_score=ref_max_score,
            description="uniform random actions",
        )
    collector.close()


@pytest.fixture
def pendulum_dataset(
    make_minari_dataset: Callable[..., list[EpisodeBuffer]],
) -> tuple[str, list[EpisodeBuffer]]:
    """The default 5-episode InvertedPendulum dataset: (id, episode buffers)."""
    dataset_id = "iwbc-test/pendulum/mixed-v0"
    return dataset_id, make_minari_dataset(dataset_id)


_NAMESPACE_FILE = "namespace_metadata.json"


class LocalDirRemote(CloudStorage):
    """A Minari remote backed by a local directory laid out like a Minari root (read-only)."""

    def __init__(self, name: str, token: str | None = None) -> None:
        self.root = Path(name)

    def list_datasets(self, prefix: str | None = None) -> Iterable[str]:
        ids = (
            p.parent.parent.relative_to(self.root).as_posix()
            for p in self.root.rglob("data/metadata.json")
        )
        return sorted(i for i in ids if i.startswith(prefix or ""))

    def get_dataset_metadata(self, dataset_id: str) -> dict:
        return json.loads((self.root / dataset_id / "data" / "metadata.json").read_text())

    def download_dataset(self, dataset_id: str, path: Path) -> None:
        shutil.copytree(self.root / dataset_id, Path(path) / dataset_id, dirs_exist_ok=True)

    def list_namespaces(self) -> Iterable[str]:
        return sorted(
            p.parent.relative_to(self.root).as_posix() for p in self.root.rglob(_NAMESPACE_FILE)
        )

    def download_namespace_metadata(self, namespace: str, path: Path) -> None:
        target = Path(path) / namespace
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.root / namespace / _NAMESPACE_FILE, target / _NAMESPACE_FILE)

    def upload_dataset(self, dataset_id: str) -> None:
        raise NotImplementedError("the local test remote is read-only")

    def upload_namespace(self, namespace: str) -> None:
        raise NotImplementedError("the local test remote is read-only")


@pytest.fixture
def local_minari_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory served as Minari's remote through MINARI_REMOTE=file://<dir>."""
    remote_root = tmp_path / "minari_remote"
    remote_root.mkdir()
    monkeypatch.setitem(remotes._registry, "file", lambda: LocalDirRemote)
    monkeypatch.setenv("MINARI_REMOTE", f"file://{remote_root}")
    return remote_root


def make_scripted_dataset(dataset_id: str, root: Path, episodes: int = 6) -> Path:
    """The scripted mixed-quality pendulum dataset ``dataset_id`` under ``root`` (its warnings
    about the tiny episode count silenced); returns ``root``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        generate_mixed_dataset(dataset_id, num_episodes=episodes, root=root)
    return root


def bc_configs(pipeline: PipelineConfig, methods: Sequence[str]) -> dict[str, BCConfig]:
    """Each BC-family method's config as a suite's ``[bc_family]`` section makes it."""
    return {name: pipeline.config(METHODS[name]) for name in methods}
