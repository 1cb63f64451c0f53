"""Offline-RL baselines (TD3+BC, IQL, CQL, AWAC), trained by the engine that trains iw-BC.

``ALGORITHMS`` maps each name to its (agent class, config class), so the CLI, the benchmark
harness and :func:`iwbc.algos.run.train_algorithm` all reach every baseline the same way.
"""

from __future__ import annotations

from iwbc.algos.awac import AWACAgent, AWACConfig
from iwbc.algos.cql import CQLAgent, CQLConfig
from iwbc.algos.iql import IQLAgent, IQLConfig
from iwbc.algos.td3_bc import TD3BCAgent, TD3BCConfig

ALGORITHMS: dict[str, tuple[type, type]] = {
    "td3_bc": (TD3BCAgent, TD3BCConfig),
    "iql": (IQLAgent, IQLConfig),
    "cql": (CQLAgent, CQLConfig),
    "awac": (AWACAgent, AWACConfig),
}

__all__ = ["ALGORITHMS"]
