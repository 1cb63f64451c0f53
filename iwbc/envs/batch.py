"""Vectorized CPU evaluation engine: many copies of one task on ``mujoco.batch.Batch``.

The physics of all envs advances in one ``Batch.step(nstep=frame_skip)`` call on
MuJoCo's thread pool; observations, rewards and terminations are the spec's numpy
functions over the whole batch. ``Batch`` is bit-identical to a loop over ``MjData``,
so the engine reproduces ``gymnasium.make(env_id)`` step for step.
"""

from __future__ import annotations

import mujoco
import numpy as np
from mujoco.batch import Batch

from iwbc.envs.engine import (
    StepResult,
    check_num_envs,
    checked_actions,
    reset_targets,
    resolve_ids,
)
from iwbc.envs.specs import SimState, TaskSpec


class BatchEngine:
    """``num_envs`` envs of one task spec, stepped together; no auto-reset.

    Rows of envs left out of a ``step`` (``ids``) keep their state and observation, and
    report reward 0, not terminated, not truncated.
    """

    def __init__(self, spec: TaskSpec, num_envs: int, nthread: int = 0) -> None:
        check_num_envs(num_envs)
        self.spec = spec
        self.env_id = spec.env_id
        self.num_envs = num_envs
        self.max_episode_steps = spec.max_episode_steps
        self.action_low, self.action_high = spec.action_bounds()
        self.act_dim = int(self.action_low.size)
        self.obs_dim = spec.obs_dim

        model = spec.model()
        self._dt = spec.dt()
        self._init_qpos = model.qpos0.copy()
        self._init_qvel = np.zeros(model.nv)
        # Gymnasium calls mj_rnePostConstraint after each step for cfrc_ext; it needs the
        # contacts and constraint forces of the step's last substep, which only a
        # persistent batch keeps (one MjData per env).
        self._rne_post = "cfrc_ext" in spec.derived_fields
        self._batch = Batch(model, num_envs, nthread=nthread, persistent=self._rne_post)
        self._qpos = self._batch.bind("qpos")
        self._qvel = self._batch.bind("qvel")
        self._ctrl = self._batch.bind("ctrl")
        self._derived = {
            name: self._batch.bind(name) for name in spec.derived_fields if name != "cfrc_ext"
        }
        if self._rne_post:
            self._model = model
            self._scratch = mujoco.MjData(model)
            self._cfrc_ext = np.zeros((num_envs, model.nbody, 6))

        self._t = np.zeros(num_envs, dtype=np.int64)
        self._state = self._snapshot()
        self._obs = spec.observation(np, self._state)

    @property
    def state(self) -> SimState:
        """The arrays the spec's functions last read (copies of the simulation's)."""
        return self._state

    def _snapshot(self) -> SimState:
        fields = {name: arr.copy() for name, arr in self._derived.items()}
        if self._rne_post:
            fields["cfrc_ext"] = self._cfrc_ext.copy()
        return SimState(qpos=self._qpos.copy(), qvel=self._qvel.copy(), **fields)

    def reset(self, seeds: list[int] | np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
        """Reset envs ``ids`` (default all), env ``ids[k]`` with episode seed ``seeds[k]``.

        Seed ``s`` gives the initial state of ``gymnasium.make(env_id).reset(seed=s)``.
        Returns the observations of all envs [num_envs, obs_dim], float64.
        """
        ids, seeds = reset_targets(seeds, ids, self.num_envs)
        if ids.size == 0:
            return self._obs.copy()
        self._batch.reset(ids=ids, stage=mujoco.mjtStage.mjSTAGE_NONE)
        for i, seed in zip(ids, seeds, strict=True):
            qpos, qvel = self.spec.reset_state(
                np.random.default_rng(seed), self._init_qpos, self._init_qvel
            )
            self._qpos[i] = qpos
            self._qvel[i] = qvel
        self._batch.forward(ids=ids)
        if self._rne_post:
            # mj_resetData zeroes cfrc_ext and mj_forward leaves it alone
            self._cfrc_ext[ids] = 0.0
        self._t[ids] = 0
        self._state = self._snapshot()
        self._obs = self.spec.observation(np, self._state)
        return self._obs.copy()

    def step(self, actions: np.ndarray, ids: np.ndarray | None = None) -> StepResult:
        """Apply ``actions`` [num_envs, act_dim] for one env step to envs ``ids`` (all)."""
        actions = checked_actions(actions, self.num_envs, self.act_dim)
        subset = ids is not None
        ids = resolve_ids(ids, self.num_envs)
        before = self._state
        if subset:
            self._ctrl[ids] = actions[ids]
            self._batch.step(ids=ids, nstep=self.spec.frame_skip)
        else:
            self._ctrl[:] = actions
            self._batch.step(nstep=self.spec.frame_skip)
        if self._rne_post:
            self._update_cfrc_ext(ids)
        self._t[ids] += 1
        after = self._snapshot()
        obs = self.spec.observation(np, after)
        reward = self.spec.reward(np, before, after, actions, self._dt)
        terminated = self.spec.terminated(np, after)
        truncated = self._t >= self.max_episode_steps
        if subset:
            idle = np.ones(self.num_envs, dtype=bool)
            idle[ids] = False
            obs[idle] = self._obs[idle]
            reward = np.where(idle, 0.0, reward)
            terminated = terminated & ~idle
            truncated = truncated & ~idle
        self._state, self._obs = after, obs
        return StepResult(obs.copy(), reward, terminated, truncated)

    def save_state(self) -> dict[str, np.ndarray]:
        """Everything needed to continue bit for bit: MuJoCo's full state rows and step counts.

        The rows hold the integration state including the solver's warm start, so a run
        restored from them (:meth:`load_state`) takes the same steps as one never stopped.
        """
        if self._rne_post:
            raise NotImplementedError(
                f"{self.env_id} reads cfrc_ext, which a saved state does not carry; "
                "save states only for tasks without it"
            )
        return {"physics": np.array(self._batch.state, copy=True), "t": self._t.copy()}

    def load_state(self, saved: dict[str, np.ndarray]) -> np.ndarray:
        """Restore :meth:`save_state`'s output; returns the observations of all envs."""
        physics = np.asarray(saved["physics"])
        if physics.shape != self._batch.state.shape:
            raise ValueError(
                f"saved physics state has shape {physics.shape}, this engine's is "
                f"{self._batch.state.shape} ({self.env_id}, {self.num_envs} envs)"
            )
        self._batch.state[:] = physics
        self._batch.forward()
        self._t = np.asarray(saved["t"], dtype=np.int64).copy()
        self._state = self._snapshot()
        self._obs = self.spec.observation(np, self._state)
        return self._obs.copy()

    def close(self) -> None:
        """Nothing to release; the batch is freed with the engine."""

    def _update_cfrc_ext(self, ids: np.ndarray) -> None:
        # A loop over envs, but only for specs reading cfrc_ext (Ant); it costs a few
        # percent of the step itself.
        data, model = self._scratch, self._model
        for i in ids:
            self._batch.get_data(int(i), data)
            mujoco.mj_rnePostConstraint(model, data)
            self._cfrc_ext[i] = data.cfrc_ext
