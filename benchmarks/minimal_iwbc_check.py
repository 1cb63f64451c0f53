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
- batches of whole episodes drawn uniformly with replacement, padded to the longest with a
  mask, each episode's log-likelihood averaged over its steps, then over the batch (the
  authors' form, iwbc's ``--weighting episode``);
- BC: maximize that log-likelihood on every episode, Adam at a constant ``--bc-lr``;
- iw-BC from the BC policy on the stratified selection (episodes with return >= p90, >= p95
  and >= p98 listed one after another: the best up to three times), q_ref the frozen BC,
  q_iw <- 0.9 q_iw + 0.1 theta before each loss, w(tau) = clip(exp(temp (log q_iw(tau) -
  log q_ref(tau)) / |tau|), 0, 1000) normalized to sum 1 over the batch, loss
  -mean_batch[sg(w) (1/|tau|) sum_t log pi(a_t|s_t)]; Adam with linear warm-up then cosine
  decay to 0 at the last step.

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


def padded_episodes(flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """[E, max length, ...] copies of the episodes' steps, zeros after each episode's end."""
    out = np.zeros((len(lengths), lengths.max(), *flat.shape[1:]), flat.dtype)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for i, (start, length) in enumerate(zip(starts, lengths, strict=True)):
        out[i, :length] = flat[start : start + length]
    return out


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


def episode_mean_log_prob(params: dict, obs, act, mask):
    """Each episode's log-likelihood averaged over its valid steps: [B]."""
    return jnp.sum(log_prob(params, obs, act) * mask, -1) / jnp.sum(mask, -1)


def train(data: dict, rows, args, key) -> tuple[dict, dict]:
    """BC then iw-BC for one seed; returns both policies and the fine-tune's mean effective
    sample fraction of the normalized weights, 1 / (B sum w^2)."""
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
        q_iw = jax.tree.map(lambda iw, p: 0.9 * iw + 0.1 * p, q_iw, params)
        o, a, m = batch(key, rows, args.finetune_batch_size)
        log_ratio = args.temperature * (
            episode_mean_log_prob(q_iw, o, a, m) - episode_mean_log_prob(bc, o, a, m)
        )
        w = jnp.clip(jnp.exp(log_ratio), 0.0, 1000.0)
        w = jax.lax.stop_gradient(w / jnp.sum(w))
        grads = jax.grad(lambda p: -jnp.mean(w * episode_mean_log_prob(p, o, a, m)))(params)
        updates, opt = ft_adam.update(grads, opt)
        effective = 1.0 / (w.shape[0] * jnp.sum(w**2))
        return (optax.apply_updates(params, updates), q_iw, opt), effective

    (iw, _, _), effective = jax.lax.scan(
        iw_step, (bc, bc, ft_adam.init(bc)), jax.random.split(k_ft, args.finetune_steps)
    )
    return {"bc": bc, "iw_bc": iw}, {"iw_effective_fraction": jnp.mean(effective)}


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
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()

    start = time.perf_counter()
    dataset = load_dataset(args.dataset, root=args.root)
    episodes = dataset.episodes
    mean, std = episodes.observations.mean(0), episodes.observations.std(0)
    std = np.where(std == 0, 1.0, std + 1e-3)
    lengths = episodes.lengths
    data = {
        "obs": jnp.asarray(padded_episodes((episodes.observations - mean) / std, lengths)),
        "act": jnp.asarray(padded_episodes(episodes.actions, lengths)),
        "mask": jnp.asarray(np.arange(lengths.max()) < lengths[:, None], jnp.float32),
    }
    rows = stratified_rows(episodes.returns)
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(args.seeds))
    run = jax.vmap(lambda d, r, k: train(d, r, args, k), in_axes=(None, None, 0))
    policies, stats = jax.jit(run)(data, jnp.asarray(rows), keys)
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
