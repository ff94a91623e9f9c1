"""Training vision transformers: data, recipe, engine, checkpoints, sweeps."""

from vitbench.train.data import DATASETS, DataBundle, load_data
from vitbench.train.recipe import DEFAULT_MODEL, DEFAULT_MODEL_KWARGS, TrainConfig
from vitbench.train.run import TrainResult, train

__all__ = [
    "DATASETS",
    "DEFAULT_MODEL",
    "DEFAULT_MODEL_KWARGS",
    "DataBundle",
    "TrainConfig",
    "TrainResult",
    "load_data",
    "train",
]
