"""Benchmark suites: the shipped TOML files, evaluation steps, and one-line errors for mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iwbc.agents.bc import BCConfig
from iwbc.agents.registry import BASELINES, METHODS
from iwbc.bench.experiment import ExperimentConfig
from iwbc.bench.records import is_finished, load_records, record_fingerprint
from iwbc.bench.suites import (
    available_suites,
    eval_targets,
    load_suite,
    parse_settings,
    parse_suite,
    with_overrides,
)
from iwbc.data.scripted import DEFAULT_DATASET_ID
from iwbc.errors import UserError

MINIMAL = {"datasets": ["a/b/c-v0"], "methods": ["bc", "td3_bc"], "seeds": [0, 1]}


def parse(**changes: object):
    return parse_suite("t", {**MINIMAL, **changes}, where="t.toml")


def test_shipped_suites_load() -> None:
    assert {"demo", "paper", "full"} <= set(available_suites())
    demo = load_suite("demo")
    assert demo.datasets == (DEFAULT_DATASET_ID,)
    # The BC family only: the baselines need more updates than the demo affords (demo.toml).
    assert set(demo.methods) == {"bc", "filtered_bc", "top10_bc", "iw_bc", "iw_bc_quality"}
    assert demo.seeds == (0, 1, 2, 3, 4)
    # The demo's own dataset, made locally, and its CPU budget for the BC family.
    assert [(s.dataset, s.episodes, s.seed) for s in demo.scripted] == [
        (DEFAULT_DATASET_ID, 200, 0)
    ]
    assert demo.pipeline.pretrain == BCConfig(steps=400, batch_size=256, window=1)
    assert demo.pipeline.finetune == BCConfig.iw_finetune(
        steps=200, warmup_steps=30, batch_size=256, window=1, learning_rate=3e-4
    )
    assert demo.pipeline.standardize_observations
    assert demo.pipeline.pretrain.weighting == "transition"

    paper = load_suite("paper")
    tiers = ("medium", "medium-replay", "medium-expert")
    expected = {
        f"iwbc/{env}/{tier}-v0" for env in ("hopper", "halfcheetah", "walker2d") for tier in tiers
    }
    assert set(paper.datasets) == expected
    assert set(paper.methods) == {"bc", "filtered_bc", "iw_bc", "td3_bc", "iql", "cql", "awac"}
    assert len(paper.seeds) == 5
    # METHOD.md's budgets and CORL's 1M updates; whole episodes, the authors' episode weighting.
    assert paper.pipeline.pretrain == BCConfig(weighting="episode")
    assert paper.pipeline.finetune == BCConfig.iw_finetune(weighting="episode")
    assert paper.pipeline.standardize_observations
    assert all(paper.agent_config(m).steps == 1_000_000 for m in ("td3_bc", "iql", "cql", "awac"))
    assert paper.agent_config("iql") == METHODS["iql"].config()
    # A BC-family method's config is its stage with its own loss and the suite's network.
    assert paper.agent_config("iw_bc") == BCConfig.iw_finetune(weighting="episode")
    assert paper.agent_config("bc") == BCConfig(weighting="episode")
    assert (paper.eval_episodes, paper.final_eval_episodes) == (10, 100)

    full = load_suite("full")
    assert set(BASELINES) == {"td3_bc", "iql", "cql", "awac"}
    assert set(full.methods) == set(METHODS)
    assert len(full.datasets) == 15


def test_load_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('datasets = ["x/y/z-v0"]\nmethods = ["iw_bc"]\nseeds = [3]\n')
    suite = load_suite(path)
    assert (suite.name, suite.methods, suite.seeds) == ("mine", ("iw_bc",), (3,))


@pytest.mark.parametrize(
    ("total", "every", "expected"),
    [
        (400, 100, (100, 200, 300, 400)),
        (400, 150, (150, 300, 400)),
        (400, 0, (400,)),
        (50, 100, (50,)),
    ],
)
def test_eval_targets(total: int, every: int, expected: tuple[int, ...]) -> None:
    assert eval_targets(total, every) == expected


def test_family_budgets_and_eval_every() -> None:
    suite = parse(
        eval_every=5,
        bc_family={"eval_every": 50, "pretrain": {"steps": 100}, "finetune": {"steps": 600}},
        offline_rl={"steps": 40, "td3_bc": {"steps": 30, "alpha": 1.0}},
        methods=["bc", "iw_bc", "td3_bc", "iql"],
    )
    assert suite.eval_targets("bc") == (50, 100)
    assert suite.eval_targets("iw_bc") == tuple(range(50, 601, 50))
    assert suite.eval_targets("td3_bc") == tuple(range(5, 31, 5))
    assert suite.agent_config("td3_bc").alpha == 1.0
    assert suite.agent_config("iql").steps == 40
    assert (suite.agent_config("bc").steps, suite.agent_config("iw_bc").steps) == (100, 600)
    assert suite.agent_config("iw_bc").loss == "iw_trajectory"
    # The fine-tune keeps the paper's fine-tune defaults it does not override.
    assert suite.pipeline.finetune.learning_rate == BCConfig.iw_finetune().learning_rate


def test_a_dataset_sets_every_baselines_budget_there_and_nowhere_else() -> None:
    """[offline_rl.datasets."<id>"]: after [offline_rl] and [offline_rl.<algo>], before the
    method's own table; the BC family and the other datasets keep their budgets."""
    other = "a/b/d-v0"
    suite = parse(
        datasets=["a/b/c-v0", other],
        methods=["bc", "iw_bc", "td3_bc", "iql"],
        eval_every=10,
        offline_rl={
            "steps": 40,
            "td3_bc": {"steps": 30, "alpha": 1.0},
            "datasets": {other: {"steps": 80, "batch_size": 64}},
        },
    )
    assert [suite.agent_config(m, other).steps for m in ("td3_bc", "iql")] == [80, 80]
    assert suite.agent_config("td3_bc", other).batch_size == 64
    assert suite.agent_config("td3_bc", other).alpha == 1.0
    assert [suite.agent_config(m, "a/b/c-v0").steps for m in ("td3_bc", "iql")] == [30, 40]
    assert [suite.agent_config(m).steps for m in ("td3_bc", "iql")] == [30, 40]
    assert suite.eval_targets("iql", other) == tuple(range(10, 81, 10))
    assert suite.agent_config("iw_bc", other) == suite.agent_config("iw_bc")
    assert suite.method_config("bc", other) == suite.method_config("bc", "a/b/c-v0")
    # The run's records state the budget, so a run at the other budget is a different run.
    assert suite.method_config("iql", other)["algorithm"]["steps"] == 80
    assert suite.method_fingerprint("iql", other) != suite.method_fingerprint("iql", "a/b/c-v0")
    # A method's own settings (a [methods.<name>] table, --set) come last.
    assert with_overrides(suite, {"iql": {"steps": 7}}).agent_config("iql", other).steps == 7


def test_a_dataset_sets_one_baselines_budget_there_after_the_shared_one() -> None:
    """[offline_rl.datasets."<id>".<algo>]: one algorithm's fields on one dataset, after that
    dataset's fields for every algorithm and before the method's own table."""
    other = "a/b/d-v0"
    suite = parse(
        datasets=["a/b/c-v0", other],
        methods=["bc", "td3_bc", "iql"],
        offline_rl={
            "steps": 40,
            "datasets": {other: {"steps": 80, "batch_size": 64, "td3_bc": {"steps": 160}}},
        },
    )
    td3_bc, iql = suite.agent_config("td3_bc", other), suite.agent_config("iql", other)
    assert (td3_bc.steps, td3_bc.batch_size, iql.steps, iql.batch_size) == (160, 64, 80, 64)
    assert suite.agent_config("td3_bc", "a/b/c-v0").steps == 40
    assert suite.agent_config("td3_bc").steps == 40
    assert suite.method_config("td3_bc", other)["algorithm"]["steps"] == 160
    assert suite.method_fingerprint("iql", other) == parse(
        datasets=["a/b/c-v0", other],
        methods=["bc", "td3_bc", "iql"],
        offline_rl={"steps": 40, "datasets": {other: {"steps": 80, "batch_size": 64}}},
    ).method_fingerprint("iql", other)
    assert with_overrides(suite, {"td3_bc": {"steps": 7}}).agent_config("td3_bc", other).steps == 7


def test_a_dataset_sets_a_bc_stage_there_and_nowhere_else() -> None:
    """[bc_family.datasets."<id>".finetune]: the fine-tunes on that dataset train that budget
    (pre-training and the other datasets keep theirs); .pretrain moves the fine-tunes' start."""
    other = "a/b/d-v0"
    suite = parse(
        datasets=["a/b/c-v0", other],
        methods=["bc", "filtered_bc", "iw_bc", "td3_bc"],
        bc_family={
            "eval_every": 50,
            "pretrain": {"steps": 100},
            "finetune": {"steps": 200, "warmup_steps": 10},
            "datasets": {other: {"finetune": {"steps": 600, "learning_rate": 3e-4}}},
        },
    )
    for method in ("filtered_bc", "iw_bc"):
        config = suite.agent_config(method, other)
        assert (config.steps, config.learning_rate, config.warmup_steps) == (600, 3e-4, 10)
        assert config.loss == METHODS[method].loss
        assert suite.agent_config(method, "a/b/c-v0").steps == 200
        assert suite.agent_config(method).steps == 200
    assert suite.eval_targets("iw_bc", other) == tuple(range(50, 601, 50))
    assert suite.agent_config("bc", other) == suite.agent_config("bc")
    assert suite.agent_config("td3_bc", other) == suite.agent_config("td3_bc")
    assert suite.method_config("iw_bc", other)["stage"]["steps"] == 600
    assert suite.method_fingerprint("iw_bc", other) != suite.method_fingerprint("iw_bc")
    assert suite.method_fingerprint("bc", other) == suite.method_fingerprint("bc")
    # A dataset's pre-training is the start its fine-tunes' records state.
    longer = parse(
        datasets=["a/b/c-v0", other],
        methods=["bc", "iw_bc"],
        bc_family={"datasets": {other: {"pretrain": {"steps": 77}}}},
    )
    assert longer.agent_config("bc", other).steps == 77
    assert longer.method_config("iw_bc", other)["pretrain"]["steps"] == 77
    assert longer.method_config("iw_bc", other)["stage"] == longer.method_config("iw_bc")["stage"]
    # A method's own settings (a [methods.<name>] table, --set) come last.
    assert with_overrides(suite, {"iw_bc": {"steps": 70}}).agent_config("iw_bc", other).steps == 70
    # ... and are checked on every dataset: this warm-up fits 600 steps, not 350.
    warm = parse(
        datasets=["a/b/c-v0", other],
        methods=["bc", "iw_bc"],
        bc_family={"datasets": {other: {"finetune": {"steps": 600, "warmup_steps": 400}}}},
    )
    with pytest.raises(ValueError, match=f"settings of iw_bc on {other}: warmup_steps must be"):
        with_overrides(warm, {"iw_bc": {"steps": 350}})


def test_dataset_settings_leave_the_fingerprints_of_other_datasets_alone() -> None:
    """Adding a dataset's settings must not make any other record stale."""
    plain = parse(datasets=["a/b/c-v0", "a/b/d-v0"], methods=["bc", "iw_bc", "iql"])
    raised = parse(
        datasets=["a/b/c-v0", "a/b/d-v0"],
        methods=["bc", "iw_bc", "iql"],
        bc_family={"datasets": {"a/b/d-v0": {"finetune": {"steps": 900}}}},
        offline_rl={"datasets": {"a/b/d-v0": {"steps": 9}}},
    )
    for method in plain.methods:
        assert raised.method_fingerprint(method, "a/b/c-v0") == plain.method_fingerprint(method)


def test_an_integer_for_a_float_field_makes_the_same_configuration() -> None:
    """``temperature = 10`` is 10.0: the runner and the report (by fingerprint) then agree
    that a record made under either is finished."""
    plain = parse(methods=["bc", "iw_bc", "td3_bc"])
    spelled = parse(
        methods=["bc", "iw_bc", "td3_bc"],
        bc_family={"finetune": {"temperature": 10}},
        offline_rl={"td3_bc": {"alpha": 2}, "datasets": {"a/b/c-v0": {"discount": 1}}},
    )
    assert spelled.method_config("iw_bc") == plain.method_config("iw_bc")
    assert spelled.method_fingerprint("iw_bc") == plain.method_fingerprint("iw_bc")
    algorithm = spelled.method_config("td3_bc", "a/b/c-v0")["algorithm"]
    assert (algorithm["alpha"], algorithm["discount"]) == (2.0, 1.0)
    assert isinstance(algorithm["alpha"], float) and isinstance(algorithm["discount"], float)
    record = {"status": "ok", "config": {"x": 3}}
    assert not is_finished(record, {"x": 3.0}) and is_finished(record, {"x": 3})


def test_method_config_is_plain_json_and_says_what_steps_count() -> None:
    suite = parse(methods=["bc", "iw_bc", "td3_bc"])
    for method in suite.methods:
        config = suite.method_config(method)
        assert json.loads(json.dumps(config)) == config
    assert suite.method_config("iw_bc")["steps_counted"].startswith("fine-tune updates after")
    assert suite.method_config("iw_bc")["pretrain"]["steps"] == BCConfig().steps
    assert suite.method_config("td3_bc")["algorithm"]["steps"] == 1_000_000


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"epochs": 3}, r"unknown key 'epochs' in the top level; known keys: description, "),
        ({"methods": ["bc", "dqn"]}, r"unknown method\(s\) dqn; available: bc, filtered_bc, "),
        ({"seeds": [0, 0]}, r"'seeds' must be a non-empty list of distinct integers"),
        ({"seeds": [0, 2**32]}, r"seed 4294967296 is not below 2\*\*32; JAX keys keep 32 bits"),
        (
            {"offline_rl": {"iql": {"expectle": 0.9}}},
            r"unknown key 'expectle' in \[offline_rl.iql\]",
        ),
        ({"datasets": []}, r"'datasets' must be a non-empty list of strings"),
        ({"engine": "warp"}, r"unknown engine 'warp'; choose one of auto, batch"),
        ({"eval_every": -1}, r"eval_every in the top level must be an integer ≥ 0"),
        (
            {"bc_family": {"pretrain": {"stepz": 3}}},
            r"unknown key 'stepz' in \[bc_family.pretrain\]",
        ),
        (
            {"bc_family": {"finetune": {"loss": "bc"}}},
            r"unknown key 'loss' in \[bc_family.finetune\]",
        ),
        (
            {"bc_family": {"pretrain": {"steps": 1.5}}},
            r"steps in \[bc_family.pretrain\] must be of type int",
        ),
        (
            {"bc_family": {"pretrain": {"steps": 0}}},
            r"bad value in \[bc_family\]: steps and batch_size",
        ),
        ({"description": 5}, r"description must be text, got 5"),
        # fields whose default is None are checked against their annotation
        (
            {"bc_family": {"pretrain": {"window": 2.5}}},
            r"window in \[bc_family.pretrain\] must be of type int \| None, got 2.5",
        ),
        (
            {"bc_family": {"finetune": {"warmup_steps": True}}},
            r"warmup_steps in \[bc_family.finetune\] must be of type int \| None, got True",
        ),
        (
            {"offline_rl": {"expectile": 0.9}},
            r"unknown key 'expectile' in \[offline_rl\] \(a table per",
        ),
        (
            {"offline_rl": {"td3_bc": {"expectile": 0.9}}},
            r"unknown key 'expectile' in \[offline_rl.td3_bc\]",
        ),
        (
            {"offline_rl": {"td3_bc": {"normalize_states": 1}}},
            r"normalize_states .* must be of type bool",
        ),
        (
            {"scripted": {"a/b/c-v0": {"seed": 10}}},
            r"\[scripted.'a/b/c-v0'\]: scripted seed 10 with 200 episodes resets episodes at "
            r"seeds up to 1,000,199, reaching the evaluation's reset seeds \(1,000,000 \+ i\); "
            r"use a seed ≤ 9",
        ),
        (
            {"scripted": {"q/r/s-v0": {"episodes": 5}}},
            r"\[scripted.'q/r/s-v0'\] is not one of the suite's",
        ),
        (
            {"offline_rl": {"datasets": {"q/r/s-v0": {"steps": 5}}}},
            r'\[offline_rl.datasets."q/r/s-v0"\] is not one of the suite\'s datasets',
        ),
        (
            {"offline_rl": {"datasets": {"a/b/c-v0": {"alpha": 1.0}}}},
            r'unknown key \'alpha\' in \[offline_rl.datasets."a/b/c-v0"\] \(a table per algorithm',
        ),
        (
            {"offline_rl": {"datasets": {"a/b/c-v0": {"td3_bc": {"expectile": 0.9}}}}},
            r'unknown key \'expectile\' in \[offline_rl.datasets."a/b/c-v0".td3_bc\]; known keys',
        ),
        (
            {"offline_rl": {"datasets": {"a/b/c-v0": {"iql": {"steps": 5}}}}},
            r'\[offline_rl.datasets."a/b/c-v0".iql\] sets \'iql\', which the suite does not train',
        ),
        (
            {"offline_rl": {"datasets": {"a/b/c-v0": {"td3_bc": {"steps": 0}}}}},
            r'bad value in \[offline_rl.datasets."a/b/c-v0".td3_bc\]: TD3BCConfig.steps must be',
        ),
        (
            {"offline_rl": {"datasets": {"a/b/c-v0": {"td3_bc": 40000}}}},
            r'datasets."a/b/c-v0".td3_bc must be a table',
        ),
        (
            {"offline_rl": {"datasets": {"a/b/c-v0": {"steps": 2.5}}}},
            r'steps in \[offline_rl.datasets."a/b/c-v0"\] must be of type int',
        ),
        (
            {"offline_rl": {"datasets": {"a/b/c-v0": {"steps": 0}}}},
            r'bad value in \[offline_rl.datasets."a/b/c-v0"\]: TD3BCConfig.steps must be an ',
        ),
        (
            {"offline_rl": {"datasets": {"a/b/c-v0": 20000}}},
            r'datasets."a/b/c-v0" must be a table \(\[offline_rl.datasets."a/b/c-v0"\]\)',
        ),
        (
            {"offline_rl": {"datasets": ["a/b/c-v0"]}},
            r"offline_rl.datasets must be a table",
        ),
        (
            {"bc_family": {"datasets": {"q/r/s-v0": {"finetune": {"steps": 5}}}}},
            r'\[bc_family.datasets."q/r/s-v0"\] is not one of the suite\'s datasets',
        ),
        (
            {"bc_family": {"datasets": {"a/b/c-v0": {"steps": 5}}}},
            r'unknown key \'steps\' in \[bc_family.datasets."a/b/c-v0"\] \(a table per stage\); '
            "known keys: pretrain, finetune",
        ),
        (
            {"bc_family": {"datasets": {"a/b/c-v0": {"finetune": {"hidden_dims": [8]}}}}},
            r'unknown key \'hidden_dims\' in \[bc_family.datasets."a/b/c-v0".finetune\]; known',
        ),
        (
            {"bc_family": {"datasets": {"a/b/c-v0": {"finetune": {"steps": 2.5}}}}},
            r'steps in \[bc_family.datasets."a/b/c-v0".finetune\] must be of type int',
        ),
        (
            {"bc_family": {"datasets": {"a/b/c-v0": {"finetune": {"steps": 100}}}}},
            r'bad value in \[bc_family.datasets."a/b/c-v0".finetune\]: warmup_steps must be in ',
        ),
        (
            {"bc_family": {"datasets": {"a/b/c-v0": {"pretrain": 3000}}}},
            r'datasets."a/b/c-v0".pretrain must be a table',
        ),
        (
            {"reference_scores": {"q/r/s-v0": {"ref_min": 0, "ref_max": 1}}},
            r'\[reference_scores."q/r/s-v0"\] is not one of the suite\'s datasets',
        ),
        (
            {"reference_scores": {"a/b/c-v0": {"ref_min": 0, "ref_max": 0}}},
            r'ref_max must be greater than ref_min in \[reference_scores."a/b/c-v0"\], got 0 and 0',
        ),
        (
            {"reference_scores": {"a/b/c-v0": {"ref_min": 0}}},
            r'\[reference_scores."a/b/c-v0"\] needs ref_max as a number, got None',
        ),
        (
            {"reference_scores": {"a/b/c-v0": {"ref_min": 0, "ref_max": 1, "max": 2}}},
            r"unknown key 'max' in \[reference_scores.\"a/b/c-v0\"\]",
        ),
        (
            {"reference_scores": {"a/b/c-v0": {"ref_min": float("nan"), "ref_max": 1}}},
            r"ref_min in \[reference_scores.\"a/b/c-v0\"\] must be finite",
        ),
    ],
)
def test_mistakes_are_one_line_errors(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        parse(**changes)
    assert "\n" not in str(error.value)
    assert str(error.value).startswith("t.toml: ")


def test_missing_key_and_unknown_suite(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="missing key 'seeds'"):
        parse_suite("t", {"datasets": ["a/b/c-v0"], "methods": ["bc"]})
    with pytest.raises(
        ValueError,
        match=r"unknown suite 'nope'; available suites: demo, full, paper(, \w+)* \(or pass a path",
    ):
        load_suite("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("datasets = [\n")
    with pytest.raises(ValueError, match="is not valid TOML") as error:
        load_suite(bad)
    assert "\n" not in str(error.value)


def test_standardization_and_weighting_are_suite_keys_and_in_the_config() -> None:
    suite = parse_suite(
        "s",
        {
            "datasets": ["x/y/z-v0"],
            "methods": ["bc", "td3_bc"],
            "seeds": [0],
            "bc_family": {
                "standardize_observations": False,
                "pretrain": {"weighting": "episode"},
            },
        },
    )
    assert not suite.pipeline.standardize_observations
    assert suite.pipeline.pretrain.weighting == "episode"
    bc, td3 = suite.method_config("bc"), suite.method_config("td3_bc")
    assert bc["observations"] == "raw" and bc["stage"]["weighting"] == "episode"
    assert td3["observations"].startswith("standardized")
    with pytest.raises(ValueError, match="unknown weighting 'steps'"):
        parse_suite(
            "s",
            {
                "datasets": ["x/y/z-v0"],
                "methods": ["bc"],
                "seeds": [0],
                "bc_family": {"pretrain": {"weighting": "steps"}},
            },
        )


def test_layer_init_is_a_suite_key_stated_only_where_set() -> None:
    """Records made before the key existed (every one at Flax's init) keep their fingerprints;
    PyTorch's init is stated in the record and makes another run."""
    flax = parse()
    torch = parse(bc_family={"layer_init": "torch"}, offline_rl={"layer_init": "torch"})
    for method in ("bc", "td3_bc"):
        assert "layer_init" not in json.dumps(flax.method_config(method))
        assert flax.method_fingerprint(method) != torch.method_fingerprint(method)
    assert torch.method_config("bc")["layer_init"] == "torch"
    assert torch.method_config("td3_bc")["algorithm"]["layer_init"] == "torch"
    assert torch.agent_config("bc").layer_init == "torch"
    explicit = parse(bc_family={"layer_init": "flax"}, offline_rl={"layer_init": "flax"})
    assert explicit.method_fingerprint("bc") == flax.method_fingerprint("bc")
    assert explicit.method_fingerprint("td3_bc") == flax.method_fingerprint("td3_bc")
    # An experiment's run directory keeps the key it had before the option existed.
    assert ExperimentConfig().fingerprint("mujoco/hopper/medium-v0") == "88f78470e2da"
    with pytest.raises(ValueError, match=r"^t.toml: .*layer_init must be one of flax, torch, "):
        parse(bc_family={"layer_init": "pytorch"})
    with pytest.raises(ValueError, match=r"^t.toml: .*TD3BCConfig.layer_init must be one of"):
        parse(offline_rl={"td3_bc": {"layer_init": "he"}})
    with pytest.raises(ValueError, match=r"unknown key 'layer_init' in \[bc_family.pretrain\]"):
        parse(bc_family={"pretrain": {"layer_init": "torch"}})


RESULTS = Path(__file__).resolve().parents[1] / "results"


# Every committed quick-suite run on the strong-preset tiers (results/strong-<task>/quick).
STRONG = sorted(path.parent for path in RESULTS.glob("strong-*/quick"))


def _suite_beside(results: Path, suite: str) -> str:
    """The suite file committed beside ``results``' records where one pins the configuration
    they were made under, else the shipped suite of that name."""
    beside = results / f"{suite}.toml"
    return str(beside) if beside.exists() else suite


# Suite files committed beside their records (results/{finetune-budget,awac-lambda}/<suite>.toml).
BESIDE = sorted([*RESULTS.glob("finetune-budget/*.toml"), *RESULTS.glob("awac-lambda/*.toml")])


@pytest.mark.parametrize(
    ("results", "suite_name"),
    [
        (RESULTS, "demo"),
        (RESULTS, "quick"),
        *((path, _suite_beside(path, "quick")) for path in STRONG),
        *((path.parent, str(path)) for path in BESIDE),
    ],
    ids=["demo", "quick", *(path.name for path in STRONG), *(path.stem for path in BESIDE)],
)
def test_committed_records_match_the_current_suite_configuration(
    results: Path, suite_name: str
) -> None:
    """A change of a config's fields, defaults or record shape re-keys every run it touches:
    the committed results would then be stale (rerun them, or explain the change)."""
    suite = load_suite(suite_name)
    records = load_records(suite.name, results)
    assert records, f"no committed {suite.name} records under {results}"
    stale = sorted(
        {
            f"{r['dataset']}/{r['method']}"
            for r in records
            if record_fingerprint(r) != suite.method_fingerprint(r["method"], r["dataset"])
        }
    )
    assert stale == []


def test_set_none_restores_a_field_whose_default_is_none() -> None:
    """TOML has no null: ``--set iw_bc.window=none`` is how a fine-tune of a suite that samples
    one-step windows goes back to whole episodes; a field that cannot be None refuses it."""
    assert parse_settings(["iw_bc.window=none", "bc.weighting=episode"]) == {
        "iw_bc": {"window": None},
        "bc": {"weighting": "episode"},
    }
    quick = load_suite("quick")
    dataset = quick.datasets[0]
    whole = with_overrides(quick, parse_settings(["iw_bc.window=None"]))
    assert whole.agent_config("iw_bc", dataset).window is None
    assert whole.agent_config("bc", dataset).window == 1
    with pytest.raises(UserError, match="steps in the settings of iw_bc must be of type int"):
        with_overrides(quick, parse_settings(["iw_bc.steps=none"]))
