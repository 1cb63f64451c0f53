"""``iwbc report --suite NAME``: a suite's tables, statistics and figures, from its records alone.

Everything is written under ``<results>/<suite>/``: ``table.md``/``table.csv`` (final scores per
dataset and method, published numbers beside them, best-during-training apart), ``runs.csv``
(every run), ``stats.md``/``stats.csv``/``profiles.csv`` (rliable aggregates) and ``figures/``.
Nothing in it depends on the time it was made, so rerunning on the same records gives the same
files.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from iwbc.agents.registry import BASELINES, METHODS
from iwbc.bench.suites import available_suites, load_suite
from iwbc.errors import UserError
from iwbc.report.convergence import (
    ALPHA,
    CRITIC_MOVE,
    MIN_GAIN,
    POINTS,
    CriticEnd,
    CurveEnd,
    critic_ends,
    curve_ends,
    still_rising,
)
from iwbc.report.figures import aggregates_figure, learning_curves_figure, profiles_figure
from iwbc.report.literature import PublishedSource, load_literature
from iwbc.report.outliers import MIN_GAP, MIN_SEEDS, Z_LIMIT, seeds_apart
from iwbc.report.runs import Layout, SuiteRuns, load_runs, records_dir
from iwbc.report.stats import (
    EXPERT,
    SuiteStats,
    profiles_csv,
    stats_csv,
    stats_markdown,
    suite_stats,
)
from iwbc.report.tables import (
    DIVERGED_MARK,
    RISING_MARK,
    UNSETTLED_MARK,
    diverged_cells,
    footnote_mark,
    published_columns,
    suite_csv_table,
    suite_markdown_table,
    unsettled_cells,
    weight_ess_table,
)

# Keys of a record's machine description that change run to run and say nothing about versions.
_VOLATILE = ("loadavg",)


def suite_layout(suite: str) -> Layout | None:
    """The suite file's datasets, methods and seeds, which order the table and name the runs
    that never ran; None for a suite with records but no file (e.g. since deleted)."""
    if suite not in available_suites():
        return None
    return load_suite(suite)


def _results_option(results_dir: str | Path) -> str:
    """`` --results DIR`` for commands written into a report, unless DIR is the default."""
    return "" if Path(results_dir) == Path("results") else f" --results {results_dir}"


def report_command(suite: str, results_dir: str | Path) -> str:
    """The command that regenerates the report, written into it."""
    return f"iwbc report --suite {suite}{_results_option(results_dir)}"


def _distinct(values: Sequence[object]) -> str:
    return " / ".join(str(v) for v in dict.fromkeys(values)) or "—"


# Records do not keep the sweep's data root or work directory, so commands name them in words.
SWEEP_PATHS = " (with the --root and --work-dir the sweep used, if it set them)"


def _bench_command(runs: SuiteRuns, results_dir: str | Path, options: str) -> str:
    """``iwbc bench`` on the suite and results folder of ``runs``, with ``options``."""
    return f"iwbc bench --suite {runs.suite_argument}{_results_option(results_dir)}{options}"


def rerun_command(runs: SuiteRuns, results_dir: str | Path) -> str:
    """The ``iwbc bench`` command that reruns the stale runs (and nothing else finished)."""
    stale = runs.stale
    methods = ",".join(dict.fromkeys(run.method for run in stale))
    datasets = list(dict.fromkeys(run.dataset for run in stale))
    only = "" if set(datasets) == set(runs.datasets) else f" --only-datasets {','.join(datasets)}"
    return _bench_command(runs, results_dir, f" --only-methods {methods}{only}")


def stale_summary(runs: SuiteRuns, results_dir: str | Path) -> str:
    """One line saying how many finished runs are stale, where, and how to rerun them."""
    stale = runs.stale
    cells = ", ".join(dict.fromkeys(f"{run.method} on {run.dataset}" for run in stale))
    return (
        f"{len(stale)} finished run(s) were made under another configuration of suite "
        f"{runs.suite} than its file's current one ({cells}); their scores are marked "
        f"'stale'. Rerun them with `{rerun_command(runs, results_dir)}`{SWEEP_PATHS}"
    )


def mixed_data_summary(runs: SuiteRuns, results_dir: str | Path) -> str:
    """One line naming the datasets whose runs were made on different contents of their data,
    and the command that retrains those not made on the current content."""
    mixed = runs.mixed_data
    named = "; ".join(
        f"{dataset} ({', '.join(found[:12] for found in versions)})"
        for dataset, versions in mixed.items()
    )
    rerun = _bench_command(runs, results_dir, " --only-datasets " + ",".join(mixed))
    return (
        f"The runs of {len(mixed)} dataset(s) were made on different contents of their data "
        f"(content fingerprints): {named}. Their methods were not compared on the same data; "
        f"`{rerun}`{SWEEP_PATHS} retrains every run not made on the data as it is now"
    )


def mixed_engines_summary(runs: SuiteRuns, results_dir: str | Path) -> str:
    """One line naming the datasets whose runs were evaluated on different engines, and the
    command that re-evaluates, on this machine's engine, those evaluated on another."""
    mixed = runs.mixed_engines
    named = "; ".join(f"{dataset} ({', '.join(found)})" for dataset, found in mixed.items())
    rerun = _bench_command(runs, results_dir, " --only-datasets " + ",".join(mixed))
    return (
        f"The runs of {len(mixed)} dataset(s) were evaluated on different engines: {named} "
        "(engine `auto` is MJX on a GPU where MJX runs the task, else the CPU batch engine where "
        "a built-in spec has it, else Gymnasium's). Their methods were "
        f"not scored on the same simulator; `{rerun}`{SWEEP_PATHS} reruns every run evaluated "
        "on another engine than the machine running it"
    )


def reused_evaluations_summary(runs: SuiteRuns) -> str:
    """One line naming the finished runs whose records rest on evaluations made at another
    source commit than the one that wrote them."""
    reused = runs.reused_evaluations
    first = reused[0]
    commits = ", ".join((c or "unrecorded")[:12] for c in dict.fromkeys(first.evaluated_at))
    return (
        f"{len(reused)} finished run(s) reuse evaluations made at another source commit than "
        f"the one that wrote their records (e.g. {first.dataset} {first.method} seed "
        f"{first.seed}: evaluated at {commits}, recorded at "
        f"{str(first.environment.get('iwbc_commit'))[:12]}): checkpoints and evaluations are "
        "kept by configuration and data, not by code; for scores of the current code, rerun "
        "them with a fresh --work-dir"
    )


def caveat_summaries(runs: SuiteRuns, results_dir: str | Path) -> list[str]:
    """What a reader must know about scores the tables include: stale runs, runs made on other
    data or evaluated on another engine, and evaluations made by other code."""
    found = [stale_summary(runs, results_dir)] if runs.stale else []
    found += [mixed_data_summary(runs, results_dir)] if runs.mixed_data else []
    found += [mixed_engines_summary(runs, results_dir)] if runs.mixed_engines else []
    found += [reused_evaluations_summary(runs)] if runs.reused_evaluations else []
    return found


def rising_summary(rising: Sequence[CurveEnd]) -> str:
    """One line naming the cells (``still_rising``'s) whose learning curve was still rising when
    training stopped."""
    cells = ", ".join(f"{i.method} on {i.dataset}" for i in rising)
    return (
        f"{len(rising)} cell(s) were still improving when training stopped ({cells}): their "
        f"scores, marked {RISING_MARK}, understate what those methods reach; compare them at a "
        "budget where every curve has flattened (the suite's steps)"
    )


def _learning_curve_ends(runs: SuiteRuns) -> list[str]:
    """The section on whether each cell's learning curve had flattened by the end of training."""
    ends = curve_ends(runs)
    tested = [end for end in ends.values() if end is not None]
    untested = sorted({method for (_, method), end in ends.items() if end is None})
    lines = [
        "## Learning curves at the end of training",
        "",
        f"Still rising ({RISING_MARK}): the score climbed over the last evaluation interval "
        f"(seed mean at least {MIN_GAIN:g} point) on a trend seed noise does not explain "
        f"(per seed, the least-squares slope of the score over the last {POINTS} evaluations; "
        f"one-sided t-test over seeds, p < {ALPHA:g}), every point scored on the same "
        "episodes: the intermediate evaluations' (the final policy on the first of its final "
        "evaluation's, whose reset seeds they share). Unmarked is not proof of a flat curve: "
        "a rise within the seeds' noise passes, and so does a plateau that a larger budget "
        "would leave, such as a fine-tune seed still at its start's level while the others "
        f"have left it. {len(tested)} of {len(ends)} cells could be tested"
        + (
            f"; not those of {', '.join(untested)} (fewer than {POINTS} evaluations, or one "
            "finished seed)."
            if untested
            else "."
        ),
        "",
    ]
    rising = [end for end in tested if end.still_rising]
    if not rising:
        return [*lines, "None was still rising.", ""]
    lines += [
        "| dataset | method | updates | seed-mean scores | last gain | trend (p) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {end.dataset} | {end.method} | {' → '.join(f'{s:,}' for s in end.steps)} | "
        f"{' → '.join(f'{v:.1f}' for v in end.scores.mean(axis=0))} | "
        f"{end.last_gain:+.1f} | {end.trend:+.1f} ({end.p_value:.3f}) |"
        for end in rising
    ]
    return [*lines, "", rising_summary(rising) + ".", ""]


def critics_summary(learning: Sequence[CriticEnd]) -> str:
    """One line naming the cells (``critic_ends``' still learning) whose critic's mean Q still
    moved at the end of training."""
    cells = ", ".join(f"{end.method} on {end.dataset}" for end in learning)
    return (
        f"{len(learning)} cell(s) ended with their critic's mean Q still moving by "
        f"{CRITIC_MOVE:.0%} or more over the last evaluation interval, or still approaching "
        f"the range TD on their data can reach from outside it ({cells}): their value "
        f"estimates had not settled, so a larger budget may change their scores, marked "
        f"{UNSETTLED_MARK}, even where the score curve is flat (*Critics at the end of training*)"
    )


def diverged_summary(diverged: Sequence[CriticEnd]) -> str:
    """One line naming the cells (``critic_ends``' diverged) where some seed's critic ended
    outside the range any discounted return of its training rewards can take."""
    cells = ", ".join(
        f"{end.method} on {end.dataset} ({int(end.diverging.sum())}/{len(end.q)} seeds)"
        for end in diverged
    )
    return (
        f"{len(diverged)} cell(s) ended with a critic whose mean Q lies outside the range any "
        f"discounted return of its training rewards can take ({cells}): those value estimates "
        f"have diverged, so the scores, marked {DIVERGED_MARK}, are of policies following "
        "values no data supports (*Critics at the end of training*)"
    )


def _value_range(end: CriticEnd) -> str:
    """The range TD on the cell's data can reach, or — when no record gives it."""
    if end.value_range is None:
        return "—"
    low, high = end.value_range
    return f"[{low:.4g}, {high:.4g}]"


def _critic_verdict(end: CriticEnd) -> str:
    words = ["**still learning**"] if end.still_learning else []
    if end.approaching.any():
        words.append(f"approaching the range ({int(end.approaching.sum())}/{len(end.q)} seeds)")
    if end.diverged:
        words.append(f"**outside the range** ({int(end.diverging.sum())}/{len(end.q)} seeds)")
    return ", ".join(words)


def untested_critics(runs: SuiteRuns, ends: Sequence[CriticEnd]) -> list[tuple[str, str]]:
    """(dataset, method) of the baselines' finished cells with no critic to test (records
    made before training metrics were kept): unmarked there means unknown, not settled."""
    tested = {(end.dataset, end.method) for end in ends}
    return [
        (dataset, method)
        for dataset in runs.datasets
        for method in runs.methods
        if method in BASELINES and runs.ok_runs(dataset, method) and (dataset, method) not in tested
    ]


def _critics_at_the_end(runs: SuiteRuns) -> list[str]:
    """The section on whether the offline-RL baselines' critics had settled."""
    ends = critic_ends(runs)
    if not ends:
        return []
    lines = [
        "## Critics at the end of training",
        "",
        "Each baseline's critic: its mean Q on its training batches (mean over the chunk of "
        "updates ending at each evaluation), at the evaluation before the last and at the "
        "last (seed means), and how far it moved between them: per seed the relative change, "
        "its size averaged over seeds (a seed whose Q rises and one whose Q falls do not "
        "cancel), and the seeds' signed changes. A score curve can be flat while the critic "
        "it follows still moves (towards its fixed point, or away): where Q still moved by "
        f"{CRITIC_MOVE:.0%} or more over that interval (**still learning**), more updates may "
        "change the score. *TD range*: every value TD targets built from the data's rewards "
        "(in [r_min, r_max]) can reach, from r_min (r_min / (1 − γ) if r_min < 0) to "
        "r_max / (1 − γ) (r_max if r_max < 0); a final mean Q outside it (**outside the "
        "range**) is no policy's value on these data: that critic has diverged, however "
        "little it still moves, unless it lies between 0 and a range that excludes 0 (as "
        "rewards all of one sign give) and came closer to it over the interval (approaching "
        "the range: still on its way from its initial values near 0, so still learning). (Q "
        "is in the units of the "
        "rewards the method trains on: scaled where its config says so. Cells not listed "
        "have no critic, or records made before training metrics were kept; — in *TD "
        "range*: records made before it was kept.)",
        "",
        "| dataset | method | updates | mean Q | TD range | moved | per seed | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {end.dataset} | {end.method} | {' → '.join(f'{s:,}' for s in end.steps)} | "
        f"{' → '.join(f'{v:.4g}' for v in end.q.mean(axis=0))} | {_value_range(end)} | "
        f"{end.moved:.1%} | {', '.join(f'{c:+.1%}' for c in end.changes)} | "
        f"{_critic_verdict(end)} |"
        for end in ends
    ]
    learning = [end for end in ends if end.still_learning]
    diverged = [end for end in ends if end.diverged]
    untested = untested_critics(runs, ends)
    return [
        *lines,
        "",
        critics_summary(learning) + "." if learning else "None was still learning.",
        *([diverged_summary(diverged) + "."] if diverged else []),
        *(
            [
                f"Not tested: {', '.join(f'{m} on {d}' for d, m in untested)} (records made "
                "before training metrics were kept); the score table leaves them unmarked, which "
                "says nothing of their critics: rerun them to test."
            ]
            if untested
            else []
        ),
        "",
    ]


def _seeds_apart(runs: SuiteRuns, results_dir: str | Path) -> list[str]:
    """The section naming seeds whose final score stands apart from their cell's others."""
    apart = seeds_apart(runs)
    lines = [
        "## Seeds apart from their cell",
        "",
        f"A seed whose final score lies at least {MIN_GAP:g} points from the median of its "
        f"cell's finished seeds and beyond a modified z-score of {Z_LIMIT:g} (0.6745·|x − "
        "median| / MAD, Iglewicz & Hoaglin) is listed with its best score during training: a "
        "seed that collapsed ends far below its best, a stuck one never rose. Its cell's mean "
        "± std includes it; its learning curve is the `curve` of its record "
        f"({records_dir(runs.suite, results_dir)}/<dataset, / as __>/<method>/seed-<seed>.json). "
        f"Cells with fewer than {MIN_SEEDS} finished seeds are not tested.",
        "",
    ]
    if not apart:
        return [*lines, "None.", ""]
    lines += [
        "| dataset | method | seed | final | best during training (update) "
        "| median of the cell (seeds) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {a.dataset} | {a.method} | {a.seed} | {a.final:.1f} | {a.best:.1f} "
        f"({a.best_step:,} of {a.last_step:,}) | {a.cell_median:.1f} ({a.cell_seeds}) |"
        for a in apart
    ]
    return [*lines, ""]


def _caveats(runs: SuiteRuns, results_dir: str | Path) -> list[str]:
    """``caveat_summaries``, each a paragraph, for where scores are summarized."""
    return [line for summary in caveat_summaries(runs, results_dir) for line in (summary + ".", "")]


def _failed_missing_and_stale(runs: SuiteRuns, results_dir: str | Path) -> list[str]:
    caveats = _caveats(runs, results_dir)
    if not runs.failed and not runs.missing and not caveats:
        return ["None: every run of the grid finished under the suite's current configuration.", ""]
    lines = caveats
    lines += ["| method | dataset | seed | status | error |", "|---|---|---|---|---|"]
    lines += [
        f"| {r.method} | {r.dataset} | {r.seed} | failed | {r.error.replace('|', '/')} |"
        for r in runs.failed
    ]
    lines += [
        f"| {m} | {d} | {s} | missing | no record (not run yet, or the sweep was stopped) |"
        for d, m, s in runs.missing
    ]
    lines += [
        f"| {r.method} | {r.dataset} | {r.seed} | stale | made under configuration "
        f"{r.fingerprint}; the suite's is now {runs.current[r.dataset, r.method]} |"
        for r in runs.stale
    ]
    lines += _mixed_rows(runs, runs.mixed_data, "mixed data", "made on content", "data_fingerprint")
    lines += _mixed_rows(runs, runs.mixed_engines, "mixed engines", "evaluated on", "engine")
    return [*lines, ""]


def _mixed_rows(
    runs: SuiteRuns, mixed: Sequence[str], status: str, what: str, field: str
) -> list[str]:
    """A row per finished run of the ``mixed`` datasets, stating its ``field``."""
    return [
        f"| {r.method} | {r.dataset} | {r.seed} | {status} | {what} "
        f"{(getattr(r, field) or 'not recorded')[:12]} |"
        for dataset in mixed
        for method in runs.methods
        for r in runs.ok_runs(dataset, method)
    ]


def _budgets(runs: SuiteRuns) -> str:
    """Each method's updates at its final evaluation: the most datasets' budget, then the
    datasets trained at another (a suite's per-dataset budget)."""
    parts = []
    for method in runs.methods:
        ends = {
            dataset: sorted({int(run.steps[-1]) for run in cell})
            for dataset in runs.datasets
            if (cell := runs.ok_runs(dataset, method))
        }
        if not ends:
            continue
        labels = {dataset: " / ".join(f"{s:,}" for s in steps) for dataset, steps in ends.items()}
        counts = list(labels.values())
        usual = max(dict.fromkeys(counts), key=counts.count)
        others: dict[str, list[str]] = {}
        for dataset, label in labels.items():
            if label != usual:
                others.setdefault(label, []).append(dataset)
        exceptions = "; ".join(f"{label} on {', '.join(ds)}" for label, ds in others.items())
        parts.append(f"{method} {usual}" + (f" ({exceptions})" if exceptions else ""))
    return ", ".join(parts) or "—"


def _metadata(runs: SuiteRuns, command: str, results_dir: str | Path) -> list[str]:
    done = [run for run in runs.runs.values() if run.ok]
    evaluation = [run.config.get("evaluation", {}) for run in runs.runs.values()]
    # The seeds of a (dataset, method) unit train together and their records share its wall
    # time, so each unit counts once.
    unit_walls: dict[tuple[str, str], float] = {}
    for r in runs.runs.values():
        if not np.isnan(r.wall_seconds):
            key = (r.dataset, r.method)
            unit_walls[key] = max(unit_walls.get(key, 0.0), r.wall_seconds)
    walls = {
        m: sum(w for (_, method), w in unit_walls.items() if method == m) for m in runs.methods
    }
    finished = sorted(run.finished_at for run in runs.runs.values() if run.finished_at)
    engines = any(run.engine for run in done)  # records before the key state none
    # Columns records state only since they were added: shown once some record states them.
    sources = any(run.ref_source for run in done)
    clipped = any(np.isfinite(run.clipped_actions) for run in done)
    boxes = any(run.action_box_rescaled for run in done)  # a column only where one was mapped
    grid = len(runs.grid())
    lines = [
        "## Runs and provenance",
        "",
        f"- regenerate: `{command}` (reads {records_dir(runs.suite, results_dir)}/, written by "
        f"`{_bench_command(runs, results_dir, '')}`; each record holds its run's full training "
        "config)",
        f"- grid: {len(runs.datasets)} datasets × {len(runs.methods)} methods × "
        f"{len(runs.seeds)} seeds = {grid} runs: {len(done)} finished"
        + (f" ({len(runs.stale)} stale)" if runs.stale else "")
        + f", {len(runs.failed)} failed, {len(runs.missing)} missing",
        f"- training seeds: {', '.join(map(str, runs.seeds))}",
        "- evaluation episodes per run: final "
        f"{_distinct(sorted({r.final_episodes for r in done}))}, during training "
        f"{_distinct([e.get('eval_episodes') for e in evaluation if 'eval_episodes' in e])}; "
        "evaluation every "
        f"{_distinct([e.get('eval_every') for e in evaluation if 'eval_every' in e])} updates "
        "(0: final only); deterministic policy, fixed reset seeds shared by all runs"
        + (f"; engine {_distinct([r.engine for r in done if r.engine])}" if engines else ""),
        f"- updates to the final policy (fine-tunes: after their start): {_budgets(runs)}",
        f"- wall time, summed over (dataset, method) units (seeds train together): "
        f"{sum(walls.values()):.0f} s ("
        + ", ".join(f"{m} {w:.0f} s" for m, w in walls.items())
        + ")"
        + (
            "; the BC pre-training the fine-tunes share trains once, counted in the unit that "
            "trained it (bc's, unless a fine-tune ran first)"
            if any(METHODS[m].start for m in runs.methods if m in METHODS)
            else ""
        ),
        f"- records finished {finished[0]} … {finished[-1]}" if finished else "",
        "",
        "| dataset | env | ref_min_score | ref_max_score | "
        + ("reference scores from | " if sources else "")
        + ("actions clipped into the box | " if clipped else "")
        + ("action box (mapped into [-1, 1] to train, back to act) | " if boxes else "")
        + "content fingerprint |",
        "|---|---|---|---|---|" + "---|" * (sources + clipped + boxes),
    ]
    for dataset in runs.datasets:
        cell = [r for r in runs.runs.values() if r.dataset == dataset]
        ok = [r for r in cell if r.ok]
        shares = [f"{r.clipped_actions:.1%}" for r in ok if np.isfinite(r.clipped_actions)]
        lines.append(
            f"| {dataset} | {_distinct([r.env for r in cell if r.env])} | "
            f"{_distinct([f'{r.ref_min_score:.2f}' for r in ok])} | "
            f"{_distinct([f'{r.ref_max_score:.2f}' for r in ok])} | "
            + (f"{_distinct([r.ref_source for r in ok if r.ref_source])} | " if sources else "")
            + (f"{_distinct(shares)} | " if clipped else "")
            + (f"{_distinct([r.action_box for r in ok if r.action_box])} | " if boxes else "")
            + f"{_distinct([r.data_fingerprint[:12] for r in ok if r.data_fingerprint])} |"
        )
    keys = dict.fromkeys(k for r in runs.runs.values() for k in r.environment)
    machine = [
        f"{k} {_distinct([r.environment[k] for r in runs.runs.values() if k in r.environment])}"
        for k in keys
        if k not in _VOLATILE
    ]
    lines += ["", *_preprocessing(runs)]
    lines += ["Machine and versions (from the records): " + "; ".join(machine), ""]
    return lines


def _preprocessing(runs: SuiteRuns) -> list[str]:
    """What each method's inputs and batches were, from its records' configs."""
    lines = [
        "What each method was fed (from its records):",
        "",
        "| method | observations | step weighting | batch |",
        "|---|---|---|---|",
    ]
    for method in runs.methods:
        configs = [r.config for r in runs.runs.values() if r.method == method and r.config]
        observations = _distinct(
            [c.get("observations", "raw (record predates the key)") for c in configs]
        )
        weighting = _distinct([_weighting(c) for c in configs])
        batch = _distinct([_batch(c) for c in configs])
        lines.append(f"| {method} | {observations} | {weighting} | {batch} |")
    torch = [
        method
        for method in runs.methods
        if any(
            r.method == method and _layer_init(r.config or {}) == "torch"
            for r in runs.runs.values()
        )
    ]
    if torch:
        others = [m for m in runs.methods if m not in torch]
        lines += [
            "",
            "Layers started as PyTorch's `nn.Linear` default (layer_init torch: kernels and "
            f"biases uniform in ±1/√fan_in): {', '.join(torch)}; "
            + (f"{', '.join(others)}'s as" if others else "not as")
            + " Flax's default (LeCun-normal kernels, zero biases).",
        ]
    return [*lines, ""]


def _layer_init(config: dict) -> str:
    # Stated only where set otherwise than "flax" (a later option).
    return config.get("algorithm", config).get("layer_init", "flax")


def _weighting(config: dict) -> str:
    # A baseline's record holds its whole "algorithm" config and samples uniform transitions.
    if "algorithm" in config:
        return "transition (uniform transitions)"
    return config.get("stage", {}).get("weighting", "episode (record predates the key)")


def _batch(config: dict) -> str:
    if "algorithm" in config:
        return f"{config['algorithm'].get('batch_size')} transitions"
    stage = config.get("stage", {})
    window = stage.get("window")
    shape = "whole episodes" if window is None else f"{window}-step windows"
    return f"{stage.get('batch_size')} × {shape}"


def _weight_diagnostics(runs: SuiteRuns) -> list[str]:
    """The section on importance weights, for suites with an iw-BC method."""
    table = weight_ess_table(runs)
    if not table:
        return []
    return [
        "## Importance weights (effective sample fraction)",
        "",
        "Kish's effective sample size of each batch's importance weights as a fraction of its n "
        "weighted units, as the loss counts them (its rows under episode weighting, trajectories "
        "or windows each weighted by its trajectory; its valid steps under transition weighting "
        "and for iw_step), (Σw)² / (n Σw²), averaged "
        "over the updates of the last training chunk: 1 means uniform weights (BC on the "
        "curated data), 1/n one unit carrying the whole batch. Mean (min–max) over seeds; "
        "—: no finished run logged it.",
        "",
        table,
    ]


def _data_relation(source: PublishedSource, datasets: Sequence[str]) -> str:
    """What the published numbers were measured on, against the rows they stand beside."""
    rows = [d for d in datasets if d in source.ids]
    same = [d for d in rows if d in source.imported]
    other = (
        "Other data than ours (our datasets are generated locally on Gymnasium -v5 "
        "environments) and another scale: their 100 is D4RL's expert reference, ours the "
        "dataset's own (its ref_max_score, provenance below). Quoted for context: not "
        "comparable cell by cell."
    )
    same_files = (
        "The same files as ours (D4RL's, imported by `iwbc data import-d4rl`), trained with "
        "the source's code and evaluated on gym -v3 under mujoco-py, while ours are evaluated "
        "on Gymnasium -v5 (README, *D4RL's own files*): the same data, on a simulator close "
        "to but not the same as theirs."
    )
    if len(same) == len(rows):
        return same_files
    if not same:
        return other
    return (
        f"On {', '.join(same)}: {same_files[0].lower()}{same_files[1:]} Elsewhere: "
        f"{other[0].lower()}{other[1:]}"
    )


def _recipes(source: PublishedSource, methods: Sequence[str]) -> str:
    """The sentence naming the shown columns whose published recipe is not ours, or ""."""
    differ = [source.recipes[m] for m in methods if m in source.recipes]
    if not differ:
        return ""
    return (
        "A column whose published recipe is not ours compares recipes as well as "
        "implementations: " + " ".join(f"{text}." for text in differ) + " "
    )


def table_markdown(
    runs: SuiteRuns, literature: Sequence[PublishedSource], command: str, results_dir: str | Path
) -> str:
    """``table.md``: final scores with the literature group, best-during-training apart,
    failed and missing runs, and where the numbers came from."""
    columns = published_columns(runs, literature)
    shown = list(dict.fromkeys(source for source, _ in columns))
    lines = [
        f"# Suite {runs.suite}: final normalized scores",
        "",
        f"Made by `{command}`.",
        "",
        suite_markdown_table(runs, shown),
        "Each cell: mean ± std (ddof 0) over training seeds of the normalized score of the final "
        "policy (no selection over training), 100·(R − ref_min)/(ref_max − ref_min) with the "
        "dataset's reference returns below. (k/n): only k of the n seeds finished; —: none did "
        "(see *Failed, missing and stale runs*). "
        + (
            "(s stale): s of them ran under another configuration than the suite file's "
            "current one. "
            if runs.stale
            else ""
        )
        + (
            f"{RISING_MARK}: still rising at the end of training (*Learning curves at the end of "
            "training*). "
            if still_rising(runs)
            else ""
        )
        + (
            f"{UNSETTLED_MARK}: its critic's mean Q still moved by {CRITIC_MOVE:.0%} or more "
            "over the last evaluation interval (*Critics at the end of training*), so the "
            "score is one of a method still learning: budget-limited, not its converged "
            "value. "
            if unsettled_cells(runs)
            else ""
        )
        + (
            f"{DIVERGED_MARK}: some seed's critic ended with a mean Q outside the range any "
            "discounted return of its training rewards can take (*Critics at the end of "
            "training*): its value estimates diverged. "
            if diverged_cells(runs)
            else ""
        )
        + "**average**: mean over datasets of the per-dataset means, — unless every dataset "
        "has a finished run; (incomplete) when some cell has fewer finished seeds than the "
        "suite's; marked as any of its cells is.",
        "",
    ]
    for index, source in enumerate(shown):
        lines += [
            f"{footnote_mark(index)} {source.header(runs.datasets)}: {source.citation} "
            f"({source.url}), on {source.data}. {_data_relation(source, runs.datasets)} "
            + _recipes(
                source, [method for shown_source, method in columns if shown_source is source]
            )
            + "Their average is over the rows shown.",
            "",
        ]
    if not shown:
        lines += [
            "No published numbers for these datasets (iwbc/report/literature.toml maps D4RL's "
            "HalfCheetah, Hopper and Walker2d medium, medium-replay and medium-expert to the "
            "generated iwbc/<task>/<tier>-v0 and the imported d4rl/<task>/<tier>-v2).",
            "",
        ]
    lines += [
        "## Best during training (labelled: not the final policy)",
        "",
        "Max over the evaluations of each run's learning curve (end of training included), "
        "mean ± std over seeds. Selecting the best checkpoint by its evaluation score is "
        "optimistic; the table above is the one to compare.",
        "",
        suite_markdown_table(runs, best=True),
        *_learning_curve_ends(runs),
        *_critics_at_the_end(runs),
        *_seeds_apart(runs, results_dir),
        *_weight_diagnostics(runs),
        "## Failed, missing and stale runs",
        "",
        *_failed_missing_and_stale(runs, results_dir),
        *_metadata(runs, command, results_dir),
    ]
    return "\n".join(lines)


def runs_csv(runs: SuiteRuns) -> str:
    """Every run of the grid: its status, final and best scores, wall time and error."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["dataset", "method", "seed", "status", "final", "best", "wall_seconds", "error"]
    )
    for dataset, method, seed in runs.grid():
        run = runs.runs.get((dataset, method, seed))
        if run is None:
            writer.writerow([dataset, method, seed, "missing", "", "", "", ""])
            continue
        scores = [f"{run.final:.4f}", f"{run.best:.4f}"] if run.ok else ["", ""]
        wall = "" if np.isnan(run.wall_seconds) else f"{run.wall_seconds:.1f}"
        writer.writerow([dataset, method, seed, run.status, *scores, wall, run.error or ""])
    return out.getvalue()


def stats_report(
    stats: SuiteStats, runs: SuiteRuns, command: str, results_dir: str | Path = "results"
) -> str:
    """``stats.md``: the aggregates table, how each was computed, and what was left out."""
    lines = [
        f"# Suite {runs.suite}: aggregate statistics of final normalized scores",
        "",
        f"Made by `{command}`.",
        "",
        stats_markdown(stats)
        if stats.scores
        else "No method has a finished run on every dataset, so there are no aggregates.",
        "",
        "Over all (dataset × seed) runs of each method (rliable, Agarwal et al. 2021). IQM: mean "
        "of the middle 50% of all runs' scores (25% trimmed mean, ⌊n/4⌋ of the n scores cut "
        "from each end, so of fewer than 4 runs their plain mean); median: median over datasets "
        f"of the per-dataset mean; mean: over all runs; optimality gap: {EXPERT:.0f} − "
        f"mean(min(score, {EXPERT:.0f})), lower is better. 95% CIs: percentile stratified "
        f"bootstrap (runs resampled within each dataset), {stats.reps} resamples, NumPy seed "
        f"{stats.seed}, so the numbers are the same on every regeneration.",
        "",
        "Performance profiles (fraction of runs with score > τ, with 95% CIs): profiles.csv and "
        "figures/profiles.png / .svg; aggregates: figures/aggregates.png / .svg; learning curves: "
        "figures/learning_curves.png / .svg.",
        "",
    ]
    if stats.notes:
        lines += ["Left out of the aggregates:", "", *(f"- {note}" for note in stats.notes), ""]
    if runs.failed or runs.missing:
        lines += [
            f"{len(runs.failed)} failed and {len(runs.missing)} missing run(s) have no score; "
            "table.md lists them.",
            "",
        ]
    caveats = _caveats(runs, results_dir) + _marked_in_aggregates(runs)
    if caveats:
        lines += ["Included in the aggregates:", "", *caveats]
    return "\n".join(lines)


def _marked_in_aggregates(runs: SuiteRuns) -> list[str]:
    """A paragraph naming the methods whose aggregates take in cells table.md marks (↑, Q~,
    Q!): those summarize scores still learning or following diverged critics too."""
    marked = {
        RISING_MARK: {(end.dataset, end.method) for end in still_rising(runs)},
        UNSETTLED_MARK: unsettled_cells(runs),
        DIVERGED_MARK: diverged_cells(runs),
    }
    untested = untested_critics(runs, critic_ends(runs))
    parts = []
    for method in runs.methods:
        unknown = sum(m == method for _, m in untested)
        counts = [
            f"{count} of {len(runs.datasets)} {mark}"
            + (f" ({unknown} untested)" if unknown and mark != RISING_MARK else "")
            for mark, cells in marked.items()
            if (count := sum((dataset, method) in cells for dataset in runs.datasets))
        ]
        if counts:
            parts.append(f"{method} {', '.join(counts)}")
    if not parts:
        return []
    return [
        f"Cells table.md marks: {'; '.join(parts)}. These methods' aggregates take them in: "
        f"scores of curves still rising ({RISING_MARK}) or critics still learning "
        f"({UNSETTLED_MARK}) are budget-limited, not converged, and those of critics that "
        f"diverged ({DIVERGED_MARK}) follow values no data supports.",
        "",
    ]


def write_suite_report(
    suite: str,
    results_dir: str | Path = "results",
    *,
    reps: int = 2000,
    seed: int = 0,
    layout: Layout | None = None,
    literature: Sequence[PublishedSource] | None = None,
    command_suite: str = "",
) -> list[Path]:
    """Write the report of ``suite`` from ``<results_dir>/<suite>/records``; returns the files.

    ``layout`` (default: the suite file, if any) orders the rows and columns and names the runs
    that never ran; ``reps`` bootstrap resamples with NumPy seed ``seed`` make the CIs;
    ``command_suite`` (default ``suite``) is how the commands written into it name the suite.
    """
    if layout is None:
        layout = suite_layout(suite)
    if layout is None and not records_dir(suite, results_dir).exists():
        raise UserError(
            f"unknown suite '{suite}' and no records under {records_dir(suite, results_dir)}; "
            f"run `iwbc bench --suite <name>` first, <name> one of: "
            f"{', '.join(available_suites()) or 'none'}"
        )
    runs = dataclasses.replace(load_runs(suite, results_dir, layout), command_suite=command_suite)
    literature = load_literature() if literature is None else literature
    stats = suite_stats(runs, reps=reps, seed=seed)
    command = report_command(runs.suite_argument, results_dir)
    out = Path(results_dir) / suite
    files = {
        "table.md": table_markdown(runs, literature, command, results_dir),
        "table.csv": suite_csv_table(runs, literature),
        "runs.csv": runs_csv(runs),
        "stats.md": stats_report(stats, runs, command, results_dir),
        "stats.csv": stats_csv(stats),
        "profiles.csv": profiles_csv(stats),
    }
    written = []
    for name, text in files.items():
        (out / name).write_text(text)
        written.append(out / name)
    figures = out / "figures"
    written += learning_curves_figure(runs, figures / "learning_curves")
    if stats.scores:
        written += aggregates_figure(stats, runs, figures / "aggregates")
        written += profiles_figure(stats, runs, figures / "profiles")
    else:  # no aggregates: drop an earlier report's, which no longer match the records
        for stale in ("aggregates.png", "aggregates.svg", "profiles.png", "profiles.svg"):
            (figures / stale).unlink(missing_ok=True)
    return written


def report_main(suite: str, results_dir: str | Path, reps: int) -> tuple[str, list[str]]:
    """What ``iwbc report`` prints: the line of the files written and how long it took, and
    the warnings: one if some scores are stale, another if a dataset's runs were made on
    different contents of it, another if some learning curves were still rising at the end (the
    tables flag all), another if some critics were still learning, another if some diverged.
    ``suite`` is a suite's name or, as for ``iwbc bench``, the path of its ``.toml`` file."""
    started = time.perf_counter()
    layout, given = None, suite
    if suite.endswith(".toml"):
        layout = load_suite(suite)
        suite = layout.name
    written = write_suite_report(suite, results_dir, reps=reps, layout=layout, command_suite=given)
    seconds = time.perf_counter() - started
    out = Path(results_dir) / suite
    figures = sum(1 for p in written if p.parent.name == "figures")
    names = ", ".join(p.name for p in written if p.parent == out)
    line = f"wrote {out}/{{{names}}} and {figures} figures in {out}/figures ({seconds:.1f} s)"
    runs = dataclasses.replace(
        load_runs(suite, results_dir, layout or suite_layout(suite)), command_suite=given
    )
    warnings = caveat_summaries(runs, results_dir)
    rising = still_rising(runs)
    warnings += [rising_summary(rising)] if rising else []
    ends = critic_ends(runs)
    learning = [end for end in ends if end.still_learning]
    warnings += [critics_summary(learning)] if learning else []
    diverged = [end for end in ends if end.diverged]
    warnings += [diverged_summary(diverged)] if diverged else []
    return line, warnings
