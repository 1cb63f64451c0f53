"""iwbc's iw-BC fine-tune and the minimal one from the same BC start: tells the two halves apart.

``minimal_iwbc_check.py`` compares whole pipelines, each fine-tuning its own BC. Where a
statistic of the fine-tunes differs between them (the effective sample fraction of the weights,
say), this says which half it comes from. It trains iwbc's ``bc`` and ``iw_bc``
(``train_methods``, seeds vmapped) and the minimal learner's BC, then runs the minimal fine-tune
(``finetune_transitions``) from both BC starts with the same keys. Per seed it reports the
effective sample fraction, mean per 500-update chunk (iwbc's training chunk), of

- ``iwbc``: iwbc's fine-tune from iwbc's BC;
- ``minimal_from_iwbc_bc``: the minimal fine-tune from iwbc's BC. Same start as ``iwbc``: seed by
  seed alike if the two fine-tunes are;
- ``minimal``: the minimal fine-tune from the minimal BC, the minimal pipeline itself;

and for each final policy the number of distinct selected episodes whose weight
clip(exp(temp (log q(tau) - log q_bc(tau)) / |tau|), 0, 1000) against its own start sits at the
clip, and the mean of log q(tau) / |tau| over them. iw_bc under transition weighting with
one-step windows (iwbc's default), at the quick suite's budgets unless told otherwise.

    python benchmarks/minimal_iwbc_start_swap.py iwbc/walker2d/medium-replay-v0 \
        --root data/minari --seeds 30 \
        --out results/iwbc-check/start-swap-walker2d-medium-replay.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from minimal_iwbc_check import (
    LAST_UPDATES,
    MAX_WEIGHT,
    bc_transitions,
    finetune_transitions,
    flat_selection,
    mean_action,
    selection_log_q,
    state_statistics,
    stratified_rows,
)

from iwbc.agents.bc import BCConfig
from iwbc.agents.registry import train_methods
from iwbc.data import load_dataset
from iwbc.machine import machine_record


def minimal_params(params: dict, mean: np.ndarray, std: np.ndarray) -> dict:
    """iwbc's seed-stacked policy parameters as the minimal learner's, which takes states
    standardized with its own ``mean`` and ``std`` (float32 sums: they differ from iwbc's
    float64 statistics by up to ~1e-4 relative). iwbc's statistics are folded into the first
    layer, so that both give the same actions for the same raw state:
    ((s - m_i) / s_i) W + b = z diag(s_m / s_i) W + ((m_m - m_i) / s_i) W + b, z = (s - m_m) / s_m.
    """
    layers = params["params"]
    dense = sorted((k for k in layers if k.startswith("Dense_")), key=lambda k: int(k[6:]))
    weights = [(layers[k]["kernel"], layers[k]["bias"]) for k in dense]
    iwbc_mean, iwbc_std = params["normalizer"]["mean"], params["normalizer"]["std"]
    kernel, bias = weights[0]
    scale = (std / iwbc_std)[..., None]
    shift = jnp.einsum("sd,sdh->sh", (mean - iwbc_mean) / iwbc_std, kernel)
    weights[0] = (kernel * scale, bias + shift)
    return {"layers": weights, "log_std": layers["log_std"]}


def check_same_actions(agent, converted: dict, raw: np.ndarray, mean, std) -> None:
    """iwbc's seed-stacked ``agent`` and its ``converted`` parameters act alike on ``raw``."""
    act, params = agent.acting()
    theirs = jax.vmap(act, in_axes=(0, None))(params, jnp.asarray(raw))
    ours = jax.vmap(mean_action, in_axes=(0, None))(converted, jnp.asarray((raw - mean) / std))
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), atol=1e-4)


def chunk_means(per_update: np.ndarray) -> list[list[float]]:
    """[seeds, updates] -> per seed, the mean of each ``LAST_UPDATES``-update chunk."""
    chunks = np.array_split(
        per_update, np.arange(LAST_UPDATES, per_update.shape[1], LAST_UPDATES), 1
    )
    return np.stack([c.mean(1) for c in chunks], 1).astype(np.float64).round(4).tolist()


def end_weights(data: dict, start: dict, final: dict, temperature: float) -> dict:
    """Per seed: selected episodes at the weight clip, and mean log q(tau) / |tau| of the final
    policy over the selection."""
    log_q = jax.vmap(lambda p: selection_log_q(data, p))
    final_q, start_q = np.asarray(log_q(final)), np.asarray(log_q(start))
    weights = np.minimum(np.exp(temperature * (final_q - start_q)), MAX_WEIGHT)
    return {
        "clipped_episodes": (weights >= MAX_WEIGHT).sum(1).tolist(),
        "mean_log_q": final_q.mean(1).astype(np.float64).round(4).tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--root", type=Path, default=None, help="local Minari datasets")
    parser.add_argument("--seed", type=int, default=0, help="first training seed")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--bc-steps", type=int, default=3000)
    parser.add_argument("--bc-batch-size", type=int, default=256, help="transitions")
    parser.add_argument("--bc-lr", type=float, default=1e-3)
    parser.add_argument("--finetune-steps", type=int, default=2000)
    parser.add_argument("--finetune-batch-size", type=int, default=256, help="transitions")
    parser.add_argument("--finetune-lr", type=float, default=1e-4)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--temperature", type=float, default=10.0)
    parser.add_argument("--refresh-every", type=int, default=10, help="q_iw table, updates")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()
    if args.refresh_every < 1 or args.finetune_steps % args.refresh_every:
        parser.error("--refresh-every must be a positive divisor of --finetune-steps")
    args.fine_tune = "iw_bc"

    start = time.perf_counter()
    dataset = load_dataset(args.dataset, root=args.root)
    episodes = dataset.episodes
    mean, std = state_statistics(episodes.observations)
    rows = stratified_rows(episodes.returns)
    data = flat_selection(episodes, rows, mean, std)
    seeds = list(range(args.seed, args.seed + args.seeds))
    keys = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds))
    k_init, k_bc, k_ft = jnp.moveaxis(jax.vmap(lambda k: jax.random.split(k, 3))(keys), 1, 0)

    shared = dict(window=1, weighting="transition", layer_init="flax")
    bc_config = BCConfig(
        steps=args.bc_steps, batch_size=args.bc_batch_size, learning_rate=args.bc_lr, **shared
    )
    ft_config = BCConfig.iw_finetune(
        steps=args.finetune_steps,
        batch_size=args.finetune_batch_size,
        learning_rate=args.finetune_lr,
        warmup_steps=args.warmup_steps,
        temperature=args.temperature,
        refresh_every=args.refresh_every,
        **shared,
    )
    trained = train_methods(
        dataset, ["bc", "iw_bc"], seeds, {"bc": bc_config, "iw_bc": ft_config}, progress=False
    )
    iwbc_bc = minimal_params(trained["bc"].agent.params, mean, std)
    iwbc_ft = minimal_params(trained["iw_bc"].agent.params, mean, std)
    check_same_actions(trained["iw_bc"].agent, iwbc_ft, episodes.observations[:1000], mean, std)
    iwbc_chunks = np.stack([np.asarray(h["weight_ess"]) for h in trained["iw_bc"].history], 1)

    minimal_bc = jax.jit(jax.vmap(lambda a, b: bc_transitions(data, args, a, b)))(k_init, k_bc)
    fine_tune = jax.jit(jax.vmap(lambda bc, k: finetune_transitions(data, args, bc, k)))
    from_iwbc, ess_from_iwbc = fine_tune(iwbc_bc, k_ft)
    own, ess_own = fine_tune(minimal_bc, k_ft)

    runs = {
        "iwbc": (
            iwbc_chunks.round(4).tolist(),
            end_weights(data, iwbc_bc, iwbc_ft, args.temperature),
        ),
        "minimal_from_iwbc_bc": (
            chunk_means(np.asarray(ess_from_iwbc)),
            end_weights(data, iwbc_bc, from_iwbc, args.temperature),
        ),
        "minimal": (
            chunk_means(np.asarray(ess_own)),
            end_weights(data, minimal_bc, own, args.temperature),
        ),
    }
    last = {name: np.array([c[-1] for c in chunks]) for name, (chunks, _) in runs.items()}

    def pair(a: str, b: str) -> dict:
        """Two runs' last-chunk fractions: means, Welch p, and, seed by seed, the mean absolute
        difference and the correlation (same start: high; other starts: near 0)."""
        x, y = last[a], last[b]
        return {
            "means": [round(float(x.mean()), 4), round(float(y.mean()), 4)],
            "welch_p": round(float(scipy.stats.ttest_ind(x, y, equal_var=False).pvalue), 4),
            "mean_abs_difference": round(float(np.abs(x - y).mean()), 4),
            "pearson_r": round(float(np.corrcoef(x, y)[0, 1]), 3),
        }

    report = {
        "command": "python " + " ".join(sys.argv),
        "dataset": args.dataset,
        "content_fingerprint": dataset.content_fingerprint,
        "selection": {"rows": len(rows), "distinct_episodes": len(np.unique(rows))},
        "seeds": seeds,
        "settings": {k: v for k, v in vars(args).items() if k not in ("dataset", "root", "out")},
        "effective_fraction_per_chunk": {name: chunks for name, (chunks, _) in runs.items()},
        "end_weights": {name: ends for name, (_, ends) in runs.items()},
        "same_start": pair("iwbc", "minimal_from_iwbc_bc"),
        "same_keys_other_start": pair("minimal_from_iwbc_bc", "minimal"),
        "pipelines": pair("iwbc", "minimal"),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "machine": machine_record(("iwbc", "jax", "jaxlib", "optax", "numpy")),
    }
    for name in ("same_start", "same_keys_other_start", "pipelines"):
        print(name, report[name])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
