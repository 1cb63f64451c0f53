"""Welch's t-test (and Mann-Whitney U) of the minimal iw-BC's final scores against iwbc's.

Reads a JSON of ``benchmarks/minimal_iwbc_check.py`` and the ``table.csv`` of ``iwbc run --out``
and adds, per method in both, iwbc's per-seed scores, both means and stds (ddof 0) and the two
p-values, so that the verdict sits in the same file as the numbers it rests on.

    python benchmarks/minimal_iwbc_compare.py results/iwbc-check/minimal-pendulum-mixed.json \
        results/iwbc-check/iwbc-pendulum-mixed/table.csv
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import scipy.stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("minimal", type=Path, help="JSON of minimal_iwbc_check.py (rewritten)")
    parser.add_argument("table", type=Path, help="table.csv of `iwbc run --out`")
    args = parser.parse_args()

    report = json.loads(args.minimal.read_text())
    with args.table.open() as f:
        rows = list(csv.DictReader(f))
    for method in [
        m for m, v in report.items() if isinstance(v, dict) and "normalized_per_seed" in v
    ]:
        ours = np.array(report[method]["normalized_per_seed"])
        theirs = np.array([float(r["normalized_score"]) for r in rows if r["method"] == method])
        if theirs.size == 0:  # run the script once per table, each adds its methods
            print(f"{method}: not in {args.table}, left as it was")
            continue
        p = scipy.stats.ttest_ind(ours, theirs, equal_var=False).pvalue
        # rank test beside Welch's: a few seeds far above the rest (BC on replay data) skew means
        ranks_p = scipy.stats.mannwhitneyu(ours, theirs).pvalue
        report[method]["against_iwbc"] = {
            "table": str(args.table),
            "iwbc_per_seed": theirs.tolist(),
            "iwbc_mean": float(np.mean(theirs)),
            "iwbc_std": float(np.std(theirs)),
            "difference": float(np.mean(ours) - np.mean(theirs)),
            "welch_p": None if np.isnan(p) else float(p),  # NaN: both sides constant
            "mann_whitney_p": float(ranks_p),
        }
        print(
            f"{method}: minimal {np.mean(ours):.1f} ± {np.std(ours):.1f}, "
            f"iwbc {np.mean(theirs):.1f} ± {np.std(theirs):.1f}, Welch p = {p:.2f}, "
            f"Mann-Whitney p = {ranks_p:.2f}"
        )
    args.minimal.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
