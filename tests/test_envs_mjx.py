"""MJX engine against the CPU batch engine (MuJoCo's C engine).

Compiling MJX physics on CPU takes 10-30 s per graph, so the CPU tests keep to small
batches, 50-step checks in float64 and short episodes; the ``gpu`` tests run full
episodes of every locomotion task.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

pytest.importorskip("mujoco.mjx")

from iwbc.agents.bc import BCAgent, BCConfig
from iwbc.core.agent import DataSpec
from iwbc.core.trainer import create_agents
from iwbc.envs import (
    AntSpec,
    BatchEngine,
    RolloutResult,
    SimState,
    get_spec,
    make_engine,
    rollout_returns,
)
from iwbc.envs.evaluate import SeedBatchedActor
from iwbc.envs.mjx_engine import (
    MjxEngine,
    MjxTask,
    initial_states,
    mjx_rollout,
    mjx_rollout_returns,
)
from iwbc.envs.rollout import resolve_engine

gpu = pytest.mark.skipif(jax.default_backend() != "gpu", reason="needs a JAX GPU backend")


def _linear_policy(env_id: str, scale: float = 0.3, seed: int = 0) -> np.ndarray:
    spec = get_spec(env_id)
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((spec.obs_dim, spec.action_bounds()[0].size))).astype(
        np.float32
    )


def _act(params: jax.Array, obs: jax.Array) -> jax.Array:
    return jnp.tanh(obs @ params)


def _random_actions(env_id: str, n: int, steps: int = 50) -> np.ndarray:
    low, high = get_spec(env_id).action_bounds()
    actions = np.random.default_rng(1).uniform(low, high, size=(steps, n, low.size))
    return actions.astype(np.float32)


def test_initial_states_match_the_batch_engine() -> None:
    spec = get_spec("Reacher-v5")
    engine = BatchEngine(spec, 3)
    engine.reset([5, 6, 7])
    qpos, qvel = initial_states(spec, [5, 6, 7])
    np.testing.assert_array_equal(qpos, engine.state.qpos)
    np.testing.assert_array_equal(qvel, engine.state.qvel)


def test_auto_picks_mjx_only_on_gpu() -> None:
    expected = "mjx" if jax.default_backend() == "gpu" else "batch"
    assert resolve_engine("Hopper-v5") == expected
    assert resolve_engine("Hopper-v5", "batch") == "batch"
    assert resolve_engine("Hopper-v5", "mjx") == "mjx"
    with pytest.raises(ValueError, match="unknown engine 'cuda'"):
        resolve_engine("Hopper-v5", "cuda")


def test_halfcheetah_steps_match_cpu_mujoco_in_float64() -> None:
    # 50 uniform-random HalfCheetah steps through ground contacts: measured worst gap 5e-8 (it
    # never falls, so rounding grows for all 50 steps). Each such check is one MJX compile,
    # 20-50 s on the 2-core CI box, so one task: Hopper and Walker2d, the same planar contact
    # physics with falls (7e-15 and 4e-13 when they were here), are compared episode by
    # episode in float32 below (Hopper, its termination rule with it) and in distribution on
    # the GPU. These planar models move in the x-z plane, where MJX's and MuJoCo's
    # capsule-plane contact frames coincide (see test_ant_...). Rewards get 1e-8 at least:
    # their control cost is summed in float32, as Gymnasium sums it, and numpy and XLA add in
    # different orders.
    env_id, atol = "HalfCheetah-v5", 1e-6
    n, seeds = 3, [0, 1, 2]
    actions = _random_actions(env_id, n)
    cpu = BatchEngine(get_spec(env_id), n)
    with jax.enable_x64(True):
        mjx_env = make_engine(env_id, n, "mjx")
        assert isinstance(mjx_env, MjxEngine)
        np.testing.assert_array_equal(mjx_env.reset(seeds), cpu.reset(seeds))
        for a in actions:
            want, got = cpu.step(a), mjx_env.step(a)
            np.testing.assert_allclose(got.obs, want.obs, rtol=0, atol=atol)
            np.testing.assert_allclose(got.reward, want.reward, rtol=0, atol=max(atol, 1e-8))
            np.testing.assert_array_equal(got.terminated, want.terminated)
            np.testing.assert_array_equal(got.truncated, want.truncated)
        # an env left out of a step or a reset keeps its observation and reports nothing
        cpu_obs = cpu.reset([3, 5], ids=np.array([0, 2]))
        np.testing.assert_allclose(mjx_env.reset([3, 5], ids=np.array([0, 2])), cpu_obs, atol=atol)
        got = mjx_env.step(actions[0], ids=np.array([1]))
        want = cpu.step(actions[0], ids=np.array([1]))
        np.testing.assert_allclose(got.obs, want.obs, rtol=0, atol=atol)
        np.testing.assert_array_equal(got.obs[[0, 2]], cpu_obs[[0, 2]])
        assert got.reward[0] == 0 and got.reward[2] == 0


@pytest.mark.parametrize("env_id", ["Swimmer-v5", "InvertedPendulum-v5"])
def test_contact_free_tasks_step_as_cpu_mujoco_in_float64(env_id: str) -> None:
    """Swimmer and InvertedPendulum have no ground contact: 50 uniform-random steps agree to
    1e-12 (measured 2e-14 and 3e-14; their compiles take 13 and 8 s here). Pusher, measured
    once the same way (3e-13), compiles for two minutes on this CPU, so it is not repeated
    here."""
    n, seeds = 3, [0, 1, 2]
    actions = _random_actions(env_id, n)
    cpu = BatchEngine(get_spec(env_id), n)
    with jax.enable_x64(True):
        mjx_env = make_engine(env_id, n, "mjx")
        np.testing.assert_array_equal(mjx_env.reset(seeds), cpu.reset(seeds))
        for a in actions:
            want, got = cpu.step(a), mjx_env.step(a)
            np.testing.assert_allclose(got.obs, want.obs, rtol=0, atol=1e-12)
            np.testing.assert_allclose(got.reward, want.reward, rtol=0, atol=1e-8)
            np.testing.assert_array_equal(got.terminated, want.terminated)
            np.testing.assert_array_equal(got.truncated, want.truncated)


@dataclass(frozen=True)
class _IsotropicFrictionAnt(AntSpec):
    """Ant-v5 with an elliptic friction cone, the same in every tangent direction."""

    def model(self) -> mujoco.MjModel:
        return _elliptic_ant_model()


@functools.cache
def _elliptic_ant_model() -> mujoco.MjModel:
    model = copy.copy(AntSpec().model())
    model.opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    return model


def test_ant_steps_from_cpu_states_match_with_isotropic_friction() -> None:
    # Ant's legs are capsules at any yaw. MuJoCo orients a capsule-plane contact's
    # tangent frame along the capsule, MJX along the plane's axes, and Ant-v5's
    # pyramidal friction cone depends on that frame: from the first ground contact
    # (within 1-4 env steps of a reset) trajectories differ by O(1) even in float64, so
    # Ant-v5 itself is compared in distribution (test_contact_tasks_agree_statistically).
    # With an elliptic cone the frame does not matter: here each env step starts MJX
    # from the CPU engine's state along a 50-step trajectory, through ground contacts,
    # and the observation (cfrc_ext included) and reward must agree. Measured: 8e-5 and
    # 3e-7, the Newton solver's tolerance. (MuJoCo 4.0.0 with MJX 3.17, a pair the pin in
    # pyproject.toml excludes, differed by 1.7 here.)
    spec, seeds = _IsotropicFrictionAnt(), [0, 1, 2]
    contact_forces = slice(spec.obs_dim - 78, None)  # cfrc_ext[1:] of 13 bodies
    cpu = BatchEngine(spec, len(seeds))
    cpu.reset(seeds)
    touching = 0
    with jax.enable_x64(True):
        task = MjxTask(spec)

        @jax.jit
        def step_from(before: SimState, actions: jax.Array) -> tuple[jax.Array, jax.Array]:
            after = task.sim_state(
                task.step(jax.vmap(task.data_at)(before.qpos, before.qvel), actions)
            )
            obs = spec.observation(jnp, after)
            return obs, spec.reward(jnp, before, after, actions, task.dt)

        for a in _random_actions("Ant-v5", len(seeds)):
            before = cpu.state
            want = cpu.step(a)
            obs, reward = step_from(before, a)
            np.testing.assert_allclose(obs, want.obs, rtol=0, atol=1e-3)
            np.testing.assert_allclose(reward, want.reward, rtol=0, atol=1e-5)
            touching += int(np.any(want.obs[:, contact_forces] != 0, axis=1).sum())
    assert touching >= 30  # a third of the 150 env steps end with legs pushing the ground


def test_rollout_returns_agree_with_the_batch_engine() -> None:
    # float32 MJX against float64 MuJoCo: 128 episodes of a standardizing BC policy at its
    # random initialization, acting as every evaluation acts (the agent's own act function
    # over seed-stacked params, observation statistics applied inside it), on a contact task
    # (the hopper falls within tens of steps). Mean returns must agree within one standard
    # error (they agree far better: float32 rounding, not sampling, separates them), and a
    # policy that skipped the statistics on one engine would break the per-episode check.
    # 32 envs for 128 episodes: each env runs four in turn. (One task: each compiles for a
    # minute on CPU; HalfCheetah's rollout also runs in benchmarks/gpu_check.py's smoke
    # test, and all four locomotion tasks in the gpu-marked check below.)
    env_id, num_envs = "Hopper-v5", 32
    seeds = np.arange(128)
    agent = _standardizing_policy(env_id)
    act_fn, params = agent.acting()
    actor = SeedBatchedActor(act_fn, num_seeds=1)
    mjx_result = mjx_rollout_returns(env_id, actor, params, seeds, num_envs=num_envs)
    act = jax.jit(actor)
    cpu_result = rollout_returns(
        env_id, lambda obs: np.asarray(act(params, jnp.asarray(obs))), seeds, engine="batch"
    )
    stderr = cpu_result.returns.std(ddof=1) / np.sqrt(seeds.size)
    assert abs(mjx_result.returns.mean() - cpu_result.returns.mean()) < stderr
    assert np.mean(mjx_result.lengths == cpu_result.lengths) >= 0.95
    np.testing.assert_allclose(mjx_result.returns, cpu_result.returns, rtol=1e-2, atol=1e-2)
    _check_step_budget(env_id, actor, params, seeds, num_envs, mjx_result)


def _standardizing_policy(env_id: str) -> BCAgent:
    """One BC agent whose statistics move every observation feature (means of order 1,
    stds from 0.2 to 3): acting without them gives other actions."""
    spec = get_spec(env_id)
    act_dim = spec.action_bounds()[0].size
    mean = np.linspace(-1.0, 1.0, spec.obs_dim, dtype=np.float32)
    std = np.linspace(0.2, 3.0, spec.obs_dim, dtype=np.float32)
    data = DataSpec(jnp.asarray(mean), jnp.asarray(std), act_dim)
    return create_agents(BCAgent, BCConfig(hidden_dims=(32, 32)), data, [0])


def _check_step_budget(
    env_id: str,
    actor: SeedBatchedActor,
    params: Any,
    seeds: np.ndarray,
    num_envs: int,
    full: RolloutResult,
) -> None:
    # The benchmark's mode: stop busy envs after a budget (rounded up to whole 25-step
    # chunks). Episodes start in seed order; the ones that ended are exactly as in the
    # full run, whichever env ran them; the rest are cut short or never started.
    cut = mjx_rollout(env_id, actor, params, seeds, num_envs=num_envs, step_budget=1)
    assert cut.steps_per_env == 25
    assert cut.lengths.sum() <= num_envs * 25
    started = cut.lengths > 0
    assert not started[started.sum() :].any()
    done = cut.lengths == full.lengths
    np.testing.assert_array_equal(cut.returns[done], full.returns[done])
    assert (cut.lengths[~done] < full.lengths[~done]).all() and (~done).any()
    with pytest.raises(ValueError, match="step_budget must be at least 1"):
        mjx_rollout(env_id, actor, params, seeds, num_envs=num_envs, step_budget=0)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("env_id", ["Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5"])
def test_contact_tasks_agree_statistically(env_id: str) -> None:
    # Contact tasks are chaotic: per-episode returns drift apart, their means must not.
    seeds = np.arange(256)
    weights = _linear_policy(env_id, scale=0.1)
    mjx_result = mjx_rollout_returns(env_id, _act, jnp.asarray(weights), seeds)
    cpu_result = rollout_returns(env_id, lambda obs: np.tanh(obs @ weights), seeds, engine="batch")
    stderr = np.hypot(mjx_result.returns.std(ddof=1), cpu_result.returns.std(ddof=1)) / np.sqrt(
        seeds.size
    )
    assert abs(mjx_result.returns.mean() - cpu_result.returns.mean()) < 3 * stderr
