"""The built-in default run (`make demo`): offline, CPU-only, minutes on two cores.

It makes the scripted mixed-quality InvertedDoublePendulum-v5 dataset locally, trains BC,
filtered BC, 10%BC, iw-BC and quality-scored iw-BC for five vmapped seeds, evaluates each with
100 fixed-seed episodes on the mujoco.batch engine and writes a table and a plot. The training
budget is cut to fit a laptop-class CPU: fewer steps, 32 episodes a batch and a random window of
32 steps per episode, and a fine-tune learning rate of 3e-4 instead of the paper's 4e-5 so that
200 fine-tune steps move the policy. Everything else is the paper's protocol.
"""

from __future__ import annotations

from pathlib import Path

from iwbc.data import list_datasets, load_dataset
from iwbc.data.scripted import DEFAULT_DATASET_ID, generate_mixed_dataset
from iwbc.experiment import ExperimentConfig, run_experiment
from iwbc.methods import PipelineConfig
from iwbc.report.tables import MethodScores
from iwbc.train import StageConfig

DEMO_CONFIG = ExperimentConfig(
    methods=("bc", "filtered_bc", "top10_bc", "iw_bc", "iw_bc_quality"),
    seeds=(0, 1, 2, 3, 4),
    pipeline=PipelineConfig(
        pretrain=StageConfig(steps=400, batch_size=32, window=32),
        finetune=StageConfig.iw_finetune(
            steps=200, warmup_steps=30, batch_size=32, window=32, learning_rate=3e-4
        ),
        chunk_size=100,
    ),
    eval_episodes=100,
)


def run_demo(
    out_dir: str | Path = "results/demo",
    *,
    data_root: str | Path = "data/minari",
    work_dir: str | Path = "runs",
    progress: bool = True,
) -> list[MethodScores]:
    """Make the dataset if it is not there yet, then run the demo experiment."""
    if DEFAULT_DATASET_ID not in list_datasets(data_root):
        generate_mixed_dataset(DEFAULT_DATASET_ID, num_episodes=200, seed=0, root=data_root)
    dataset = load_dataset(DEFAULT_DATASET_ID, root=data_root)
    return run_experiment(
        dataset, DEMO_CONFIG, out_dir, work_dir=work_dir, command="make demo", progress=progress
    )
