"""Evaluation: fixed shared reset seeds, and batching training seeds leaves each score unchanged."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iwbc.agents.bc import BCAgent, BCConfig
from iwbc.agents.networks import GaussianPolicy, policy_mean_action
from iwbc.agents.td3_bc import TD3BCAgent, TD3BCConfig
from iwbc.core.agent import DataSpec
from iwbc.core.trainer import create_agents
from iwbc.envs import rollout_returns
from iwbc.envs.evaluate import EVAL_SEED_BASE, evaluate_agent, evaluation_seeds
from iwbc.errors import UserError

ENV_ID = "InvertedDoublePendulum-v5"  # 9-dim observations, 1-dim actions, short episodes
OBS_DIM, ACT_DIM = 9, 1
CONFIG = BCConfig(hidden_dims=(32, 32), standardize=False)
POLICY = GaussianPolicy(action_dim=ACT_DIM, hidden_dims=(32, 32), standardize=False)


def spec(observation_dim: int = OBS_DIM) -> DataSpec:
    zeros, ones = jnp.zeros(observation_dim), jnp.ones(observation_dim)
    return DataSpec(zeros, ones, ACT_DIM)


def test_evaluation_seeds_are_fixed_and_nested() -> None:
    np.testing.assert_array_equal(evaluation_seeds(4), EVAL_SEED_BASE + np.arange(4))
    np.testing.assert_array_equal(evaluation_seeds(3), evaluation_seeds(10)[:3])
    np.testing.assert_array_equal(evaluation_seeds(2, base=7), [7, 8])
    with pytest.raises(ValueError, match="num_episodes must be positive"):
        evaluation_seeds(0)


def test_each_seed_row_equals_its_own_rollout_on_the_shared_seeds() -> None:
    num_episodes = 3
    agent = create_agents(BCAgent, CONFIG, spec(), [0, 1, 2])
    assert agent.policy == POLICY
    scores = evaluate_agent(agent, ENV_ID, num_episodes=num_episodes)
    assert scores.shape == (3, num_episodes)
    for i in range(3):
        alone = jax.tree.map(lambda x, i=i: x[i], agent.params)
        act = jax.jit(lambda obs, p=alone: policy_mean_action(POLICY, p, obs))
        expected = rollout_returns(
            ENV_ID, lambda obs, act=act: np.asarray(act(jnp.asarray(obs))), evaluation_seeds(3)
        ).returns
        np.testing.assert_allclose(scores[i], expected, rtol=1e-5)
    # Different policies score differently, so the row checks above are not vacuous.
    assert not np.allclose(scores[0], scores[1])


@pytest.mark.parametrize(
    ("agent_cls", "config"),
    [(BCAgent, CONFIG), (TD3BCAgent, TD3BCConfig(hidden_dims=(8,)))],
    ids=["bc", "td3_bc"],
)
def test_agent_for_another_observation_dim_is_refused_in_one_line(agent_cls, config) -> None:
    agent = create_agents(agent_cls, config, spec(OBS_DIM + 2), [0])
    assert agent.observation_dim == OBS_DIM + 2
    with pytest.raises(ValueError, match=r"11-dim observations .* has 9-dim") as error:
        evaluate_agent(agent, ENV_ID, num_episodes=1)
    assert "\n" not in str(error.value)


def test_bc_family_agents_share_one_compiled_evaluation() -> None:
    """Evaluation compiles ``act_fn`` (MJX: the whole rollout) keyed by its value: BC-family
    methods differ in loss and schedule, not in how they act, so they must present equal
    act functions; acting through them equals the agent's own act."""
    bc = create_agents(BCAgent, CONFIG, spec(), [0, 1])
    iw = create_agents(
        BCAgent,
        BCConfig.iw_finetune(hidden_dims=(32, 32), standardize=False),
        spec(),
        [0, 1],
        init=bc,
    )
    (bc_act, bc_params), (iw_act, iw_params) = bc.acting(), iw.acting()
    assert bc_act == iw_act and hash(bc_act) == hash(iw_act)
    assert jax.tree.structure(bc_params) == jax.tree.structure(iw_params)
    obs = jnp.ones((3, OBS_DIM))
    first = jax.tree.map(lambda x: x[0], bc)
    np.testing.assert_array_equal(
        bc_act(jax.tree.map(lambda x: x[0], bc_params), obs), first.act(obs)
    )


def test_the_mjx_branch_hands_the_rollout_every_seed_row_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """evaluate_agent on MJX gives the MJX rollout one batched actor and the shared episode seeds
    once per training seed, and reads its returns back per seed row as the batch engine's. (The
    rollout itself, compiled, is checked against the batch engine in test_envs_mjx.py; here it
    runs on the batch engine, so that this wiring is checked without a minute's compile.)"""
    mjx_engine = pytest.importorskip("iwbc.envs.mjx_engine")
    calls = []

    def on_the_batch_engine(env_id, act_fn, params, seeds, **options):
        calls.append((act_fn, np.asarray(seeds), options))
        act = jax.jit(act_fn)

        def policy(obs: np.ndarray) -> np.ndarray:
            return np.asarray(act(params, jnp.asarray(obs)))

        return rollout_returns(env_id, policy, seeds, engine="batch", num_envs=len(seeds))

    monkeypatch.setattr(mjx_engine, "mjx_rollout_returns", on_the_batch_engine)
    agent = create_agents(BCAgent, CONFIG, spec(), [0, 1])
    on_mjx = evaluate_agent(agent, ENV_ID, num_episodes=3, engine="mjx")
    np.testing.assert_array_equal(on_mjx, evaluate_agent(agent, ENV_ID, num_episodes=3))
    ((actor, seeds, options),) = calls
    assert actor.num_seeds == 2 and options == {}
    np.testing.assert_array_equal(seeds, np.tile(evaluation_seeds(3), 2))
    assert not np.allclose(on_mjx[0], on_mjx[1])


def test_misused_evaluation_inputs_are_one_line_errors() -> None:
    """What a Python user gets wrong first: the train_methods result instead of its agent, one
    seed taken out of the stack, and an env that is neither an id nor an EnvSpec."""
    agent = create_agents(BCAgent, CONFIG, spec(), [0, 1])

    class Result:
        def __init__(self) -> None:
            self.agent = agent

    cases = [
        (lambda: evaluate_agent(Result(), ENV_ID, num_episodes=1), r"its \.agent is"),
        (lambda: evaluate_agent(object(), ENV_ID, num_episodes=1), "takes a trained agent"),
        (
            lambda: evaluate_agent(jax.tree.map(lambda x: x[0], agent), ENV_ID, num_episodes=1),
            "no leading training-seed axis",
        ),
        (lambda: evaluate_agent(agent, 3, num_episodes=1), "env must be a Gymnasium id"),
    ]
    for call, message in cases:
        with pytest.raises(UserError, match=message) as error:
            call()
        assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("agent_cls", "config"),
    [(BCAgent, CONFIG), (TD3BCAgent, TD3BCConfig(hidden_dims=(8,)))],
    ids=["bc", "td3_bc"],
)
def test_act_on_a_seed_stack_is_refused_and_the_ways_it_names_act_alike(agent_cls, config) -> None:
    """Three observations for three stacked seeds would broadcast seed against observation;
    act refuses the stack, and the two ways its message gives act as each seed alone does."""
    agent = create_agents(agent_cls, config, spec(), [0, 1, 2])
    obs = jax.random.normal(jax.random.PRNGKey(1), (3, OBS_DIM))
    with pytest.raises(UserError, match="holds 3 seeds stacked") as error:
        agent.act(obs)
    assert "\n" not in str(error.value)
    every = jax.vmap(type(agent).act, in_axes=(0, None))(agent, obs)
    for i in range(3):
        alone = jax.tree.map(lambda x, i=i: x[i], agent).act(obs)
        np.testing.assert_array_equal(every[i], alone)
    assert not np.allclose(every[0], every[1])
