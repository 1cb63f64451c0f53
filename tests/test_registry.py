"""The registry: every method by name, one agent interface, one trainer (all seeds vmapped,
resumable to a later step), every seed evaluated, and the BC pre-training trained once."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_scripted_dataset

from iwbc.agents import registry
from iwbc.agents.bc import BCAgent, BCConfig
from iwbc.agents.iql import IQLConfig
from iwbc.agents.registry import (
    METHODS,
    STARTS,
    SelectionConfig,
    resolve_methods,
    train_methods,
    training_data,
)
from iwbc.agents.td3_bc import TD3BCConfig
from iwbc.core.agent import Agent
from iwbc.core.sampling import prepare_data
from iwbc.core.trainer import Training, create_agents
from iwbc.data import EpisodeData, load_dataset, stratified_top
from iwbc.envs import rollout_returns
from iwbc.envs.evaluate import evaluate_agent, evaluation_seeds
from iwbc.errors import UserError

SEEDS = (0, 1)
TD3 = TD3BCConfig(steps=1000, batch_size=64, hidden_dims=(32, 32))
# Windows of a trajectory loss: the fine-tune keeps whole-trajectory tables in its state.
BC = BCConfig(steps=300, batch_size=8, window=8, hidden_dims=(32, 32))
IW = BCConfig.iw_finetune(steps=300, batch_size=8, window=8, warmup_steps=10, hidden_dims=(32, 32))
BC_FAMILY = ("bc", "filtered_bc", "top10_bc", "iw_bc", "iw_bc_step", "iw_bc_quality")
BASELINES = ("td3_bc", "iql", "cql", "awac")
INTERFACE = ("create", "prepare", "sample", "update", "act")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    """A 10-episode scripted InvertedDoublePendulum dataset in a temporary Minari root."""
    root = make_scripted_dataset("test/idp/run-v0", tmp_path_factory.mktemp("minari"), 10)
    return load_dataset("test/idp/run-v0", root=root)


@pytest.fixture(scope="module")
def episodes(dataset) -> EpisodeData:
    return dataset.episodes


@pytest.fixture(scope="module")
def bc_agent(episodes: EpisodeData) -> BCAgent:
    """BC trained on everything, the start of the fine-tunes below."""
    return train_methods(episodes, ["bc"], SEEDS, {"bc": BC}, progress=False)["bc"].agent


def fresh(name: str, episodes: EpisodeData, config, init: Agent | None = None):
    """Method ``name``'s seed-stacked agent, untrained, and the device data it trains on."""
    method = METHODS[name]
    prepared = training_data(method, episodes, config, SelectionConfig())
    return create_agents(method.agent, config, prepared.spec, SEEDS, init), prepared.data


def assert_same(a, b) -> None:
    for got, want in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(got, want)


def differs(a, b) -> bool:
    return any(
        not np.array_equal(x, y)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def test_registry_has_one_entry_per_method() -> None:
    assert list(METHODS) == [*BC_FAMILY, *BASELINES]
    assert all(name == method.name for name, method in METHODS.items())
    assert set(STARTS) == {"bc"}  # the methods others start from
    for name in BC_FAMILY:
        method = METHODS[name]
        assert (method.family, method.agent, method.config) == ("bc", BCAgent, BCConfig)
        assert method.start == (None if name in ("bc", "top10_bc") else "bc")
    assert [METHODS[n].loss for n in BC_FAMILY] == [
        "bc",
        "bc",
        "bc",
        "iw_trajectory",
        "iw_step",
        "iw_quality",
    ]
    assert [METHODS[n].selection for n in BC_FAMILY] == [
        "all",
        "stratified",
        "top_fraction",
        "stratified",
        "stratified",
        "all",
    ]
    baselines = [METHODS[name] for name in BASELINES]
    assert len({method.agent for method in baselines}) == len(BASELINES)
    for method in baselines:
        assert (method.family, method.start, method.loss) == ("offline_rl", None, None)
        assert method.config().steps == 1_000_000
        assert method.stage_name == f"{method.name} training"
    assert [METHODS[n].stage_name for n in ("bc", "top10_bc", "iw_bc")] == [
        "bc pre-training",
        "top10_bc training from scratch",
        "iw_bc fine-tune",
    ]
    assert resolve_methods(["iw_bc", "cql"]) == [METHODS["iw_bc"], METHODS["cql"]]


@pytest.mark.parametrize("name", list(METHODS))
def test_every_agent_implements_the_interface(name: str) -> None:
    method = METHODS[name]
    agent_cls = method.agent
    assert issubclass(agent_cls, Agent)
    for attribute in INTERFACE:
        assert callable(getattr(agent_cls, attribute, None)), attribute
    # The base supplies prepare and sample (uniform transitions) and act's one-seed check; an
    # agent writes the rest, its action in _act.
    own = {attribute for c in agent_cls.__mro__[:-1] if c is not Agent for attribute in vars(c)}
    assert {"create", "update", "_act"} <= own
    assert list(inspect.signature(agent_cls.create).parameters) == ["key", "spec", "config", "init"]
    assert agent_cls.data_kind == ("episodes" if method.family == "bc" else "transitions")
    # The config is a static argument of the compiled trainer: frozen and hashable.
    config = registry.default_config(method)
    assert isinstance(config, method.config)
    assert hash(config) == hash(dataclasses.replace(config))


@pytest.mark.parametrize("name", BASELINES)
def test_a_baseline_refuses_an_init_agent(name: str, episodes: EpisodeData) -> None:
    """The baselines train from scratch: a start agent is a mistake, not silently ignored."""
    method = METHODS[name]
    config = method.config(hidden_dims=(8,))
    spec = training_data(method, episodes, config, SelectionConfig()).spec
    start = create_agents(method.agent, config, spec, [0])
    with pytest.raises(ValueError, match="trains from scratch; it takes no init agent") as error:
        create_agents(method.agent, config, spec, [1], init=start)
    assert "\n" not in str(error.value)


def test_iw_bc_trains_bc_once_and_starts_from_it(
    episodes: EpisodeData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train_methods(["iw_bc"]) pre-trains BC, then fine-tunes iw-BC from BC's agent (q_ref,
    frozen, and the start of the policy and of q_iw); asked for BC's dependents beside BC it
    still trains BC once."""
    trained = []

    def train(agent, data, until, **options):
        agent, history = real_train(agent, data, until, **options)
        trained.append((options["description"], agent))
        return agent, history

    real_train = registry.train
    monkeypatch.setattr(registry, "train", train)
    small_bc = dataclasses.replace(BC, steps=20)
    small_iw = dataclasses.replace(IW, steps=20)
    configs = {
        "bc": small_bc,
        "iw_bc": small_iw,
        "filtered_bc": dataclasses.replace(small_iw, loss="bc"),
    }

    alone = train_methods(
        episodes, ["iw_bc"], SEEDS, {"bc": small_bc, "iw_bc": small_iw}, progress=False
    )
    assert list(alone) == ["iw_bc"]
    assert [description for description, _ in trained] == ["bc pre-training", "iw_bc fine-tune"]
    bc = trained[0][1]
    iw = alone["iw_bc"].agent
    np.testing.assert_array_equal(iw.step, [20, 20])
    assert_same(iw.ref_params, bc.params)
    assert differs(iw.params, bc.params)
    assert alone["iw_bc"].num_episodes == len(stratified_top(episodes.returns, (90.0, 95.0, 98.0)))

    trained.clear()
    together = train_methods(
        episodes, ["iw_bc", "bc", "filtered_bc"], SEEDS, configs, progress=False
    )
    assert list(together) == ["iw_bc", "bc", "filtered_bc"]
    assert [description for description, _ in trained] == [
        "bc pre-training",
        "iw_bc fine-tune",
        "filtered_bc fine-tune",
    ]
    assert together["bc"].num_episodes == episodes.num_episodes
    assert_same(together["iw_bc"].agent.ref_params, together["bc"].agent.params)
    # One BC run, the same one both times: training is deterministic in the seeds.
    assert_same(together["bc"].agent, bc)
    assert_same(together["iw_bc"].agent, iw)


@pytest.mark.parametrize("name", ["td3_bc", "iw_bc"])
def test_resuming_from_the_checkpoint_equals_a_straight_run(
    name: str, episodes: EpisodeData, bc_agent: BCAgent, tmp_path: Path
) -> None:
    """Training on to a larger ``until``, from the checkpoint in a new Training or in memory,
    gives the agent one straight run gives (iw-BC's trajectory tables included)."""
    config, init = (TD3, None) if name == "td3_bc" else (IW, bc_agent)
    agent, data = fresh(name, episodes, config, init)
    run = dict(chunk_size=100, progress=False)
    straight_run = Training(agent, data, **run)
    straight = straight_run.to(300)
    path = tmp_path / f"{name}.msgpack"
    first = Training(agent, data, checkpoint=path, **run).to(200)
    resumed_run = Training(agent, data, checkpoint=path, **run)
    assert resumed_run.step == 200
    resumed = resumed_run.to(300)
    assert isinstance(resumed, METHODS[name].agent)
    np.testing.assert_array_equal(first.step, [200, 200])
    np.testing.assert_array_equal(resumed.step, [300, 300])
    assert [record["step"] for record in resumed_run.history] == [100, 200, 300]
    assert_same(resumed, straight)
    np.testing.assert_allclose(resumed_run.history[-1]["loss"], straight_run.history[-1]["loss"])
    # The run moved: the resumed part is not a copy of the first.
    moved = (lambda a: a.actor.params) if name == "td3_bc" else (lambda a: a.params)
    assert differs(moved(first), moved(resumed))
    # In memory, one curve point after another (the benchmark's units), the same again.
    in_memory = Training(agent, data, **run)
    in_memory.to(200)
    assert_same(in_memory.to(300), straight)
    with pytest.raises(UserError, match=r"is at update 300, past 200; delete it") as error:
        Training(agent, data, checkpoint=path, **run).to(200)
    assert "\n" not in str(error.value)


def test_train_methods_checkpoints_every_method_and_resumes(
    episodes: EpisodeData, tmp_path: Path
) -> None:
    """With a checkpoint folder each method (the BC start too) resumes from its own file: a
    second call finds every run finished and returns the same agents and histories."""
    configs = {"bc": dataclasses.replace(BC, steps=20), "iw_bc": dataclasses.replace(IW, steps=20)}
    run = dict(checkpoint_dir=tmp_path, chunk_size=10, progress=False)
    first = train_methods(episodes, ["iw_bc"], SEEDS, configs, **run)
    files = {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()}
    assert set(files) == {"bc.msgpack", "iw_bc.msgpack"}
    again = train_methods(episodes, ["iw_bc"], SEEDS, configs, **run)
    assert {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()} == files
    assert_same(again["iw_bc"].agent, first["iw_bc"].agent)
    assert again["iw_bc"].history == first["iw_bc"].history
    assert [record["step"] for record in first["iw_bc"].history] == [10, 20]


@pytest.mark.parametrize("name", ["td3_bc", "bc"])
def test_each_seed_is_evaluated_as_its_own_rollout(name: str, dataset) -> None:
    config = dataclasses.replace(TD3 if name == "td3_bc" else BC, steps=100)
    agent = train_methods(dataset.episodes, [name], SEEDS, {name: config}, progress=False)[
        name
    ].agent
    scores = evaluate_agent(agent, dataset.env_id, num_episodes=2)
    assert scores.shape == (len(SEEDS), 2)
    act = jax.jit(type(agent).act)
    for i in range(len(SEEDS)):
        alone = jax.tree.map(lambda x, i=i: x[i], agent)
        expected = rollout_returns(
            dataset.env_id,
            lambda obs, alone=alone: np.asarray(act(alone, jnp.asarray(obs, jnp.float32))),
            evaluation_seeds(2),
        ).returns
        np.testing.assert_allclose(scores[i], expected, rtol=1e-5)


def test_unknown_methods_and_no_seeds_are_refused_in_one_line(episodes: EpisodeData) -> None:
    known = ", ".join(METHODS)
    with pytest.raises(
        UserError, match=f"unknown method\\(s\\) sac; choose from {known}$"
    ) as error:
        train_methods(episodes, ["bc", "sac"], SEEDS, progress=False)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="no seeds given; pass at least one training seed"):
        train_methods(episodes, ["td3_bc"], [], {"td3_bc": TD3}, progress=False)


def test_a_config_of_another_method_is_refused_in_one_line(episodes: EpisodeData) -> None:
    with pytest.raises(ValueError, match="td3_bc needs a TD3BCConfig, got a IQLConfig") as error:
        train_methods(episodes, ["td3_bc"], SEEDS, {"td3_bc": IQLConfig(steps=10)}, progress=False)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("until", [0, 20], ids=["zero", "past-config-steps"])
def test_training_to_outside_one_to_config_steps_is_refused(
    until: int, episodes: EpisodeData
) -> None:
    """Learning-rate schedules run over ``config.steps``: a target past it (or no update at
    all) is a mistake, refused in one line rather than trained or returned untrained."""
    config = dataclasses.replace(TD3, steps=10)
    agent, data = fresh("td3_bc", episodes, config)
    with pytest.raises(ValueError, match=r"config\.steps=10") as error:
        Training(agent, data, progress=False).to(until)
    assert "\n" not in str(error.value)


def test_transitions_without_next_observations_are_refused(episodes: EpisodeData) -> None:
    """A baseline's data is prepared by prepare_data (iwbc.agents.registry.training_data)."""
    transitions = episodes.to_transitions()
    with pytest.raises(ValueError, match="transitions have no next_obs"):
        prepare_data(transitions._replace(next_obs=None), IQLConfig())


def test_a_loaded_datasets_action_box_reaches_the_agents_spec(dataset) -> None:
    """From a loaded dataset (what the bench units pass) the spec carries the box's half-widths
    (1 on InvertedDoublePendulum's [-1, 1]; TD3+BC reads them); bare episodes carry none."""
    method, config = METHODS["td3_bc"], TD3BCConfig(hidden_dims=(8,))
    wide = dataclasses.replace(
        dataset, action_low=np.full(1, -3.0, np.float32), action_high=np.full(1, 3.0, np.float32)
    )
    assert training_data(method, wide, config, SelectionConfig()).spec.action_scale == (3.0,)
    assert training_data(method, dataset, config, SelectionConfig()).spec.action_scale == (1.0,)
    bare = training_data(method, dataset.episodes, config, SelectionConfig()).spec
    assert bare.action_scale is None
    agent = create_agents(
        method.agent, config, training_data(method, wide, config, SelectionConfig()).spec, [0]
    )
    assert agent.action_scale == (3.0,)


def test_a_checkpoint_of_other_data_config_or_seeds_is_refused_not_returned(
    episodes: EpisodeData, tmp_path: Path
) -> None:
    """A checkpoint folder reused for another training must not hand back the old agent: each
    checkpoint records the data, config and seeds it was trained on, and a change is refused
    naming the file and what differs (the same training still resumes: the test above)."""
    config = dataclasses.replace(BC, steps=10)
    run = dict(checkpoint_dir=tmp_path, chunk_size=10, progress=False)
    train_methods(episodes, ["bc"], SEEDS, {"bc": config}, **run)
    other_rewards = episodes._replace(rewards=episodes.rewards * 2, returns=episodes.returns * 2)
    changes = [
        ("config", episodes, SEEDS, dataclasses.replace(config, learning_rate=1e-2)),
        ("data", other_rewards, SEEDS, config),
        ("seeds", episodes, (1, 0), config),
    ]
    for what, data, seeds, changed in changes:
        with pytest.raises(
            UserError,
            match=f"checkpoint {tmp_path / 'bc.msgpack'} was trained on other {what}: use "
            "another checkpoint_dir or delete it$",
        ) as error:
            train_methods(data, ["bc"], seeds, {"bc": changed}, **run)
        assert "\n" not in str(error.value)


@pytest.mark.parametrize(("name", "given"), [("iw_bc", BC), ("iw_bc_step", IW)])
def test_the_method_name_fixes_the_loss_whatever_config_is_given(
    name: str, given: BCConfig, episodes: EpisodeData
) -> None:
    """A config passed for a BC-family method trains that method's loss, as suites do."""
    configs = {"bc": dataclasses.replace(BC, steps=5), name: dataclasses.replace(given, steps=20)}
    trained = train_methods(episodes, [name], SEEDS, configs, progress=False)[name]
    assert trained.agent.config.loss == METHODS[name].loss
    assert "weight_ess" in trained.history[-1]


def test_configs_for_methods_not_trained_are_refused_in_one_line(episodes: EpisodeData) -> None:
    """A misspelt or unused key would otherwise silently train the paper's budget; a
    fine-tune's ``bc`` start config is used, so it is accepted."""
    with pytest.raises(
        UserError, match=r"^configs given for BC, which this call does not train; it trains bc$"
    ):
        train_methods(episodes, ["bc"], SEEDS, {"BC": BC}, progress=False)
    with pytest.raises(UserError, match=r"configs given for bc, td3_bc, .* it trains top10_bc$"):
        train_methods(episodes, ["top10_bc"], SEEDS, {"bc": BC, "td3_bc": TD3}, progress=False)
    configs = {
        "bc": dataclasses.replace(BC, steps=5),
        "filtered_bc": dataclasses.replace(BC, steps=5),
    }
    assert train_methods(episodes, ["filtered_bc"], SEEDS, configs, progress=False)


@pytest.mark.parametrize("chunk_size", [0, -5, 2.5, True])
def test_a_chunk_size_below_one_is_refused_not_looped_on(
    chunk_size: object, episodes: EpisodeData
) -> None:
    with pytest.raises(UserError, match=r"^chunk_size must be an integer ≥ 1, got "):
        train_methods(episodes, ["bc"], SEEDS, {"bc": BC}, chunk_size=chunk_size, progress=False)
    agent, data = fresh("bc", episodes, BC)
    with pytest.raises(UserError, match=r"^chunk_size must be an integer ≥ 1, got "):
        Training(agent, data, chunk_size=chunk_size, progress=False)


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ([0, 0], r"seeds must be distinct \(a repeat trains the same run twice\), got \[0, 0\]"),
        ([0, 2**32], r"seeds must be integers in \[0, 2\*\*32\), got \[0, 4294967296\]"),
        ([-1], r"seeds must be integers in \[0, 2\*\*32\)"),
        ([0.5], r"seeds must be integers in \[0, 2\*\*32\), got \[0.5\]"),
        ([True, 2], r"seeds must be integers in \[0, 2\*\*32\)"),
        (3, r"seeds must be a list of integers, got 3"),
        ("01", r"seeds must be a list of integers, got '01'"),
    ],
)
def test_seeds_that_are_no_distinct_jax_seeds_are_refused_in_one_line(
    seeds: object, message: str, episodes: EpisodeData
) -> None:
    with pytest.raises(UserError, match=f"^{message}"):
        train_methods(episodes, ["td3_bc"], seeds, {"td3_bc": TD3}, progress=False)


def test_numpy_integer_seeds_train_as_ints(episodes: EpisodeData) -> None:
    config = dataclasses.replace(TD3, steps=2)
    trained = train_methods(episodes, ["td3_bc"], np.arange(2), {"td3_bc": config}, progress=False)
    assert np.shape(trained["td3_bc"].agent.step) == (2,)


def test_data_one_requested_method_refuses_is_refused_before_any_trains(
    episodes: EpisodeData, tmp_path: Path
) -> None:
    """Equal returns leave IQL's reward scaling undefined: refused before TD3+BC, listed first,
    trains (and its checkpoint is written)."""
    equal = episodes._replace(
        rewards=np.zeros_like(episodes.rewards), returns=np.zeros_like(episodes.returns)
    )
    configs = {"td3_bc": TD3, "iql": IQLConfig(steps=10, batch_size=64, hidden_dims=(32, 32))}
    with pytest.raises(UserError, match=r"--set iql\.normalize_rewards=false"):
        train_methods(
            equal, ["td3_bc", "iql"], SEEDS, configs, checkpoint_dir=tmp_path, progress=False
        )
    assert not list(tmp_path.iterdir())


def test_a_fine_tune_wider_than_its_bc_start_is_refused_before_training(
    episodes: EpisodeData, tmp_path: Path
) -> None:
    configs = {"bc": BC, "iw_bc": BCConfig.iw_finetune(steps=50, batch_size=8, warmup_steps=5)}
    with pytest.raises(
        UserError,
        match=r"^a fine-tune with hidden_dims \(256, 256, 256\) cannot start from an agent with "
        r"hidden_dims \(32, 32\); give both the same hidden_dims$",
    ):
        train_methods(episodes, ["iw_bc"], SEEDS, configs, checkpoint_dir=tmp_path, progress=False)
    assert not list(tmp_path.iterdir())
