"""Data-parallel training across processes and machines (``torchrun``; gloo, so CPUs work).

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) every rank holds the whole model, draws its own share
of each batch, and after every backward pass the gradients are averaged over the ranks before the (identical)
optimizer step, so the ranks' weights stay bit-identical. Parameters are broadcast from rank 0 at the start and a
checksum of them is compared at the end (:meth:`Distributed.in_sync`). Only rank 0 logs, validates and writes
checkpoints. Without ``torchrun`` every method is a no-op and the training loop is the single-process one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist


class Distributed:
    """The process group of this run (or a world of one)."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("gloo")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, batch: int) -> int:
        """This rank's share of a global batch (the global batch must split evenly)."""
        if batch % self.world:
            raise ValueError(f"optim.batch_size {batch} does not split evenly over {self.world} processes")
        return batch // self.world

    def broadcast(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Start every rank from rank 0's weights."""
        if self.world > 1:
            for p in parameters:
                dist.broadcast(p.data, src=0)

    def all_finite(self, value: torch.Tensor) -> bool:
        """Whether ``value`` is finite on every rank (all ranks must skip a batch together)."""
        finite = torch.tensor(float(torch.isfinite(value).all()))
        if self.world > 1:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite > 0)

    def any_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any rank (a stop on one rank stops them all at the same step)."""
        if self.world == 1:
            return bool(flag)
        value = torch.tensor(float(flag))
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value > 0)

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Replace every gradient by its mean over the ranks (one flat all-reduce)."""
        if self.world == 1:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def in_sync(self, parameters: Iterable[torch.nn.Parameter]) -> bool:
        """Whether every rank holds exactly rank 0's weights (compares float64 sums of every tensor)."""
        if self.world == 1:
            return True
        sums = torch.stack([p.detach().double().sum() for p in parameters])
        reference = sums.clone()
        dist.broadcast(reference, src=0)
        same = torch.tensor(float(torch.equal(sums, reference)))
        dist.all_reduce(same, op=dist.ReduceOp.MIN)
        return bool(same > 0)

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
