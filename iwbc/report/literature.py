"""Published D4RL scores for the literature columns of suite tables.

The numbers live in ``literature.toml`` beside this module, each source with its citation, so a
table can show them next to our runs while saying plainly on which rows they were measured on
other data (our generated tiers) and on which on the same files (D4RL's, imported).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

LITERATURE_FILE = Path(str(files("iwbc.report") / "literature.toml"))


@dataclass(frozen=True, eq=False)
class PublishedSource:
    """One source's published scores, keyed by our method names and D4RL's dataset names, and
    found by our dataset ids: a generated dataset of the same task and tier (other data) or
    D4RL's file imported (the same data). Compared and hashed by identity: each is one entry
    of the literature file."""

    name: str
    citation: str
    url: str
    data: str
    group: str  # the table header over this source's columns, rows on generated data
    group_same_files: str  # ... rows on imported D4RL files
    group_mixed: str  # ... rows of both kinds
    labels: dict[str, str]  # our method name -> the source's column label
    recipes: dict[str, str]  # our method name -> how the source's recipe differs from ours
    scores: dict[str, dict[str, float]]  # our method name -> D4RL dataset name -> score
    averages: dict[str, float]  # our method name -> the source's own average over its datasets
    ids: dict[str, str]  # our dataset id -> D4RL dataset name
    imported: frozenset[str]  # our ids that are D4RL's own files, imported

    def score(self, method: str, dataset: str) -> float:
        """The published score on ``dataset``'s D4RL counterpart, NaN where there is none."""
        return self.scores.get(method, {}).get(self.ids.get(dataset, ""), math.nan)

    def header(self, datasets: Sequence[str]) -> str:
        """The column group's header for a table of ``datasets``: says whether the rows with
        a published number hold other data than the source's, its own files, or both."""
        kinds = {d in self.imported for d in datasets if d in self.ids}
        if kinds == {True}:
            return self.group_same_files
        return self.group_mixed if kinds == {True, False} else self.group


def _require(table: dict, key: str, where: str, path: Path) -> object:
    if key not in table:
        raise ValueError(f"{path}: {where} lacks '{key}'; add it (see the file's header)")
    return table[key]


def _source(
    name: str, table: dict, ids: dict[str, str], imported: set[str], path: Path
) -> PublishedSource:
    where = f"[sources.{name}]"
    methods = list(_require(table, "methods", where, path))
    labels = list(_require(table, "labels", where, path))
    if len(labels) != len(methods):
        raise ValueError(f"{path}: {where} has {len(methods)} methods but {len(labels)} labels")
    names = set(ids.values())
    scores: dict[str, dict[str, float]] = {m: {} for m in methods}
    for d4rl_name, row in dict(_require(table, "scores", where, path)).items():
        if d4rl_name not in names:
            raise ValueError(f"{path}: {where} scores '{d4rl_name}', absent from [datasets]")
        if len(row) != len(methods):
            raise ValueError(
                f"{path}: {where} row '{d4rl_name}' has {len(row)} scores, not "
                f"{len(methods)} (one per method)"
            )
        for method, value in zip(methods, row, strict=True):
            scores[method][d4rl_name] = float(value)
    recipes = {str(m): str(text) for m, text in dict(table.get("recipes", {})).items()}
    unknown = sorted(set(recipes) - set(methods))
    if unknown:
        raise ValueError(f"{path}: {where} recipes name '{unknown[0]}', absent from its methods")
    average = list(dict(table.get("average", {})).get("scores", []))
    if average and len(average) != len(methods):
        raise ValueError(f"{path}: {where} average has {len(average)} scores, not {len(methods)}")
    return PublishedSource(
        name=name,
        citation=str(_require(table, "citation", where, path)),
        url=str(_require(table, "url", where, path)),
        data=str(_require(table, "data", where, path)),
        group=str(_require(table, "group", where, path)),
        group_same_files=str(_require(table, "group_same_files", where, path)),
        group_mixed=str(_require(table, "group_mixed", where, path)),
        labels=dict(zip(methods, labels, strict=True)),
        recipes=recipes,
        scores=scores,
        averages={m: float(v) for m, v in zip(methods, average, strict=False)},
        ids=ids,
        imported=frozenset(imported),
    )


def load_literature(path: str | Path = LITERATURE_FILE) -> list[PublishedSource]:
    """Every source in the literature file, found by our generated and imported dataset ids."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"cannot read the literature file {path}: {error}") from error
    generated = dict(_require(data, "datasets", "the file", path))
    imported = dict(data.get("imported", {}))
    unknown = sorted(set(imported) - set(generated))
    if unknown:
        raise ValueError(f"{path}: [imported] names '{unknown[0]}', absent from [datasets]")
    ids = {ours: name for name, ours in (*generated.items(), *imported.items())}
    sources = dict(_require(data, "sources", "the file", path))
    return [
        _source(name, dict(table), ids, set(imported.values()), path)
        for name, table in sources.items()
    ]
