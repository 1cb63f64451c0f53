"""Published D4RL scores for the literature columns of suite tables.

The numbers live in ``literature.toml`` beside this module, each source with its citation, so a
table can show them next to our runs while saying plainly that they were measured on other data.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

LITERATURE_FILE = Path(str(files("iwbc.report") / "literature.toml"))


@dataclass(frozen=True, eq=False)
class PublishedSource:
    """One source's published scores, keyed by our method names and our dataset ids (compared
    and hashed by identity: each is one entry of the literature file)."""

    name: str
    citation: str
    url: str
    data: str
    group: str  # the table header over this source's columns
    labels: dict[str, str]  # our method name -> the source's column label
    scores: dict[str, dict[str, float]]  # our method name -> our dataset id -> score
    averages: dict[str, float]  # our method name -> the source's own average over its datasets

    def score(self, method: str, dataset: str) -> float:
        """The published score, NaN where the source has none."""
        return self.scores.get(method, {}).get(dataset, math.nan)


def _require(table: dict, key: str, where: str, path: Path) -> object:
    if key not in table:
        raise ValueError(f"{path}: {where} lacks '{key}'; add it (see the file's header)")
    return table[key]


def _source(name: str, table: dict, datasets: dict[str, str], path: Path) -> PublishedSource:
    where = f"[sources.{name}]"
    methods = list(_require(table, "methods", where, path))
    labels = list(_require(table, "labels", where, path))
    if len(labels) != len(methods):
        raise ValueError(f"{path}: {where} has {len(methods)} methods but {len(labels)} labels")
    scores: dict[str, dict[str, float]] = {m: {} for m in methods}
    for d4rl_name, row in dict(_require(table, "scores", where, path)).items():
        if d4rl_name not in datasets:
            raise ValueError(f"{path}: {where} scores '{d4rl_name}', absent from [datasets]")
        if len(row) != len(methods):
            raise ValueError(
                f"{path}: {where} row '{d4rl_name}' has {len(row)} scores, not "
                f"{len(methods)} (one per method)"
            )
        for method, value in zip(methods, row, strict=True):
            scores[method][datasets[d4rl_name]] = float(value)
    average = list(dict(table.get("average", {})).get("scores", []))
    if average and len(average) != len(methods):
        raise ValueError(f"{path}: {where} average has {len(average)} scores, not {len(methods)}")
    return PublishedSource(
        name=name,
        citation=str(_require(table, "citation", where, path)),
        url=str(_require(table, "url", where, path)),
        data=str(_require(table, "data", where, path)),
        group=str(_require(table, "group", where, path)),
        labels=dict(zip(methods, labels, strict=True)),
        scores=scores,
        averages={m: float(v) for m, v in zip(methods, average, strict=False)},
    )


def load_literature(path: str | Path = LITERATURE_FILE) -> list[PublishedSource]:
    """Every source in the literature file, with D4RL dataset names mapped to our ids."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"cannot read the literature file {path}: {error}") from error
    datasets = dict(_require(data, "datasets", "the file", path))
    sources = dict(_require(data, "sources", "the file", path))
    return [_source(name, dict(table), datasets, path) for name, table in sources.items()]
