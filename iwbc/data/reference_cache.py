"""Reference scores kept beside a Minari root for datasets whose metadata has none.

Minari's own MuJoCo datasets carry no ``ref_min_score`` / ``ref_max_score`` (Minari issues #318,
#323), and rewriting a downloaded dataset's metadata would be lost on the next download. So
``iwbc data minari-tiers`` computes them once per namespace (e.g. ``mujoco/hopper``) and stores
them here, in a hidden file of the root that Minari's listing skips; ``load_dataset`` falls back
to it when a dataset's metadata lacks them. The entry records how each number was made.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from iwbc.data.errors import DatasetError
from iwbc.files import write_json_atomic

CACHE_FILE = Path(".iwbc") / "reference_scores.json"
SCORE_KEYS = ("ref_min_score", "ref_max_score")


def _read(root: Path) -> dict[str, Any]:
    """The stored table; a damaged file is an error, never silently empty: storing into an
    empty table would drop every other namespace's scores."""
    path = Path(root) / CACHE_FILE
    if not path.is_file():
        return {}
    fix = "delete it and rerun `iwbc data minari-tiers` for the namespaces it held"
    try:
        table = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(
            f"cannot read the reference-score cache {path} ({error}); {fix}"
        ) from None
    if not isinstance(table, dict):
        raise DatasetError(f"the reference-score cache {path} is not a JSON object; {fix}")
    for namespace, entry in table.items():
        scores = [entry.get(k) for k in SCORE_KEYS] if isinstance(entry, dict) else [None]
        if not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in scores
        ):
            raise DatasetError(
                f"the reference-score cache {path} has no finite ref_min_score and "
                f"ref_max_score for {namespace}; {fix}"
            )
        if scores[1] <= scores[0]:
            # Normalized scores would run backwards (or divide by zero) for the namespace.
            raise DatasetError(
                f"the reference-score cache {path} has ref_max_score {scores[1]} not above "
                f"ref_min_score {scores[0]} for {namespace}; {fix}"
            )
    return table


VERSION = "v0"


def tier_id(namespace: str, tier: str) -> str:
    """``mujoco/hopper``, ``expert`` -> ``mujoco/hopper/expert-v0``."""
    return f"{namespace}/{tier}-{VERSION}"


def stored_metadata(folder: Path) -> dict[str, Any] | None:
    """A dataset folder's data/metadata.json, read without opening its data (cheap on every
    load); None where it is missing, unreadable or not a JSON object."""
    try:
        metadata = json.loads((folder / "data" / "metadata.json").read_text())
    except (OSError, ValueError):  # ValueError: undecodable bytes or JSON
        return None
    return metadata if isinstance(metadata, dict) else None


def stored_counts(root: str | Path, dataset_id: str) -> tuple[int, int] | None:
    """(total_episodes, total_steps) from a local dataset's metadata.json; None where either
    is unreadable."""
    metadata = stored_metadata(Path(root) / dataset_id)
    try:
        return int(metadata["total_episodes"]), int(metadata["total_steps"])
    except (KeyError, TypeError, ValueError):  # TypeError: no metadata, or a count not a number
        return None


def expert_change(root: str | Path, namespace: str, entry: dict[str, Any]) -> str | None:
    """How the namespace's expert tier differs from the one its cached scores were made from
    (episodes and steps), else None (also when the entry or the tier does not say)."""
    made = (entry.get("expert_episodes"), entry.get("expert_steps"))
    now = stored_counts(root, tier_id(namespace, "expert"))
    if None in made or now is None or tuple(now) == made:
        return None
    return (
        f"{tier_id(namespace, 'expert')} now holds {now[0]} episodes ({now[1]} steps), not the "
        f"{made[0]} ({made[1]} steps) they were made from"
    )


def namespace_of(dataset_id: str) -> str:
    """``mujoco/hopper/medium-v0`` -> ``mujoco/hopper``."""
    return dataset_id.rpartition("/")[0]


def cached_reference_scores(
    root: str | Path, dataset_id: str, env_id: str | None
) -> tuple[float, float] | None:
    """(ref_min, ref_max) stored for ``dataset_id``'s namespace under ``root``, else None; also
    None when the entry was made on another env than ``env_id`` (a dataset of another task
    filed under that namespace), since those returns are on another scale."""
    namespace = namespace_of(dataset_id)
    entry = _read(Path(root)).get(namespace)
    if not entry or entry.get("env_id", env_id) != env_id:
        return None
    change = expert_change(root, namespace, entry)
    if change is not None:
        raise DatasetError(
            f"the reference scores cached for {namespace} are stale: {change}; rerun `iwbc data "
            f"minari-tiers {namespace}` to remake them"
        )
    return float(entry["ref_min_score"]), float(entry["ref_max_score"])


def cached_entry(root: str | Path, namespace: str) -> dict[str, Any] | None:
    """The whole stored entry of ``namespace`` (scores and how they were made), else None."""
    return _read(Path(root)).get(namespace)


def drop_reference_scores(root: str | Path, namespace: str) -> None:
    """Forget ``namespace``'s entry before remaking it: its expert tier, loaded to remake it,
    must not be refused for the stale scores being replaced."""
    table = _read(Path(root))
    if table.pop(namespace, None) is not None:
        write_json_atomic(Path(root) / CACHE_FILE, table)


def store_reference_scores(root: str | Path, namespace: str, entry: dict[str, Any]) -> Path:
    """Store ``entry`` (with ``ref_min_score`` and ``ref_max_score``) for ``namespace``."""
    if "ref_min_score" not in entry or "ref_max_score" not in entry:
        raise ValueError("a reference-score entry needs ref_min_score and ref_max_score")
    table = _read(Path(root))
    table[namespace] = entry
    return write_json_atomic(Path(root) / CACHE_FILE, table)
