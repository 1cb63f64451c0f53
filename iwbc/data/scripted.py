"""A mixed-quality offline dataset on InvertedDoublePendulum-v5, made locally in seconds.

The demo and the learning-check tests need a D4RL-like dataset with a wide spread of
trajectory quality, without network access or a trained RL agent.  The expert is an LQR
controller designed from the MuJoCo model itself; the behaviour policies degrade it with a
one-sided action bias plus noise whose size varies per episode.  The bias is deliberately
systematic: plain BC fits the conditional mean action of the mixture, so zero-mean noise
around the expert would let BC recover the expert and the demo would show nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import scipy.linalg
from minari.data_collector import EpisodeBuffer

from iwbc.data.minari_io import minari_root, open_dataset
from iwbc.data.minari_write import dataset_exists, write_dataset
from iwbc.envs.evaluate import EVAL_SEED_BASE
from iwbc.errors import UserError

ENV_ID = "InvertedDoublePendulum-v5"
DEFAULT_DATASET_ID = "iwbc/inverted-double-pendulum/mixed-v0"

# LQR weights on (cart x, hinge, hinge2, their velocities) and on the control in [-1, 1].
_LQR_Q = np.diag([1.0, 1.0, 1.0, 0.1, 0.1, 0.1])
_LQR_R = np.eye(1)

# Behaviour family: with degradation u in [0, 1], action = expert + BIAS_MAX*u + NOISE_MAX*u*eps.
# The expert keeps balancing up to a bias of about 0.2 (beyond it the cart is pushed against
# its rail limit) and a noise scale of about 0.15, so u ≲ 0.3 is near-expert.  Drawing
# u = U(0,1)**0.7 makes that about 15% of episodes; the rest fall after tens to hundreds
# of steps, earlier the larger u is.
BIAS_MAX = 0.7
NOISE_MAX = 0.3
_DEGRADATION_POWER = 0.7

# Reset seeds of the reference-score episodes: fixed and far from the dataset seeds, so the
# reference scores belong to the task, not to one dataset.
_REF_SEED_BASE = 1_000_000_000
# Episode i of a mixture made with seed s resets with seed s * _SEED_STRIDE + i.
_SEED_STRIDE = 100_000


@lru_cache(maxsize=1)
def _cached_lqr_gain() -> np.ndarray:
    env = gym.make(ENV_ID)
    model = env.unwrapped.model
    frame_skip = env.unwrapped.frame_skip
    env.close()
    data = mujoco.MjData(model)
    nq, nv, nu = model.nq, model.nv, model.nu

    def env_step(x: np.ndarray, u: np.ndarray) -> np.ndarray:
        mujoco.mj_resetData(model, data)
        data.qpos[:] = x[:nq]
        data.qvel[:] = x[nq:]
        data.ctrl[:] = u
        mujoco.mj_step(model, data, nstep=frame_skip)
        return np.concatenate([data.qpos, data.qvel])

    # Central differences of one env step (frame_skip RK4 substeps) around the upright
    # equilibrium; mjd_transitionFD does not support the RK4 integrator this model uses.
    eps = 1e-6
    x0, u0 = np.zeros(nq + nv), np.zeros(nu)
    a = np.stack(
        [
            (env_step(x0 + eps * e, u0) - env_step(x0 - eps * e, u0)) / (2 * eps)
            for e in np.eye(nq + nv)
        ],
        axis=1,
    )
    b = np.stack(
        [(env_step(x0, u0 + eps * e) - env_step(x0, u0 - eps * e)) / (2 * eps) for e in np.eye(nu)],
        axis=1,
    )
    p = scipy.linalg.solve_discrete_are(a, b, _LQR_Q, _LQR_R)
    gain = np.linalg.solve(_LQR_R + b.T @ p @ b, b.T @ p @ a)
    gain.setflags(write=False)
    return gain


def lqr_gain() -> np.ndarray:
    """Discrete-time LQR gain K [1, 6] of one env step, so that u = -K (qpos, qvel)."""
    return _cached_lqr_gain().copy()


def obs_to_state(obs: np.ndarray) -> np.ndarray:
    """Recover (qpos, qvel) [..., 6] from observations [..., 9] (qvel is clipped at ±10)."""
    obs = np.asarray(obs, dtype=np.float64)
    angles = np.arctan2(obs[..., 1:3], obs[..., 3:5])
    return np.concatenate([obs[..., :1], angles, obs[..., 5:8]], axis=-1)


def expert_action(obs: np.ndarray) -> np.ndarray:
    """The LQR expert's action [..., 1] for observations [..., 9]."""
    return np.clip(-obs_to_state(obs) @ _cached_lqr_gain().T, -1.0, 1.0)


def scripted_policy(
    obs: np.ndarray, degradation: float = 0.0, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Behaviour policy of the mixture: the expert plus a one-sided bias and noise scaled by
    `degradation` in [0, 1] (0 is the expert).  Works on [9] or batched [N, 9] observations."""
    mean = -obs_to_state(obs) @ _cached_lqr_gain().T + BIAS_MAX * degradation
    if degradation > 0.0:
        if rng is None:
            raise ValueError("scripted_policy needs an rng when degradation > 0")
        mean = mean + NOISE_MAX * degradation * rng.standard_normal(mean.shape)
    return np.clip(mean, -1.0, 1.0)


def rollout(env: gym.Env, policy: Callable[[np.ndarray], np.ndarray], seed: int) -> EpisodeBuffer:
    """One episode of `policy` from reset seed `seed`, as a Minari episode buffer."""
    obs, _ = env.reset(seed=seed)
    observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
    while True:
        action = np.asarray(policy(obs), dtype=np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(float(reward))
        terminations.append(bool(terminated))
        truncations.append(bool(truncated))
        if terminated or truncated:
            break
    return EpisodeBuffer(
        seed=seed,
        observations=np.stack(observations),
        actions=np.stack(actions),
        rewards=rewards,
        terminations=terminations,
        truncations=truncations,
    )


def _uniform_policy(rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    return lambda _obs: rng.uniform(-1.0, 1.0, size=1)


@lru_cache(maxsize=4)
def reference_scores(num_random: int = 100, num_expert: int = 20) -> tuple[float, float]:
    """(ref_min_score, ref_max_score): mean returns of uniform-random actions and of the LQR
    expert, on fixed reset seeds.  Expert episodes last the full 1000 steps, which is what
    dominates the generation time, and the expert's return varies by well under 1 across
    seeds, so 20 of them pin the mean as well as D4RL's usual 100.  Cached: they depend
    only on the task."""
    env = gym.make(ENV_ID)
    random_returns = []
    for j in range(num_random):
        policy = _uniform_policy(np.random.default_rng(_REF_SEED_BASE + j))
        random_returns.append(sum(rollout(env, policy, _REF_SEED_BASE + j).rewards))
    expert_returns = [
        sum(rollout(env, expert_action, _REF_SEED_BASE + j).rewards) for j in range(num_expert)
    ]
    env.close()
    return float(np.mean(random_returns)), float(np.mean(expert_returns))


def check_mixture_seeds(num_episodes: int, seed: int) -> None:
    """Refuse a mixture whose episodes would reset on the evaluation's seeds (1,000,000 + i):
    training episodes must not start where the policy is scored."""
    if seed * _SEED_STRIDE + num_episodes > EVAL_SEED_BASE:
        raise UserError(
            f"scripted seed {seed} with {num_episodes} episodes resets episodes at seeds up to "
            f"{seed * _SEED_STRIDE + num_episodes - 1:,}, reaching the evaluation's reset "
            f"seeds ({EVAL_SEED_BASE:,} + i); use a seed ≤ {EVAL_SEED_BASE // _SEED_STRIDE - 1} "
            "and fewer than 100,000 episodes"
        )


def recorded_mixture(dataset_id: str, root: str | Path | None = None) -> tuple[int, int | None]:
    """(episodes, seed) of a mixture dataset as written (seed None: its episodes record no
    reset seed), read from its episodes, so a suite can tell it asks for another one."""
    with minari_root(root):
        dataset = open_dataset(dataset_id)
        first = next(iter(dataset.storage.get_episode_metadata([0])), {})
        count = dataset.total_episodes
    reset = first.get("seed")
    return count, None if reset is None else int(reset) // _SEED_STRIDE


def rollout_mixture(num_episodes: int, seed: int = 0) -> list[EpisodeBuffer]:
    """Episodes of the behaviour mixture.  Episode i resets with seed `seed*100_000 + i` and
    draws its degradation and noise from its own rng, so each episode is reproducible."""
    check_mixture_seeds(num_episodes, seed)
    env = gym.make(ENV_ID)
    episodes = []
    for i in range(num_episodes):
        rng = np.random.default_rng((seed, i))
        degradation = float(rng.uniform() ** _DEGRADATION_POWER)
        episodes.append(
            rollout(
                env,
                partial(scripted_policy, degradation=degradation, rng=rng),
                seed * _SEED_STRIDE + i,
            )
        )
    env.close()
    return episodes


def generate_mixed_dataset(
    dataset_id: str = DEFAULT_DATASET_ID,
    *,
    num_episodes: int = 200,
    seed: int = 0,
    root: str | Path | None = None,
    overwrite: bool = False,
) -> str:
    """Roll out the behaviour mixture and write it as a local Minari dataset; return its id.

    `root` overrides MINARI_DATASETS_PATH (else minari's default directory).  The reference
    scores are `reference_scores()`: 100 random-action and 20 expert episodes on fixed seeds.
    """
    check_mixture_seeds(num_episodes, seed)
    if dataset_exists(dataset_id, root) and not overwrite:
        raise FileExistsError(
            f"Minari dataset {dataset_id!r} already exists; pass --overwrite (overwrite=True "
            "from Python) to replace it"
        )
    ref_min, ref_max = reference_scores()
    write_dataset(
        dataset_id,
        rollout_mixture(num_episodes, seed),
        env_id=ENV_ID,
        ref_min_score=ref_min,
        ref_max_score=ref_max,
        description=(
            f"iwbc: LQR expert degraded per episode by a one-sided action bias and noise "
            f"(degradation u = U(0,1)**{_DEGRADATION_POWER}, bias {BIAS_MAX}*u, noise "
            f"std {NOISE_MAX}*u); {num_episodes} episodes, seed {seed}."
        ),
        algorithm_name="iwbc",
        root=root,
        overwrite=overwrite,
    )
    return dataset_id
