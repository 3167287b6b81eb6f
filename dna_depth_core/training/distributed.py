"""Multi-process training: torchrun environment, process group and collective helpers.

One process per GPU (or several CPU processes for testing), launched by ``torchrun``,
which sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``.
Without them training runs as a single process and every helper here is a no-op.
Backend: NCCL on CUDA, gloo on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..devices import resolve_device


@dataclass
class DistributedContext:
    """Where this process sits in a (possibly single-process) training job.

    Attributes:
        rank: global process index, 0 .. world_size - 1.
        world_size: number of training processes.
        local_rank: process index on this machine (selects its GPU).
        device: the device this process trains on.
        owns_process_group: whether :func:`setup_distributed` created the process group
            (and :func:`teardown_distributed` should destroy it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_process_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, validates the summary and writes checkpoints."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str = "auto") -> DistributedContext:
    """Join the torchrun job described by the environment, or run as one process.

    If a process group is already initialised (by the caller), it is used as is.
    Otherwise, with ``WORLD_SIZE > 1`` in the environment, one is created: NCCL when the
    device is CUDA, gloo on the CPU. Each process trains on ``cuda:LOCAL_RANK`` when
    ``device`` is ``auto``/``cuda`` and CUDA is available.

    Args:
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (see ``runtime.device``).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device)
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    owns_group = False
    if not dist.is_initialized() and world_size > 1:
        dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
        owns_group = True
    if dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size(), local_rank, resolved, owns_group)
    return DistributedContext(device=resolved)


def teardown_distributed(context: DistributedContext) -> None:
    """Destroy the process group if :func:`setup_distributed` created it."""
    if context.owns_process_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: DistributedContext) -> None:
    """Wait for every process (no-op for one process)."""
    if context.is_distributed:
        dist.barrier()


def all_reduce_sum(context: DistributedContext, values: torch.Tensor) -> torch.Tensor:
    """Sum a float64 tensor over processes (returned unchanged for one process).

    The tensor is reduced on the process's device (NCCL needs CUDA tensors) and
    returned on the CPU.
    """
    if not context.is_distributed:
        return values
    reduced = values.to(context.device)
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced.cpu()


def any_process(context: DistributedContext, flag: bool) -> bool:
    """True on every process if ``flag`` is true on at least one (e.g. a time limit hit on rank 0)."""
    if not context.is_distributed:
        return flag
    return bool(all_reduce_sum(context, torch.tensor([float(flag)], dtype=torch.float64)).item() > 0)


def broadcast_buffers(context: DistributedContext, module: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every process.

    DDP broadcasts buffers at the start of each forward pass, so after the last step the
    processes' running statistics differ by one local update; this makes them identical.
    """
    if context.is_distributed:
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=0)


def gather_objects(context: DistributedContext, value: Any) -> list[Any]:
    """Every process's ``value``, indexed by rank (``[value]`` for one process)."""
    if not context.is_distributed:
        return [value]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, value)
    return gathered
