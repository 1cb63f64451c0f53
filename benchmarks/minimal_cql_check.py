"""An independent minimal CQL on any local Minari dataset: tells the method from the plumbing.

When iwbc's CQL scores low, train this one on the same data for the same updates. It shares no
code with iwbc: data, evaluation and the network helpers are those of
``minimal_td3bc_check.py`` (``minari.load_dataset``, a plain loop over Gymnasium envs rebuilt
from the dataset, PyTorch's default layer initialization), and the learner is CORL's ``cql.py``
written out in JAX and optax with its D4RL locomotion defaults, which iwbc's CQL takes: states
standardized with the data's mean and std + 1e-3; rewards as they are; 3 x 256 ReLU twin
critics, orthogonal (gain √2, output 1e-2, biases 0); a 3 x 256 tanh-Gaussian actor
(PyTorch-default hidden layers, Xavier-uniform output with gain 1e-2), log σ = clip(m·raw + b,
−20, 2) with learned scalars m = 1, b = −1 at the start, actions tanh(·) · max_action; SAC's
temperature tuned to entropy −|A| (log α from 0, lr 3e-5); actor lr 3e-5, critics lr 3e-4;
batch 256; γ 0.99; targets by τ 0.005 every update; the TD target min Q'(s', a'), a' ~ π(s'),
without an entropy term; CQL(H) with α 10: logsumexp over 10 U(−1, 1) actions (less log 0.5^|A|),
10 π(s) and 10 π(s') actions (less their log-densities), all scored at s, minus Q(s, a_data).
Every loss is taken from the networks before the update, as CORL's ``ContinuousCQL.train``.

    python benchmarks/minimal_cql_check.py iwbc/inverted-double-pendulum/mixed-v0 \
        --root data/minari --steps 5000 --eval-every 1000 --seeds 2 \
        --out results/cql-check/minimal-idp-mixed.json
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

HIDDEN = (256, 256, 256)
CQL_ACTIONS = 10
CQL_ALPHA = 10.0
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


def train(data: dict[str, np.ndarray], max_action: float, steps: int, chunk: int, seeds, evaluate):
    """CQL for ``steps`` updates on every seed at once; ``evaluate(act, params)`` each chunk."""
    import jax
    import jax.numpy as jnp
    import optax

    mean, std, obs, nxt = standardized_states(data)
    act, rew, term = (jnp.asarray(data[k]) for k in ("act", "rew", "term"))
    obs_dim, act_dim = obs.shape[1], act.shape[1]
    target_entropy = -float(act_dim)

    def orthogonal_mlp(key, sizes):
        keys = jax.random.split(key, len(sizes) - 1)
        layers = []
        for i, (k, m, n) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True)):
            gain = 1e-2 if i == len(sizes) - 2 else np.sqrt(2.0)
            layers.append((jax.nn.initializers.orthogonal(gain)(k, (m, n)), jnp.zeros(n)))
        return layers

    def actor_init(key):
        k_net, k_out = jax.random.split(key)
        net = mlp_init(k_net, (obs_dim, *HIDDEN, 2 * act_dim))
        fan_in, fan_out = HIDDEN[-1], 2 * act_dim
        bound = 1e-2 * np.sqrt(6.0 / (fan_in + fan_out))
        out = jax.random.uniform(k_out, (fan_in, fan_out), minval=-bound, maxval=bound)
        net[-1] = (out, jnp.zeros(fan_out))
        return {"net": net, "m": jnp.asarray(1.0), "b": jnp.asarray(-1.0)}

    def heads(pi, s):
        raw = mlp(pi["net"], s)
        mu, raw_log_std = raw[..., :act_dim], raw[..., act_dim:]
        return mu, jnp.clip(pi["m"] * raw_log_std + pi["b"], LOG_STD_MIN, LOG_STD_MAX)

    def sample(pi, s, key):
        """a = tanh(u) · max_action, u ~ N(μ, σ); log-density of tanh(u) (CORL's TanhTransform)."""
        mu, log_std = heads(pi, s)
        eps = jax.random.normal(key, mu.shape)
        u = mu + jnp.exp(log_std) * eps
        gauss = -0.5 * eps**2 - log_std - 0.5 * jnp.log(2 * jnp.pi)
        jacobian = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))
        return jnp.tanh(u) * max_action, jnp.sum(gauss - jacobian, -1)

    def critics(q, s, a):
        x = jnp.concatenate([s, a], -1)
        return mlp(q[0], x)[..., 0], mlp(q[1], x)[..., 0]

    actor_opt, alpha_opt, critic_opt = optax.adam(3e-5), optax.adam(3e-5), optax.adam(3e-4)

    def init(key):
        k_pi, k1, k2, k_run = jax.random.split(key, 4)
        pi = actor_init(k_pi)
        sizes = (obs_dim + act_dim, *HIDDEN, 1)
        q = (orthogonal_mlp(k1, sizes), orthogonal_mlp(k2, sizes))
        log_alpha = jnp.asarray(0.0)
        return dict(
            pi=pi,
            q=q,
            q_t=q,
            log_alpha=log_alpha,
            pi_opt=actor_opt.init(pi),
            q_opt=critic_opt.init(q),
            alpha_opt=alpha_opt.init(log_alpha),
            key=k_run,
        )

    def update(state, _):
        key, k_idx, k_pi, k_next, k_rand, k_cur, k_nxt = jax.random.split(state["key"], 7)
        i = jax.random.randint(k_idx, (256,), 0, obs.shape[0])
        s, a, r, s2, d = obs[i], act[i], rew[i], nxt[i], term[i]
        pi, q = state["pi"], state["q"]
        alpha = jnp.exp(state["log_alpha"])

        def policy_loss(pi_params):
            new, log_pi = sample(pi_params, s, k_pi)
            return jnp.mean(alpha * log_pi - jnp.minimum(*critics(q, s, new))), log_pi

        (_, log_pi), pi_grads = jax.value_and_grad(policy_loss, has_aux=True)(pi)
        alpha_grad = -jnp.mean(jax.lax.stop_gradient(log_pi) + target_entropy)

        next_a, _ = sample(pi, s2, k_next)
        target = r + 0.99 * (1.0 - d) * jnp.minimum(*critics(state["q_t"], s2, next_a))
        repeated = jnp.repeat(s[:, None], CQL_ACTIONS, 1)
        random_a = jax.random.uniform(k_rand, (256, CQL_ACTIONS, act_dim), minval=-1, maxval=1)
        current_a, log_pi_current = sample(pi, repeated, k_cur)
        next_pa, log_pi_next = sample(pi, jnp.repeat(s2[:, None], CQL_ACTIONS, 1), k_nxt)
        random_density = act_dim * np.log(0.5)

        def critic_loss(q_params):
            predicted = critics(q_params, s, a)
            q_rand = critics(q_params, repeated, random_a)
            q_current = critics(q_params, repeated, current_a)
            q_next = critics(q_params, repeated, next_pa)
            loss = 0.0
            for k in range(2):
                scores = jnp.concatenate(
                    [
                        q_rand[k] - random_density,
                        q_next[k] - log_pi_next,
                        q_current[k] - log_pi_current,
                    ],
                    axis=1,
                )
                ood = jax.scipy.special.logsumexp(scores, axis=1)
                loss += jnp.mean((predicted[k] - target) ** 2)
                loss += CQL_ALPHA * jnp.mean(ood - predicted[k])
            return loss, predicted[0].mean()

        (_, q_mean), q_grads = jax.value_and_grad(critic_loss, has_aux=True)(q)
        upd, alpha_state = alpha_opt.update(alpha_grad, state["alpha_opt"])
        log_alpha = optax.apply_updates(state["log_alpha"], upd)
        upd, pi_state = actor_opt.update(pi_grads, state["pi_opt"])
        pi = optax.apply_updates(pi, upd)
        upd, q_state = critic_opt.update(q_grads, state["q_opt"])
        q = optax.apply_updates(q, upd)
        q_t = jax.tree.map(lambda t, o: 0.995 * t + 0.005 * o, state["q_t"], q)
        new = dict(
            pi=pi,
            q=q,
            q_t=q_t,
            log_alpha=log_alpha,
            pi_opt=pi_state,
            q_opt=q_state,
            alpha_opt=alpha_state,
            key=key,
        )
        return new, q_mean

    def policy(pi, raw):
        mu, _ = heads(pi, (raw - mean) / std)
        return jnp.tanh(mu) * max_action

    return chunked_curve(update, init, policy, seeds, steps, chunk, evaluate)


def main() -> None:
    parser = check_parser(__doc__)
    args = parser.parse_args()
    started = time.perf_counter()
    dataset, data, m, refs = load_check_data(args, parser)
    seeds = list(range(args.seeds))
    evaluate = make_evaluate(dataset, len(seeds), args.eval_episodes, np.asarray, 1_000_000)
    print(f"{args.dataset}: {len(data['obs'])} transitions, max_action {m}", flush=True)
    curve = train(data, m, args.steps, args.eval_every, seeds, evaluate)
    write_check(args, "CQL", curve, refs, started, max_action=m, transitions=len(data["obs"]))


if __name__ == "__main__":
    main()
