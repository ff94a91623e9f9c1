"""Checkpoints in safetensors: weights for use, full training state for ``--resume``.

safetensors holds only tensors plus string metadata, so nothing in a checkpoint runs code when
it is read. A nested state (optimizer state, RNG states, history) is split into its tensors,
stored under path-like keys, and a JSON skeleton in the metadata that says where each tensor
goes back. Every write goes to a temporary file in the same directory, then ``os.replace``:
an interrupted write leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vitbench.errors import CheckpointError
from vitbench.zoo import ModelSpec, spec_metadata

WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "last.safetensors"


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

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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


def save_state(state: dict[str, Any], path: Path) -> Path:
    """A full training state (any nesting of tensors, arrays and JSON values)."""
    tensors, skeleton = pack(state)
    return _atomic_save(tensors, path, {"skeleton": json.dumps(skeleton)})


def _state_error(path: Path, exc: Exception) -> CheckpointError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CheckpointError(f"{path} is not a vitbench training state ({first})")


def check_state(path: Path) -> str:
    """The skeleton of the state at ``path``, read from its header alone (no tensors)."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise CheckpointError(f"no training state to resume at {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (ValueError, OSError, SafetensorError) as exc:
        raise _state_error(path, exc) from exc
    if "skeleton" not in meta:
        raise CheckpointError(f"{path} is not a vitbench training state (no skeleton)")
    return meta["skeleton"]


def load_state(path: Path) -> dict[str, Any]:
    """Read a state written by :func:`save_state`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    skeleton = check_state(path)
    try:
        return unpack(load_file(str(path), device="cpu"), json.loads(skeleton))
    except (KeyError, ValueError, OSError, SafetensorError) as exc:
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
    """This process's random number generator states (torch, CUDA, NumPy)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": keys, "pos": pos, "gauss": [has_gauss, cached]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"], n["pos"], n["gauss"][0], n["gauss"][1]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
