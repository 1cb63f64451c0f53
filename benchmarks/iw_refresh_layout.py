"""iw-BC's trajectory-table refresh over the distinct episodes against every listed row.

The stratified selection (p90 ∪ p95 ∪ p98) lists the best episodes up to three times; since
2026-12-01 the refresh of log q_iw(τ)/|τ| computes each distinct trajectory once
(``DeviceEpisodes.episode_source``). For each dataset this times one refresh of the iw_bc
selection's table, all seeds vmapped, on both layouts in the same process (the one before,
every listed row, built by ``iw_refresh.listed_rows_layout``), and checks the tables are equal
to the bit. Fresh policy parameters: a refresh's cost does not depend on their values.

    python benchmarks/iw_refresh_layout.py --root data/minari iwbc/hopper/medium-expert-v0 ...
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from iw_refresh import REPEATS, RESULTS, listed_rows_layout, timed_refresh, write_report

from iwbc.agents.bc import BCConfig
from iwbc.agents.registry import METHODS, SelectionConfig, training_data
from iwbc.core.trainer import create_agents
from iwbc.data import load_dataset
from iwbc.machine import machine_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--root", default="data/minari")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS / "iw_refresh_layout"))
    args = parser.parse_args()
    stage = BCConfig.iw_finetune(batch_size=256, window=1)
    rows = []
    for dataset_id in args.datasets:
        episodes = load_dataset(dataset_id, root=args.root).episodes
        prepared = training_data(METHODS["iw_bc"], episodes, stage, SelectionConfig())
        agent = create_agents(METHODS["iw_bc"].agent, stage, prepared.spec, list(range(args.seeds)))
        data = prepared.data
        every_row = listed_rows_layout(data)
        distinct_s, distinct_table = timed_refresh(agent.policy, agent.params, data)
        every_row_s, every_row_table = timed_refresh(agent.policy, agent.params, every_row)
        np.testing.assert_array_equal(distinct_table, every_row_table)
        rows.append(
            {
                "dataset": dataset_id,
                "rows": int(data.num_episodes),
                "distinct_episodes": int(np.unique(np.asarray(data.episode_source)).size),
                "flat_steps_distinct": int(data.flat_observations.shape[0]),
                "flat_steps_every_row": int(every_row.flat_observations.shape[0]),
                "refresh_seconds_distinct": distinct_s,
                "refresh_seconds_every_row": every_row_s,
            }
        )
        print(rows[-1], flush=True)
    report = {
        "command": "python " + " ".join(sys.argv),
        "seeds": args.seeds,
        "rows": rows,
        "machine": machine_record(("jax", "jaxlib", "numpy")),
    }
    lines = [
        "# iw-BC's trajectory-table refresh: distinct episodes against every listed row",
        "",
        f"Regenerate: `{report['command']}`",
        "",
        f"One refresh of log q_iw(τ)/|τ| over the iw_bc selection (stratified p90/95/98, with its "
        f"copies), {args.seeds} seeds vmapped, mean of {REPEATS}; flat steps are padded to "
        "4,096-step blocks. Both layouts give the same table to the bit (checked).",
        "",
        "| dataset | rows | distinct episodes | flat steps: distinct / every row | "
        "refresh ms: distinct / every row | speed-up |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {r['dataset']} | {r['rows']} | {r['distinct_episodes']} | "
            f"{r['flat_steps_distinct']:,} / {r['flat_steps_every_row']:,} | "
            f"{r['refresh_seconds_distinct'] * 1e3:.0f} / "
            f"{r['refresh_seconds_every_row'] * 1e3:.0f} | "
            f"{r['refresh_seconds_every_row'] / r['refresh_seconds_distinct']:.2f}x |"
            for r in rows
        ),
    ]
    write_report(Path(args.out), report, lines)


if __name__ == "__main__":
    main()
