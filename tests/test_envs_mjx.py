"""MJX engine against the CPU batch engine.

Compiling MJX physics on CPU takes tens of seconds per graph, so the CPU tests use one
cheap task (InvertedDoublePendulum: no contacts, episodes of a few steps under a
random linear policy) and small batches; the ``gpu`` tests cover the contact tasks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("mujoco.mjx")

from iwbc.envs import BatchEngine, get_spec, make_engine, rollout_returns
from iwbc.envs.mjx_engine import MjxEngine, initial_states, mjx_rollout_returns
from iwbc.envs.rollout import resolve_engine

ENV = "InvertedDoublePendulum-v5"
gpu = pytest.mark.skipif(jax.default_backend() != "gpu", reason="needs a JAX GPU backend")


def _linear_policy(env_id: str, scale: float = 0.3, seed: int = 0) -> np.ndarray:
    spec = get_spec(env_id)
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((spec.obs_dim, spec.action_bounds()[0].size))).astype(
        np.float32
    )


def _act(params: jax.Array, obs: jax.Array) -> jax.Array:
    return jnp.tanh(obs @ params)


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


def test_steps_match_the_batch_engine_in_float64() -> None:
    # In float64 MJX and MuJoCo C run the same equations in a different order: rounding
    # differences of 1e-15 grow in this chaotic task to about 1e-10 by step 50, so 1e-8
    # is a tight bound that still leaves room. (In float32 they would drift to ~1e-3.)
    spec = get_spec(ENV)
    n, seeds = 3, [0, 1, 2]
    low, high = spec.action_bounds()
    actions = np.random.default_rng(1).uniform(low, high, size=(50, n, low.size))
    actions = actions.astype(np.float32)
    cpu = BatchEngine(spec, n)
    with jax.enable_x64(True):
        mjx_env = make_engine(ENV, n, "mjx")
        assert isinstance(mjx_env, MjxEngine)
        np.testing.assert_allclose(mjx_env.reset(seeds), cpu.reset(seeds), rtol=0, atol=1e-12)
        for a in actions:
            want, got = cpu.step(a), mjx_env.step(a)
            np.testing.assert_allclose(got.obs, want.obs, rtol=0, atol=1e-8)
            np.testing.assert_allclose(got.reward, want.reward, rtol=0, atol=1e-8)
            np.testing.assert_array_equal(got.terminated, want.terminated)
            np.testing.assert_array_equal(got.truncated, want.truncated)
        # an env left out of a step keeps its observation and reports nothing
        cpu_obs = cpu.reset([3, 4, 5])
        mjx_env.reset([3, 4, 5])
        got = mjx_env.step(actions[0], ids=np.array([1]))
        want = cpu.step(actions[0], ids=np.array([1]))
        np.testing.assert_allclose(got.obs, want.obs, rtol=0, atol=1e-10)
        np.testing.assert_array_equal(got.obs[[0, 2]], cpu_obs[[0, 2]])
        assert got.reward[0] == 0 and got.reward[2] == 0


def test_rollout_returns_agree_with_the_batch_engine() -> None:
    # float32 MJX against float64 MuJoCo: 128 episodes of a random linear policy that
    # drops the pendulum in ~7 steps. Mean returns must agree within one standard error
    # of the mean (they agree far better: float32 rounding, not sampling, separates them).
    seeds = np.arange(128)
    weights = _linear_policy(ENV)
    mjx_result = mjx_rollout_returns(ENV, _act, jnp.asarray(weights), seeds, num_envs=64)
    cpu_result = rollout_returns(ENV, lambda obs: np.tanh(obs @ weights), seeds, engine="batch")
    stderr = cpu_result.returns.std(ddof=1) / np.sqrt(seeds.size)
    assert abs(mjx_result.returns.mean() - cpu_result.returns.mean()) < stderr
    assert np.mean(mjx_result.lengths == cpu_result.lengths) >= 0.95
    np.testing.assert_allclose(mjx_result.returns, cpu_result.returns, rtol=1e-2, atol=1e-2)


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("env_id", ["Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5"])
def test_gpu_contact_tasks_agree_statistically(env_id: str) -> None:
    # Contact tasks are chaotic: per-episode returns drift apart, their means must not.
    seeds = np.arange(256)
    weights = _linear_policy(env_id, scale=0.1)
    mjx_result = mjx_rollout_returns(env_id, _act, jnp.asarray(weights), seeds)
    cpu_result = rollout_returns(env_id, lambda obs: np.tanh(obs @ weights), seeds, engine="batch")
    stderr = np.hypot(mjx_result.returns.std(ddof=1), cpu_result.returns.std(ddof=1)) / np.sqrt(
        seeds.size
    )
    assert abs(mjx_result.returns.mean() - cpu_result.returns.mean()) < 3 * stderr
