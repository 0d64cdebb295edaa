"""Distributed data parallel set-up: which process this is, and its device.

Under ``torchrun --nproc_per_node=N`` each process reads its own random batches, DDP averages
the gradients in ``loss.backward()``, and only rank 0 prints, logs and writes checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn


@dataclass(frozen=True)
class Distributed:
    """Which process this is. Without torchrun: rank 0 of a world of 1."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_type: str) -> Distributed:
    """Join the process group that ``torchrun`` describes in RANK / WORLD_SIZE / MASTER_ADDR
    (gloo on the CPU, nccl on CUDA). Does nothing when WORLD_SIZE is unset or 1."""
    if dist.is_available() and dist.is_initialized():
        return Distributed(dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)),
                           dist.get_world_size())
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise RuntimeError(f"WORLD_SIZE={world_size} but ${var} is not set: start "
                               f"distributed runs with `torchrun --nproc_per_node=N ...`")
    dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)),
                       dist.get_world_size(), initialized_here=True)


def teardown_distributed(dd: Distributed) -> None:
    """Leave the process group if :func:`setup_distributed` joined it."""
    if dd.initialized_here:
        dist.destroy_process_group()


def process_device(device: torch.device, dd: Distributed) -> torch.device:
    """One GPU per process under torchrun; otherwise ``device`` unchanged."""
    if device.type == "cuda" and dd.world_size > 1:
        device = torch.device("cuda", dd.local_rank)
        torch.cuda.set_device(device)
    return device


def wrap_ddp(model: nn.Module, dd: Distributed, device: torch.device) -> nn.Module:
    """``model`` inside DistributedDataParallel when there is more than one process."""
    if dd.world_size <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[dd.local_rank] if device.type == "cuda" else None)
