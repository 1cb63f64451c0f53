"""Evaluation on MuJoCo MJX: the task specs stepped by JAX, on GPU when there is one.

The physics is ``mujoco.mjx`` (its JAX implementation) vmapped over envs; observations,
rewards and terminations are the same spec functions as the CPU batch engine, called
with ``xp=jax.numpy``. Reset noise is drawn on the host with numpy exactly as the CPU
engine draws it, so a seed gives the same initial state on both engines.

``mjx_rollout_returns`` runs whole episodes, policy included, inside one compiled
function: a ``lax.while_loop`` over ``lax.scan`` chunks of env steps that stops once
every episode has ended, so no host round trip happens per step. ``MjxEngine`` offers
the step/reset interface of the other engines for code written against ``Engine``;
it pays one device round trip per step.

MJX runs in float32 unless ``jax_enable_x64`` is set, and its constraint solver and
collision code differ from MuJoCo's C ones in detail, so trajectories agree with the
CPU engine closely at first and drift apart in chaotic tasks: compare returns
statistically, not bit for bit. Checked on CPU in float64: InvertedDoublePendulum
(no contacts) matches to 1e-10 over 50 steps; Ant (``cfrc_ext`` from
``mjx.rne_postconstraint``, as Gymnasium calls ``mj_rnePostConstraint``) departs by
O(1) within 5 steps once its legs touch the ground, so MJX contact tasks are only
comparable in distribution (the ``gpu`` tests).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from mujoco import mjx

from iwbc.envs.batch import StepResult, resolve_ids
from iwbc.envs.rollout import RolloutResult
from iwbc.envs.specs import SimState, TaskSpec, get_spec

JaxActFn = Callable[[Any, jax.Array], jax.Array]
"""``act_fn(params, obs)``: float32 observations [n, obs_dim] to actions [n, act_dim]."""

DEFAULT_CHUNK = 25


def initial_states(spec: TaskSpec, seeds: Sequence[int] | np.ndarray) -> tuple[np.ndarray, ...]:
    """(qpos [n, nq], qvel [n, nv]) float64 of one episode per seed, as the CPU engine."""
    model = spec.model()
    init_qpos, init_qvel = model.qpos0.copy(), np.zeros(model.nv)
    pairs = [
        spec.reset_state(np.random.default_rng(int(s)), init_qpos, init_qvel)
        for s in np.asarray(seeds).reshape(-1)
    ]
    qpos = np.stack([p for p, _ in pairs]) if pairs else np.zeros((0, model.nq))
    qvel = np.stack([v for _, v in pairs]) if pairs else np.zeros((0, model.nv))
    return qpos, qvel


class MjxTask:
    """One task's MJX model and its jittable single-env pieces, batched by ``vmap``."""

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self.model = mjx.put_model(spec.model(), impl="jax")
        self.dt = spec.dt()
        self.act_dim = int(spec.action_bounds()[0].size)
        self.obs_dim = spec.obs_dim
        self._rne_post = "cfrc_ext" in spec.derived_fields

    def _sim_state(self, d: mjx.Data) -> SimState:
        fields: dict[str, jax.Array] = {}
        for name in self.spec.derived_fields:
            # cfrc_ext is filled by rne_postconstraint after each step (see step_one)
            fields[name] = d._impl.cfrc_ext if name == "cfrc_ext" else getattr(d, name)
        return SimState(qpos=d.qpos, qvel=d.qvel, **fields)

    def reset_one(self, qpos: jax.Array, qvel: jax.Array) -> mjx.Data:
        """A fresh data at (qpos, qvel) after ``forward``, cfrc_ext zero as after a reset."""
        d = mjx.make_data(self.model)
        dtype = d.qpos.dtype
        d = d.replace(qpos=qpos.astype(dtype), qvel=qvel.astype(dtype))
        # MJX's kinematics writes normalized free-joint quaternions back into qpos;
        # MuJoCo's mj_forward does not, and the first observation shows qpos as drawn
        d = mjx.forward(self.model, d).replace(qpos=qpos.astype(dtype))
        if self._rne_post:
            impl = d._impl.replace(cfrc_ext=jnp.zeros_like(d._impl.cfrc_ext))
            d = d.replace(_impl=impl)
        return d

    def step_one(self, d: mjx.Data, action: jax.Array) -> mjx.Data:
        """One env step (``frame_skip`` physics steps) under ``action``."""
        d = d.replace(ctrl=action.astype(d.ctrl.dtype))
        d = jax.lax.fori_loop(0, self.spec.frame_skip, lambda _, x: mjx.step(self.model, x), d)
        if self._rne_post:
            d = mjx.rne_postconstraint(self.model, d)
        return d

    def reset(self, qpos: jax.Array, qvel: jax.Array) -> mjx.Data:
        """Batched ``reset_one``."""
        return jax.vmap(self.reset_one)(qpos, qvel)

    def step(self, d: mjx.Data, actions: jax.Array) -> mjx.Data:
        """Batched ``step_one``."""
        return jax.vmap(self.step_one)(d, actions)

    def sim_state(self, d: mjx.Data) -> SimState:
        """The batched arrays the spec reads."""
        return jax.vmap(self._sim_state)(d)


def mjx_task(env_id: str) -> MjxTask:
    """The cached MJX task of a built-in spec, one per ``jax_enable_x64`` setting.

    The model's arrays take the float width in force when it is uploaded, so a float32
    model must not serve a float64 run or the reverse.
    """
    return _mjx_task(env_id, bool(jax.config.jax_enable_x64))


@functools.cache
def _mjx_task(env_id: str, x64: bool) -> MjxTask:
    # eager even when first asked for inside a trace, so no tracer is cached
    with jax.ensure_compile_time_eval():
        return MjxTask(get_spec(env_id))


def _where_rows(mask: jax.Array, new: Any, old: Any) -> Any:
    def pick(a: jax.Array, b: jax.Array) -> jax.Array:
        return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, new, old)


class _Carry(NamedTuple):
    data: mjx.Data
    state: SimState
    t: jax.Array
    done: jax.Array
    returns: jax.Array
    lengths: jax.Array


@functools.partial(jax.jit, static_argnames=("env_id", "act_fn", "chunk"))
def _rollout(
    env_id: str,
    act_fn: JaxActFn,
    params: Any,
    qpos: jax.Array,
    qvel: jax.Array,
    max_steps: jax.Array,
    chunk: int,
) -> tuple[jax.Array, jax.Array]:
    task = mjx_task(env_id)
    spec = task.spec
    n = qpos.shape[0]
    data = task.reset(qpos, qvel)
    carry = _Carry(
        data=data,
        state=task.sim_state(data),
        t=jnp.zeros((), jnp.int32),
        done=jnp.zeros(n, bool),
        returns=jnp.zeros(n, data.qpos.dtype),
        lengths=jnp.zeros(n, jnp.int32),
    )

    def env_step(c: _Carry, _: None) -> tuple[_Carry, None]:
        obs = spec.observation(jnp, c.state).astype(jnp.float32)
        actions = act_fn(params, obs)
        data = task.step(c.data, actions)
        after = task.sim_state(data)
        reward = spec.reward(jnp, c.state, after, actions, task.dt)
        active = jnp.logical_not(c.done)
        t = c.t + 1
        ended = jnp.logical_or(spec.terminated(jnp, after), t >= max_steps)
        c = _Carry(
            data=data,
            state=after,
            t=t,
            done=jnp.logical_or(c.done, ended),
            returns=c.returns + jnp.where(active, reward, 0).astype(c.returns.dtype),
            lengths=c.lengths + active.astype(jnp.int32),
        )
        return c, None

    def cond(c: _Carry) -> jax.Array:
        return jnp.logical_not(jnp.all(c.done))

    def body(c: _Carry) -> _Carry:
        return jax.lax.scan(env_step, c, None, length=chunk)[0]

    out = jax.lax.while_loop(cond, body, carry)
    return out.returns, out.lengths


def mjx_rollout_returns(
    env_id: str,
    act_fn: JaxActFn,
    params: Any,
    seeds: Sequence[int] | np.ndarray,
    *,
    num_envs: int | None = None,
    chunk: int = DEFAULT_CHUNK,
    max_steps: int | None = None,
) -> RolloutResult:
    """One episode per seed on MJX, scored as ``rollout_returns`` scores them.

    ``act_fn(params, obs)`` must be a jax function (it is traced into the rollout; pass
    the same function object each call to reuse the compiled rollout). Episodes run
    ``num_envs`` at a time (default: all seeds at once); the last group is padded with
    repeated seeds whose results are dropped, so every group reuses one compilation.
    Steps run in scans of ``chunk`` env steps, checked for "all ended" between scans;
    envs whose episode has ended keep simulating but add nothing. ``max_steps``
    (default the spec's ``max_episode_steps``) truncates episodes earlier, e.g. for
    benchmarks; changing it does not recompile.
    """
    spec = get_spec(env_id)
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    n = seeds.size
    if n == 0:
        return RolloutResult(np.zeros(0), np.zeros(0, dtype=np.int64))
    width = n if num_envs is None else min(n, num_envs)
    if width < 1:
        raise ValueError(f"num_envs must be at least 1, got {num_envs}")
    horizon = spec.max_episode_steps if max_steps is None else max_steps
    if horizon < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    mjx_task(env_id)
    returns, lengths = [], []
    for start in range(0, n, width):
        group = seeds[start : start + width]
        padded = np.resize(group, width)
        qpos, qvel = initial_states(spec, padded)
        r, length = _rollout(
            env_id, act_fn, params, jnp.asarray(qpos), jnp.asarray(qvel), horizon, chunk
        )
        returns.append(np.asarray(r, dtype=np.float64)[: group.size])
        lengths.append(np.asarray(length, dtype=np.int64)[: group.size])
    return RolloutResult(np.concatenate(returns), np.concatenate(lengths))


class MjxEngine:
    """``num_envs`` envs of one task on MJX behind the ``Engine`` step/reset interface.

    Same contract as ``BatchEngine`` (no auto-reset; envs left out of a step keep their
    state and report reward 0), but each call is a device round trip: for whole
    evaluations prefer ``mjx_rollout_returns``, which keeps the loop on the device.
    """

    def __init__(self, spec: TaskSpec, num_envs: int) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        self.spec = spec
        self.env_id = spec.env_id
        self.num_envs = num_envs
        self.max_episode_steps = spec.max_episode_steps
        self.action_low, self.action_high = spec.action_bounds()
        self.act_dim = int(self.action_low.size)
        self.obs_dim = spec.obs_dim
        self._task = mjx_task(spec.env_id) if get_spec(spec.env_id) == spec else MjxTask(spec)
        self._t = np.zeros(num_envs, dtype=np.int64)
        qpos, qvel = initial_states(spec, np.zeros(num_envs, dtype=np.int64))
        self._reset_fn = jax.jit(self._reset_rows)
        self._step_fn = jax.jit(self._step_rows)
        blank = jax.jit(jax.vmap(lambda _: mjx.make_data(self._task.model)))(jnp.arange(num_envs))
        self._data, obs = self._reset_fn(
            blank, jnp.asarray(qpos), jnp.asarray(qvel), jnp.ones(num_envs, bool)
        )
        self._obs = np.array(obs, dtype=np.float64)

    def _reset_rows(
        self, data: mjx.Data, qpos: jax.Array, qvel: jax.Array, mask: jax.Array
    ) -> tuple[mjx.Data, jax.Array]:
        data = _where_rows(mask, self._task.reset(qpos, qvel), data)
        return data, self.spec.observation(jnp, self._task.sim_state(data))

    def _step_rows(
        self, data: mjx.Data, actions: jax.Array, mask: jax.Array
    ) -> tuple[mjx.Data, jax.Array, jax.Array, jax.Array]:
        before = self._task.sim_state(data)
        stepped = self._task.step(data, actions)
        after = self._task.sim_state(stepped)
        obs = self.spec.observation(jnp, after)
        reward = self.spec.reward(jnp, before, after, actions, self._task.dt)
        terminated = self.spec.terminated(jnp, after)
        return _where_rows(mask, stepped, data), obs, reward, terminated

    def reset(self, seeds: Sequence[int] | np.ndarray, ids: np.ndarray | None = None) -> np.ndarray:
        """Reset envs ``ids`` (default all) with episode seeds ``seeds``; all observations."""
        ids = resolve_ids(ids, self.num_envs)
        seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
        if seeds.size != ids.size:
            raise ValueError(f"got {seeds.size} seeds for {ids.size} envs")
        if ids.size == 0:
            return self._obs.copy()
        qpos_new, qvel_new = initial_states(self.spec, seeds)
        qpos, qvel = initial_states(self.spec, np.zeros(self.num_envs, dtype=np.int64))
        qpos[ids], qvel[ids] = qpos_new, qvel_new
        mask = np.zeros(self.num_envs, dtype=bool)
        mask[ids] = True
        self._data, obs = self._reset_fn(
            self._data, jnp.asarray(qpos), jnp.asarray(qvel), jnp.asarray(mask)
        )
        obs = np.array(obs, dtype=np.float64)
        self._obs[mask] = obs[mask]
        self._t[ids] = 0
        return self._obs.copy()

    def step(self, actions: np.ndarray, ids: np.ndarray | None = None) -> StepResult:
        """Apply ``actions`` [num_envs, act_dim] for one env step to envs ``ids`` (all)."""
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs, self.act_dim):
            raise ValueError(
                f"actions must have shape {(self.num_envs, self.act_dim)}, got {actions.shape}"
            )
        ids = resolve_ids(ids, self.num_envs)
        mask = np.zeros(self.num_envs, dtype=bool)
        mask[ids] = True
        self._data, obs, reward, terminated = self._step_fn(
            self._data, jnp.asarray(actions), jnp.asarray(mask)
        )
        self._t[ids] += 1
        idle = ~mask
        obs = np.array(obs, dtype=np.float64)
        obs[idle] = self._obs[idle]
        reward = np.where(idle, 0.0, np.asarray(reward, dtype=np.float64))
        terminated = np.asarray(terminated) & mask
        truncated = (self._t >= self.max_episode_steps) & mask
        self._obs = obs
        return StepResult(obs.copy(), reward, terminated, truncated)

    def close(self) -> None:
        """Nothing to release; device buffers are freed with the engine."""
