"""Training vision transformers: data, recipe, engine, checkpoints, sweeps."""

from vitbench.train.data import DATASETS, DataBundle, load_data
from vitbench.train.recipe import DEFAULT_MODEL, DEFAULT_MODEL_KWARGS, TrainConfig
from vitbench.train.run import TrainResult, train
from vitbench.train.sweep import SweepResult, sweep

__all__ = [
    "DATASETS",
    "DEFAULT_MODEL",
    "DEFAULT_MODEL_KWARGS",
    "DataBundle",
    "SweepResult",
    "TrainConfig",
    "TrainResult",
    "load_data",
    "sweep",
    "train",
]
