"""Evaluation on MuJoCo MJX: the task specs stepped by JAX, on GPU when there is one.

The physics is ``mujoco.mjx`` (its JAX implementation) vmapped over envs; observations,
rewards and terminations are the same spec functions as the CPU batch engine, called
with ``xp=jax.numpy``. Reset noise is drawn on the host with numpy exactly as the CPU
engine draws it, so a seed gives the same initial state on both engines.

``mjx_rollout_returns`` runs a whole evaluation, policy included, inside one compiled
function: a ``lax.while_loop`` over ``lax.scan`` chunks of env steps that refills
finished envs with the next episode's initial state and stops once every episode has
ended, so no host round trip happens per step. ``MjxEngine`` offers
the step/reset interface of the other engines for code written against ``Engine``;
it pays one device round trip per step.

MJX runs in float32 unless ``jax_enable_x64`` is set. Checked on CPU in float64 against
MuJoCo's C engine of the same release (``mujoco`` and ``mujoco-mjx`` are pinned
together): InvertedDoublePendulum, Hopper, Walker2d and HalfCheetah agree to 1e-7 or
better over 50 steps through contacts and falls; Swimmer, InvertedPendulum and Pusher to 1e-12
(Pusher's rewards to 2e-7, their control cost summed in float32). Ant does not: MJX orients a
capsule-plane contact's tangent frame along the plane's axes where MuJoCo orients it
along the capsule, and Ant-v5's pyramidal friction cone depends on that frame, so
trajectories part by O(1) from the first ground contact. With an elliptic cone its
steps agree to the solver's tolerance (``cfrc_ext`` from ``mjx.rne_postconstraint``,
as Gymnasium calls ``mj_rnePostConstraint``). In float32, and for Ant always, compare
returns over many episodes, not trajectories. Humanoid's model uses MuJoCo's PGS solver, which
MJX does not implement, so Humanoid stays on the batch engine (``TaskSpec.mjx_unsupported``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from iwbc.envs.engine import StepResult, check_num_envs, checked_actions, reset_targets, resolve_ids
from iwbc.envs.rollout import RolloutResult
from iwbc.envs.specs import Env, SimState, TaskSpec, spec_for

# MjData fields MJX's JAX implementation keeps in ``Data._impl`` (read on ``Data`` they are
# deprecated).
_IMPL_FIELDS = frozenset({"cfrc_ext", "cinert"})

# What mujoco.mjx prints (with print, on stdout) on import when its optional Warp backend, a
# GPU-only alternative iwbc never uses, is not installed.
BACKEND_NOISE = ("Failed to import warp:", "Failed to import mujoco_warp:")


@contextlib.contextmanager
def without_backend_noise() -> Iterator[None]:
    """Drop the BACKEND_NOISE lines printed inside the block; anything else printed still
    reaches stdout, and warnings (stderr) are untouched."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            yield
    finally:
        for line in printed.getvalue().splitlines(keepends=True):
            if not line.startswith(BACKEND_NOISE):
                sys.stdout.write(line)


with without_backend_noise():
    from mujoco import mjx

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
            fields[name] = getattr(d._impl if name in _IMPL_FIELDS else d, name)
        return SimState(qpos=d.qpos, qvel=d.qvel, **fields)

    def data_at(self, qpos: jax.Array, qvel: jax.Array) -> mjx.Data:
        """A fresh data at (qpos, qvel) before ``forward``: all ``step_one`` needs, since
        ``mjx.step`` runs ``forward`` first and ``forward`` leaves the warmstart alone."""
        d = mjx.make_data(self.model)
        dtype = d.qpos.dtype
        return d.replace(qpos=qpos.astype(dtype), qvel=qvel.astype(dtype))

    def reset_one(self, qpos: jax.Array, qvel: jax.Array) -> mjx.Data:
        """``data_at``, then ``forward`` where the spec reads derived fields (cfrc_ext zero
        as after a reset). Tasks that see only qpos and qvel skip it: a second ``forward``
        in a rollout's graph costs a third of the graph's compile time."""
        d = self.data_at(qpos, qvel)
        if not self.spec.derived_fields:
            return d
        dtype = d.qpos.dtype
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


def mjx_task(spec: TaskSpec) -> MjxTask:
    """The cached MJX task of a spec, one per ``jax_enable_x64`` setting.

    The model's arrays take the float width in force when it is uploaded, so a float32
    model must not serve a float64 run or the reverse.
    """
    return _mjx_task(spec, bool(jax.config.jax_enable_x64))


@functools.cache
def _mjx_task(spec: TaskSpec, x64: bool) -> MjxTask:
    # eager even when first asked for inside a trace, so no tracer is cached
    with jax.ensure_compile_time_eval():
        return MjxTask(spec)


def _where_rows(mask: jax.Array, new: Any, old: Any) -> Any:
    def pick(a: jax.Array, b: jax.Array) -> jax.Array:
        return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, new, old)


class _Carry(NamedTuple):
    data: mjx.Data
    state: SimState
    episode: jax.Array  # [n] episode each env runs, -1 once idle
    t: jax.Array  # [n] steps into that episode
    next_episode: jax.Array  # the first episode not yet started
    returns: jax.Array  # [slots] per episode
    lengths: jax.Array  # [slots] per episode
    clock: jax.Array  # env steps simulated by each env so far


@functools.partial(jax.jit, static_argnames=("spec", "act_fn", "num_envs", "chunk"))
def _rollout(
    spec: TaskSpec,
    act_fn: JaxActFn,
    params: Any,
    qpos: jax.Array,
    qvel: jax.Array,
    num_episodes: jax.Array,
    max_steps: jax.Array,
    step_budget: jax.Array,
    num_envs: int,
    chunk: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    # qpos/qvel hold one initial state per episode slot; slots past num_episodes are
    # padding that never starts, so a few slot counts serve every episode count.
    task = mjx_task(spec)
    slots = qpos.shape[0]
    data = task.reset(qpos[:num_envs], qvel[:num_envs])
    episode = jnp.arange(num_envs, dtype=jnp.int32)
    carry = _Carry(
        data=data,
        state=task.sim_state(data),
        episode=jnp.where(episode < num_episodes, episode, -1),
        t=jnp.zeros(num_envs, jnp.int32),
        next_episode=jnp.asarray(num_envs, jnp.int32),
        returns=jnp.zeros(slots, data.qpos.dtype),
        lengths=jnp.zeros(slots, jnp.int32),
        clock=jnp.zeros((), jnp.int32),
    )

    def refill(data: mjx.Data, state: SimState, start: jax.Array, new: jax.Array) -> Any:
        # a forward per env, so it runs only on steps where some episode starts
        src = jnp.clip(new, 0, slots - 1)
        fresh = task.reset(qpos[src], qvel[src])
        data = _where_rows(start, fresh, data)
        return data, _where_rows(start, task.sim_state(fresh), state)

    def env_step(c: _Carry, _: None) -> tuple[_Carry, None]:
        obs = spec.observation(jnp, c.state).astype(jnp.float32)
        actions = act_fn(params, obs)
        data = task.step(c.data, actions)
        after = task.sim_state(data)
        reward = spec.reward(jnp, c.state, after, actions, task.dt)
        active = c.episode >= 0
        slot = jnp.where(active, c.episode, slots)  # out of range: dropped
        t = c.t + 1
        ended = active & (spec.terminated(jnp, after) | (t >= max_steps))
        new = c.next_episode + jnp.cumsum(ended, dtype=jnp.int32) - 1
        start = ended & (new < num_episodes)
        data, state = jax.lax.cond(
            jnp.any(start), refill, lambda d, s, *_: (d, s), data, after, start, new
        )
        c = _Carry(
            data=data,
            state=state,
            episode=jnp.where(ended, jnp.where(start, new, -1), c.episode),
            t=jnp.where(ended, 0, t),
            next_episode=c.next_episode + jnp.sum(start, dtype=jnp.int32),
            returns=c.returns.at[slot].add(reward.astype(c.returns.dtype), mode="drop"),
            lengths=c.lengths.at[slot].add(1, mode="drop"),
            clock=c.clock + 1,
        )
        return c, None

    def cond(c: _Carry) -> jax.Array:
        return jnp.any(c.episode >= 0) & (c.clock < step_budget)

    def body(c: _Carry) -> _Carry:
        return jax.lax.scan(env_step, c, None, length=chunk)[0]

    out = jax.lax.while_loop(cond, body, carry)
    return out.returns, out.lengths, out.clock


@functools.lru_cache(maxsize=8)
def _episode_starts(spec: TaskSpec, seeds: bytes) -> tuple[np.ndarray, ...]:
    # Drawing a start takes a numpy Generator per seed (~20 us); evaluations repeat the
    # same seeds at every checkpoint, so keep the last few.
    return initial_states(spec, np.frombuffer(seeds, dtype=np.int64))


def _slots(num_episodes: int, num_envs: int) -> int:
    """Episode slots compiled for: the next power of two, so evaluations of 100 and 128
    episodes share one compilation."""
    return max(num_envs, 1 << (num_episodes - 1).bit_length())


class MjxRollout(NamedTuple):
    """``mjx_rollout`` results: per-seed returns and lengths, and env steps simulated."""

    returns: np.ndarray
    lengths: np.ndarray
    steps_per_env: int


def mjx_rollout(
    env: Env | TaskSpec,
    act_fn: JaxActFn,
    params: Any,
    seeds: Sequence[int] | np.ndarray,
    *,
    num_envs: int | None = None,
    chunk: int = DEFAULT_CHUNK,
    max_steps: int | None = None,
    step_budget: int | None = None,
) -> MjxRollout:
    """One episode per seed on MJX, all in one compiled call; see ``mjx_rollout_returns``.

    ``step_budget`` stops the rollout once every env has simulated that many steps
    (rounded up to whole chunks), with episodes left unfinished: their returns and
    lengths so far are reported and unstarted ones are zero. It is for throughput
    measurements, where the envs should stay busy for a fixed time.
    """
    spec = env if isinstance(env, TaskSpec) else spec_for(env)
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    n = seeds.size
    if n == 0:
        return MjxRollout(np.zeros(0), np.zeros(0, dtype=np.int64), 0)
    if num_envs is not None:
        check_num_envs(num_envs)
    width = n if num_envs is None else min(n, num_envs)
    horizon = spec.max_episode_steps if max_steps is None else max_steps
    if horizon < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    budget = np.iinfo(np.int32).max if step_budget is None else step_budget
    if budget < 1:
        raise ValueError(f"step_budget must be at least 1, got {step_budget}")
    mjx_task(spec)
    qpos, qvel = _episode_starts(spec, np.resize(seeds, _slots(n, width)).tobytes())
    returns, lengths, clock = _rollout(
        spec,
        act_fn,
        params,
        jnp.asarray(qpos),
        jnp.asarray(qvel),
        n,
        horizon,
        budget,
        width,
        chunk,
    )
    return MjxRollout(
        np.asarray(returns, dtype=np.float64)[:n],
        np.asarray(lengths, dtype=np.int64)[:n],
        int(clock),
    )


def mjx_rollout_returns(
    env: Env | TaskSpec,
    act_fn: JaxActFn,
    params: Any,
    seeds: Sequence[int] | np.ndarray,
    *,
    num_envs: int | None = None,
    chunk: int = DEFAULT_CHUNK,
    max_steps: int | None = None,
) -> RolloutResult:
    """One episode per seed on MJX, scored as ``rollout_returns`` scores them.

    ``env`` is an id, a dataset's EnvSpec (see ``spec_for``) or a TaskSpec.

    The whole evaluation is one compiled call: ``act_fn(params, obs)`` must be a jax
    function (it is traced into the rollout; pass an equal, hashable function each
    call to reuse the compilation). ``num_envs`` envs (default one per seed) run the
    episodes in seed order; an env whose episode ends starts the next one on the same
    step, as ``rollout_returns`` refills, and idles once none are left (it keeps
    simulating but adds nothing). Steps run in scans of ``chunk`` env steps, checked
    for "all ended" between scans. ``max_steps`` (default the spec's
    ``max_episode_steps``) truncates episodes earlier; changing it, or the number of
    seeds within a power of two, does not recompile.
    """
    result = mjx_rollout(
        env, act_fn, params, seeds, num_envs=num_envs, chunk=chunk, max_steps=max_steps
    )
    return RolloutResult(result.returns, result.lengths)


class MjxEngine:
    """``num_envs`` envs of one task on MJX behind the ``Engine`` step/reset interface.

    Same contract as ``BatchEngine`` (no auto-reset; envs left out of a step keep their
    state and report reward 0), but each call is a device round trip: for whole
    evaluations prefer ``mjx_rollout_returns``, which keeps the loop on the device.
    """

    def __init__(self, spec: TaskSpec, num_envs: int) -> None:
        check_num_envs(num_envs)
        self.spec = spec
        self.env_id = spec.env_id
        self.num_envs = num_envs
        self.max_episode_steps = spec.max_episode_steps
        self.action_low, self.action_high = spec.action_bounds()
        self.act_dim = int(self.action_low.size)
        self.obs_dim = spec.obs_dim
        self._task = mjx_task(spec)
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
        ids, seeds = reset_targets(seeds, ids, self.num_envs)
        if ids.size == 0:
            return self._obs.copy()
        qpos_new, qvel_new = initial_states(self.spec, np.asarray(seeds, dtype=np.int64))
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
        actions = checked_actions(actions, self.num_envs, self.act_dim)
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
