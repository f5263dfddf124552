"""Running under ``torchrun``: the process group, this process's share of the work, and reductions.

genconv scales on ``torch.distributed``: ``torchrun`` sets RANK, WORLD_SIZE and LOCAL_RANK, and
``init_from_environment`` joins the group (NCCL on CUDA, gloo on the CPU). Without those
variables everything runs in one process and the helpers here do nothing, so the same code
serves both. Work is split by global index (``share``): a rank owns a contiguous range of the
chains or shards, and every random stream is counter-based on the global index, so what a chain
or a shard computes does not depend on how many processes share the run.
"""

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from genconv.bindings.errors import ConfigError


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in the run: rank r of ``world_size`` processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, metrics, images and manifests."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


SINGLE = ProcessGroup()


def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher) set WORLD_SIZE > 1 for this process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_environment(device: torch.device) -> ProcessGroup:
    """Join the process group that torchrun described, or return the single-process group.

    Args:
        device: this process's device; CUDA processes use NCCL, CPU processes gloo.
    Returns:
        the ProcessGroup of this process.
    """
    if not launched_by_torchrun():
        return SINGLE
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        options = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, timeout=timedelta(minutes=30), **options)
    return ProcessGroup(rank, world_size, local_rank)


def local_device(name: str) -> str:
    """The device a torchrun process should use for ``--device name``: cuda means cuda:LOCAL_RANK."""
    if launched_by_torchrun() and name in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return name


def shutdown(finished: bool = True) -> None:
    """Leave the process group, if this process joined one. ``finished``: this rank's work ended
    normally, so it first waits for the others (gloo aborts a process that tears its group down while
    a peer, still writing rank 0's images, holds the connection); after an error it leaves at once."""
    if dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def share(total: int, group: ProcessGroup) -> tuple[int, int]:
    """(first, count): this rank's contiguous range of ``total`` items, ranks differing by at most one."""
    base, extra = divmod(total, group.world_size)
    first = group.rank * base + min(group.rank, extra)
    return first, base + (1 if group.rank < extra else 0)


def sum_all(tensor: torch.Tensor, group: ProcessGroup) -> torch.Tensor:
    """The elementwise sum of ``tensor`` over ranks, in place (unchanged in a single process)."""
    if group.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def sum_tensors(tensors: list[torch.Tensor], group: ProcessGroup) -> list[torch.Tensor]:
    """Each tensor summed over ranks (one flat all-reduce); the tensors themselves in a single process."""
    if not group.distributed:
        return tensors
    flat = torch.cat([t.flatten() for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    return [
        chunk.view_as(t).clone() for t, chunk in zip(tensors, flat.split([t.numel() for t in tensors]), strict=True)
    ]


def sum_gradients(parameters: list[torch.nn.Parameter], group: ProcessGroup) -> None:
    """Sum every parameter's gradient over ranks (one flat all-reduce)."""
    if not group.distributed:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    for parameter, summed in zip(parameters, sum_tensors(grads, group), strict=True):
        parameter.grad = summed


def gather_rows(tensor: torch.Tensor, group: ProcessGroup) -> torch.Tensor:
    """Every rank's rows of ``tensor`` concatenated in rank order (ranks may hold different counts)."""
    if not group.distributed:
        return tensor
    counts = [None] * group.world_size
    dist.all_gather_object(counts, int(tensor.shape[0]))
    pieces = [torch.empty((count, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device) for count in counts]
    padded_rows = max(counts)
    padded = torch.zeros((padded_rows, *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    padded[: tensor.shape[0]] = tensor
    gathered = [torch.empty_like(padded) for _ in range(group.world_size)]
    dist.all_gather(gathered, padded.contiguous())
    for piece, full, count in zip(pieces, gathered, counts, strict=True):
        piece.copy_(full[:count])
    return torch.cat(pieces)


def barrier(group: ProcessGroup) -> None:
    if group.distributed:
        dist.barrier()


def check_divisible(name: str, total: int, group: ProcessGroup) -> None:
    """ConfigError unless every rank gets at least one of ``total`` items."""
    if total < group.world_size:
        raise ConfigError(f"{name} ({total}) must be at least the number of processes ({group.world_size})")
