"""Counter-based standard normals: element e of the result is ``tl.randn(seed, offset + e)``."""

import math

import torch
import triton
import triton.language as tl

from genconv.kernels.launch import check_device, launch


def _configs() -> list[triton.Config]:
    return [triton.Config({"BLOCK": 1024}, num_warps=4), triton.Config({"BLOCK": 4096}, num_warps=8)]


@triton.autotune(configs=_configs(), key=["numel"])
@triton.jit(do_not_specialize=["seed", "offset"])
def _standard_normal_kernel(out_ptr, numel, seed, offset, BLOCK: tl.constexpr):
    start = tl.program_id(0).to(tl.int64) * BLOCK
    offs = start + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, tl.randn(seed, offset + offs), mask=offs < numel)


def standard_normal(
    seed: int, offset: int, shape: tuple[int, ...] | torch.Size, device: torch.device | str = "cuda"
) -> torch.Tensor:
    """float32 N(0, 1) numbers of ``shape`` drawn at counters offset + e; see ``reference.philox_normal``."""
    if not 0 <= seed < 2**63 or offset < 0:
        raise ValueError(f"seed must be in [0, 2**63) and offset >= 0, got {seed}, {offset}")
    out = torch.empty(tuple(shape), dtype=torch.float32, device=device)
    check_device(out)
    numel = math.prod(out.shape)
    if numel:
        launch(_standard_normal_kernel, lambda meta: (triton.cdiv(numel, meta["BLOCK"]),), _configs(),
               out, numel, int(seed), int(offset))  # fmt: skip
    return out
