"""Many processes, one result: sharding a run across ranks launched by ``torchrun``.

``torchrun --nproc_per_node=K -m javisbench evaluate ...`` (any number of nodes with torchrun's
usual ``--nnodes`` / ``--rdzv_*`` flags) starts K copies of the command.  Each rank

1. extracts the features of its shard of the samples (rows ``rank, rank + K, ...``; the same for
   the real clips of the reference) on its own device (``cuda:LOCAL_RANK`` when ``--device cuda``)
   into the shared feature store (``--cache-dir`` on a shared file system, or stores merged later
   by copying their files into one);
2. waits for the others (a barrier);
3. rank 0 alone reads every feature back from the store -- all hits, nothing recomputed -- and
   computes the set metrics, the breakdowns and the results file, exactly as a single process
   would (the features a single process uses are the stored ones, bit for bit).

A rank that dies leaves its finished features in the store; running the same command again
(with any number of processes) recomputes only what is missing.  Progress is printed by rank 0
only.  Ranks talk through ``torch.distributed`` (gloo on CPU, NCCL on CUDA) only for the barrier.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's items: every ``world``-th one from ``rank`` (balanced, order kept)."""
        return list(items[self.rank::self.world])

    def device(self, requested: str) -> str:
        """``cuda`` becomes ``cuda:LOCAL_RANK`` (one device per rank); anything else is kept."""
        return f"cuda:{self.local_rank}" if requested == "cuda" else requested


def from_env() -> Dist | None:
    """The torchrun launch this process belongs to (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``), or None
    when it runs alone (no variables, or a world of one)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as e:
        raise ValueError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers (torchrun sets them): {e}") from None
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is outside WORLD_SIZE={world}")
    return Dist(rank, world, local)


def init(d: Dist, device: str) -> None:
    """Join the process group (gloo on CPU, NCCL on CUDA); torchrun provides the rendezvous."""
    import torch.distributed as tdist

    if not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")


def barrier(d: Dist) -> None:
    import torch.distributed as tdist

    if tdist.is_initialized():
        tdist.barrier()


def finish(d: Dist) -> None:
    import torch.distributed as tdist

    if tdist.is_initialized():
        tdist.destroy_process_group()
