"""Benchmark suites: which datasets, methods, seeds and budgets a sweep runs, read from TOML.

A suite file (a shipped ``iwbc/suites/<name>.toml``, package data so that every install has
them, or a path) names its datasets, methods (of :mod:`iwbc.agents.registry`), training seeds and
evaluation protocol, plus the budgets: ``[bc_family]`` (with ``[bc_family.pretrain]`` and
``[bc_family.finetune]`` overriding :class:`iwbc.agents.bc.BCConfig`, and
``[bc_family.datasets."<id>".pretrain]`` / ``.finetune`` for a stage on one dataset) and
``[offline_rl]`` (keys shared by every algorithm's config, ``[offline_rl.<algo>]`` for one,
``[offline_rl.datasets."<id>"]`` for every algorithm on one dataset and
``[offline_rl.datasets."<id>".<algo>]`` for one algorithm there).
``[scripted.<id>]`` marks a dataset the runner makes locally when it is missing. Every mistake
is a one-line UserError naming the key and what is allowed, so a typo never silently runs
defaults.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol

from iwbc.agents.bc import BCConfig
from iwbc.agents.common import later_option, stated_fields
from iwbc.agents.networks import LayerInit
from iwbc.agents.registry import BASELINES, METHODS, Family, Method, SelectionConfig
from iwbc.bench.records import config_fingerprint
from iwbc.data.scripted import check_mixture_seeds
from iwbc.data.statistics import STD_EPSILON
from iwbc.envs.evaluate import EVAL_SEED_BASE
from iwbc.envs.rollout import ENGINES
from iwbc.errors import UserError
from iwbc.options import SEED_LIMIT

SUITES_DIR = Path(str(files("iwbc") / "suites"))

_TOP_KEYS = (
    "description",
    "datasets",
    "methods",
    "seeds",
    "eval_episodes",
    "final_eval_episodes",
    "eval_every",
    "engine",
    "scripted",
    "bc_family",
    "offline_rl",
    "reference_scores",
)
_BC_KEYS = (
    "eval_every",
    "chunk_size",
    "hidden_dims",
    "percentiles",
    "top_fraction",
    "standardize_observations",
    "layer_init",
)
_RL_KEYS = ("eval_every", "chunk_size", "datasets")
_STAGES = ("pretrain", "finetune")
# The method decides the loss; [bc_family] sets the network and inputs of every stage.
_PIPELINE_FIELDS = ("loss", "hidden_dims", "standardize", "layer_init")
_STAGE_KEYS = tuple(f.name for f in dataclasses.fields(BCConfig) if f.name not in _PIPELINE_FIELDS)


class FamilySettings(Protocol):
    """What a suite sets for a family of methods (its ``[bc_family]`` or ``[offline_rl]``): each
    method's base config, the chunk size and evaluation interval of their training, and how
    their records state the configuration they trained with."""

    chunk_size: int
    eval_every: int | None  # None: the suite's

    def config(self, method: Method, dataset: str | None = None) -> Any: ...

    def describe(self, method: Method, config: Any, start: Any | None) -> dict[str, Any]: ...


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """The BC family's settings (a suite's ``[bc_family]``): the pre-training and fine-tune
    stages, the policy network and its inputs, the curated selections, the chunk size and the
    evaluation interval (None: the suite's).

    Defaults are the paper's: BC pre-training (10k steps, Adam 1e-3, 128 episodes), fine-tunes
    of 2k steps (Adam 4e-5, warm-up 300, cosine; 256 episodes; temperature 10; normalized),
    a 3×256 policy, percentiles 90/95/98 and a 10% top fraction; except two choices made on
    evidence (METHOD.md, README): observations standardized with the dataset's statistics, as
    CORL does for BC and every baseline (``standardize_observations=False`` is the authors'
    raw input), and transition-uniform step weighting (``BCConfig.weighting``). The policy's
    layers start as Flax's default (``layer_init="torch"``: PyTorch's, as the authors' code).

    ``datasets`` holds (dataset, stage, fields): a stage's fields on one dataset (a suite's
    ``[bc_family.datasets."<id>".finetune]``), so that a task whose curves flatten later gets
    a larger budget there without paying it everywhere.
    """

    pretrain: BCConfig = dataclasses.field(default_factory=BCConfig)
    finetune: BCConfig = dataclasses.field(default_factory=BCConfig.iw_finetune)
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    percentiles: tuple[float, ...] = (90.0, 95.0, 98.0)
    top_fraction: float = 0.1
    chunk_size: int = 500
    standardize_observations: bool = True
    eval_every: int | None = None
    datasets: tuple[tuple[str, str, tuple[tuple[str, Any], ...]], ...] = ()
    layer_init: LayerInit = later_option("flax")

    def __post_init__(self) -> None:
        # Built once here so that a bad network, input or selection setting fails at once.
        self.config(METHODS["bc"])
        SelectionConfig(self.percentiles, self.top_fraction)
        if self.chunk_size < 1:
            raise UserError(f"chunk_size must be at least 1, got {self.chunk_size}")

    @property
    def selection(self) -> SelectionConfig:
        return SelectionConfig(self.percentiles, self.top_fraction)

    def config(self, method: Method, dataset: str | None = None) -> BCConfig:
        """The config a BC-family method trains with: pre-training from scratch, else the
        fine-tune, with that stage's fields on ``dataset`` (if it has some) set last, the
        method's loss and the pipeline's network and inputs."""
        stage = "pretrain" if method.start is None else "finetune"
        base = getattr(self, stage)
        own = {(d, s): fields for d, s, fields in self.datasets}.get((dataset, stage), ())
        return dataclasses.replace(
            base,
            **dict(own),
            loss=method.loss,
            hidden_dims=self.hidden_dims,
            standardize=self.standardize_observations,
            layer_init=self.layer_init,
        )

    def describe(self, method: Method, config: BCConfig, start: BCConfig | None) -> dict[str, Any]:
        """A BC-family run as its records state it: selection, start, stage and network."""
        described: dict[str, Any] = {
            "family": "bc",
            "observations": observation_preprocessing(config.standardize),
            "selection": method.selection,
            "start": method.start or "scratch",
            "stage": stage_fields(config),
            "hidden_dims": list(config.hidden_dims),
            **({} if config.layer_init == "flax" else {"layer_init": config.layer_init}),
            "chunk_size": self.chunk_size,
            "steps_counted": "updates from scratch",
        }
        if method.selection == "stratified":
            described["percentiles"] = list(self.percentiles)
        if method.selection == "top_fraction":
            described["top_fraction"] = self.top_fraction
        if start is not None:
            described["pretrain"] = stage_fields(start)
            described["steps_counted"] = "fine-tune updates after the BC pre-training"
        return described


@dataclasses.dataclass(frozen=True)
class OfflineRLSettings:
    """The baselines' settings (a suite's ``[offline_rl]``): each algorithm's config (its
    defaults, CORL's, where none is given), the chunk size, the evaluation interval, and the
    fields set on one dataset as (dataset, algorithm, fields): for every algorithm there
    (algorithm None, ``[offline_rl.datasets."<id>"]``: a budget that lets the curves of a
    slower-learning task flatten) or for one (``[offline_rl.datasets."<id>".<algo>]``: one
    whose curve alone is still rising)."""

    algorithms: tuple[tuple[str, Any], ...] = ()
    chunk_size: int = 1000
    eval_every: int | None = None
    datasets: tuple[tuple[str, str | None, tuple[tuple[str, Any], ...]], ...] = ()

    def config(self, method: Method, dataset: str | None = None) -> Any:
        """The algorithm's config; on ``dataset``, with that dataset's fields for every
        algorithm and then its fields for this one set last."""
        config = dict(self.algorithms).get(method.name) or method.config()
        set_on = {(d, a): fields for d, a, fields in self.datasets}
        own = {
            **dict(set_on.get((dataset, None), ())),
            **dict(set_on.get((dataset, method.name), ())),
        }
        return dataclasses.replace(config, **own) if own else config

    def describe(self, method: Method, config: Any, start: Any | None) -> dict[str, Any]:
        """A baseline's run as its records state it: the whole algorithm config."""
        return {
            "family": "offline_rl",
            "observations": observation_preprocessing(config.normalize_states),
            "algorithm": stated_fields(config),
            "chunk_size": self.chunk_size,
            "steps_counted": "updates of the agent",
        }


def stage_fields(config: BCConfig) -> dict[str, Any]:
    """A stage's own settings as records state them (network and inputs are stated apart)."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in _PIPELINE_FIELDS[1:]}


@dataclasses.dataclass(frozen=True)
class ScriptedDataset:
    """A dataset made by :func:`iwbc.data.scripted.generate_mixed_dataset` when missing."""

    dataset: str
    episodes: int = 200
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Suite:
    """A parsed, validated suite. ``eval_every`` 0 evaluates only the final policy."""

    name: str
    description: str
    datasets: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    eval_episodes: int = 10
    final_eval_episodes: int = 100
    eval_every: int = 0
    engine: str = "auto"
    pipeline: PipelineConfig = dataclasses.field(default_factory=PipelineConfig)
    offline_rl: OfflineRLSettings = dataclasses.field(default_factory=OfflineRLSettings)
    scripted: tuple[ScriptedDataset, ...] = ()
    # (method, ((field, value), ...)): a suite's [methods.<name>] tables and `--set`, applied
    # to the method's config last.
    overrides: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    # (dataset, (ref_min, ref_max)): a suite's [reference_scores."<id>"] tables, for datasets
    # whose metadata has none (iwbc run's --ref-min/--ref-max); they replace the metadata's.
    reference_scores: tuple[tuple[str, tuple[float, float]], ...] = ()

    def given_scores(self, dataset: str) -> tuple[float, float] | None:
        """The reference scores the suite gives ``dataset``, if it gives some."""
        return dict(self.reference_scores).get(dataset)

    def family(self, method: str) -> FamilySettings:
        """The settings of ``method``'s family (its suite table)."""
        families: dict[Family, FamilySettings] = {
            "bc": self.pipeline,
            "offline_rl": self.offline_rl,
        }
        return families[METHODS[method].family]

    def agent_config(self, method: str, dataset: str | None = None) -> Any:
        """The config ``method``'s agent trains with on ``dataset``: its family's settings (with
        the dataset's, if it has some), then its own. Without a dataset: the family's."""
        base = self.family(method).config(METHODS[method], dataset)
        own = dict(dict(self.overrides).get(method, ()))
        return dataclasses.replace(base, **own) if own else base

    def chunk_size(self, method: str) -> int:
        """Updates per compiled chunk of ``method``'s training."""
        return self.family(method).chunk_size

    def total_steps(self, method: str, dataset: str | None = None) -> int:
        """Updates of the run's curve: fine-tunes count the updates after BC pre-training."""
        return self.agent_config(method, dataset).steps

    def method_eval_every(self, method: str) -> int:
        own = self.family(method).eval_every
        return self.eval_every if own is None else own

    def eval_targets(self, method: str, dataset: str | None = None) -> tuple[int, ...]:
        """The steps at which ``method`` is evaluated; the last is the end of training."""
        return eval_targets(self.total_steps(method, dataset), self.method_eval_every(method))

    def method_config(self, method: str, dataset: str | None = None) -> dict[str, Any]:
        """Everything that defines one run of ``method`` on ``dataset``, as plain JSON (stored
        in its records and compared with them on resume)."""
        return json.loads(json.dumps(self._method_config(method, dataset)))

    def method_fingerprint(self, method: str, dataset: str | None = None) -> str:
        """The short hash of ``method_config`` that records carry and reports compare."""
        return config_fingerprint(self.method_config(method, dataset))

    def _method_config(self, method: str, dataset: str | None) -> dict[str, Any]:
        spec = METHODS[method]
        start = None if spec.start is None else self.agent_config(spec.start, dataset)
        config = self.agent_config(method, dataset)
        described = self.family(method).describe(spec, config, start)
        described["evaluation"] = {
            "eval_every": self.method_eval_every(method),
            "eval_episodes": self.eval_episodes,
            "final_eval_episodes": self.final_eval_episodes,
            "engine": self.engine,
            "eval_seed_base": EVAL_SEED_BASE,
        }
        return described


def observation_preprocessing(standardized: bool) -> str:
    """How a method's observations were preprocessed, in the words records and tables use."""
    if standardized:
        return f"standardized (training data's mean, std + {STD_EPSILON:g})"
    return "raw"


def eval_targets(total: int, every: int) -> tuple[int, ...]:
    """Multiples of ``every`` below ``total``, then ``total`` (``every`` 0: ``total`` only)."""
    if every <= 0:
        return (total,)
    return (*range(every, total, every), total)


def available_suites(directory: str | Path = SUITES_DIR) -> list[str]:
    """Names of the suite files in ``directory`` (the shipped ``iwbc/suites``)."""
    return sorted(p.stem for p in Path(directory).glob("*.toml"))


def load_suite(name_or_path: str | Path, directory: str | Path = SUITES_DIR) -> Suite:
    """The suite called ``name_or_path`` in ``directory``, or the TOML file at that path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = Path(directory) / f"{name_or_path}.toml"
        if not path.is_file():
            known = ", ".join(available_suites(directory)) or "none"
            raise UserError(
                f"unknown suite {str(name_or_path)!r}; available suites: {known} "
                "(or pass a path to a .toml file)"
            )
    try:
        table = tomllib.loads(path.read_text())
    except OSError as error:
        raise UserError(f"cannot read suite file {path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"suite file {path} is not valid TOML: {error}") from error
    return parse_suite(path.stem, table, where=str(path))


def parse_suite(name: str, table: Mapping[str, Any], *, where: str = "suite") -> Suite:
    """Validate a suite's TOML table and build the :class:`Suite`."""
    _check_keys(table, _TOP_KEYS, where, "the top level")
    for key in ("datasets", "methods", "seeds"):
        if key not in table:
            raise UserError(f"{where}: missing key {key!r} at the top level")
    datasets = _string_list(table["datasets"], where, "datasets")
    method_tables: dict[str, Any] = {}
    if isinstance(table["methods"], dict):
        method_tables = table["methods"]
        if not method_tables:
            raise UserError(f"{where}: [methods] lists no method; add a [methods.<name>] table")
        methods = list(method_tables)
    else:
        methods = _string_list(table["methods"], where, "methods")
    known = tuple(METHODS)
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise UserError(
            f"{where}: unknown method(s) {', '.join(unknown)}; available: {', '.join(known)}"
        )
    seeds = table["seeds"]
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise UserError(f"{where}: 'seeds' must be a non-empty list of distinct integers ≥ 0")
    if max(seeds) >= SEED_LIMIT:
        raise UserError(
            f"{where}: seed {max(seeds)} is not below 2**32; JAX keys keep 32 bits, so it would "
            "repeat another seed's random stream"
        )
    engine = table.get("engine", "auto")
    if engine not in ENGINES:
        raise UserError(f"{where}: unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")

    scripted = []
    for dataset, options in _table(table, "scripted", where).items():
        if dataset not in datasets:
            raise UserError(f"{where}: [scripted.{dataset!r}] is not one of the suite's datasets")
        options = _section(options, f"scripted.{dataset!r}", where)
        _check_keys(options, ("episodes", "seed"), where, f"[scripted.{dataset!r}]")
        spec = ScriptedDataset(dataset, **_positive_ints(options, where))
        try:
            check_mixture_seeds(spec.episodes, spec.seed)
        except UserError as error:
            raise UserError(f"{where}: [scripted.{dataset!r}]: {error}") from None
        scripted.append(spec)

    bc = _table(table, "bc_family", where)
    _check_keys(bc, (*_BC_KEYS, *_STAGES, "datasets"), where, "[bc_family]")
    pretrain = _section(bc.get("pretrain", {}), "bc_family.pretrain", where)
    finetune = _section(bc.get("finetune", {}), "bc_family.finetune", where)
    pretrain, finetune = (
        _typed_fields(values, _STAGE_KEYS, BCConfig, where, f"[bc_family.{section}]")
        for section, values in (("pretrain", pretrain), ("finetune", finetune))
    )
    pipeline_fields = {k: _convert(v) for k, v in bc.items() if k in _BC_KEYS}
    pipeline_fields = _check_types(PipelineConfig, pipeline_fields, where, "[bc_family]")
    pipeline = _build(
        where,
        "[bc_family]",
        lambda: PipelineConfig(
            pretrain=BCConfig(**pretrain),
            finetune=BCConfig.iw_finetune(**finetune),
            **pipeline_fields,
        ),
    )
    pipeline = dataclasses.replace(pipeline, datasets=_stage_fields(bc, datasets, pipeline, where))

    rl = _table(table, "offline_rl", where)
    algorithms = tuple((m, _algorithm_config(m, rl, where)) for m in methods if m in BASELINES)
    for idle in (m for m in BASELINES if m in rl and m not in methods):
        _algorithm_config(idle, rl, where)  # not trained here, but a typo in it is still one
    per_dataset = _dataset_fields(rl, datasets, dict(algorithms), where)

    numbers = {
        key: table[key]
        for key in ("eval_episodes", "final_eval_episodes", "eval_every")
        if key in table
    }
    for scope, values in (("the top level", numbers), ("[bc_family]", bc), ("[offline_rl]", rl)):
        for key in ("eval_episodes", "final_eval_episodes", "eval_every", "chunk_size"):
            if key in values:
                _check_int(values[key], where, f"{key} in {scope}", minimum=key != "eval_every")
    description = table.get("description", "")
    if not isinstance(description, str):
        raise UserError(f"{where}: description must be text, got {description!r}")
    suite = Suite(
        name=name,
        description=description,
        datasets=tuple(datasets),
        methods=tuple(methods),
        seeds=tuple(seeds),
        engine=engine,
        pipeline=pipeline,
        offline_rl=OfflineRLSettings(
            algorithms,
            rl.get("chunk_size", OfflineRLSettings.chunk_size),
            rl.get("eval_every"),
            per_dataset,
        ),
        scripted=tuple(scripted),
        reference_scores=_reference_scores(table, datasets, where),
        **numbers,
    )
    overrides = {
        method: _section(values, f"methods.{method}", where)
        for method, values in method_tables.items()
    }
    return with_overrides(suite, overrides, where=where)


def with_overrides(
    suite: Suite, overrides: Mapping[str, Mapping[str, Any]], *, where: str = "--set"
) -> Suite:
    """``suite`` with per-method config fields set (a suite's ``[methods.<name>]`` tables,
    ``--set name.field=value``), after its family settings; each is checked like a suite key.

    A method may set any field of its config class (:mod:`iwbc.agents.registry`) except the BC
    family's ``loss``, which the method is; a fine-tune must keep the network and inputs of
    the method it starts from.
    """
    merged = {method: dict(values) for method, values in suite.overrides}
    starts = {METHODS[m].start for m in suite.methods} - {None}
    for method, values in overrides.items():
        if method not in suite.methods and method not in starts:
            raise UserError(
                f"{where}: sets {method!r}, which this run does not train; "
                f"its methods: {', '.join(suite.methods)}"
            )
        config_cls = METHODS[method].config
        allowed = tuple(f for f in _field_names(config_cls) if f != "loss")
        converted = _typed_fields(values, allowed, config_cls, where, f"the settings of {method}")
        merged.setdefault(method, {}).update(converted)
    suite = dataclasses.replace(
        suite, overrides=tuple((m, tuple(v.items())) for m, v in merged.items() if v)
    )
    for method in (*suite.methods, *sorted(starts)):
        # Each dataset's settings too: --set warmup_steps must fit a dataset's smaller budget.
        for dataset in (None, *suite.datasets):
            config = _build(
                where,
                f"the settings of {method}" + (f" on {dataset}" if dataset else ""),
                lambda m=method, d=dataset: suite.agent_config(m, d),
            )
            _check_int(config.steps, where, f"steps of {method}", minimum=True)
        start = METHODS[method].start
        if start is not None:
            base = suite.agent_config(start)
            if (config.hidden_dims, config.standardize) != (base.hidden_dims, base.standardize):
                raise UserError(
                    f"{where}: {method} starts from {start}, so it keeps {start}'s hidden_dims "
                    "and standardize; set them for both"
                )
    return suite


def parse_settings(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``--set`` values ``method.field=value`` as {method: {field: value}}; the value is read
    as a TOML value (``0.9``, ``true``, ``[256, 256]``), ``none`` as None (which TOML lacks: a
    field whose default is None, such as ``window``, set back to it), else taken as a string
    (``episode``)."""
    settings: dict[str, dict[str, Any]] = {}
    for item in items:
        target, sep, text = item.partition("=")
        method, dot, field = target.strip().partition(".")
        if not sep or not dot or not method or not field:
            raise UserError(
                f"--set {item!r}: write METHOD.FIELD=VALUE, e.g. --set iql.expectile=0.9"
            )
        try:
            value = tomllib.loads(f"value = {text.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            value = None if text.strip().lower() == "none" else text.strip()
        settings.setdefault(method, {})[field.strip()] = value
    return settings


def _algorithm_config(method: str, rl: Mapping[str, Any], where: str) -> Any:
    """The method's config class built from the keys shared by all algorithms and its own."""
    config_cls = METHODS[method].config
    common = _common_fields()
    own_fields = _field_names(config_cls)
    nested = {k for k in rl if k in BASELINES}
    _check_keys(
        {k: v for k, v in rl.items() if k not in nested},
        (*_RL_KEYS, *common),
        where,
        f"[offline_rl] (a table per algorithm: {', '.join(BASELINES)})",
    )
    own = _section(rl.get(method, {}), f"offline_rl.{method}", where)
    _check_keys(own, own_fields, where, f"[offline_rl.{method}]")
    values = {k: _convert(v) for k, v in rl.items() if k in common}
    values.update({k: _convert(v) for k, v in own.items()})
    values = _check_types(config_cls, values, where, f"[offline_rl.{method}]")
    config = _build(where, f"[offline_rl.{method}]", lambda: config_cls(**values))
    _check_int(config.steps, where, f"steps of {method}", minimum=True)
    return config


def _common_fields() -> list[str]:
    """The config fields every baseline algorithm has (``[offline_rl]``'s shared keys)."""
    shared = [{f.name for f in dataclasses.fields(METHODS[m].config)} for m in BASELINES]
    return sorted(set.intersection(*shared))


def _dataset_tables(
    family: Mapping[str, Any], name: str, datasets: Sequence[str], where: str
) -> list[tuple[str, str, dict[str, Any]]]:
    """A family's ``[<name>.datasets."<id>"]`` tables as (dataset, table name, table), each
    dataset one of the suite's."""
    tables = _section(family.get("datasets", {}), f"{name}.datasets", where)
    found = []
    for dataset, values in tables.items():
        scope = f'{name}.datasets."{dataset}"'
        if dataset not in datasets:
            raise UserError(f"{where}: [{scope}] is not one of the suite's datasets")
        found.append((dataset, scope, _section(values, scope, where)))
    return found


def _dataset_fields(
    rl: Mapping[str, Any], datasets: Sequence[str], algorithms: Mapping[str, Any], where: str
) -> tuple[tuple[str, str | None, tuple[tuple[str, Any], ...]], ...]:
    """``[offline_rl.datasets."<id>"]``: fields shared by every algorithm, set on one of the
    suite's datasets, each checked against every algorithm the suite trains; and in it
    ``[offline_rl.datasets."<id>".<algo>]``, any field of that one algorithm's config there."""
    parsed = []
    for dataset, name, values in _dataset_tables(rl, "offline_rl", datasets, where):
        scope = f"[{name}]"
        nested = {k: v for k, v in values.items() if k in BASELINES}
        fields = {k: v for k, v in values.items() if k not in nested}
        _check_keys(
            fields,
            tuple(_common_fields()),
            where,
            f"{scope} (a table per algorithm: {', '.join(BASELINES)})",
        )
        converted = {k: _convert(v) for k, v in fields.items()}
        for config in algorithms.values():
            converted = _check_types(type(config), converted, where, scope)
            _build(where, scope, lambda c=config, v=converted: dataclasses.replace(c, **v))
        if converted:
            parsed.append((dataset, None, tuple(converted.items())))
        for method, table in nested.items():
            inner = f"[{name}.{method}]"
            if method not in algorithms:
                raise UserError(f"{where}: {inner} sets {method!r}, which the suite does not train")
            config = algorithms[method]
            table = _section(table, f"{name}.{method}", where)
            mine = _typed_fields(table, _field_names(type(config)), type(config), where, inner)
            _build(
                where, inner, lambda c=config, v={**converted, **mine}: dataclasses.replace(c, **v)
            )
            if mine:
                parsed.append((dataset, method, tuple(mine.items())))
    return tuple(parsed)


def _stage_fields(
    bc: Mapping[str, Any], datasets: Sequence[str], pipeline: PipelineConfig, where: str
) -> tuple[tuple[str, str, tuple[tuple[str, Any], ...]], ...]:
    """``[bc_family.datasets."<id>".pretrain]`` and ``.finetune``: a stage's fields on one of
    the suite's datasets, each checked by building that stage's config with them."""
    parsed = []
    for dataset, scope, stages in _dataset_tables(bc, "bc_family", datasets, where):
        _check_keys(stages, _STAGES, where, f"[{scope}] (a table per stage)")
        for stage, values in stages.items():
            name = f"{scope}.{stage}"
            values = _section(values, name, where)
            converted = _typed_fields(values, _STAGE_KEYS, BCConfig, where, f"[{name}]")
            base = getattr(pipeline, stage)
            _build(where, f"[{name}]", lambda b=base, v=converted: dataclasses.replace(b, **v))
            if converted:
                parsed.append((dataset, stage, tuple(converted.items())))
    return tuple(parsed)


def _field_names(cls: type) -> tuple[str, ...]:
    """The field names of a config dataclass: the keys a table setting it may use."""
    return tuple(f.name for f in dataclasses.fields(cls))


def _typed_fields(
    values: Mapping[str, Any], allowed: tuple[str, ...], cls: type, where: str, scope: str
) -> dict[str, Any]:
    """``values`` (a table setting fields of ``cls``) checked key by key against ``allowed``
    and type by type against ``cls``'s defaults, TOML values converted to the config's."""
    _check_keys(values, allowed, where, scope)
    converted = {key: _convert(value) for key, value in values.items()}
    return _check_types(cls, converted, where, scope)


def _check_types(cls: type, values: Mapping[str, Any], where: str, scope: str) -> dict[str, Any]:
    """``values``, each checked to have the type of the field's default; an int may stand for
    a float and becomes one, so ``10`` and ``10.0`` make the same configuration (and the same
    fingerprint: records compare by their configuration's JSON text)."""
    defaults = {f.name: _default(f) for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        default = defaults.get(key)
        if default is None:
            matches, expected = _annotation_matches(value, hints.get(key)), str(hints.get(key))
        else:
            matches, expected = _type_matches(value, default), type(default).__name__
        if not matches:
            raise UserError(f"{where}: {key} in {scope} must be of type {expected}, got {value!r}")
    return {key: _as_default_type(value, defaults.get(key)) for key, value in values.items()}


def _annotation_matches(value: Any, annotation: Any) -> bool:
    """For a field whose default (None) says nothing of its type: whether ``value`` is one of
    the types its annotation names (``int | None``: an int, never a bool or a float)."""
    if annotation is None:
        return True
    for kind in typing.get_args(annotation) if _is_union(annotation) else (annotation,):
        origin = typing.get_origin(kind) or kind
        if origin is typing.Literal and value in typing.get_args(kind):
            return True
        if origin in (int, float) and isinstance(value, bool):
            continue
        if origin is float and isinstance(value, int):
            return True
        if isinstance(origin, type) and isinstance(value, origin):
            return True
    return False


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _as_default_type(value: Any, default: Any) -> Any:
    """An int where the default is a float (or a tuple of floats) as a float."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    floats = isinstance(default, tuple) and default and all(isinstance(d, float) for d in default)
    if floats and isinstance(value, tuple):
        return tuple(_as_default_type(v, default[0]) for v in value)
    return value


def _type_matches(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _build(where: str, scope: str, make: Any) -> Any:
    """Call ``make``, turning the config classes' own validation errors into suite errors."""
    try:
        return make()
    except (TypeError, ValueError) as error:
        raise UserError(f"{where}: bad value in {scope}: {error}") from error


def _convert(value: Any) -> Any:
    """TOML arrays become tuples, as the frozen config dataclasses hold them."""
    return tuple(value) if isinstance(value, list) else value


def _check_keys(table: Mapping[str, Any], allowed: tuple[str, ...], where: str, scope: str) -> None:
    unknown = [key for key in table if key not in allowed]
    if unknown:
        raise UserError(
            f"{where}: unknown key {unknown[0]!r} in {scope}; known keys: {', '.join(allowed)}"
        )


def _reference_scores(
    table: Mapping[str, Any], datasets: Sequence[str], where: str
) -> tuple[tuple[str, tuple[float, float]], ...]:
    """The suite's ``[reference_scores."<id>"]`` tables: ``ref_min`` and ``ref_max``, finite,
    ref_max above ref_min, for one of the suite's datasets."""
    given = []
    for dataset, values in _table(table, "reference_scores", where).items():
        name = f'[reference_scores."{dataset}"]'
        if dataset not in datasets:
            raise UserError(f"{where}: {name} is not one of the suite's datasets")
        values = _section(values, f'reference_scores."{dataset}"', where)
        _check_keys(values, ("ref_min", "ref_max"), where, name)
        scores = []
        for key in ("ref_min", "ref_max"):
            value = values.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise UserError(f"{where}: {name} needs {key} as a number, got {value!r}")
            if not math.isfinite(value):
                raise UserError(f"{where}: {key} in {name} must be finite, got {value!r}")
            scores.append(float(value))
        if scores[1] <= scores[0]:
            raise UserError(
                f"{where}: ref_max must be greater than ref_min in {name}, got {scores[0]:g} "
                f"and {scores[1]:g}"
            )
        given.append((dataset, (scores[0], scores[1])))
    return tuple(given)


def _table(table: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    return _section(table.get(key, {}), key, where)


def _section(value: Any, name: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserError(f"{where}: {name} must be a table ([{name}])")
    return value


def _string_list(value: Any, where: str, key: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise UserError(f"{where}: {key!r} must be a non-empty list of strings")
    twice = sorted({v for v in value if value.count(v) > 1})
    if twice:
        raise UserError(f"{where}: {key!r} lists {', '.join(twice)} twice; list each once")
    return value


def _check_int(value: Any, where: str, what: str, *, minimum: bool) -> None:
    low = 1 if minimum else 0
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise UserError(f"{where}: {what} must be an integer ≥ {low}, got {value!r}")


def _positive_ints(options: Mapping[str, Any], where: str) -> dict[str, int]:
    for key, value in options.items():
        _check_int(value, where, f"scripted {key}", minimum=key == "episodes")
    return dict(options)
