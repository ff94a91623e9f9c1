"""Data parallelism under ``torchrun``: process group set-up, sharding and exact metric sums.

``torchrun --nproc_per_node N -m vitbench train ...`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment; a plain ``vitbench train`` is a world of
one. Metrics are reduced as sums (of losses times counts, of correct predictions, of counts) so
the result is the one a single process would compute, never a mean of per-process means.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from vitbench.device import check_device


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def default_device(device: str | None) -> str:
    """``device``, or cuda when available, else cpu."""
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def world_size() -> int:
    """How many processes torchrun started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(device: str | None) -> DistEnv:
    """Join the process group torchrun describes (gloo on CPU, NCCL on CUDA), if any."""
    world = world_size()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(default_device(device))
    check_device(str(dev))
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistEnv(rank, world, dev)


def teardown(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(values: list[float], env: DistEnv) -> list[float]:
    """Element-wise sum of ``values`` over all processes (float64, on the process's device)."""
    t = torch.tensor(values, dtype=torch.float64, device=env.device)
    if env.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_sum_tensor(t: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.distributed:
        t = t.to(env.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu()


def broadcast(obj: Any, env: DistEnv) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any, env: DistEnv) -> list[Any]:
    """Every process's ``obj``, in rank order, on every process."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world
    dist.all_gather_object(out, obj)
    return out


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...``: every image exactly once over all processes.

    Unlike ``DistributedSampler`` it never pads, so evaluation metrics summed over processes
    are exact.
    """

    def __init__(self, n: int, env: DistEnv) -> None:
        self.indices = list(range(env.rank, n, env.world))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
