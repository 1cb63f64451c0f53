"""An independent minimal AWAC on any local Minari dataset: tells the method from the plumbing.

When iwbc's AWAC scores low or its critic climbs, train this one on the same data for the same
updates. It shares no code with iwbc: data, evaluation and the network helpers are those of
``minimal_td3bc_check.py`` (``minari.load_dataset``, a plain loop over Gymnasium envs rebuilt
from the dataset, PyTorch's default layer initialization), and the learner is CORL's
``awac.py`` written out in JAX and optax with the hyperparameters iwbc's AWAC takes from it:
states standardized with the data's mean and std + 1e-3; 3 x 256 ReLU twin critics and
Gaussian actor (mean MLP(s), not squashed; a state-independent log-std from 0, clipped to
[-20, 2]; samples clipped to [-max_action, max_action]); Adam 3e-4; batch 256; γ 0.99; target
critics by τ 0.005; λ 1 (``--awac-lambda``; CORL's D4RL configs set 1/3) with exp(A / λ)
clipped at 100; rewards as they are; done = terminated. Each update fits the critics to
r + γ·min Q'(s', a'), a' ~ π(s'), then the actor by −exp(A / λ)·log π(a|s) with
A = min Q(s, a) − min Q(s, a'), a' ~ π(s), from the just-updated critics, then moves the
targets, as CORL's ``AdvantageWeightedActorCritic.update`` orders them. The policy acts with
its mean clipped into the box (CORL passes the mean unclipped to the env; iwbc clips it).

    python benchmarks/minimal_awac_check.py iwbc/hopper/medium-expert-v0 --root data/minari \
        --steps 40000 --eval-every 10000 --seeds 5 \
        --out results/baseline-budget/minimal-awac-hopper-medium-expert.json
"""

from __future__ import annotations

import time

import numpy as np
from minimal_td3bc_check import (
    check_parser,
    chunked_curve,
    load_check_data,
    make_evaluate,
    mlp,
    mlp_init,
    standardized_states,
    write_check,
)

EXP_ADV_MAX = 100.0
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


def train(
    data: dict[str, np.ndarray],
    max_action: float,
    awac_lambda: float,
    steps: int,
    chunk: int,
    seeds,
    evaluate,
):
    """AWAC for ``steps`` updates on every seed at once; ``evaluate(act, params)`` each chunk."""
    import jax
    import jax.numpy as jnp
    import optax

    mean, std, obs, nxt = standardized_states(data)
    act, rew, term = (jnp.asarray(data[k]) for k in ("act", "rew", "term"))
    obs_dim, act_dim = obs.shape[1], act.shape[1]
    hidden = (256, 256, 256)

    def log_std(params):
        return jnp.clip(params["log_std"], LOG_STD_MIN, LOG_STD_MAX)

    def sample(params, s, key):
        noise = jax.random.normal(key, (s.shape[0], act_dim))
        a = mlp(params["net"], s) + jnp.exp(log_std(params)) * noise
        return jnp.clip(a, -max_action, max_action)

    def log_prob(params, s, a):
        z = (a - mlp(params["net"], s)) / jnp.exp(log_std(params))
        return jnp.sum(-0.5 * z**2 - log_std(params) - 0.5 * jnp.log(2 * jnp.pi), -1)

    def min_critic(params, s, a):  # params: (q1, q2)
        x = jnp.concatenate([s, a], -1)
        return jnp.minimum(mlp(params[0], x)[..., 0], mlp(params[1], x)[..., 0])

    adam = optax.adam(3e-4)

    def init(key):
        ka, k1, k2, krun = jax.random.split(key, 4)
        pi = {
            "net": mlp_init(ka, (obs_dim, *hidden, act_dim)),
            "log_std": jnp.zeros(act_dim),
        }
        q = (
            mlp_init(k1, (obs_dim + act_dim, *hidden, 1)),
            mlp_init(k2, (obs_dim + act_dim, *hidden, 1)),
        )
        return dict(pi=pi, q=q, q_t=q, pi_opt=adam.init(pi), q_opt=adam.init(q), key=krun)

    def update(state, _):
        key, k_idx, k_next, k_pi = jax.random.split(state["key"], 4)
        i = jax.random.randint(k_idx, (256,), 0, obs.shape[0])
        s, a, r, s2, d = obs[i], act[i], rew[i], nxt[i], term[i]
        next_q = min_critic(state["q_t"], s2, sample(state["pi"], s2, k_next))
        target = r + 0.99 * (1.0 - d) * next_q

        def critic_loss(q):
            x = jnp.concatenate([s, a], -1)
            q1, q2 = mlp(q[0], x)[..., 0], mlp(q[1], x)[..., 0]
            return jnp.mean((q1 - target) ** 2) + jnp.mean((q2 - target) ** 2), q1.mean()

        (_, q_mean), grads = jax.value_and_grad(critic_loss, has_aux=True)(state["q"])
        upd, q_opt = adam.update(grads, state["q_opt"])
        q = optax.apply_updates(state["q"], upd)

        v = min_critic(q, s, sample(state["pi"], s, k_pi))
        weights = jnp.minimum(jnp.exp((min_critic(q, s, a) - v) / awac_lambda), EXP_ADV_MAX)

        def actor_loss(pi):
            return jnp.mean(weights * -log_prob(pi, s, a))

        grads = jax.grad(actor_loss)(state["pi"])
        upd, pi_opt = adam.update(grads, state["pi_opt"])
        pi = optax.apply_updates(state["pi"], upd)
        q_t = jax.tree.map(lambda t, o: 0.995 * t + 0.005 * o, state["q_t"], q)
        return dict(pi=pi, q=q, q_t=q_t, pi_opt=pi_opt, q_opt=q_opt, key=key), q_mean

    def policy(pi, raw):
        return jnp.clip(mlp(pi["net"], (raw - mean) / std), -max_action, max_action)

    return chunked_curve(update, init, policy, seeds, steps, chunk, evaluate)


def main() -> None:
    parser = check_parser(__doc__)
    parser.add_argument("--awac-lambda", type=float, default=1.0)
    args = parser.parse_args()
    if not args.awac_lambda > 0:
        parser.error("--awac-lambda must be > 0")
    started = time.perf_counter()
    dataset, data, m, refs = load_check_data(args, parser)
    seeds = list(range(args.seeds))
    evaluate = make_evaluate(dataset, len(seeds), args.eval_episodes, np.asarray, 1_000_000)
    print(f"{args.dataset}: {len(data['obs'])} transitions, max_action {m}", flush=True)
    curve = train(data, m, args.awac_lambda, args.steps, args.eval_every, seeds, evaluate)
    write_check(
        args,
        "AWAC",
        curve,
        refs,
        started,
        awac_lambda=args.awac_lambda,
        max_action=m,
        transitions=len(data["obs"]),
    )


if __name__ == "__main__":
    main()
