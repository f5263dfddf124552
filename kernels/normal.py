"""Counter-based standard normals: element e of the result is ``tl.randn(seed, offset + e)``.

Also the counter conventions every noise-drawing kernel shares: the seed and a base counter live
in an int64 device tensor [seed, base] (a captured CUDA graph replays with new values), and a
launch's own offset travels as two int32 halves, so a long chain never crosses from an i32 to an
i64 specialisation (and a recompile) when its counters pass 2^31.
"""

import math

import torch
import triton
import triton.language as tl

from genconv.kernels.launch import check_device, launch

_HALF = 31

# The counter offset moves every chain step. Triton would specialise these integer arguments on
# ==1 and %16, compiling the kernel again (seconds, and a lost CUDA graph) whenever a step's
# offset falls into another class; every kernel that takes them opts out.
COUNTER_ARGUMENTS = ["offset_low", "offset_high"]


def counter_tensor(seed: int | torch.Tensor | None, device: torch.device, needed: bool = True) -> torch.Tensor:
    """The int64 [seed, base] tensor a kernel reads: ``seed`` itself when it is one, else [seed, 0]."""
    if isinstance(seed, torch.Tensor):
        if seed.shape != (2,) or seed.dtype != torch.int64:
            raise ValueError(f"a counter must be an int64 tensor [seed, base], got {seed.dtype} {list(seed.shape)}")
        return seed
    if seed is None:
        if needed:
            raise ValueError("counter-based noise needs a seed")
        return torch.zeros(2, dtype=torch.int64, device=device)
    if not 0 <= int(seed) < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed}")
    return torch.tensor([int(seed), 0], dtype=torch.int64, device=device)


def split_offset(offset: int) -> tuple[int, int]:
    """``offset`` as (low 31 bits, the rest): both fit int32 for offsets below 2^62."""
    if not 0 <= offset < 2**62:
        raise ValueError(f"offset must be in [0, 2**62), got {offset}")
    return offset & ((1 << _HALF) - 1), offset >> _HALF


def _configs() -> list[triton.Config]:
    return [triton.Config({"BLOCK": 1024}, num_warps=4), triton.Config({"BLOCK": 4096}, num_warps=8)]


@triton.autotune(configs=_configs(), key=["numel"])
@triton.jit(do_not_specialize=COUNTER_ARGUMENTS)
def _standard_normal_kernel(out_ptr, counter_ptr, numel, offset_low, offset_high, BLOCK: tl.constexpr):
    start = tl.program_id(0).to(tl.int64) * BLOCK
    offs = start + tl.arange(0, BLOCK)
    base = tl.load(counter_ptr + 1) + (offset_high.to(tl.int64) << 31) + offset_low
    tl.store(out_ptr + offs, tl.randn(tl.load(counter_ptr), base + offs), mask=offs < numel)


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
        counter = counter_tensor(seed, out.device)
        low, high = split_offset(int(offset))
        launch(_standard_normal_kernel, lambda meta: (triton.cdiv(numel, meta["BLOCK"]),), _configs(), _configs()[0],
               out, counter, numel, low, high)  # fmt: skip
    return out
