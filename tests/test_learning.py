"""Learning check: on a mixed-quality dataset the project makes itself, curating helps.

The scripted InvertedDoublePendulum mixture has ~15% near-expert episodes and many biased ones
that fall; BC on everything imitates the mixture and falls too, while filtered BC and iw-BC,
which train on the best trajectories, balance. A small network and few steps keep this fast;
the thresholds leave a wide margin (BC scores ~3% of the expert, the curated methods ≳ 60%).

Batches are the CPU budget's 256 one-step windows: iw-BC's trajectory weights must still come
from whole trajectories there (a per-window ratio, exp(10 · one step's log-ratio), hands the
normalized weight to a few samples and iw-BC collapses far below the filtered BC it starts from).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import bc_configs

from iwbc.agents.bc import BCConfig
from iwbc.agents.registry import train_methods
from iwbc.bench.suites import PipelineConfig
from iwbc.data import dataset_normalized_score, load_dataset
from iwbc.data.scripted import generate_mixed_dataset
from iwbc.envs.evaluate import evaluate_agent

SEEDS = (0, 1)


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    root = Path(tmp_path_factory.mktemp("minari"))
    dataset_id = generate_mixed_dataset("test/idp/mixed-v0", num_episodes=80, seed=0, root=root)
    dataset = load_dataset(dataset_id, root=root)
    pipeline = PipelineConfig(
        pretrain=BCConfig(steps=300, batch_size=256, window=1, weighting="episode"),
        finetune=BCConfig.iw_finetune(
            steps=300, warmup_steps=30, batch_size=256, window=1, learning_rate=1e-3
        ),
        hidden_dims=(64, 64),
    )
    methods = ["bc", "filtered_bc", "iw_bc"]
    trained = train_methods(
        dataset.episodes,
        methods,
        SEEDS,
        bc_configs(pipeline, methods),
        chunk_size=300,
        progress=False,
    )
    return {
        name: dataset_normalized_score(
            dataset, evaluate_agent(result.agent, dataset.env_id, num_episodes=10)
        ).mean(axis=1)
        for name, result in trained.items()
    }


def test_bc_on_the_mixture_imitates_its_failures(scores: dict[str, np.ndarray]) -> None:
    assert scores["bc"].mean() < 30.0


@pytest.mark.parametrize("method", ["filtered_bc", "iw_bc"])
def test_curated_methods_beat_bc(scores: dict[str, np.ndarray], method: str) -> None:
    assert scores[method].mean() > 60.0
    assert scores[method].min() > scores["bc"].max() + 20.0


def test_iw_bc_does_not_collapse_under_windows(scores: dict[str, np.ndarray]) -> None:
    """iw-BC starts from BC and trains on filtered BC's data: it ends near filtered BC or above."""
    assert scores["iw_bc"].mean() >= scores["filtered_bc"].mean() - 15.0, scores
