"""Task specs reproducing Gymnasium's MuJoCo v5 environments as pure array functions.

Each spec holds the default constructor arguments of the Gymnasium environment and
writes its observation, reward and termination as functions of batched arrays
(leading env axis) over an array namespace ``xp`` (``numpy`` or ``jax.numpy``), so the
CPU batch engine and a later MJX engine share one definition. The operations follow
Gymnasium's source in the same order, so that numpy results are bit-identical to
``gymnasium.make(env_id)``: e.g. the control cost is taken on the unclipped action in
the action's own dtype, as Gymnasium does.

Fields read after a step (``xpos``, ``site_xpos``, ``qfrc_constraint``) are MuJoCo's
derived fields as ``mj_step`` leaves them, one substep behind the state, exactly as
Gymnasium reads them; ``cfrc_ext`` is the value of ``mj_rnePostConstraint`` after the
step, which Gymnasium calls explicitly.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import mujoco
import numpy as np
from gymnasium.envs.registration import EnvSpec

from iwbc.errors import UserError

Array = Any
"""A numpy or jax array."""

ArrayNamespace = Any
"""``numpy`` or ``jax.numpy``."""


class SimState(NamedTuple):
    """Batched simulation arrays a spec reads, each with a leading env axis.

    Derived fields a spec does not list in ``derived_fields`` are ``None``.
    """

    qpos: Array
    qvel: Array
    xpos: Array | None = None
    site_xpos: Array | None = None
    cfrc_ext: Array | None = None
    qfrc_constraint: Array | None = None
    xipos: Array | None = None
    cinert: Array | None = None
    cvel: Array | None = None
    qfrc_actuator: Array | None = None


def gymnasium_asset(xml_file: str) -> str:
    """Path of a model XML shipped with Gymnasium, the one its environments load."""
    import gymnasium.envs.mujoco as gym_mujoco

    return os.path.join(os.path.dirname(gym_mujoco.__file__), "assets", xml_file)


@functools.cache
def _load_model(path: str) -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_path(path)


@dataclass(frozen=True)
class TaskSpec:
    """Base of the task specs: the parts every Gymnasium MuJoCo task has."""

    env_id: ClassVar[str]
    xml_file: ClassVar[str]
    # Other model files Gymnasium ships for the task with the same bodies, joints, sites and
    # actuators (physical parameters alone differ), which an env's ``xml_file`` may name.
    other_models: ClassVar[tuple[str, ...]] = ()
    derived_fields: ClassVar[tuple[str, ...]] = ()
    """MjData fields besides qpos/qvel that the spec's functions read."""
    mjx_unsupported: ClassVar[str | None] = None
    """Why MJX cannot run the task's model, where it cannot (the batch engine runs it)."""
    normal_qvel_noise: ClassVar[bool] = False
    """Whether :meth:`reset_state`'s noise on qvel is Gaussian (else uniform, as on qpos)."""

    frame_skip: int = 1
    max_episode_steps: int = 1000
    model_file: str | None = None
    """One of ``other_models`` to load instead of ``xml_file``; None loads ``xml_file``."""

    def model(self) -> mujoco.MjModel:
        """The compiled model (cached and shared: copy it before editing)."""
        return _load_model(gymnasium_asset(self.model_file or self.xml_file))

    def dt(self) -> float:
        """Seconds per env step, computed as Gymnasium's ``MujocoEnv.dt``."""
        return self.model().opt.timestep * self.frame_skip

    def action_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) float32, Gymnasium's action space: the actuators' ctrlrange."""
        low, high = self.model().actuator_ctrlrange.copy().astype(np.float32).T
        return low, high

    @property
    def obs_dim(self) -> int:
        m = self.model()
        state = SimState(
            qpos=np.zeros((1, m.nq)),
            qvel=np.zeros((1, m.nv)),
            xpos=np.zeros((1, m.nbody, 3)),
            site_xpos=np.zeros((1, m.nsite, 3)),
            cfrc_ext=np.zeros((1, m.nbody, 6)),
            qfrc_constraint=np.zeros((1, m.nv)),
            xipos=np.zeros((1, m.nbody, 3)),
            cinert=np.zeros((1, m.nbody, 10)),
            cvel=np.zeros((1, m.nbody, 6)),
            qfrc_actuator=np.zeros((1, m.nv)),
        )
        return int(self.observation(np, state).shape[-1])

    def observation(self, xp: ArrayNamespace, s: SimState) -> Array:
        """Observations [n, obs_dim] at state ``s``."""
        raise NotImplementedError

    def reward(
        self, xp: ArrayNamespace, before: SimState, after: SimState, action: Array, dt: float
    ) -> Array:
        """Rewards [n] of a step from ``before`` to ``after`` under ``action`` [n, act_dim]."""
        raise NotImplementedError

    def terminated(self, xp: ArrayNamespace, s: SimState) -> Array:
        """Termination flags [n] at the state after a step."""
        return xp.zeros(s.qpos.shape[:1], dtype=bool)

    def reset_state(
        self, rng: np.random.Generator, init_qpos: np.ndarray, init_qvel: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One env's initial (qpos, qvel): Gymnasium's ``reset_model`` draws from ``rng``.

        Most tasks add noise of the spec's ``reset_noise_scale`` (:func:`_noisy_reset`, on
        qvel Gaussian where ``normal_qvel_noise``); tasks that reset otherwise override this.
        """
        return _noisy_reset(
            rng, init_qpos, init_qvel, self.reset_noise_scale, normal_qvel=self.normal_qvel_noise
        )


def _ctrl_cost(xp: ArrayNamespace, weight: float, action: Array) -> Array:
    # in the action's dtype, as Gymnasium's np.sum(np.square(action)) on a float32 action
    return weight * xp.sum(xp.square(action), axis=-1)


def _noisy_reset(
    rng: np.random.Generator,
    init_qpos: np.ndarray,
    init_qvel: np.ndarray,
    scale: float,
    *,
    normal_qvel: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Gymnasium's reset_model: qpos ± U(scale), then qvel ± U(scale) or + scale·N(0, 1).

    The draws are made in this order from ``rng`` so seeds give Gymnasium's initial states.
    """
    qpos = init_qpos + rng.uniform(low=-scale, high=scale, size=init_qpos.size)
    if normal_qvel:
        qvel = init_qvel + scale * rng.standard_normal(init_qvel.size)
    else:
        qvel = init_qvel + rng.uniform(low=-scale, high=scale, size=init_qvel.size)
    return qpos, qvel


def _ends_unhealthy(xp: ArrayNamespace, healthy: Array, terminate: bool) -> Array:
    """Gymnasium's ``terminated = not is_healthy and terminate_when_unhealthy``."""
    return xp.logical_and(xp.logical_not(healthy), terminate)


def _distance(xp: ArrayNamespace, vec: Array) -> Array:
    """Euclidean norm over the last axis, Gymnasium's ``np.linalg.norm`` of a 3-vector."""
    return xp.sqrt(xp.sum(vec * vec, axis=-1))


def _in_open(xp: ArrayNamespace, x: Array, bounds: tuple[float, float]) -> Array:
    return xp.logical_and(bounds[0] < x, x < bounds[1])


@dataclass(frozen=True)
class _PlanarLocomotionSpec(TaskSpec):
    """Shared by Hopper and Walker2d: forward + healthy - ctrl reward, clipped qvel in obs."""

    frame_skip: int = 4
    forward_reward_weight: float = 1.0
    ctrl_cost_weight: float = 1e-3
    healthy_reward: float = 1.0
    terminate_when_unhealthy: bool = True
    reset_noise_scale: float = 5e-3
    exclude_current_positions_from_observation: bool = True

    def is_healthy(self, xp: ArrayNamespace, s: SimState) -> Array:
        raise NotImplementedError

    def observation(self, xp: ArrayNamespace, s: SimState) -> Array:
        position = s.qpos[:, 1:] if self.exclude_current_positions_from_observation else s.qpos
        return xp.concatenate([position, xp.clip(s.qvel, -10, 10)], axis=-1)

    def reward(
        self, xp: ArrayNamespace, before: SimState, after: SimState, action: Array, dt: float
    ) -> Array:
        x_velocity = (after.qpos[:, 0] - before.qpos[:, 0]) / dt
        forward_reward = self.forward_reward_weight * x_velocity
        healthy_reward = self.is_healthy(xp, after) * self.healthy_reward
        return forward_reward + healthy_reward - _ctrl_cost(xp, self.ctrl_cost_weight, action)

    def terminated(self, xp: ArrayNamespace, s: SimState) -> Array:
        return _ends_unhealthy(xp, self.is_healthy(xp, s), self.terminate_when_unhealthy)


@dataclass(frozen=True)
class HopperSpec(_PlanarLocomotionSpec):
    """``Hopper-v5`` with its default arguments."""

    env_id: ClassVar[str] = "Hopper-v5"
    xml_file: ClassVar[str] = "hopper.xml"

    healthy_state_range: tuple[float, float] = (-100.0, 100.0)
    healthy_z_range: tuple[float, float] = (0.7, math.inf)
    healthy_angle_range: tuple[float, float] = (-0.2, 0.2)

    def is_healthy(self, xp: ArrayNamespace, s: SimState) -> Array:
        # Gymnasium: state_vector()[2:], i.e. qpos[2:] and the unclipped qvel
        state = xp.concatenate([s.qpos[:, 2:], s.qvel], axis=-1)
        healthy_state = xp.all(_in_open(xp, state, self.healthy_state_range), axis=-1)
        healthy_z = _in_open(xp, s.qpos[:, 1], self.healthy_z_range)
        healthy_angle = _in_open(xp, s.qpos[:, 2], self.healthy_angle_range)
        return xp.logical_and(xp.logical_and(healthy_state, healthy_z), healthy_angle)


@dataclass(frozen=True)
class Walker2dSpec(_PlanarLocomotionSpec):
    """``Walker2d-v5`` with its default arguments."""

    env_id: ClassVar[str] = "Walker2d-v5"
    xml_file: ClassVar[str] = "walker2d_v5.xml"
    # Gym's Walker2d-v2 to v4 model (right foot friction 0.9, not v5's 1.9), on which D4RL's
    # Walker2d data was recorded.
    other_models: ClassVar[tuple[str, ...]] = ("walker2d.xml",)

    healthy_z_range: tuple[float, float] = (0.8, 2.0)
    healthy_angle_range: tuple[float, float] = (-1.0, 1.0)

    def is_healthy(self, xp: ArrayNamespace, s: SimState) -> Array:
        healthy_z = _in_open(xp, s.qpos[:, 1], self.healthy_z_range)
        healthy_angle = _in_open(xp, s.qpos[:, 2], self.healthy_angle_range)
        return xp.logical_and(healthy_z, healthy_angle)


@dataclass(frozen=True)
class _ForwardSpeedSpec(TaskSpec):
    """Shared by HalfCheetah and Swimmer: forward speed minus control cost; never terminates."""

    # qpos entries the observation leaves out (the x position; Swimmer's x and y)
    excluded_positions: ClassVar[int]

    forward_reward_weight: float = 1.0
    ctrl_cost_weight: float = 0.1
    reset_noise_scale: float = 0.1
    exclude_current_positions_from_observation: bool = True

    def observation(self, xp: ArrayNamespace, s: SimState) -> Array:
        skip = self.excluded_positions if self.exclude_current_positions_from_observation else 0
        return xp.concatenate([s.qpos[:, skip:], s.qvel], axis=-1)

    def reward(
        self, xp: ArrayNamespace, before: SimState, after: SimState, action: Array, dt: float
    ) -> Array:
        x_velocity = (after.qpos[:, 0] - before.qpos[:, 0]) / dt
        forward_reward = self.forward_reward_weight * x_velocity
        return forward_reward - _ctrl_cost(xp, self.ctrl_cost_weight, action)


@dataclass(frozen=True)
class HalfCheetahSpec(_ForwardSpeedSpec):
    """``HalfCheetah-v5`` with its default arguments."""

    env_id: ClassVar[str] = "HalfCheetah-v5"
    xml_file: ClassVar[str] = "half_cheetah.xml"
    excluded_positions: ClassVar[int] = 1
    normal_qvel_noise: ClassVar[bool] = True

    frame_skip: int = 5


@dataclass(frozen=True)
class AntSpec(TaskSpec):
    """``Ant-v5`` with its default arguments, contact forces included in the observation."""

    env_id: ClassVar[str] = "Ant-v5"
    xml_file: ClassVar[str] = "ant.xml"
    derived_fields: ClassVar[tuple[str, ...]] = ("xpos", "cfrc_ext")
    normal_qvel_noise: ClassVar[bool] = True

    frame_skip: int = 5
    forward_reward_weight: float = 1.0
    ctrl_cost_weight: float = 0.5
    contact_cost_weight: float = 5e-4
    healthy_reward: float = 1.0
    main_body: int = 1
    terminate_when_unhealthy: bool = True
    healthy_z_range: tuple[float, float] = (0.2, 1.0)
    contact_force_range: tuple[float, float] = (-1.0, 1.0)
    reset_noise_scale: float = 0.1
    exclude_current_positions_from_observation: bool = True
    include_cfrc_ext_in_observation: bool = True

    def contact_forces(self, xp: ArrayNamespace, s: SimState) -> Array:
        return xp.clip(s.cfrc_ext, *self.contact_force_range)

    def is_healthy(self, xp: ArrayNamespace, s: SimState) -> Array:
        finite = xp.logical_and(
            xp.all(xp.isfinite(s.qpos), axis=-1), xp.all(xp.isfinite(s.qvel), axis=-1)
        )
        z = s.qpos[:, 2]
        lo, hi = self.healthy_z_range
        return xp.logical_and(finite, xp.logical_and(lo <= z, z <= hi))

    def observation(self, xp: ArrayNamespace, s: SimState) -> Array:
        n = s.qpos.shape[0]
        position = s.qpos[:, 2:] if self.exclude_current_positions_from_observation else s.qpos
        parts = [position, s.qvel]
        if self.include_cfrc_ext_in_observation:
            parts.append(xp.reshape(self.contact_forces(xp, s)[:, 1:], (n, -1)))
        return xp.concatenate(parts, axis=-1)

    def reward(
        self, xp: ArrayNamespace, before: SimState, after: SimState, action: Array, dt: float
    ) -> Array:
        n = after.qpos.shape[0]
        b = self.main_body
        x_velocity = (after.xpos[:, b, 0] - before.xpos[:, b, 0]) / dt
        forward_reward = x_velocity * self.forward_reward_weight
        healthy_reward = self.is_healthy(xp, after) * self.healthy_reward
        rewards = forward_reward + healthy_reward
        ctrl_cost = _ctrl_cost(xp, self.ctrl_cost_weight, action)
        # summed flat per env, as Gymnasium's np.sum over the (nbody, 6) array
        forces = xp.reshape(self.contact_forces(xp, after), (n, -1))
        contact_cost = self.contact_cost_weight * xp.sum(xp.square(forces), axis=-1)
        return rewards - (ctrl_cost + contact_cost)

    def terminated(self, xp: ArrayNamespace, s: SimState) -> Array:
        return _ends_unhealthy(xp, self.is_healthy(xp, s), self.terminate_when_unhealthy)


@dataclass(frozen=True)
class InvertedDoublePendulumSpec(TaskSpec):
    """``InvertedDoublePendulum-v5``: ends when the tip site drops to y <= 1."""

    env_id: ClassVar[str] = "InvertedDoublePendulum-v5"
    xml_file: ClassVar[str] = "inverted_double_pendulum.xml"
    derived_fields: ClassVar[tuple[str, ...]] = ("site_xpos", "qfrc_constraint")
    normal_qvel_noise: ClassVar[bool] = True

    frame_skip: int = 5
    healthy_reward: float = 10.0
    reset_noise_scale: float = 0.1

    def observation(self, xp: ArrayNamespace, s: SimState) -> Array:
        return xp.concatenate(
            [
                s.qpos[:, :1],
                xp.sin(s.qpos[:, 1:]),
                xp.cos(s.qpos[:, 1:]),
                xp.clip(s.qvel, -10, 10),
                xp.clip(s.qfrc_constraint, -10, 10)[:, :1],
            ],
            axis=-1,
        )

    def terminated(self, xp: ArrayNamespace, s: SimState) -> Array:
        return s.site_xpos[:, 0, 2] <= 1

    def reward(
        self, xp: ArrayNamespace, before: SimState, after: SimState, action: Array, dt: float
    ) -> Array:
        x, y = after.site_xpos[:, 0, 0], after.site_xpos[:, 0, 2]
        v1, v2 = after.qvel[:, 1], after.qvel[:, 2]
        dist_penalty = 0.01 * x**2 + (y - 2) ** 2
        vel_penalty = 0.001 * v1**2 + 0.005 * v2**2
        alive_bonus = self.healthy_reward * xp.logical_not(self.terminated(xp, after))
        return alive_bonus - dist_penalty - vel_penalty


@dataclass(frozen=True)
class ReacherSpec(TaskSpec):
    """``Reacher-v5``: 50-step episodes reaching a random target."""

    env_id: ClassVar[str] = "Reacher-v5"
    xml_file: ClassVar[str] = "reacher.xml"
    derived_fields: ClassVar[tuple[str, ...]] = ("xpos",)

    frame_skip: int = 2
    max_episode_steps: int = 50
    reward_dist_weight: float = 1.0
    reward_control_weight: float = 1.0
    fingertip_body: int = 3
    target_body: int = 4

    def _fingertip_to_target(self, s: SimState) -> Array:
        return s.xpos[:, self.fingertip_body] - s.xpos[:, self.target_body]

    def observation(self, xp: ArrayNamespace, s: SimState) -> Array:
        theta = s.qpos[:, :2]
        return xp.concatenate(
            [
                xp.cos(theta),
                xp.sin(theta),
                s.qpos[:, 2:],
                s.qvel[:, :2],
                self._fingertip_to_target(s)[:, :2],
            ],
            axis=-1,
        )

    def reward(
        self, xp: ArrayNamespace, before: SimState, after: SimState, action: Array, dt: float
    ) -> Array:
        vec = self._fingertip_to_target(after)
        reward_dist = -_distance(xp, vec) * self.reward_dist_weight
        reward_ctrl = -xp.sum(xp.square(action), axis=-1) * self.reward_control_weight
        return reward_dist + reward_ctrl

    def reset_state(
        self, rng: np.random.Generator, init_qpos: np.ndarray, init_qvel: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        qpos = rng.uniform(low=-0.1, high=0.1, size=init_qpos.size) + init_qpos
        while True:
            goal = rng.uniform(low=-0.2, high=0.2, size=2)
            if np.linalg.norm(goal) < 0.2:
                break
        qpos[-2:] = goal
        qvel = init_qvel + rng.uniform(low=-0.005, high=0.005, size=init_qvel.size)
        qvel[-2:] = 0
        return qpos, qvel


@dataclass(frozen=True)
class SwimmerSpec(_ForwardSpeedSpec):
    """``Swimmer-v5`` with its default arguments."""

    env_id: ClassVar[str] = "Swimmer-v5"
    xml_file: ClassVar[str] = "swimmer.xml"
    excluded_positions: ClassVar[int] = 2

    frame_skip: int = 4
    ctrl_cost_weight: float = 1e-4


@dataclass(frozen=True)
class InvertedPendulumSpec(TaskSpec):
    """``InvertedPendulum-v5``: reward 1 a step until the pole leans past 0.2 rad."""

    env_id: ClassVar[str] = "InvertedPendulum-v5"
    xml_file: ClassVar[str] = "inverted_pendulum.xml"

    frame_skip: int = 2
    reset_noise_scale: float = 0.01

    def observation(self, xp: ArrayNamespace, s: SimState) -> Array:
        return xp.concatenate([s.qpos, s.qvel], axis=-1)

    def terminated(self, xp: ArrayNamespace, s: SimState) -> Array:
        obs = self.observation(xp, s)
        finite = xp.all(xp.isfinite(obs), axis=-1)
        return xp.logical_or(xp.logical_not(finite), xp.abs(obs[:, 1]) > 0.2)

    def reward(
        self, xp: ArrayNamespace, before: SimState, after: SimState, action: Array, dt: float
    ) -> Array:
        return xp.logical_not(self.terminated(xp, after)).astype(float)


@dataclass(frozen=True)
class PusherSpec(TaskSpec):
    """``Pusher-v5``: a 7-DoF arm pushes a cylinder to a goal, 100-step episodes."""

    env_id: ClassVar[str] = "Pusher-v5"
    xml_file: ClassVar[str] = "pusher_v5.xml"
    other_models: ClassVar[tuple[str, ...]] = ("pusher.xml",)
    derived_fields: ClassVar[tuple[str, ...]] = ("xpos",)
    # Bodies of Gymnasium's get_body_com("tips_arm"), ("object") and ("goal"), in both models.
    tips_arm_body: ClassVar[int] = 10
    object_body: ClassVar[int] = 11
    goal_body: ClassVar[int] = 12

    frame_skip: int = 5
    max_episode_steps: int = 100
    reward_near_weight: float = 0.5
    reward_dist_weight: float = 1.0
    reward_control_weight: float = 0.1

    def observation(self, xp: ArrayNamespace, s: SimState) -> Array:
        bodies = (self.tips_arm_body, self.object_body, self.goal_body)
        return xp.concatenate(
            [s.qpos[:, :7], s.qvel[:, :7], *(s.xpos[:, b] for b in bodies)], axis=-1
        )

    def reward(
        self, xp: ArrayNamespace, before: SimState, after: SimState, action: Array, dt: float
    ) -> Array:
        target = after.xpos[:, self.object_body]
        near = target - after.xpos[:, self.tips_arm_body]
        dist = target - after.xpos[:, self.goal_body]
        reward_near = -_distance(xp, near) * self.reward_near_weight
        reward_dist = -_distance(xp, dist) * self.reward_dist_weight
        reward_ctrl = -xp.sum(xp.square(action), axis=-1) * self.reward_control_weight
        return reward_dist + reward_ctrl + reward_near

    def reset_state(
        self, rng: np.random.Generator, init_qpos: np.ndarray, init_qvel: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        qpos = init_qpos.copy()
        goal = np.zeros(2)
        while True:
            cylinder = np.concatenate(
                [rng.uniform(low=-0.3, high=0, size=1), rng.uniform(low=-0.2, high=0.2, size=1)]
            )
            if np.linalg.norm(cylinder - goal) > 0.17:
                break
        qpos[-4:-2] = cylinder
        qpos[-2:] = goal
        qvel = init_qvel + rng.uniform(low=-0.005, high=0.005, size=init_qvel.size)
        qvel[-4:] = 0
        return qpos, qvel


@dataclass(frozen=True)
class _HumanoidBodySpec(TaskSpec):
    """Shared by Humanoid and HumanoidStandup (one body, two models): the observation, the
    reset and what MJX lacks."""

    derived_fields: ClassVar[tuple[str, ...]] = (
        "xipos",
        "cinert",
        "cvel",
        "qfrc_actuator",
        "cfrc_ext",
    )
    mjx_unsupported: ClassVar[str | None] = (
        "its model uses MuJoCo's PGS solver, which MJX does not implement"
    )

    frame_skip: int = 5
    reset_noise_scale: float = 1e-2
    exclude_current_positions_from_observation: bool = True
    include_cinert_in_observation: bool = True
    include_cvel_in_observation: bool = True
    include_qfrc_actuator_in_observation: bool = True
    include_cfrc_ext_in_observation: bool = True

    def observation(self, xp: ArrayNamespace, s: SimState) -> Array:
        n = s.qpos.shape[0]
        position = s.qpos[:, 2:] if self.exclude_current_positions_from_observation else s.qpos
        parts = [position, s.qvel]
        if self.include_cinert_in_observation:
            parts.append(xp.reshape(s.cinert[:, 1:], (n, -1)))
        if self.include_cvel_in_observation:
            parts.append(xp.reshape(s.cvel[:, 1:], (n, -1)))
        if self.include_qfrc_actuator_in_observation:
            parts.append(s.qfrc_actuator[:, 6:])
        if self.include_cfrc_ext_in_observation:
            parts.append(xp.reshape(s.cfrc_ext[:, 1:], (n, -1)))
        return xp.concatenate(parts, axis=-1)


@dataclass(frozen=True)
class HumanoidSpec(_HumanoidBodySpec):
    """``Humanoid-v5`` with its default arguments: the centre of mass's forward speed, a
    healthy bonus while the torso's height is in (1, 2), control and contact costs."""

    env_id: ClassVar[str] = "Humanoid-v5"
    xml_file: ClassVar[str] = "humanoid.xml"

    forward_reward_weight: float = 1.25
    ctrl_cost_weight: float = 0.1
    contact_cost_weight: float = 5e-7
    contact_cost_range: tuple[float, float] = (-math.inf, 10.0)
    healthy_reward: float = 5.0
    terminate_when_unhealthy: bool = True
    healthy_z_range: tuple[float, float] = (1.0, 2.0)

    def is_healthy(self, xp: ArrayNamespace, s: SimState) -> Array:
        return _in_open(xp, s.qpos[:, 2], self.healthy_z_range)

    def mass_center_x(self, xp: ArrayNamespace, s: SimState) -> Array:
        """Gymnasium's ``mass_center(model, data)[0]``: body masses times ``xipos``."""
        mass = self.model().body_mass
        return (xp.einsum("b,nbj->nj", mass, s.xipos) / mass.sum())[:, 0]

    def reward(
        self, xp: ArrayNamespace, before: SimState, after: SimState, action: Array, dt: float
    ) -> Array:
        n = after.qpos.shape[0]
        x_velocity = (self.mass_center_x(xp, after) - self.mass_center_x(xp, before)) / dt
        forward_reward = self.forward_reward_weight * x_velocity
        healthy_reward = self.is_healthy(xp, after) * self.healthy_reward
        # Gymnasium takes the control cost on data.ctrl: the action as MuJoCo's float64
        ctrl_cost = _ctrl_cost(xp, self.ctrl_cost_weight, action.astype(after.qpos.dtype))
        forces = xp.reshape(after.cfrc_ext, (n, -1))
        contact_cost = xp.clip(
            self.contact_cost_weight * xp.sum(xp.square(forces), axis=-1),
            *self.contact_cost_range,
        )
        return forward_reward + healthy_reward - (ctrl_cost + contact_cost)

    def terminated(self, xp: ArrayNamespace, s: SimState) -> Array:
        return _ends_unhealthy(xp, self.is_healthy(xp, s), self.terminate_when_unhealthy)


@dataclass(frozen=True)
class HumanoidStandupSpec(_HumanoidBodySpec):
    """``HumanoidStandup-v5`` with its default arguments: the torso's height over the
    physics timestep, plus 1, less control and impact costs; it never terminates.

    Gymnasium 1.4 takes ``uph_cost_weight`` and never applies it; the spec does not model
    it, so an env recorded with that argument runs on the Gymnasium engine, as it is."""

    env_id: ClassVar[str] = "HumanoidStandup-v5"
    xml_file: ClassVar[str] = "humanoidstandup.xml"

    ctrl_cost_weight: float = 0.1
    impact_cost_weight: float = 0.5e-6
    impact_cost_range: tuple[float, float] = (-math.inf, 10.0)

    def reward(
        self, xp: ArrayNamespace, before: SimState, after: SimState, action: Array, dt: float
    ) -> Array:
        n = after.qpos.shape[0]
        # Gymnasium divides by model.opt.timestep, not the env step dt
        uphill = after.qpos[:, 2] / self.model().opt.timestep
        ctrl_cost = _ctrl_cost(xp, self.ctrl_cost_weight, action.astype(after.qpos.dtype))
        forces = xp.reshape(after.cfrc_ext, (n, -1))
        impact_cost = xp.clip(
            self.impact_cost_weight * xp.sum(xp.square(forces), axis=-1),
            *self.impact_cost_range,
        )
        return uphill - ctrl_cost - impact_cost + 1


SPECS: dict[str, TaskSpec] = {
    cls.env_id: cls()
    for cls in (
        HopperSpec,
        HalfCheetahSpec,
        Walker2dSpec,
        AntSpec,
        InvertedDoublePendulumSpec,
        ReacherSpec,
        SwimmerSpec,
        InvertedPendulumSpec,
        PusherSpec,
        HumanoidSpec,
        HumanoidStandupSpec,
    )
}
"""The tasks with a built-in spec, by Gymnasium env id, with default arguments."""


def get_spec(env_id: str) -> TaskSpec:
    """The built-in spec of ``env_id``; UserError naming the ids that have one."""
    try:
        return SPECS[env_id]
    except KeyError:
        raise UserError(
            f"no built-in spec for {env_id!r} (ids with one: {', '.join(SPECS)}); evaluate it "
            "with engine 'gymnasium' (or 'auto', which picks it)"
        ) from None


Env = str | EnvSpec
"""An environment to evaluate on: a Gymnasium id (its default arguments), or the
``gymnasium.envs.registration.EnvSpec`` a dataset records, with its arguments and time limit."""

# Arguments of Gymnasium's MuJoCo envs that change how they render, not what they simulate.
RENDERING_ARGUMENTS = frozenset(
    {
        "render_mode",
        "width",
        "height",
        "camera_id",
        "camera_name",
        "default_camera_config",
        "visual_options",
        "max_geom",
    }
)


def env_name(env: Env) -> str:
    """The Gymnasium id of ``env``."""
    return env if isinstance(env, str) else env.id


def spec_for(env: Env) -> TaskSpec:
    """The built-in spec that reproduces ``env``: an id with its default arguments, or an
    ``EnvSpec`` whose arguments (those the spec models, named as Gymnasium names them) and
    ``max_episode_steps`` it takes on.

    A dataset recorded on, say, ``Hopper-v5`` with ``reset_noise_scale=0.1`` must be scored on
    that env, not on the default one. Whatever no built-in spec reproduces (an unknown id, a
    model file, a wrapper, an argument the spec does not model, no time limit) is a one-line
    UserError naming it; the Gymnasium engine runs such envs as they are.
    """
    if isinstance(env, str):
        return get_spec(env)
    spec = get_spec(env.id)
    fields = {f.name for f in dataclasses.fields(spec)} - {"max_episode_steps", "model_file"}
    changes: dict[str, Any] = {}
    problems = [f"wrapper {w.name}" for w in env.additional_wrappers]
    for name, value in env.kwargs.items():
        if name in RENDERING_ARGUMENTS:
            continue
        if name == "xml_file":
            known = [m for m in (spec.xml_file, *spec.other_models) if _names_model(value, m)]
            if not known:
                problems.append(f"{name}={value!r}")
            elif known[0] != spec.xml_file:
                changes["model_file"] = known[0]
            continue
        try:
            if name not in fields:
                raise TypeError
            changes[name] = _as_field(getattr(spec, name), value)
        except (TypeError, ValueError):
            problems.append(f"{name}={value!r}")
    if env.max_episode_steps is None:
        problems.append("no time limit (max_episode_steps=None)")
    if problems:
        raise UserError(
            f"{env.id} with {', '.join(problems)} has no built-in spec (the batch and MJX "
            f"engines model the default model with arguments {', '.join(sorted(fields))} and a "
            "time limit); evaluate it with engine 'gymnasium'"
        )
    changes["max_episode_steps"] = int(env.max_episode_steps)
    return dataclasses.replace(spec, **changes)


def _names_model(xml_file: object, model: str) -> bool:
    """Whether an env's ``xml_file`` argument is Gymnasium's asset ``model``."""
    return isinstance(xml_file, str) and (
        xml_file == model or os.path.abspath(xml_file) == os.path.abspath(gymnasium_asset(model))
    )


def _as_field(default: object, value: object) -> object:
    """``value`` in the type of the field whose default is ``default``; TypeError if it has
    another kind (a body name where the spec takes an index, a flag given as a number)."""
    if isinstance(default, bool) or isinstance(value, bool):
        if type(default) is not type(value):
            raise TypeError
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple) or len(value) != len(default):
            raise TypeError
        return tuple(float(_as_field(0.0, v)) for v in value)
    if isinstance(default, int):
        if not isinstance(value, int):
            raise TypeError
        return value
    if not isinstance(value, int | float):
        raise TypeError
    return float(value)
