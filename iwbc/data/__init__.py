"""Minari dataset loading, episode views, trajectory selection and normalised scores."""

from iwbc.data.episodes import EpisodeData, OfflineDataset, Transitions, stack_episodes
from iwbc.data.errors import DatasetError
from iwbc.data.minari_io import list_datasets, load_dataset
from iwbc.data.scores import dataset_normalized_score, normalized_score
from iwbc.data.selection import quality_scores, stratified_top, top_fraction

__all__ = [
    "DatasetError",
    "EpisodeData",
    "OfflineDataset",
    "Transitions",
    "dataset_normalized_score",
    "list_datasets",
    "load_dataset",
    "normalized_score",
    "quality_scores",
    "stack_episodes",
    "stratified_top",
    "top_fraction",
]
