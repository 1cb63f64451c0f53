"""Episodes for the tiers: policy rollouts in whole episodes, and the replay stream cut into them.

Both produce Minari ``EpisodeBuffer``s (observations one longer than actions, the last being
the observation the episode ended in), which is what ``minari.DataCollector`` writes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from minari.data_collector import EpisodeBuffer

from iwbc.datagen.behaviour import TransitionLog
from iwbc.envs import BatchEngine, get_spec

# (observations [n, obs_dim], env step index) -> actions [n, act_dim]
BatchPolicy = Callable[[np.ndarray, int], np.ndarray]


def _buffer(
    seed: int | None,
    observations: list[np.ndarray],
    actions: list[np.ndarray],
    rewards: list[float],
    terminations: list[bool],
    truncations: list[bool],
) -> EpisodeBuffer:
    return EpisodeBuffer(
        seed=seed,
        observations=np.asarray(observations, np.float64),
        actions=np.asarray(actions, np.float32),
        rewards=[float(r) for r in rewards],
        terminations=[bool(t) for t in terminations],
        truncations=[bool(t) for t in truncations],
    )


def rollout_episodes(
    env_id: str, policy: BatchPolicy, min_steps: int, seeds: Callable[[int], int], num_envs: int
) -> list[EpisodeBuffer]:
    """Whole episodes of ``policy`` until they hold at least ``min_steps`` steps.

    No episode is cut short by the budget: new episodes start only while the steps taken plus
    those the running episodes are expected to add (at the mean length of the finished ones)
    fall short of ``min_steps``, so the total overshoots by about one episode. Episode k resets
    with ``seeds(k)`` and the dataset is ordered by episode index, so it is deterministic.
    """
    if min_steps < 1:
        raise ValueError(f"a tier needs at least one step, got {min_steps}")
    spec = get_spec(env_id)
    engine = BatchEngine(spec, num_envs)
    obs = engine.reset([seeds(k) for k in range(num_envs)])
    slot_episode = np.arange(num_envs)
    open_episodes = {k: ([obs[k]], [], [], [], []) for k in range(num_envs)}
    finished: dict[int, EpisodeBuffer] = {}
    started, steps, step_index = num_envs, 0, 0
    running = np.arange(num_envs)
    while running.size:
        actions = np.asarray(policy(obs.astype(np.float32), step_index), np.float64)
        step_index += 1
        ids = None if running.size == num_envs else running
        result = engine.step(actions, ids=ids)
        steps += running.size
        for slot in running:
            episode = open_episodes[slot_episode[slot]]
            episode[0].append(result.obs[slot])
            episode[1].append(actions[slot])
            episode[2].append(result.reward[slot])
            episode[3].append(result.terminated[slot])
            episode[4].append(result.truncated[slot])
        done = running[result.terminated[running] | result.truncated[running]]
        for slot in done:
            k = int(slot_episode[slot])
            finished[k] = _buffer(seeds(k), *open_episodes.pop(k))
        wanted = _episodes_to_start(min_steps, steps, open_episodes, finished) if done.size else 0
        refill = done[:wanted]
        if refill.size:
            new = np.arange(started, started + refill.size)
            obs = engine.reset([seeds(int(k)) for k in new], ids=refill)
            slot_episode[refill] = new
            for slot, k in zip(refill, new, strict=True):
                open_episodes[int(k)] = ([obs[slot]], [], [], [], [])
            started += refill.size
        else:
            obs = result.obs
        slot_episode[done[refill.size :]] = -1
        running = np.flatnonzero(slot_episode >= 0)
    return [finished[k] for k in sorted(finished)]


def _episodes_to_start(
    min_steps: int, steps: int, running: dict, finished: dict[int, EpisodeBuffer]
) -> int:
    """How many new episodes the budget still needs, at the finished episodes' mean length."""
    typical = sum(len(e.rewards) for e in finished.values()) / len(finished)
    expected = steps + sum(max(0.0, typical - len(e[1])) for e in running.values())
    return max(0, int(np.ceil((min_steps - expected) / typical)))


def replay_episodes(log: TransitionLog, until: int) -> list[EpisodeBuffer]:
    """The first ``until`` steps of a training stream, split into each env's episodes.

    An episode still running at ``until`` is kept, marked truncated: it is in the replay
    buffer as it stood at the medium checkpoint, as in D4RL's medium-replay.
    """
    if not 0 < until <= log.size:
        raise ValueError(f"cut point {until} is outside the stream of {log.size} steps")
    episodes: list[tuple[int, EpisodeBuffer]] = []
    for env in np.unique(log.env[:until]):
        rows = np.flatnonzero(log.env[:until] == env)
        ends = log.terminated[rows] | log.truncated[rows]
        boundaries = np.flatnonzero(ends) + 1
        if boundaries.size == 0 or boundaries[-1] != rows.size:
            boundaries = np.append(boundaries, rows.size)
        start = 0
        for stop in boundaries:
            part = rows[start:stop]
            truncations = log.truncated[part].copy()
            if not (log.terminated[part[-1]] or truncations[-1]):
                truncations[-1] = True
            observations = np.concatenate(
                [log.observations[part], log.next_observations[part[-1:]]]
            )
            episodes.append(
                (
                    int(part[0]),
                    _buffer(
                        None,
                        list(observations),
                        list(log.actions[part]),
                        list(log.rewards[part]),
                        list(log.terminated[part]),
                        list(truncations),
                    ),
                )
            )
            start = stop
    # Ordered by when each episode began, as the episodes entered the buffer.
    return [buffer for _, buffer in sorted(episodes, key=lambda item: item[0])]
