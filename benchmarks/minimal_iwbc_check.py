"""An independent minimal iw-BC on any local dataset: tells the method from the plumbing.

iwbc's losses are unit-tested against NumPy formulas; this checks what they learn. It is iw-BC
(the paper's iw-SFT) written from METHOD.md alone, in plain JAX and optax, sharing none of
iwbc's agents, losses, trainer or sampling (iwbc only loads the data and scores the final
policies on its fixed evaluation seeds, so both sides see the same episodes):

- states standardized with the whole dataset's mean and std + 1e-3 (a constant feature gets
  std 1), one set for the BC start, q_ref, q_iw and the fine-tune;
- Gaussian policy: 3 x 256 ReLU MLP -> tanh mean, state-independent log-std clipped to
  [-5, 2]; LeCun-normal kernels and zero biases (Flax's default, iwbc's ``--layer-init
  flax``); evaluation acts with the mean;
- ``--weighting episode`` (the authors' form): batches of whole episodes drawn uniformly with
  replacement, padded to the longest with a mask, each episode's log-likelihood averaged over
  its steps, then over the batch;
- ``--weighting transition`` (iwbc's default, with ``--window 1``): batches of single
  transitions drawn uniformly over all the data's steps (the fine-tune: over all the steps of
  the selection's rows, an episode listed twice twice as likely), log-likelihoods averaged;
- BC: maximize that log-likelihood on every episode, Adam at a constant ``--bc-lr``;
- iw-BC from the BC policy on the stratified selection (episodes with return >= p90, >= p95
  and >= p98 listed one after another: the best up to three times), q_ref the frozen BC,
  q_iw <- 0.9 q_iw + 0.1 theta before each loss, w(tau) = clip(exp(temp (log q_iw(tau) -
  log q_ref(tau)) / |tau|), 0, 1000) normalized to sum 1 over the batch, loss
  -mean_batch[sg(w) (1/|tau|) sum_t log pi(a_t|s_t)] (a transition's w that of its episode,
  loss -mean_batch[sg(w) log pi(a|s)]); Adam with linear warm-up then cosine decay to 0 at
  the last step. A transition batch cannot give w(tau), which is over the whole trajectory:
  log q(tau) / |tau| of every selected episode comes from all its steps, under q_ref once and
  under the q_iw of that update every ``--refresh-every`` updates (1: every update, exact);
- ``--fine-tune`` (with ``--weighting transition``) names another of iwbc's fine-tunes, written
  as METHOD.md states it: ``iw_bc_step``, the per-step variant, each transition weighted by
  clip(exp(temp (log q_iw(a|s) - log q_ref(a|s))), 0, 2) of itself, normalized to sum 1 over
  the batch; ``iw_bc_quality``, the quality-scored generalization, every episode (not the
  selection), its w(tau) multiplied by its min-max normalized return (1 for all if every return
  is equal), then normalized; ``filtered_bc``, BC on the selection (every weight 1);
- ``--top10`` (with ``--weighting transition``) also trains CORL's 10%BC as
  ``any_percent_bc.py`` selects it: BC from scratch, at the BC settings, on the
  ``max(1, int(0.1 E))`` episodes of highest return (``argsort`` of the returns, reversed),
  single transitions drawn uniformly over their steps, standardized with the whole dataset's
  statistics as everything else here.

    python benchmarks/minimal_iwbc_check.py iwbc/inverted-double-pendulum/mixed-v0 \
        --root data/minari --bc-steps 2000 --bc-batch-size 4 --finetune-steps 1000 \
        --finetune-batch-size 8 --eval-episodes 50 \
        --out results/iwbc-check/minimal-pendulum-mixed.json

``benchmarks/minimal_iwbc_compare.py`` then sets its scores beside ``iwbc run``'s.
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
import optax

from iwbc.data import dataset_normalized_score, load_dataset
from iwbc.envs.evaluate import evaluate_actor
from iwbc.machine import machine_record

LOG_STD_RANGE = (-5.0, 2.0)
FINE_TUNES = ("iw_bc", "iw_bc_step", "iw_bc_quality", "filtered_bc")
LAST_UPDATES = 500  # `iwbc run`'s chunk of BC-family updates
MAX_WEIGHT = 1000.0  # METHOD.md's clip of the trajectory weight w(tau)


def state_statistics(observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std + 1e-3 of the states (std 1 for a constant feature)."""
    mean, std = observations.mean(0), observations.std(0)
    return mean, np.where(std == 0, 1.0, std + 1e-3)


def padded_episodes(flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """[E, max length, ...] copies of the episodes' steps, zeros after each episode's end."""
    out = np.zeros((len(lengths), lengths.max(), *flat.shape[1:]), flat.dtype)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for i, (start, length) in enumerate(zip(starts, lengths, strict=True)):
        out[i, :length] = flat[start : start + length]
    return out


def episode_steps(lengths: np.ndarray, episode_ids: np.ndarray) -> np.ndarray:
    """Indices, among all steps one after another, of the given episodes' steps in order."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.concatenate([np.arange(starts[e], starts[e] + lengths[e]) for e in episode_ids])


def flat_selection(episodes, rows: np.ndarray, mean, std) -> dict:
    """The steps one after another, and for the fine-tune: the step indices of every selection
    row (an episode listed twice, twice) with its episode's place among the distinct selected
    ones, and every distinct selected episode's steps once, for the trajectory tables, and its
    quality (min-max normalized return over all episodes)."""
    distinct, place = np.unique(rows, return_inverse=True)
    spread = np.ptp(episodes.returns)
    quality = (
        (episodes.returns - episodes.returns.min()) / spread
        if spread > 0
        else np.ones(len(episodes.returns))
    )

    return {
        "obs": jnp.asarray((episodes.observations - mean) / std, jnp.float32),
        "act": jnp.asarray(episodes.actions, jnp.float32),
        "sel_steps": jnp.asarray(episode_steps(episodes.lengths, rows)),
        "sel_episode": jnp.asarray(np.repeat(place, episodes.lengths[rows])),
        "table_steps": jnp.asarray(episode_steps(episodes.lengths, distinct)),
        "table_episode": jnp.asarray(
            np.repeat(np.arange(len(distinct)), episodes.lengths[distinct])
        ),
        "table_lengths": jnp.asarray(episodes.lengths[distinct], jnp.float32),
        "table_quality": jnp.asarray(quality[distinct], jnp.float32),
    }


def stratified_rows(returns: np.ndarray) -> np.ndarray:
    """Episodes with return >= p90, then >= p95, then >= p98, concatenated (METHOD.md)."""
    return np.concatenate(
        [np.flatnonzero(returns >= np.percentile(returns, p)) for p in (90, 95, 98)]
    )


def init_policy(key, obs_dim: int, act_dim: int) -> dict:
    """LeCun-normal kernels and zero biases for every layer, log-std 0."""
    sizes = (obs_dim, 256, 256, 256, act_dim)
    keys = jax.random.split(key, len(sizes) - 1)
    lecun = jax.nn.initializers.lecun_normal()
    layers = [
        (lecun(k, (m, n)), jnp.zeros(n))
        for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]
    return {"layers": layers, "log_std": jnp.zeros(act_dim)}


def mean_action(params: dict, x):
    """tanh of the MLP of standardized states."""
    for w, b in params["layers"][:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params["layers"][-1]
    return jnp.tanh(x @ w + b)


def log_prob(params: dict, obs, act):
    """log pi(a|s) of the diagonal Gaussian, summed over action dimensions."""
    log_std = jnp.clip(params["log_std"], *LOG_STD_RANGE)
    z = (act - mean_action(params, obs)) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def ema(q_iw: dict, params: dict) -> dict:
    """q_iw <- 0.9 q_iw + 0.1 theta (METHOD.md's proposal)."""
    return jax.tree.map(lambda iw, p: 0.9 * iw + 0.1 * p, q_iw, params)


def episode_mean_log_prob(params: dict, obs, act, mask):
    """Each episode's log-likelihood averaged over its valid steps: [B]."""
    return jnp.sum(log_prob(params, obs, act) * mask, -1) / jnp.sum(mask, -1)


def train_transitions(data: dict, args, key) -> tuple[dict, dict]:
    """``train`` on single transitions: BC over all steps, then ``finetune_transitions``;
    with ``--top10`` also 10%BC, from keys of its own (the others' stay as without it)."""
    k_init, k_bc, k_ft = jax.random.split(key, 3)
    bc = bc_transitions(data, args, k_init, k_bc)
    iw, effective = finetune_transitions(data, args, bc, k_ft)
    policies = {"bc": bc, args.fine_tune: iw}
    if args.top10:
        policies["top10_bc"] = bc_transitions(
            data, args, *jax.random.split(jax.random.fold_in(key, 10)), steps=data["top_steps"]
        )
    return policies, effective_fractions(effective)


def bc_transitions(data: dict, args, k_init, k_bc, steps: jax.Array | None = None) -> dict:
    """BC from scratch on batches of single transitions drawn uniformly over ``steps`` (step
    indices; default all the data's steps)."""
    obs, act = data["obs"], data["act"]
    pool = jnp.arange(obs.shape[0]) if steps is None else steps
    bc_adam = optax.adam(args.bc_lr)

    def bc_step(carry, key):
        params, opt = carry
        i = pool[jax.random.randint(key, (args.bc_batch_size,), 0, pool.shape[0])]
        grads = jax.grad(lambda p: -jnp.mean(log_prob(p, obs[i], act[i])))(params)
        updates, opt = bc_adam.update(grads, opt)
        return (optax.apply_updates(params, updates), opt), None

    params = init_policy(k_init, obs.shape[-1], act.shape[-1])
    (bc, _), _ = jax.lax.scan(
        bc_step, (params, bc_adam.init(params)), jax.random.split(k_bc, args.bc_steps)
    )
    return bc


def selection_log_q(data: dict, params: dict) -> jax.Array:
    """log q(tau) / |tau| of every distinct selected episode, from all of its steps."""
    steps = data["table_steps"]
    log_probs = log_prob(params, data["obs"][steps], data["act"][steps])
    num_table = data["table_lengths"].shape[0]
    return jax.ops.segment_sum(log_probs, data["table_episode"], num_table) / data["table_lengths"]


def finetune_transitions(data: dict, args, bc: dict, k_ft) -> tuple[dict, jax.Array]:
    """``--fine-tune`` from ``bc`` over the selection's steps, each episode's w(tau) read from
    whole-trajectory tables refreshed in blocks of updates; returns the policy and each
    update's effective sample fraction."""
    obs, act = data["obs"], data["act"]
    sel_steps, sel_episode = data["sel_steps"], data["sel_episode"]
    ref_table = selection_log_q(data, bc)
    ft_adam = optax.adam(
        optax.warmup_cosine_decay_schedule(
            0.0, args.finetune_lr, args.warmup_steps, args.finetune_steps, 0.0
        )
    )

    def iw_step(iw_table, carry, key):
        params, q_iw, opt = carry
        q_iw = ema(q_iw, params)
        j = jax.random.randint(key, (args.finetune_batch_size,), 0, sel_steps.shape[0])
        o, a, e = obs[sel_steps[j]], act[sel_steps[j]], sel_episode[j]
        if args.fine_tune == "filtered_bc":  # BC on the selection: -mean log pi, weights 1
            grads = jax.grad(lambda p: -jnp.mean(log_prob(p, o, a)))(params)
            updates, opt = ft_adam.update(grads, opt)
            return (optax.apply_updates(params, updates), q_iw, opt), jnp.float32(1.0)
        if args.fine_tune == "iw_bc_step":
            log_ratio = log_prob(q_iw, o, a) - log_prob(bc, o, a)
            w = jnp.clip(jnp.exp(args.temperature * log_ratio), 0.0, 2.0)
        else:
            w = jnp.clip(jnp.exp(args.temperature * (iw_table[e] - ref_table[e])), 0.0, MAX_WEIGHT)
        if args.fine_tune == "iw_bc_quality":
            w = w * data["table_quality"][e]
        total = jnp.sum(w)  # all zero only if every row has quality 0: such a batch teaches nothing
        w = jax.lax.stop_gradient(jnp.where(total > 0, w / jnp.where(total > 0, total, 1.0), 0.0))
        grads = jax.grad(lambda p: -jnp.mean(w * log_prob(p, o, a)))(params)
        updates, opt = ft_adam.update(grads, opt)
        squares = jnp.sum(w**2)
        effective = jnp.where(
            squares > 0, 1.0 / (w.shape[0] * jnp.where(squares > 0, squares, 1)), 0
        )
        return (optax.apply_updates(params, updates), q_iw, opt), effective

    def block(carry, keys):
        params, q_iw, _ = carry
        iw_table = selection_log_q(data, ema(q_iw, params))
        return jax.lax.scan(lambda c, k: iw_step(iw_table, c, k), carry, keys)

    blocks = args.finetune_steps // args.refresh_every
    keys = jax.random.split(k_ft, args.finetune_steps).reshape(blocks, args.refresh_every, -1)
    (iw, _, _), effective = jax.lax.scan(block, (bc, bc, ft_adam.init(bc)), keys)
    return iw, effective.reshape(-1)


def effective_fractions(per_update: jax.Array) -> dict:
    """The effective sample fraction averaged over the whole fine-tune and over its last
    ``LAST_UPDATES`` updates (what `iwbc run` reports: its last training chunk)."""
    return {
        "iw_effective_fraction": jnp.mean(per_update),
        "iw_effective_fraction_last": jnp.mean(per_update[-LAST_UPDATES:]),
    }


def train(data: dict, rows, args, key) -> tuple[dict, dict]:
    """BC then iw-BC for one seed; returns both policies and the fine-tune's effective sample
    fractions of the normalized weights, 1 / (B sum w^2) (``effective_fractions``)."""
    obs, act, mask = data["obs"], data["act"], data["mask"]
    k_init, k_bc, k_ft = jax.random.split(key, 3)

    def batch(key, pool, size):
        i = pool[jax.random.randint(key, (size,), 0, pool.shape[0])]
        return obs[i], act[i], mask[i]

    bc_adam = optax.adam(args.bc_lr)

    def bc_step(carry, key):
        params, opt = carry
        o, a, m = batch(key, jnp.arange(obs.shape[0]), args.bc_batch_size)
        grads = jax.grad(lambda p: -jnp.mean(episode_mean_log_prob(p, o, a, m)))(params)
        updates, opt = bc_adam.update(grads, opt)
        return (optax.apply_updates(params, updates), opt), None

    params = init_policy(k_init, obs.shape[-1], act.shape[-1])
    (bc, _), _ = jax.lax.scan(
        bc_step, (params, bc_adam.init(params)), jax.random.split(k_bc, args.bc_steps)
    )

    ft_adam = optax.adam(
        optax.warmup_cosine_decay_schedule(
            0.0, args.finetune_lr, args.warmup_steps, args.finetune_steps, 0.0
        )
    )

    def iw_step(carry, key):
        params, q_iw, opt = carry
        q_iw = ema(q_iw, params)
        o, a, m = batch(key, rows, args.finetune_batch_size)
        log_ratio = args.temperature * (
            episode_mean_log_prob(q_iw, o, a, m) - episode_mean_log_prob(bc, o, a, m)
        )
        w = jnp.clip(jnp.exp(log_ratio), 0.0, MAX_WEIGHT)
        w = jax.lax.stop_gradient(w / jnp.sum(w))
        grads = jax.grad(lambda p: -jnp.mean(w * episode_mean_log_prob(p, o, a, m)))(params)
        updates, opt = ft_adam.update(grads, opt)
        effective = 1.0 / (w.shape[0] * jnp.sum(w**2))
        return (optax.apply_updates(params, updates), q_iw, opt), effective

    (iw, _, _), effective = jax.lax.scan(
        iw_step, (bc, bc, ft_adam.init(bc)), jax.random.split(k_ft, args.finetune_steps)
    )
    return {"bc": bc, "iw_bc": iw}, effective_fractions(effective)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--root", type=Path, default=None, help="local Minari datasets")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--bc-steps", type=int, default=2000)
    parser.add_argument("--bc-batch-size", type=int, default=8, help="episodes")
    parser.add_argument("--bc-lr", type=float, default=1e-3)
    parser.add_argument("--finetune-steps", type=int, default=1000)
    parser.add_argument("--finetune-batch-size", type=int, default=8, help="episodes")
    parser.add_argument("--finetune-lr", type=float, default=4e-5)
    parser.add_argument("--warmup-steps", type=int, default=300)
    parser.add_argument("--temperature", type=float, default=10.0)
    parser.add_argument("--weighting", choices=("episode", "transition"), default="episode")
    parser.add_argument(
        "--refresh-every", type=int, default=10, help="transition weighting's q_iw table, updates"
    )
    parser.add_argument(
        "--fine-tune",
        choices=FINE_TUNES,
        default="iw_bc",
        help="iwbc's fine-tune to write out (other than iw_bc: transition weighting only)",
    )
    parser.add_argument(
        "--top10", action="store_true", help="also 10%%BC (with --weighting transition)"
    )
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()
    transition = args.weighting == "transition"
    if args.fine_tune != "iw_bc" and not transition:
        parser.error(f"--fine-tune {args.fine_tune} is written for --weighting transition only")
    if args.top10 and not transition:
        parser.error("--top10 is written for --weighting transition only")
    if transition and (args.refresh_every < 1 or args.finetune_steps % args.refresh_every):
        parser.error("--refresh-every must be a positive divisor of --finetune-steps")

    start = time.perf_counter()
    dataset = load_dataset(args.dataset, root=args.root)
    episodes = dataset.episodes
    mean, std = state_statistics(episodes.observations)
    lengths = episodes.lengths
    every = args.fine_tune == "iw_bc_quality"
    rows = np.arange(len(lengths)) if every else stratified_rows(episodes.returns)
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(args.seeds))
    if args.weighting == "episode":
        data = {
            "obs": jnp.asarray(padded_episodes((episodes.observations - mean) / std, lengths)),
            "act": jnp.asarray(padded_episodes(episodes.actions, lengths)),
            "mask": jnp.asarray(np.arange(lengths.max()) < lengths[:, None], jnp.float32),
        }
        run = jax.vmap(lambda d, r, k: train(d, r, args, k), in_axes=(None, None, 0))
        policies, stats = jax.jit(run)(data, jnp.asarray(rows), keys)
    else:
        data = flat_selection(episodes, rows, mean, std)
        if args.top10:
            best = np.argsort(episodes.returns)[::-1][: max(1, int(0.1 * len(lengths)))]
            data["top_steps"] = jnp.asarray(episode_steps(lengths, best))
        run = jax.vmap(lambda d, k: train_transitions(d, args, k), in_axes=(None, 0))
        policies, stats = jax.jit(run)(data, keys)
    jax.block_until_ready(policies)
    trained = time.perf_counter() - start

    def act(params, raw):
        return mean_action(params, (raw - mean) / std)

    report = {
        "command": "python " + " ".join(sys.argv),
        "dataset": args.dataset,
        "content_fingerprint": dataset.content_fingerprint,
        "episodes": dataset.num_episodes,
        "transitions": dataset.num_steps,
        "selection": {"rows": len(rows), "distinct_episodes": len(np.unique(rows))},
        "settings": {k: v for k, v in vars(args).items() if k not in ("dataset", "root", "out")},
        "iw_effective_fraction_per_seed": np.asarray(stats["iw_effective_fraction"]).tolist(),
        f"iw_effective_fraction_last_{LAST_UPDATES}_per_seed": np.asarray(
            stats["iw_effective_fraction_last"]
        ).tolist(),
    }
    for method, params in policies.items():
        returns = evaluate_actor(
            act,
            params,
            dataset.env,
            observation_dim=dataset.observation_dim,
            action_dim=dataset.action_dim,
            num_episodes=args.eval_episodes,
        )
        scores = dataset_normalized_score(dataset, returns).mean(axis=1)
        report[method] = {
            "normalized_per_seed": scores.tolist(),
            "normalized_mean": float(np.mean(scores)),
            "normalized_std": float(np.std(scores)),
        }
        print(
            f"{args.dataset}: minimal {method}, normalized per seed", np.round(scores, 1).tolist()
        )
    report["train_seconds"] = trained
    report["wall_seconds"] = time.perf_counter() - start
    report["machine"] = machine_record(("iwbc", "jax", "jaxlib", "optax", "mujoco", "numpy"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
