"""Checkpoints in safetensors: weights for use, full training state (:class:`TrainState`) to resume.

safetensors holds only tensors plus string metadata, so nothing in a checkpoint runs code when
it is read. A nested state (optimizer state, RNG states, history) is split into its tensors,
stored under path-like keys, and a JSON skeleton in the metadata that says where each tensor
goes back. Every write goes to a temporary file in the same directory, then ``os.replace``:
an interrupted write leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vitbench.errors import CheckpointError
from vitbench.zoo import ModelSpec, spec_metadata

WEIGHTS_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"  # the weights' exponential moving average, when a run keeps one
STATE_FILE = "last.safetensors"


@dataclass
class Progress:
    """Where a run stands: epochs done, optimizer updates, the epoch rows, seconds trained."""

    epoch: int = 0
    updates: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # the train_epochs rows so far
    train_s: float = 0.0


@dataclass
class TrainState:
    """Everything resuming needs to continue a run bit for bit: what ``last.safetensors`` holds.

    On disk it is one flat dict: these fields, with :class:`Progress`'s in place of ``progress``.
    """

    run_id: str
    config: dict[str, Any]  # TrainConfig.to_dict()
    progress: Progress
    model: dict[str, torch.Tensor]  # the unwrapped model's state_dict
    optimizer: dict[str, Any]  # state_dict of the optimizer
    scheduler: dict[str, Any]  # state_dict of the timm scheduler
    scaler: dict[str, Any]  # state_dict of fp16's GradScaler; empty in other precisions
    rng: list[dict[str, Any]]  # rng_state() of every process, by rank
    ema: dict[str, torch.Tensor] = field(default_factory=dict)  # the weights' average, if kept

    def to_tree(self) -> dict[str, Any]:
        """The flat dict stored on disk."""
        return {**{name: getattr(self, name) for name in _OWN_KEYS}, **vars(self.progress)}

    @classmethod
    def from_tree(cls, tree: dict[str, Any]) -> TrainState:
        """Inverse of :meth:`to_tree` (a state saved before a field existed lacks it)."""
        progress = Progress(**{f.name: tree[f.name] for f in fields(Progress)})
        return cls(progress=progress, **{name: tree[name] for name in _OWN_KEYS if name in tree})


_OWN_KEYS = tuple(f.name for f in fields(TrainState) if f.name != "progress")
#: the top-level keys every stored state has (``ema`` came later)
STATE_KEYS = (*(k for k in _OWN_KEYS if k != "ema"), *(f.name for f in fields(Progress)))


def pack(tree: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested structure into ``{key: tensor}`` and a JSON-able skeleton."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(obj: Any, path: str) -> Any:
        if isinstance(obj, torch.Tensor):
            tensors[path] = obj.detach().to("cpu").contiguous().clone()
            return {"__tensor__": path}
        if isinstance(obj, np.ndarray):
            tensors[path] = torch.from_numpy(obj.astype(np.int64))
            return {"__ndarray__": path, "dtype": str(obj.dtype)}
        if isinstance(obj, dict):
            return {"__dict__": [[k, walk(v, f"{path}/{k}")] for k, v in obj.items()]}
        if isinstance(obj, tuple):
            return {"__tuple__": [walk(v, f"{path}/{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [walk(v, f"{path}/{i}") for i, v in enumerate(obj)]
        if isinstance(obj, np.generic):
            return obj.item()
        return obj

    return tensors, walk(tree, prefix)


def unpack(tensors: dict[str, torch.Tensor], skeleton: Any) -> Any:
    """Inverse of :func:`pack`."""
    if isinstance(skeleton, list):
        return [unpack(tensors, v) for v in skeleton]
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__ndarray__" in skeleton:
            return tensors[skeleton["__ndarray__"]].numpy().astype(skeleton["dtype"])
        if "__tuple__" in skeleton:
            return tuple(unpack(tensors, v) for v in skeleton["__tuple__"])
        return {k: unpack(tensors, v) for k, v in skeleton["__dict__"]}
    return skeleton


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> Path:
    from safetensors.torch import save_file

    from vitbench.files import atomic_write

    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def save_weights(
    model: nn.Module, path: Path, config: dict[str, Any], spec: ModelSpec | None = None
) -> Path:
    """The model's weights, loadable with ``--checkpoint``, with the config that made them.

    With ``spec``, the file also records the model spec, so ``--checkpoint`` alone rebuilds the
    model's shape (image size, channels, classes, architecture overrides).
    """
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    meta = {"config": json.dumps(config, sort_keys=True)}
    if spec is not None:
        meta.update(spec_metadata(spec))
    return _atomic_save(state, path, meta)


def save_state(state: TrainState, path: Path) -> Path:
    """Write a training state, atomically."""
    tensors, skeleton = pack(state.to_tree())
    return _atomic_save(tensors, path, {"skeleton": json.dumps(skeleton)})


def _state_error(path: Path, exc: Exception) -> CheckpointError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CheckpointError(f"{path} is not a vitbench training state ({first})")


def _skeleton(path: Path) -> Any:
    """The JSON skeleton in the header of the state file at ``path`` (no tensors read)."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise CheckpointError(f"no training state to resume at {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        if "skeleton" in meta:
            return json.loads(meta["skeleton"])
    except (ValueError, OSError, SafetensorError) as exc:
        raise _state_error(path, exc) from exc
    raise CheckpointError(f"{path} is not a vitbench training state (no skeleton)")


def _top_keys(skeleton: Any) -> set[str]:
    """The keys of the dict a skeleton packs; none when it packs something else."""
    items = skeleton.get("__dict__") if isinstance(skeleton, dict) else None
    if not isinstance(items, list):
        return set()
    return {
        pair[0] for pair in items if isinstance(pair, list) and pair and isinstance(pair[0], str)
    }


def check_state(path: Path) -> Any:
    """The skeleton of the training state at ``path``, checked from its header alone."""
    skeleton = _skeleton(path)
    missing = [key for key in STATE_KEYS if key not in _top_keys(skeleton)]
    if missing:
        raise CheckpointError(f"{path} is not a vitbench training state (no {', '.join(missing)})")
    return skeleton


def load_state(path: Path) -> TrainState:
    """Read a state written by :func:`save_state`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    skeleton = check_state(path)
    try:
        return TrainState.from_tree(unpack(load_file(str(path), device="cpu"), skeleton))
    except (KeyError, TypeError, ValueError, OSError, SafetensorError) as exc:
        raise _state_error(path, exc) from exc


def read_config(path: Path) -> dict[str, Any]:
    """The training config stored in a weights file's metadata."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if "config" not in meta:
        raise CheckpointError(f"{path} carries no training config")
    return json.loads(meta["config"])


def rng_state() -> dict[str, Any]:
    """This process's random number generator states (torch, CUDA, NumPy, Python's: the last
    draws RandAugment and random erasing)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": keys, "pos": pos, "gauss": [has_gauss, cached]},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"], n["pos"], n["gauss"][0], n["gauss"][1]))
    if "python" in state:  # saved since augmentation came
        random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
