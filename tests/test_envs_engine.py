"""Engine factory, fixed-seed rollouts and the errors users see."""

import importlib.util
import warnings
from dataclasses import replace

import gymnasium
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec

from iwbc.envs import (
    SPECS,
    BatchEngine,
    GymnasiumEngine,
    get_spec,
    make_engine,
    resolve_engine,
    rollout,
    rollout_returns,
)
from iwbc.envs.evaluate import check_evaluable, evaluate_actor
from iwbc.envs.specs import spec_for
from iwbc.errors import UserError


def linear_policy(obs_dim: int, act_dim: int, seed: int = 0):
    """A deterministic tanh-linear policy whose rows do not depend on the batch size.

    Written with elementwise products and a sum over a middle axis, not a matmul, so
    that BLAS blocking cannot make a row's action depend on how many rows there are.
    """
    w = np.random.default_rng(seed).normal(0.0, 0.3, (obs_dim, act_dim)).astype(np.float32)

    def act(obs: np.ndarray) -> np.ndarray:
        assert obs.dtype == np.float32 and obs.ndim == 2
        return np.tanh((obs[:, :, None] * w[None]).sum(axis=1))

    return act


def gymnasium_loop(env_id: str, act_fn, seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Reference returns: one plain Gymnasium episode per seed."""
    env = gymnasium.make(env_id)
    returns, lengths = [], []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        ret, length, done = 0.0, 0, False
        while not done:
            action = act_fn(np.asarray(obs, dtype=np.float32)[None])[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            ret += reward
            length += 1
            done = terminated or truncated
        returns.append(ret)
        lengths.append(length)
    env.close()
    return np.array(returns), np.array(lengths)


HOPPER_SEEDS = [5, 0, 11, 3, 8, 1, 2]


def test_rollout_independent_of_num_envs() -> None:
    spec = get_spec("Hopper-v5")
    act = linear_policy(spec.obs_dim, 3)
    results = [rollout_returns("Hopper-v5", act, HOPPER_SEEDS, num_envs=k) for k in (None, 1, 3, 4)]
    for res in results[1:]:
        np.testing.assert_array_equal(res.returns, results[0].returns)
        np.testing.assert_array_equal(res.lengths, results[0].lengths)
    assert len(set(results[0].lengths.tolist())) > 1, "episodes of one length test little"


def test_rollout_matches_plain_gymnasium_loop() -> None:
    act = linear_policy(get_spec("Hopper-v5").obs_dim, 3)
    returns, lengths = gymnasium_loop("Hopper-v5", act, HOPPER_SEEDS)
    for engine in ("batch", "gymnasium"):
        res = rollout_returns("Hopper-v5", act, HOPPER_SEEDS, engine=engine, num_envs=3)
        np.testing.assert_allclose(res.returns, returns, rtol=1e-9)
        np.testing.assert_array_equal(res.lengths, lengths)


def test_rollout_truncates_at_max_episode_steps() -> None:
    act = linear_policy(get_spec("HalfCheetah-v5").obs_dim, 6)
    res = rollout_returns("HalfCheetah-v5", act, [0, 1, 2], num_envs=2)
    np.testing.assert_array_equal(res.lengths, [1000, 1000, 1000])
    res = rollout_returns("Reacher-v5", linear_policy(10, 2), [4, 9])
    np.testing.assert_array_equal(res.lengths, [50, 50])


def test_gymnasium_engine_for_env_without_spec() -> None:
    env_id = "Pendulum-v1"
    engine = make_engine(env_id, 2)
    assert isinstance(engine, GymnasiumEngine)
    act = linear_policy(3, 1)
    returns, lengths = gymnasium_loop(env_id, act, [3, 4, 5])
    res = rollout_returns(env_id, act, [3, 4, 5], num_envs=2)
    np.testing.assert_allclose(res.returns, returns, rtol=1e-9)
    np.testing.assert_array_equal(res.lengths, lengths)


class _OneObservationObject(gymnasium.Env):
    """Hands back one array, changed in place, on every call, as Gymnasium-Robotics' Kitchen
    does its desired-goal dict."""

    observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self) -> None:
        self._obs = np.zeros(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._obs[:] = [seed, 0.0]
        return self._obs, {}

    def step(self, action: np.ndarray):
        self._obs[1] += 1.0
        return self._obs, 1.0, False, False, {}


def test_an_env_reusing_its_observation_object_is_read_without_warnings() -> None:
    """Gymnasium's passive checker warns that such an env's observations "share an object";
    the engine copies each observation it reads, so the warning, which a user could do nothing
    about, is silenced there and in the env's check before training, and every row returned
    stays as it was read."""
    spec = EnvSpec("iwbc-test/OneObservationObject-v0", _OneObservationObject, max_episode_steps=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_evaluable(spec, "auto", "test/shared/obs-v0") == "gymnasium"
        engine = make_engine(spec, 2)
        reset = engine.reset([4, 7])
        first = engine.step(np.zeros((2, 1), np.float32)).obs
        second = engine.step(np.zeros((2, 1), np.float32), ids=[1]).obs
    np.testing.assert_array_equal(reset, [[4, 0], [7, 0]])
    np.testing.assert_array_equal(first, [[4, 1], [7, 1]])
    np.testing.assert_array_equal(second, [[4, 1], [7, 2]])


class _NotingEveryStep(_OneObservationObject):
    def step(self, action: np.ndarray):
        warnings.warn("a note of the env's own", UserWarning, stacklevel=1)
        return super().step(action)


def test_an_envs_own_warning_is_not_re_armed_on_every_step() -> None:
    """Silencing the checker takes a ``warnings.catch_warnings``, which re-arms every show-once
    warning; the engine does so only over the steps the checker looks at (each env's first
    two), so a warning an env gives on every step is shown a few times, not on each of them."""
    spec = EnvSpec("iwbc-test/NotingEveryStep-v0", _NotingEveryStep, max_episode_steps=50)
    engine = make_engine(spec, 1)
    engine.reset([0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for _ in range(20):
            engine.step(np.zeros((1, 1), np.float32))
    notes = [w for w in caught if "of the env's own" in str(w.message)]
    assert 1 <= len(notes) <= 3  # re-armed entering and leaving the two checked steps


def test_auto_engine_prefers_batch() -> None:
    for env_id in SPECS:
        assert isinstance(make_engine(env_id, 1), BatchEngine)
    assert isinstance(make_engine("Hopper-v5", 1, engine="gymnasium"), GymnasiumEngine)


def test_subset_step_and_reset_leave_other_envs_alone() -> None:
    engine = make_engine("Walker2d-v5", 3)
    full = engine.reset([10, 11, 12])
    actions = np.full((3, 6), 0.3, dtype=np.float32)
    obs, reward, terminated, truncated = engine.step(actions, ids=np.array([1]))
    np.testing.assert_array_equal(obs[[0, 2]], full[[0, 2]])
    assert reward[0] == reward[2] == 0.0 and reward[1] != 0.0
    assert not terminated.any() and not truncated.any()
    obs = engine.reset([12], ids=[1])
    np.testing.assert_array_equal(obs[1], full[2])

    # an env stepped alone follows the same trajectory as one stepped with the others
    alone = make_engine("Walker2d-v5", 1)
    alone.reset([12])
    ref = alone.step(actions[:1])
    np.testing.assert_array_equal(engine.step(actions, ids=[1]).obs[1], ref.obs[0])


def test_non_box_action_space_is_rejected() -> None:
    with pytest.raises(ValueError) as err:
        make_engine("CartPole-v1", 2)
    assert str(err.value) == (
        "CartPole-v1 has a Discrete(2) action space; iwbc needs a continuous (Box) action space"
    )


def test_a_model_mjx_cannot_run_stays_on_the_batch_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Humanoid's model uses the PGS solver, which MJX lacks: ``auto`` keeps it on the batch
    engine even on a GPU with MJX, and naming MJX is a one-line error saying why."""
    monkeypatch.setattr(rollout, "_gpu_with_mjx", lambda: True)
    assert resolve_engine("Humanoid-v5") == "batch"
    assert resolve_engine("Hopper-v5") == "mjx"
    with pytest.raises(UserError) as err:
        resolve_engine("Humanoid-v5", "mjx")
    assert str(err.value) == (
        "Humanoid-v5 cannot run on MJX: its model uses MuJoCo's PGS solver, which MJX does not "
        "implement; evaluate it with engine 'batch' (or 'auto', which picks it)"
    )


def test_unknown_env_id_lists_built_in_specs() -> None:
    for engine in ("auto", "gymnasium"):
        with pytest.raises(ValueError) as err:
            make_engine("NoSuchEnv-v9", 2, engine=engine)
        message = str(err.value)
        assert "\n" not in message and "'NoSuchEnv-v9'" in message
        assert all(env_id in message for env_id in SPECS)
    with pytest.raises(ValueError, match=r"no built-in spec for 'Pendulum-v1'.*Hopper-v5"):
        make_engine("Pendulum-v1", 2, engine="batch")


def test_mjx_engine_without_mjx_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "mujoco.mjx" else find_spec(name)
    )
    with pytest.raises(UserError, match=r"pip install 'iwbc\[mjx\]'"):
        make_engine("Hopper-v5", 2, engine="mjx")
    spec = get_spec("Hopper-v5")
    params = jnp.zeros((1, spec.obs_dim, 3))
    with pytest.raises(UserError, match=r"pip install 'iwbc\[mjx\]'"):
        evaluate_actor(
            lambda p, obs: obs @ p,
            params,
            "Hopper-v5",
            observation_dim=spec.obs_dim,
            action_dim=3,
            num_episodes=2,
            engine="mjx",
        )


def _recorded(env_id: str, **kwargs) -> gymnasium.envs.registration.EnvSpec:
    env = gymnasium.make(env_id, **kwargs)
    spec = env.spec
    env.close()
    return spec


@pytest.mark.parametrize(
    ("recorded", "named"),
    [
        (
            lambda: replace(_recorded("Hopper-v5"), kwargs={"xml_file": "/elsewhere/hopper.xml"}),
            "xml_file='/elsewhere/hopper.xml'",
        ),
        (lambda: _recorded("Ant-v5", main_body="torso"), "main_body='torso'"),
        (lambda: _recorded("Hopper-v5", healthy_z_range=(0.7,)), "healthy_z_range=(0.7,)"),
        (
            lambda: replace(_recorded("Hopper-v5"), kwargs={"terminate_when_unhealthy": 0}),
            "terminate_when_unhealthy=0",
        ),
        (lambda: replace(_recorded("Hopper-v5"), max_episode_steps=None), "no time limit"),
        (
            lambda: gymnasium.wrappers.TimeAwareObservation(gymnasium.make("Hopper-v5")).spec,
            "wrapper TimeAwareObservation",
        ),
    ],
    ids=["model", "body-name", "range", "flag-type", "no-limit", "wrapper"],
)
def test_recorded_envs_no_spec_reproduces_go_to_gymnasium(recorded, named: str) -> None:
    """A dataset's env the batch engine cannot rebuild runs on Gymnasium under ``auto``, and
    naming the batch engine is a one-line error saying what it cannot reproduce."""
    env = recorded()
    assert resolve_engine(env) == "gymnasium"
    with pytest.raises(UserError) as err:
        make_engine(env, 1, engine="batch")
    message = str(err.value)
    assert "\n" not in message and named in message and "engine 'gymnasium'" in message


def test_rendering_arguments_and_the_default_model_keep_the_batch_engine() -> None:
    recorded = _recorded(
        "Hopper-v5", render_mode="rgb_array", width=64, height=64, xml_file="hopper.xml"
    )
    assert resolve_engine(recorded) == "batch"
    assert spec_for(recorded) == get_spec("Hopper-v5")


def test_evaluation_follows_the_recorded_env() -> None:
    """Scores of a policy on a dataset's EnvSpec are Gymnasium's on that env, not the default's:
    its 30-step time limit and reset noise apply on the batch engine as on Gymnasium."""
    recorded = _recorded("Hopper-v5", max_episode_steps=30, reset_noise_scale=0.05)
    spec = get_spec("Hopper-v5")
    params = jnp.asarray(np.random.default_rng(0).normal(0, 0.1, (1, spec.obs_dim, 3)))
    scores = {
        engine: evaluate_actor(
            lambda p, obs: jnp.tanh(obs @ p),
            params,
            recorded,
            observation_dim=spec.obs_dim,
            action_dim=3,
            num_episodes=4,
            engine=engine,
        )
        for engine in ("batch", "gymnasium")
    }
    np.testing.assert_allclose(scores["batch"], scores["gymnasium"], rtol=1e-5)
    act = linear_policy(spec.obs_dim, 3)
    lengths = rollout_returns(recorded, act, [0, 1, 2]).lengths
    assert lengths.max() <= 30
    default = rollout_returns("Hopper-v5", act, [0, 1, 2])
    assert not np.array_equal(rollout_returns(recorded, act, [0, 1, 2]).returns, default.returns)


def test_unknown_engine() -> None:
    with pytest.raises(ValueError, match="unknown engine 'cuda'"):
        make_engine("Hopper-v5", 2, engine="cuda")


@pytest.mark.parametrize("kind", ["batch", "gymnasium", "mjx"])
def test_every_engine_refuses_a_bad_call_with_the_same_message(kind: str) -> None:
    with pytest.raises(ValueError, match="num_envs must be at least 1, got 0"):
        make_engine("Hopper-v5", 0, engine=kind)
    engine = make_engine("Hopper-v5", 2, engine=kind)
    with pytest.raises(ValueError, match="got 1 seeds for 2 envs"):
        engine.reset([0])
    with pytest.raises(ValueError, match=r"env ids must lie in \[0, 2\), got \[2\]"):
        engine.reset([0], ids=np.array([2]))
    engine.reset([0, 1])
    with pytest.raises(ValueError, match=r"actions must have shape \(2, 3\)"):
        engine.step(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"env ids must lie in \[0, 2\), got \[-1\]"):
        engine.step(np.zeros((2, 3)), ids=np.array([-1]))
    engine.close()
