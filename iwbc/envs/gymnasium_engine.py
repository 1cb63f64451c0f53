"""Fallback engine for registered Gymnasium envs without a built-in spec.

A plain list of ``gymnasium.make`` envs stepped in a loop rather than a vector env, so
that no autoreset changes which step starts an episode: the engine resets only when
asked, exactly like the batch engine.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from iwbc.envs.engine import StepResult, check_num_envs, checked_actions, reset_targets, resolve_ids
from iwbc.envs.robotics_compat import ROBOTICS_PACKAGE, fix_joint_type_checks, is_robotics_env
from iwbc.envs.specs import SPECS, Env, env_name
from iwbc.errors import UserError


def registered(env_id: str) -> EnvSpec | None:
    """Gymnasium's registration of ``env_id``, Gymnasium-Robotics' ids (``AdroitHandPen-v1``,
    ``FrankaKitchen-v1``, ...) included: that package, a dependency, registers them only once
    it is imported, which nothing else here would do for a bare id. The notice it prints as
    it loads (on its Adroit rewards) is passed on only where the id is one of its own, so that
    a mistyped id is the one-line error it was."""
    if env_id not in gymnasium.registry:
        notice = io.StringIO()
        with contextlib.redirect_stderr(notice), contextlib.suppress(ImportError):
            importlib.import_module(ROBOTICS_PACKAGE)
        if env_id in gymnasium.registry:
            sys.stderr.write(notice.getvalue())
    return gymnasium.registry.get(env_id)


# Gymnasium's passive checker compares an env's reset with its first step, and that step with
# its second, for a shared observation object, and never again: only those steps need its
# warning silenced. (Silencing costs a ``warnings.catch_warnings``, which re-arms every
# show-once warning, so an env's own warning would print on every later step too.)
_CHECKED_STEPS = 2


@contextlib.contextmanager
def observations_copied() -> Iterator[None]:
    """Silence Gymnasium's passive checker on envs that hand back one observation object on
    every call (Gymnasium-Robotics' Kitchen returns the same desired-goal dict throughout): a
    hazard for code that keeps what it is given, not for this engine, which copies each
    observation it reads, so the warning would only alarm a user who can do nothing about it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*share an object", category=UserWarning)
        yield


def check_env_id(env_id: str) -> None:
    """UserError in one line if ``env_id`` is not registered with Gymnasium."""
    if registered(env_id) is None:
        raise UserError(
            f"unknown env id {env_id!r}: not registered with Gymnasium; "
            f"ids with a built-in spec: {', '.join(SPECS)}"
        )


def make_env(env: Env) -> gymnasium.Env:
    """``gymnasium.make(env)``, less the model file Gymnasium-Robotics' maze envs leave behind,
    and with its Kitchen env's joint checks working on this MuJoCo (``robotics_compat``).

    Its Point- and AntMaze envs (1.4 and before) write their MJCF to a new file in the temp
    folder itself and never delete it (fixed upstream by Gymnasium-Robotics PR #308, which
    keeps it in a folder of its own that ``close`` removes): an evaluation builds an env per
    episode slot, so thousands would pile up. The model is read at construction, so the file
    goes at once; one in a folder of its own is left to the env.
    """
    if is_robotics_env(env if isinstance(env, EnvSpec) else registered(env)):
        fix_joint_type_checks()
    made = gymnasium.make(env)
    leaked = getattr(made.unwrapped, "tmp_xml_file_path", None)
    if isinstance(leaked, str) and Path(leaked).parent == Path(tempfile.gettempdir()):
        Path(leaked).unlink(missing_ok=True)
    return made


def _check_spaces(env_id: str, env: gymnasium.Env) -> None:
    if not isinstance(env.action_space, spaces.Box):
        raise UserError(
            f"{env_id} has a {env.action_space} action space; "
            "iwbc needs a continuous (Box) action space"
        )
    if not isinstance(env.observation_space, spaces.Box):
        raise UserError(
            f"{env_id} has a {env.observation_space} observation space; "
            "iwbc needs a Box observation space"
        )


class GymnasiumEngine:
    """``num_envs`` copies of ``gymnasium.make(env)`` behind the batch engine's interface.

    ``env`` is an id or an EnvSpec (a dataset's, with its arguments and wrappers).
    Observations are flattened to float64 rows; ``truncated`` comes from the env's
    TimeLimit (``max_episode_steps`` of its registration or EnvSpec).
    """

    def __init__(self, env: Env, num_envs: int) -> None:
        check_num_envs(num_envs)
        env_id = env_name(env)
        if isinstance(env, str):  # an EnvSpec carries its entry point: it needs no registration
            check_env_id(env)
        first = make_env(env)
        try:
            _check_spaces(env_id, first)
        except ValueError:
            first.close()
            raise
        self.env_id = env_id
        self.num_envs = num_envs
        self.envs = [first] + [make_env(env) for _ in range(num_envs - 1)]
        self.max_episode_steps = first.spec.max_episode_steps if first.spec else None
        self.action_low = np.asarray(first.action_space.low).reshape(-1)
        self.action_high = np.asarray(first.action_space.high).reshape(-1)
        self.act_dim = int(self.action_low.size)
        self._act_shape = first.action_space.shape
        self.obs_dim = int(np.prod(first.observation_space.shape))
        self._obs = np.zeros((num_envs, self.obs_dim))
        self._steps_taken = np.zeros(num_envs, np.int64)  # each env's, since it was made

    def reset(self, seeds: list[int] | np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
        """Reset envs ``ids`` (default all) with ``env.reset(seed=seeds[k])``; all observations."""
        ids, seeds = reset_targets(seeds, ids, self.num_envs)
        for i, seed in zip(ids, seeds, strict=True):
            obs, _ = self.envs[i].reset(seed=seed)
            self._obs[i] = np.asarray(obs, dtype=np.float64).reshape(-1)
        return self._obs.copy()

    def step(self, actions: np.ndarray, ids: np.ndarray | None = None) -> StepResult:
        """Step envs ``ids`` (default all) with their rows of ``actions``; others stay."""
        actions = checked_actions(actions, self.num_envs, self.act_dim)
        ids = resolve_ids(ids, self.num_envs)
        reward = np.zeros(self.num_envs)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        in_check = (self._steps_taken[ids] < _CHECKED_STEPS).any()
        with observations_copied() if in_check else contextlib.nullcontext():
            for i in ids:
                obs, r, term, trunc, _ = self.envs[i].step(actions[i].reshape(self._act_shape))
                self._obs[i] = np.asarray(obs, dtype=np.float64).reshape(-1)
                reward[i], terminated[i], truncated[i] = r, term, trunc
        self._steps_taken[ids] += 1
        return StepResult(self._obs.copy(), reward, terminated, truncated)

    def close(self) -> None:
        """Close the underlying envs."""
        for env in self.envs:
            env.close()
