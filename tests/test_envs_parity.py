"""The batch engine reproduces gymnasium.make(env_id) step for step, and gymnasium.make(spec)
for the EnvSpec a dataset records (other arguments, another time limit)."""

import gymnasium
import numpy as np
import pytest
from gymnasium.envs.registration import EnvSpec

from iwbc.envs import SPECS, AntSpec, BatchEngine, SimState, get_spec
from iwbc.envs.rollout import resolve_engine
from iwbc.envs.specs import env_name, spec_for
from iwbc.errors import UserError

SEEDS = [0, 1, 12345]
RTOL, ATOL = 1e-9, 1e-12


def _compare_episodes(
    env: str | EnvSpec, seeds: list[int], num_steps: int, action_scale: float, dtype: type
) -> list[list[tuple[int, str]]]:
    """Step the batch engine and one Gymnasium env per row on the same random actions.

    A row whose episode ends is reset, in both, with a fresh seed (a subset reset of
    the engine), so every row is compared for num_steps steps. Returns, per row, the
    (length, "terminated" | "truncated") of each episode that ended.
    """
    spec, env_id = spec_for(env), env_name(env)
    contact_forces = isinstance(spec, AntSpec) and spec.include_cfrc_ext_in_observation
    n = len(seeds)
    engine = BatchEngine(spec, n, nthread=1)
    envs = [gymnasium.make(env) for _ in seeds]
    obs = engine.reset(seeds)
    ref = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, seeds, strict=True)])
    np.testing.assert_array_equal(obs, ref)

    low, high = spec.action_bounds()
    rng = np.random.default_rng(2024)
    ends: list[list[tuple[int, str]]] = [[] for _ in seeds]
    length = np.zeros(n, dtype=int)
    next_seed = 1000
    saw_contact = False
    for t in range(num_steps):
        actions = (action_scale * rng.uniform(low, high, size=(n, low.size))).astype(dtype)
        obs, reward, terminated, truncated = engine.step(actions)
        length += 1
        for i in range(n):
            g_obs, g_rew, g_term, g_trunc, _ = envs[i].step(actions[i])
            np.testing.assert_allclose(obs[i], g_obs, rtol=RTOL, atol=ATOL)
            np.testing.assert_allclose(reward[i], g_rew, rtol=RTOL, atol=ATOL)
            assert (bool(terminated[i]), bool(truncated[i])) == (g_term, g_trunc), (env_id, i, t)
            if contact_forces:
                saw_contact |= bool(np.any(obs[i, 27:] != 0))
            if g_term or g_trunc:
                ends[i].append((int(length[i]), "terminated" if g_term else "truncated"))
                length[i] = 0
                obs = engine.reset([next_seed], ids=np.array([i]))
                np.testing.assert_array_equal(obs[i], envs[i].reset(seed=next_seed)[0])
                next_seed += 1
    for env in envs:
        env.close()
    if contact_forces:
        assert saw_contact, "Ant's cfrc_ext part of the observation stayed zero"
    return ends


@pytest.mark.parametrize("env_id", list(SPECS))
def test_reset_matches_gymnasium(env_id: str) -> None:
    engine = BatchEngine(get_spec(env_id), 4, nthread=1)
    seeds = [0, 7, 123456789, 2**31 + 5]
    env = gymnasium.make(env_id)
    ref = np.stack([env.reset(seed=s)[0] for s in seeds])
    np.testing.assert_array_equal(engine.reset(seeds), ref)
    assert engine.obs_dim == env.observation_space.shape[0]
    np.testing.assert_array_equal(engine.action_low, env.action_space.low)
    np.testing.assert_array_equal(engine.action_high, env.action_space.high)
    assert engine.max_episode_steps == env.spec.max_episode_steps
    env.close()


@pytest.mark.parametrize("env_id", list(SPECS))
def test_steps_match_gymnasium(env_id: str) -> None:
    # actions beyond the bounds: the ctrl cost is taken on the unclipped action
    _compare_episodes(env_id, SEEDS, num_steps=200, action_scale=1.2, dtype=np.float32)


def test_float64_actions_match_gymnasium() -> None:
    _compare_episodes("HalfCheetah-v5", [3], num_steps=200, action_scale=1.0, dtype=np.float64)


@pytest.mark.parametrize(
    "env_id", ["Hopper-v5", "Walker2d-v5", "Humanoid-v5", "InvertedPendulum-v5"]
)
def test_unhealthy_episode_terminates_like_gymnasium(env_id: str) -> None:
    ends = _compare_episodes(env_id, SEEDS, num_steps=150, action_scale=1.0, dtype=np.float32)
    assert all(any(kind == "terminated" for _, kind in row) for row in ends)


# Datasets recorded on envs built with other arguments: each case changes what the batch engine
# must follow (reset noise, reward weights, health bounds, termination, observation layout,
# time limit); Hopper's episodes end both ways within the steps compared, Walker2d's never
# terminate.
RECORDED_ENVS = {
    "hopper": (
        "Hopper-v5",
        dict(
            reset_noise_scale=0.1,
            forward_reward_weight=2.0,
            healthy_reward=0.5,
            healthy_z_range=(0.8, float("inf")),
            max_episode_steps=15,
        ),
    ),
    "walker2d": (
        "Walker2d-v5",
        dict(terminate_when_unhealthy=False, ctrl_cost_weight=0.01, max_episode_steps=40),
    ),
    "halfcheetah": (
        "HalfCheetah-v5",
        dict(exclude_current_positions_from_observation=False, reset_noise_scale=0.5),
    ),
    "ant": ("Ant-v5", dict(include_cfrc_ext_in_observation=False, contact_cost_weight=1e-3)),
    # gym's v2-v4 model, which Gymnasium still ships: D4RL's Walker2d data was recorded on it.
    "walker2d-gym-model": ("Walker2d-v5", dict(xml_file="walker2d.xml")),
    "humanoid": (
        "Humanoid-v5",
        dict(
            include_cinert_in_observation=False,
            include_qfrc_actuator_in_observation=False,
            contact_cost_weight=1e-5,
            contact_cost_range=(-float("inf"), 0.5),
            healthy_z_range=(0.8, 2.1),
        ),
    ),
    "humanoid-standup": (
        "HumanoidStandup-v5",
        dict(
            include_cvel_in_observation=False,
            ctrl_cost_weight=0.2,
            impact_cost_weight=1e-5,
            impact_cost_range=(-float("inf"), 0.5),
            reset_noise_scale=0.1,
            max_episode_steps=60,
        ),
    ),
    "swimmer": (
        "Swimmer-v5",
        dict(exclude_current_positions_from_observation=False, ctrl_cost_weight=1e-2),
    ),
    "inverted-pendulum": ("InvertedPendulum-v5", dict(reset_noise_scale=0.05)),
    # Pusher-v4's model, which Pusher-v5 loads when named.
    "pusher-v4-model": ("Pusher-v5", dict(xml_file="pusher.xml", reward_near_weight=1.0)),
}


@pytest.mark.parametrize("name", list(RECORDED_ENVS))
def test_recorded_env_arguments_match_gymnasium(name: str) -> None:
    env_id, kwargs = RECORDED_ENVS[name]
    made = gymnasium.make(env_id, **kwargs)
    recorded = made.spec
    made.close()
    assert spec_for(recorded) != get_spec(env_id)
    ends = _compare_episodes(recorded, SEEDS, num_steps=130, action_scale=1.0, dtype=np.float32)
    limit = kwargs.get("max_episode_steps")
    if limit is not None:
        assert any((limit, "truncated") in row for row in ends), ends
        assert any(kind == "terminated" for row in ends for _, kind in row) == (name == "hopper")


def test_a_standup_uphill_weight_runs_on_the_gymnasium_engine() -> None:
    """Gymnasium's HumanoidStandup-v5 takes ``uph_cost_weight`` and never applies it; the spec
    does not model it, so such an env runs on Gymnasium's own code, whatever that does."""
    made = gymnasium.make("HumanoidStandup-v5", uph_cost_weight=2.0)
    recorded = made.spec
    made.close()
    with pytest.raises(UserError, match=r"^HumanoidStandup-v5 with uph_cost_weight=2.0 has no"):
        spec_for(recorded)
    assert resolve_engine(recorded) == "gymnasium"


def test_walker2d_gym_model_is_the_one_whose_right_foot_slides() -> None:
    """Walker2d-v5's own model gives the right foot the left's friction (1.9); gym's earlier
    model, named by ``xml_file``, keeps 0.9, and the batch engine loads it."""
    made = gymnasium.make("Walker2d-v5", xml_file="walker2d.xml")
    spec = spec_for(made.spec)
    made.close()
    assert spec.model_file == "walker2d.xml"
    assert spec.model().geom("foot_geom").friction[0] == pytest.approx(0.9)
    assert get_spec("Walker2d-v5").model().geom("foot_geom").friction[0] == pytest.approx(1.9)


def test_truncation_at_max_episode_steps() -> None:
    ends = _compare_episodes("Reacher-v5", SEEDS, num_steps=120, action_scale=1.0, dtype=np.float32)
    assert ends == [[(50, "truncated"), (50, "truncated")]] * len(SEEDS)


def test_ant_contact_cost_uses_rne_post_constraint() -> None:
    """cfrc_ext after a step is mj_rnePostConstraint's, which mj_step alone leaves at 0."""
    engine = BatchEngine(get_spec("Ant-v5"), 2, nthread=1)
    engine.reset([0, 1])
    for _ in range(30):
        engine.step(np.full((2, 8), 0.5, dtype=np.float32))
    assert np.abs(engine.state.cfrc_ext).sum() > 0


def _evaluate(xp, spec, before: SimState, after: SimState, actions) -> tuple[np.ndarray, ...]:
    return tuple(
        np.asarray(out)
        for out in (
            spec.observation(xp, after),
            spec.reward(xp, before, after, actions, spec.dt()),
            spec.terminated(xp, after),
        )
    )


@pytest.mark.parametrize("env_id", list(SPECS))
def test_spec_functions_run_under_jax(env_id: str) -> None:
    """The same spec functions evaluate with jax.numpy, as a later MJX engine will."""
    jnp = pytest.importorskip("jax.numpy")
    spec = get_spec(env_id)
    engine = BatchEngine(spec, 3, nthread=1)
    engine.reset([0, 1, 2])
    before = engine.state
    actions = np.random.default_rng(0).uniform(-1, 1, (3, engine.act_dim)).astype(np.float32)
    engine.step(actions)
    after = engine.state

    def to_jax(s: SimState) -> SimState:
        return SimState(*(None if a is None else jnp.asarray(a) for a in s))

    ref = _evaluate(np, spec, before, after, actions)
    got = _evaluate(jnp, spec, to_jax(before), to_jax(after), jnp.asarray(actions))
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(got[2], ref[2])
