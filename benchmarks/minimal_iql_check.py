"""An independent minimal IQL on any local Minari dataset: tells the method from the plumbing.

When iwbc's IQL scores low, train this one on the same data for the same updates. It shares no
code with iwbc: data, evaluation and the network helpers are those of
``minimal_td3bc_check.py`` (``minari.load_dataset``, a plain loop over Gymnasium envs rebuilt
from the dataset, PyTorch's default layer initialization), and the learner is CORL's
``iql.py`` written out in JAX and optax with the hyperparameters iwbc's IQL takes from it:
states standardized with the data's mean and std + 1e-3; 2 x 256 ReLU twin critics, value
net and Gaussian actor (mean tanh(MLP(s)) · max_action, a state-independent log-std from 0,
clipped to [-20, 2]); Adam 3e-4, the actor's decaying to 0 on a cosine; batch 256; γ 0.99;
target critics by τ 0.005; expectile 0.7; β 3 with exp(β·A) clipped at 100; rewards scaled
by 1000 / (max − min episode return) (CORL's ``modify_reward``, on every dataset as iwbc
does); done = terminated. Each update fits V to the target critics first, then the critics
to r + γ·V(s') with V(s') from before that fit, then the actor by advantage-weighted
log-likelihood, as CORL's ``ImplicitQLearning.train`` orders them.

    python benchmarks/minimal_iql_check.py iwbc/hopper/medium-expert-v0 --root data/minari \
        --steps 20000 --seeds 5 --out results/baseline-budget/minimal-iql-hopper-medium-expert.json
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


def train(data: dict[str, np.ndarray], max_action: float, steps: int, chunk: int, seeds, evaluate):
    """IQL for ``steps`` updates on every seed at once; ``evaluate(act, params)`` each chunk."""
    import jax
    import jax.numpy as jnp
    import optax

    mean, std, obs, nxt = standardized_states(data)
    scale = 1000.0 / (data["returns"].max() - data["returns"].min())
    act, term = jnp.asarray(data["act"]), jnp.asarray(data["term"])
    rew = jnp.asarray(data["rew"] * scale)
    obs_dim, act_dim = obs.shape[1], act.shape[1]

    def actor_mean(params, s):
        return jnp.tanh(mlp(params["net"], s)) * max_action

    def log_prob(params, s, a):
        log_std = jnp.clip(params["log_std"], LOG_STD_MIN, LOG_STD_MAX)
        z = (a - actor_mean(params, s)) / jnp.exp(log_std)
        return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), -1)

    def critics(params, s, a):  # params: (q1, q2)
        x = jnp.concatenate([s, a], -1)
        return mlp(params[0], x)[..., 0], mlp(params[1], x)[..., 0]

    adam = optax.adam(3e-4)
    actor_opt = optax.adam(optax.cosine_decay_schedule(3e-4, steps))

    def init(key):
        ka, k1, k2, kv, krun = jax.random.split(key, 5)
        pi = {
            "net": mlp_init(ka, (obs_dim, 256, 256, act_dim)),
            "log_std": jnp.zeros(act_dim),
        }
        q = (
            mlp_init(k1, (obs_dim + act_dim, 256, 256, 1)),
            mlp_init(k2, (obs_dim + act_dim, 256, 256, 1)),
        )
        v = mlp_init(kv, (obs_dim, 256, 256, 1))
        return dict(
            pi=pi,
            q=q,
            q_t=q,
            v=v,
            pi_opt=actor_opt.init(pi),
            q_opt=adam.init(q),
            v_opt=adam.init(v),
            key=krun,
        )

    def update(state, _):
        key, k_idx = jax.random.split(state["key"])
        i = jax.random.randint(k_idx, (256,), 0, obs.shape[0])
        s, a, r, s2, d = obs[i], act[i], rew[i], nxt[i], term[i]
        next_v = mlp(state["v"], s2)[..., 0]
        target_q = jnp.minimum(*critics(state["q_t"], s, a))

        def value_loss(v):
            diff = target_q - mlp(v, s)[..., 0]
            weight = jnp.where(diff < 0, 1.0 - 0.7, 0.7)
            return jnp.mean(weight * diff**2), diff

        (_, adv), grads = jax.value_and_grad(value_loss, has_aux=True)(state["v"])
        upd, v_opt = adam.update(grads, state["v_opt"])
        v = optax.apply_updates(state["v"], upd)

        target = r + 0.99 * (1.0 - d) * next_v

        def critic_loss(q):
            q1, q2 = critics(q, s, a)
            return (jnp.mean((q1 - target) ** 2) + jnp.mean((q2 - target) ** 2)) / 2, q1.mean()

        (_, q_mean), grads = jax.value_and_grad(critic_loss, has_aux=True)(state["q"])
        upd, q_opt = adam.update(grads, state["q_opt"])
        q = optax.apply_updates(state["q"], upd)
        q_t = jax.tree.map(lambda t, o: 0.995 * t + 0.005 * o, state["q_t"], q)

        weights = jnp.minimum(jnp.exp(3.0 * adv), EXP_ADV_MAX)

        def actor_loss(pi):
            return jnp.mean(weights * -log_prob(pi, s, a))

        grads = jax.grad(actor_loss)(state["pi"])
        upd, pi_opt = actor_opt.update(grads, state["pi_opt"])
        pi = optax.apply_updates(state["pi"], upd)
        new = dict(pi=pi, q=q, q_t=q_t, v=v, pi_opt=pi_opt, q_opt=q_opt, v_opt=v_opt, key=key)
        return new, q_mean

    def policy(pi, raw):
        return actor_mean(pi, (raw - mean) / std)

    return chunked_curve(update, init, policy, seeds, steps, chunk, evaluate)


def main() -> None:
    parser = check_parser(__doc__)
    args = parser.parse_args()
    started = time.perf_counter()
    dataset, data, m, refs = load_check_data(args, parser)
    if data["returns"].max() == data["returns"].min():
        parser.error("every episode has the same return: CORL's reward scaling is undefined")
    seeds = list(range(args.seeds))
    evaluate = make_evaluate(dataset, len(seeds), args.eval_episodes, np.asarray, 1_000_000)
    print(f"{args.dataset}: {len(data['obs'])} transitions, max_action {m}", flush=True)
    curve = train(data, m, args.steps, args.eval_every, seeds, evaluate)
    write_check(args, "IQL", curve, refs, started, max_action=m, transitions=len(data["obs"]))


if __name__ == "__main__":
    main()
