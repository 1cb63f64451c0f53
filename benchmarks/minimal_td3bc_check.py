"""An independent minimal TD3+BC on any local Minari dataset: tells the method from the plumbing.

When iwbc's TD3+BC scores low, train this one on the same data for the same updates. It shares
no code with iwbc: the data come from ``minari.load_dataset``, the evaluation is a plain loop
over Gymnasium envs rebuilt from the dataset, and the learner is CORL's ``td3_bc.py`` written
out in JAX and optax (PyTorch's default layer initialization, states standardized with the
data's mean and std + 1e-3, 2 x 256 ReLU actor and twin critics, Adam 3e-4, batch 256,
γ 0.99, τ 0.005, policy noise 0.2 and clip 0.5 times max_action, actor and targets every 2nd
step, α 2.5, rewards as they are, done = terminated).

``--action-units env`` is CORL's and the paper's convention: the actor ends in
tanh · max_action and the BC term (π(s) − a)² is in the env's units. ``--action-units unit``
maps actions into [-1, 1] first, as iwbc does for every method (iwbc.envs.action_box); on
a [-1, 1] box (all D4RL locomotion tasks) the two are the same learner.

    python benchmarks/minimal_td3bc_check.py iwbc/hopper/medium-expert-v0 --root data/minari \
        --steps 20000 --seeds 5 --out results/td3bc-check/minimal-hopper-medium-expert.json

``--write-pendulum-expert`` first writes the CI test's InvertedPendulum expert data
(tests/test_algos_td3_bc.py, ``check/pendulum/expert-v0``) under ``--root`` if it is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def transitions(dataset) -> dict[str, np.ndarray]:
    """(s, a, r, s', terminated) of every step of every episode, as CORL's qlearning_dataset,
    and each episode's return (``returns``, for reward scaling)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "rew", "next", "term")}
    for episode in dataset.iterate_episodes():
        obs = np.asarray(episode.observations, np.float32)
        parts["obs"].append(obs[:-1])
        parts["next"].append(obs[1:])
        parts["act"].append(np.asarray(episode.actions, np.float32))
        parts["rew"].append(np.asarray(episode.rewards, np.float32))
        parts["term"].append(np.asarray(episode.terminations, np.float32))
    returns = np.array([np.sum(r, dtype=np.float64) for r in parts["rew"]])
    return {**{k: np.concatenate(v) for k, v in parts.items()}, "returns": returns}


def standardized_states(data: dict[str, np.ndarray]):
    """CORL's state normalization: mean and std + 1e-3 of the data's states, and the states and
    next states standardized with them (on the device)."""
    import jax.numpy as jnp

    mean, std = data["obs"].mean(0), data["obs"].std(0) + 1e-3
    return (
        mean,
        std,
        jnp.asarray((data["obs"] - mean) / std),
        jnp.asarray((data["next"] - mean) / std),
    )


def mlp_init(key, sizes: tuple[int, ...]) -> list:
    """PyTorch's default ``nn.Linear`` start, U(±1/sqrt(fan_in)) for weights and biases, as
    CORL's networks begin (iwbc's start as Flax's)."""
    import jax

    def linear(key, m, n):
        bound = 1.0 / np.sqrt(m)
        kw, kb = jax.random.split(key)
        return (
            jax.random.uniform(kw, (m, n), minval=-bound, maxval=bound),
            jax.random.uniform(kb, (n,), minval=-bound, maxval=bound),
        )

    keys = jax.random.split(key, len(sizes) - 1)
    return [linear(k, m, n) for k, m, n in zip(keys, sizes[:-1], sizes[1:], strict=True)]


def mlp(params: list, x):
    """ReLU between the layers, none after the last."""
    import jax

    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    return x @ params[-1][0] + params[-1][1]


def train(data: dict[str, np.ndarray], max_action: float, steps: int, chunk: int, seeds, evaluate):
    """TD3+BC for ``steps`` updates on every seed at once; ``evaluate(act, params)`` each chunk."""
    import jax
    import jax.numpy as jnp
    import optax

    mean, std, obs, nxt = standardized_states(data)
    act, rew, term = (jnp.asarray(data[k]) for k in ("act", "rew", "term"))
    obs_dim, act_dim = obs.shape[1], act.shape[1]

    def actor(params, s):
        return max_action * jnp.tanh(mlp(params, s))

    def critic(params, s, a):  # params: (q1, q2)
        x = jnp.concatenate([s, a], -1)
        return mlp(params[0], x)[..., 0], mlp(params[1], x)[..., 0]

    adam = optax.adam(3e-4)

    def init(key):
        ka, k1, k2, krun = jax.random.split(key, 4)
        pi = mlp_init(ka, (obs_dim, 256, 256, act_dim))
        q = (
            mlp_init(k1, (obs_dim + act_dim, 256, 256, 1)),
            mlp_init(k2, (obs_dim + act_dim, 256, 256, 1)),
        )
        return dict(
            pi=pi,
            q=q,
            pi_t=pi,
            q_t=q,
            pi_opt=adam.init(pi),
            q_opt=adam.init(q),
            it=jnp.zeros((), jnp.int32),
            key=krun,
        )

    def update(state, _):
        key, k_idx, k_noise = jax.random.split(state["key"], 3)
        i = jax.random.randint(k_idx, (256,), 0, obs.shape[0])
        s, a, r, s2, d = obs[i], act[i], rew[i], nxt[i], term[i]
        noise = jnp.clip(
            0.2 * max_action * jax.random.normal(k_noise, a.shape),
            -0.5 * max_action,
            0.5 * max_action,
        )
        a2 = jnp.clip(actor(state["pi_t"], s2) + noise, -max_action, max_action)
        target = r + 0.99 * (1.0 - d) * jnp.minimum(*critic(state["q_t"], s2, a2))

        def critic_loss(q):
            q1, q2 = critic(q, s, a)
            return jnp.mean((q1 - target) ** 2) + jnp.mean((q2 - target) ** 2), q1.mean()

        (_, q_mean), grads = jax.value_and_grad(critic_loss, has_aux=True)(state["q"])
        upd, q_opt = adam.update(grads, state["q_opt"])
        q = optax.apply_updates(state["q"], upd)
        it = state["it"] + 1

        def actor_loss(pi):
            p = actor(pi, s)
            qv = critic(q, s, p)[0]
            lmbda = 2.5 / jax.lax.stop_gradient(jnp.abs(qv).mean())
            return -lmbda * qv.mean() + jnp.mean((p - a) ** 2), lmbda

        (_, lmbda), pgrads = jax.value_and_grad(actor_loss, has_aux=True)(state["pi"])
        pupd, pi_opt_new = adam.update(pgrads, state["pi_opt"])
        pi_new = optax.apply_updates(state["pi"], pupd)
        delayed = it % 2 == 0  # CORL: total_it += 1, then actor every policy_freq-th

        def pick(new, old):
            return jax.tree.map(lambda n, o: jnp.where(delayed, n, o), new, old)

        polyak = lambda t, o: jax.tree.map(lambda x, y: 0.005 * y + 0.995 * x, t, o)  # noqa: E731
        new = dict(
            pi=pick(pi_new, state["pi"]),
            pi_opt=pick(pi_opt_new, state["pi_opt"]),
            pi_t=pick(polyak(state["pi_t"], pi_new), state["pi_t"]),
            q=q,
            q_opt=q_opt,
            q_t=pick(polyak(state["q_t"], q), state["q_t"]),
            it=it,
            key=key,
        )
        return new, (q_mean, lmbda)

    run_chunk = jax.jit(jax.vmap(lambda st: jax.lax.scan(update, st, None, length=chunk)))
    state = jax.vmap(init)(jnp.stack([jax.random.PRNGKey(s) for s in seeds]))
    policy = jax.jit(jax.vmap(lambda pi, raw: actor(pi, (raw - mean) / std)))
    curve = []
    for done in range(chunk, steps + 1, chunk):
        state, (q_mean, lmbda) = run_chunk(state)
        returns = evaluate(policy, state["pi"])
        curve.append(
            dict(
                step=done,
                returns=returns.tolist(),
                q_mean=np.asarray(q_mean[:, -1]).tolist(),
                lmbda=np.asarray(lmbda[:, -1]).tolist(),
            )
        )
        print(
            f"  {done:>7} updates: return per seed {np.round(returns.mean(1), 1).tolist()}, "
            f"Q {np.round(np.asarray(q_mean[:, -1]), 1).tolist()}",
            flush=True,
        )
    return curve


def chunked_curve(update, init, policy, seeds, steps: int, chunk: int, evaluate) -> list[dict]:
    """Train every seed at once, ``chunk`` updates (one jitted, vmapped ``lax.scan``) between
    evaluations of ``policy(state["pi"], raw_obs)``; ``update(state, _)`` returns the new
    state and the critic's mean Q on its batch. Each curve point: returns and the last Q."""
    import jax
    import jax.numpy as jnp

    run_chunk = jax.jit(jax.vmap(lambda st: jax.lax.scan(update, st, None, length=chunk)))
    state = jax.vmap(init)(jnp.stack([jax.random.PRNGKey(s) for s in seeds]))
    act = jax.jit(jax.vmap(policy))
    curve = []
    for done in range(chunk, steps + 1, chunk):
        state, q_mean = run_chunk(state)
        returns = evaluate(act, state["pi"])
        q_end = np.asarray(q_mean[:, -1])
        curve.append(dict(step=done, returns=returns.tolist(), q_mean=q_end.tolist()))
        print(
            f"  {done:>7} updates: return per seed {np.round(returns.mean(1), 1).tolist()}, "
            f"Q {np.round(q_end, 1).tolist()}",
            flush=True,
        )
    return curve


def make_evaluate(dataset, num_seeds: int, episodes: int, to_env, first_reset: int):
    """Mean-free evaluation: ``episodes`` fixed-seed episodes per training seed, deterministic."""
    envs = [
        [dataset.recover_environment(eval_env=True) for _ in range(episodes)]
        for _ in range(num_seeds)
    ]

    def evaluate(policy, params) -> np.ndarray:
        obs = np.stack(
            [[env.reset(seed=first_reset + e)[0] for e, env in enumerate(row)] for row in envs]
        ).astype(np.float32)
        returns = np.zeros((num_seeds, episodes))
        alive = np.ones((num_seeds, episodes), bool)
        while alive.any():
            actions = np.asarray(to_env(policy(params, obs)))
            for i, row in enumerate(envs):
                for e, env in enumerate(row):
                    if alive[i, e]:
                        o, r, te, tr, _ = env.step(actions[i, e])
                        obs[i, e], returns[i, e] = o, returns[i, e] + r
                        alive[i, e] = not (te or tr)
        return returns

    return evaluate


def check_parser(doc: str) -> argparse.ArgumentParser:
    """The options every minimal learner's check takes."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--root", type=Path, default=None, help="local Minari datasets")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--eval-every", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--ref-min", type=float, default=None)
    parser.add_argument("--ref-max", type=float, default=None)
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    return parser


def load_check_data(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """The Minari dataset, its transitions (actions clipped into the box), the box's half-width
    m and the reference scores; a parser error for what CORL's learners cannot take."""
    if args.steps % args.eval_every:
        parser.error("--steps must be a multiple of --eval-every")
    if args.root is not None:
        os.environ["MINARI_DATASETS_PATH"] = str(args.root.resolve())
    import minari

    dataset = minari.load_dataset(args.dataset)
    data = transitions(dataset)
    low, high = dataset.action_space.low, dataset.action_space.high
    if not np.allclose(low, -high) or not np.allclose(high, high.flat[0]):
        parser.error("the action box is not [-m, m] on every dimension, as CORL assumes")
    m = float(high.flat[0])
    data["act"] = np.clip(data["act"], -m, m)
    meta = dataset.storage.metadata
    ref_min = args.ref_min if args.ref_min is not None else meta.get("ref_min_score")
    ref_max = args.ref_max if args.ref_max is not None else meta.get("ref_max_score")
    if ref_min is None or ref_max is None:
        parser.error("the dataset records no reference scores: give --ref-min and --ref-max")
    return dataset, data, m, (ref_min, ref_max)


def write_check(
    args: argparse.Namespace,
    learner: str,
    curve: list[dict],
    refs: tuple[float, float],
    started: float,
    **fields: object,
) -> None:
    """Normalize the curve, write the JSON report to ``--out`` and print the final scores."""
    from importlib.metadata import version

    ref_min, ref_max = refs
    for point in curve:
        mean = np.mean(point["returns"], axis=1)
        point["normalized"] = (100.0 * (mean - ref_min) / (ref_max - ref_min)).tolist()
    final = curve[-1]["normalized"]
    report = {
        "command": "python " + " ".join(sys.argv),
        "dataset": args.dataset,
        **fields,
        "steps": args.steps,
        "eval_episodes": args.eval_episodes,
        "ref_min_score": ref_min,
        "ref_max_score": ref_max,
        "normalized_per_seed": final,
        "normalized_mean": float(np.mean(final)),
        "normalized_std": float(np.std(final)),
        "curve": curve,
        "wall_seconds": time.perf_counter() - started,
        "versions": {p: version(p) for p in ("jax", "optax", "mujoco", "gymnasium", "minari")},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(
        f"{args.dataset}: minimal {learner}, {args.steps} updates, "
        f"normalized per seed {np.round(final, 1).tolist()}, mean {np.mean(final):.1f}"
    )


def main() -> None:
    parser = check_parser(__doc__)
    parser.add_argument("--action-units", choices=("env", "unit"), default="env")
    parser.add_argument(
        "--write-pendulum-expert",
        action="store_true",
        help="write the CI test's InvertedPendulum expert data under --root first if missing",
    )
    args = parser.parse_args()
    if args.write_pendulum_expert:
        if args.root is None:
            parser.error("--write-pendulum-expert needs --root")
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from test_algos_td3_bc import PENDULUM_EXPERT, write_pendulum_expert

        if not (args.root / PENDULUM_EXPERT).exists():
            write_pendulum_expert(args.root)
    started = time.perf_counter()
    dataset, data, m, refs = load_check_data(args, parser)
    if args.action_units == "unit":
        data["act"] = data["act"] / m
        max_action, to_env = 1.0, lambda a: np.asarray(a) * m
    else:
        max_action, to_env = m, np.asarray
    seeds = list(range(args.seeds))
    evaluate = make_evaluate(dataset, len(seeds), args.eval_episodes, to_env, 1_000_000)
    print(
        f"{args.dataset}: {len(data['obs'])} transitions, max_action {m}, "
        f"action units {args.action_units}",
        flush=True,
    )
    curve = train(data, max_action, args.steps, args.eval_every, seeds, evaluate)
    write_check(
        args,
        f"TD3+BC ({args.action_units} units)",
        curve,
        refs,
        started,
        action_units=args.action_units,
        max_action=m,
        transitions=len(data["obs"]),
    )


if __name__ == "__main__":
    main()
