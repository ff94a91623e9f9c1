"""Where weights come from: a local checkpoint (weights only) or timm's pretrained hub files.

Checkpoints are loaded without running code: safetensors files directly, torch files through
``torch.load(weights_only=True)``, which refuses pickled objects other than tensors and plain
containers. Pretrained weights come from the Hugging Face hub cache when present; without a
cache entry and without a network the error is immediate instead of timm's minute of retries.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from vitbench.errors import CheckpointError, VitbenchError

#: safetensors metadata key under which vitbench records the spec that built the weights
SPEC_METADATA_KEY = "vitbench_model_spec"

#: keys under which training scripts commonly nest the model's state dict
_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "module", "state_dict_ema")


def _torch_load(p: Path, mmap: bool) -> Any:
    """``torch.load`` as weights only; ``mmap`` maps the tensors lazily where the format allows
    (files of torch's zip format), else the file is read whole."""
    if mmap:
        try:
            return torch.load(p, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
    return torch.load(p, map_location="cpu", weights_only=True)


def read_state_dict(path: str | os.PathLike, *, mmap: bool = False) -> dict[str, torch.Tensor]:
    """Read a checkpoint's tensors on the CPU without executing anything from the file.

    ``mmap`` maps a torch file's tensors instead of reading them (for their shapes alone).
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(p), device="cpu")
        else:
            state = _torch_load(p, mmap)
    except Exception as exc:  # corrupted, truncated or unsafe (pickled code) files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"cannot read checkpoint {p} as weights only ({type(exc).__name__}: {first})"
        ) from exc
    for key in _NESTED_KEYS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {p} holds no state dict of tensors")
    return _strip_prefixes(state)


def _strip_prefixes(state: dict[str, Any]) -> dict[str, Any]:
    """Drop the key prefix DistributedDataParallel and torch.compile add."""
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def checkpoint_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape in a checkpoint, read without loading the weights: a safetensors
    file from its header, a torch file memory-mapped (read whole only in torch's old format)."""
    p = Path(path)
    if p.suffix != ".safetensors" or not p.is_file():
        return {k: tuple(v.shape) for k, v in read_state_dict(p, mmap=True).items()}
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as fh:
            shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except Exception as exc:  # corrupted or truncated header
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"cannot read checkpoint {p} ({type(exc).__name__}: {first})"
        ) from exc
    return _strip_prefixes(shapes)


def check_fits(model: nn.Module, shapes: dict[str, tuple[int, ...]], path: Any) -> None:
    """Raise :class:`CheckpointError` unless ``shapes`` are exactly ``model``'s tensors.

    ``model`` may live on the meta device, so a file is checked before memory is allocated.
    """
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in own if k not in shapes]
    unexpected = [k for k in shapes if k not in own]
    wrong = [k for k in own if k in shapes and shapes[k] != own[k]]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if wrong:
        k = wrong[0]
        parts.append(
            f"{len(wrong)} of another shape (e.g. {k}: {shapes[k]} in the file, "
            f"{own[k]} in the model)"
        )
    if parts:
        raise CheckpointError(f"checkpoint {path} does not fit the model: " + "; ".join(parts))


def read_spec_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """The model spec a vitbench-written safetensors file records, or None (any other file)."""
    p = Path(path)
    if p.suffix != ".safetensors" or not p.is_file():
        return None
    import json

    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(SPEC_METADATA_KEY)
        return json.loads(raw) if raw else None
    except Exception:  # unreadable files are reported when the weights load
        return None


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a checkpoint into ``model`` strictly; a mismatch is a one-line error."""
    state = read_state_dict(path)
    check_fits(model, {k: tuple(v.shape) for k, v in state.items()}, path)
    model.load_state_dict(state, strict=True)
    return model


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub (``HF_ENDPOINT``) takes a connection within ``timeout``
    seconds, name lookup included; False at once when ``HF_HUB_OFFLINE`` is set."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    address = (url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443))
    answers: list[bool] = []

    def probe() -> None:  # in a thread: a stalled name lookup ignores socket timeouts
        try:
            with socket.create_connection(address, timeout=timeout):
                answers.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answers)


def check_pretrained_available(timm_name: str) -> None:
    """Fail fast, with the cache location, when pretrained weights cannot be had."""
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(timm_name)
    except Exception:  # timm raises several types for unknown configs
        cfg = None
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise VitbenchError(f"timm has no pretrained weights for {timm_name}")
    if cfg.file:
        if Path(cfg.file).is_file():
            return
        raise VitbenchError(f"pretrained weights file for {timm_name} not found: {cfg.file}")
    if cfg.hf_hub_id:
        repo = cfg.hf_hub_id.split("@")[0]
        files = ("model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin")
        check_hub_files(repo, files, f"pretrained weights for {timm_name}")
        return
    if not hub_reachable():
        raise VitbenchError(
            f"pretrained weights for {timm_name} come from {cfg.url} and there is no network"
        )


def check_hub_files(repo: str, files: tuple[str, ...], what: str) -> None:
    """One of ``files`` of hub ``repo`` in the cache (then the hub is used offline, without
    retries), or a hub to fetch it from; else a one-line error naming the cache."""
    from huggingface_hub import constants, try_to_load_from_cache

    if any(isinstance(try_to_load_from_cache(repo, f), str) for f in files):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        constants.HF_HUB_OFFLINE = True  # read at import: the variable alone comes too late
        return
    if not hub_reachable():
        raise VitbenchError(
            f"{what} not in the hub cache ({constants.HF_HUB_CACHE}, repo {repo}) and the hub "
            "is unreachable; download the repo where there is a network"
        )
