"""The result store: one JSON record per run (suite, dataset, method, seed), written atomically.

Records live at ``<results>/<suite>/records/<dataset with / → __>/<method>/seed-<seed>.json``.
A record is the unit of resumption: a run whose record says ``ok`` for the same configuration
is finished and never redone, so a killed sweep loses at most the runs it was inside. Each
record also carries the ``fingerprint`` of that configuration, so a report can tell records of
the suite as it now stands from those an edit of the suite file left behind, and the
``data_fingerprint`` of the dataset's content it trained and scored on: a dataset id names no
content (a tier regenerated, or read from another root), so a record made on other data than
the dataset's current content is not finished either.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iwbc.errors import UserError

SCHEMA = 1
# Keys every record has; a failed run has null curve, final and best.
RECORD_KEYS = (
    "schema",
    "suite",
    "dataset",
    "env_id",
    "method",
    "seed",
    "status",
    "error",
    "config",
    "environment",
    "curve",
    "final",
    "best",
    "ref_min_score",
    "ref_max_score",
    "wall_seconds",
    "finished_at",
)
STATUSES = ("ok", "failed")


def records_dir(suite: str, results_dir: str | Path = "results") -> Path:
    """Where the records of ``suite`` are kept."""
    return Path(results_dir) / suite / "records"


def record_path(directory: str | Path, dataset: str, method: str, seed: int) -> Path:
    """The record file of one run under a suite's records directory."""
    return Path(directory) / dataset.replace("/", "__") / method / f"seed-{seed}.json"


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """A short hash of a run's configuration (``Suite.method_config``): equal exactly when the
    runner would count a record made under one as finished under the other."""
    text = json.dumps(config, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def record_fingerprint(record: Mapping[str, Any]) -> str:
    """The record's configuration fingerprint; records written before the key existed get it
    from their stored configuration."""
    return record.get("fingerprint") or config_fingerprint(record["config"] or {})


def critic_q_tail(
    record: Mapping[str, Any], share: float = 0.1
) -> tuple[tuple[int, int], tuple[float, float]] | None:
    """The critic's mean Q on its training batches (chunk means) at the last chunk end at or
    before (1 − ``share``) of training and at the end, with those updates: for runs evaluated
    only at their end (``iwbc run``), which have no last evaluation interval to measure over.
    None without a critic, without training metrics, or with no chunk end that early."""
    training = record.get("training") or {}
    values, at = training.get("q_mean"), training.get("steps")
    if not values or not at:
        return None
    earlier = [i for i, step in enumerate(at[:-1]) if step <= (1 - share) * at[-1]]
    if not earlier:
        return None
    return (int(at[earlier[-1]]), int(at[-1])), (float(values[earlier[-1]]), float(values[-1]))


def critic_q_end(record: Mapping[str, Any]) -> tuple[float, float] | None:
    """The critic's mean Q on its training batches (chunk means) at the evaluation before the
    last and at the last: how far its value estimates still moved at the end. None for methods
    without a critic, a curve of one evaluation, and records before training metrics."""
    training = record.get("training") or {}
    values, at = training.get("q_mean"), training.get("steps")
    steps = (record.get("curve") or {}).get("steps") or ()
    if not values or not at or len(steps) < 2 or at[-1] != steps[-1] or steps[-2] not in at:
        return None
    return float(values[at.index(steps[-2])]), float(values[-1])


def bounds_json(bounds: Sequence[float]) -> list[float | None]:
    """Bounds (a critic's value range, an action box's sides) as records and scores.json hold
    them: JSON has no infinity or NaN, so an unbounded side (a discount of 1), or an unknown
    one, is null."""
    return [float(v) if math.isfinite(v) else None for v in bounds]


def _bound(value: float | None, infinity: float) -> float:
    """A bound as ``bounds_json`` wrote it, null read back as the infinity it stands for."""
    return infinity if value is None else float(value)


def action_box_json(low: Any, high: Any) -> dict[str, list[float | None]]:
    """The env's action box as records hold it: an unbounded side of a dimension is null."""
    return {"low": bounds_json(np.ravel(low)), "high": bounds_json(np.ravel(high))}


def record_action_box(box: Mapping[str, Sequence[float | None]]) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of a record's ``action_box``, null read back as the infinity it stands for."""
    low = [_bound(v, -math.inf) for v in box["low"]]
    high = [_bound(v, math.inf) for v in box["high"]]
    return np.asarray(low), np.asarray(high)


def critic_q_bounds(record: Mapping[str, Any]) -> tuple[float, float] | None:
    """The range the run's critic could reach by TD on its data (``q_bounds``; an unbounded
    side is infinite); None for methods without a critic and records made before the key."""
    bounds = record.get("q_bounds")
    if not bounds:
        return None
    low, high = bounds
    return _bound(low, -math.inf), _bound(high, math.inf)


def final_weight_ess(record: Mapping[str, Any]) -> float | None:
    """The effective sample fraction of the run's importance weights over its last training
    chunk; None for methods without importance weights and records before training metrics."""
    values = (record.get("training") or {}).get("weight_ess")
    return float(values[-1]) if values else None


def check_record(record: Mapping[str, Any], source: str = "record") -> None:
    """One-line UserError unless ``record`` has the schema's keys and a known status."""
    if not isinstance(record, Mapping):
        raise UserError(
            f"{source} holds {type(record).__name__}, not a record; delete it to rerun that run"
        )
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise UserError(f"{source} lacks {', '.join(missing)}; delete it to rerun that run")
    if record["schema"] != SCHEMA or record["status"] not in STATUSES:
        raise UserError(
            f"{source} has schema {record['schema']!r} and status {record['status']!r}; "
            f"expected schema {SCHEMA} and a status in {', '.join(STATUSES)}"
        )
    if record["status"] == "ok" and not all(
        isinstance(record[key], Mapping) for key in ("curve", "final", "best")
    ):
        raise UserError(
            f"{source} is of a finished run but lacks its curve, final or best evaluation; "
            "delete it to rerun that run"
        )


def read_record(path: str | Path) -> dict[str, Any] | None:
    """The record at ``path``, or None when there is none."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"record {path} is unreadable ({error}); delete it to rerun") from error
    check_record(record, f"record {path}")
    check_place(record, path)
    return record


def check_place(record: Mapping[str, Any], path: Path) -> None:
    """One-line UserError unless ``record`` is the run its path names: a record copied or moved
    to another seed's, method's or dataset's place would count that run as done with its
    scores (``record_path``'s layout: ``<dataset, / as __>/<method>/seed-<n>.json``)."""
    try:
        dataset, method, seed = str(record["dataset"]), str(record["method"]), int(record["seed"])
    except (TypeError, ValueError):
        raise UserError(
            f"record {path} names no dataset, method and integer seed; delete it to rerun that run"
        ) from None
    expected = record_path(path.parent.parent.parent, dataset, method, seed)
    if expected.parts[-3:] != path.parts[-3:]:
        raise UserError(
            f"record {path} is for {dataset} / {method} / seed {seed}; it belongs at "
            f"{'/'.join(expected.parts[-3:])}: move it there or delete it"
        )


def is_finished(
    record: Mapping[str, Any] | None,
    config: Mapping[str, Any],
    data_fingerprint: str | None = None,
    engine: str | None = None,
) -> bool:
    """True when ``record`` (``read_record``'s, None for no record) is of a run that succeeded
    with this configuration (and, when ``data_fingerprint`` is given, on the data of that
    content fingerprint; when ``engine`` is, evaluated on that engine).

    Failed runs, runs made with another configuration (an edited suite), runs made on other
    data (a regenerated tier) and runs evaluated on another engine (engine ``auto`` is MJX on
    a GPU, the CPU batch engine elsewhere) are run again, so no table mixes them. Records
    written before they stated their data or engine are taken as made on it.
    """
    if record is None or record["status"] != "ok":
        return False
    # By fingerprint, as the report tells stale records: dict equality would take 3 for 3.0.
    if record_fingerprint(record) != config_fingerprint(config):
        return False
    made_on, made_with = record.get("data_fingerprint"), record.get("engine")
    same_data = data_fingerprint is None or made_on is None or made_on == data_fingerprint
    return same_data and (engine is None or made_with is None or made_with == engine)


def load_records(suite: str, results_dir: str | Path = "results") -> list[dict[str, Any]]:
    """Every record of ``suite``, ordered by dataset, method and seed."""
    directory = records_dir(suite, results_dir)
    records = [read_record(path) for path in directory.glob("*/*/seed-*.json")]
    return sorted(records, key=lambda r: (r["dataset"], r["method"], r["seed"]))
