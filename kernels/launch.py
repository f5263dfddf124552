"""What every Triton launcher shares: interpreter detection, the dot dtype policy, autotuning.

Dtype policy: tiles are loaded in their storage dtype and accumulated in float32; tl.dot takes
float32 operands (TF32 on tensor cores, as cuDNN's convolutions do by default) or bfloat16
operands when the chains run in bfloat16. ``GENCONV_TF32=0`` asks for IEEE float32 products
instead, in the fused kernels and in the cuDNN convolutions the backend may pick. Triton's CPU
interpreter mis-computes bfloat16 dots, so there both operands are upcast to float32.

``GENCONV_AUTOTUNE=0`` (and the interpreter) launch the config a launcher's shape heuristic
picks instead of autotuning, which keeps tests fast and deterministic.

``recording_launches()`` makes every launcher record its launch (kernel, configs, arguments)
instead of running it, on CPU tensors: the compile tier compiles exactly what the launchers would
launch, for a GPU target, on a machine without one.
"""

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import triton
import triton.language as tl

SUPPORTED_DTYPES = (torch.float32, torch.bfloat16)


def interpreting() -> bool:
    """True when TRITON_INTERPRET=1 runs kernels in Triton's CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def autotune_enabled() -> bool:
    """Autotune unless GENCONV_AUTOTUNE=0 or the interpreter runs the kernels."""
    return os.environ.get("GENCONV_AUTOTUNE", "1") != "0" and not interpreting()


# Autotuning keys carry the batch as a power-of-two bucket: the best tile of a layer depends on how
# many programs a batch gives the GPU (one image fills few SMs), so a tile tuned at B=1 is not reused
# at B=256, while batches of one bucket share one tuning. The kernels do not specialise on it.
BATCH_BUCKET = "batch_bucket"


def batch_bucket(batch: int) -> int:
    """The autotuning bucket of ``batch``: the next power of two (1, 2, 4, ... )."""
    return triton.next_power_of_2(max(int(batch), 1))


def tf32_enabled() -> bool:
    """Float32 convolutions on tensor cores take TF32 operands (10-bit mantissa) unless GENCONV_TF32=0."""
    return os.environ.get("GENCONV_TF32", "1") != "0"


def dot_dtype(storage: torch.dtype) -> tl.dtype:
    """The operand dtype of tl.dot for tiles stored in ``storage``."""
    if storage == torch.bfloat16 and not interpreting():
        return tl.bfloat16
    return tl.float32


# The shape heuristic sizes tiles for Hopper (sm_90: wgmma, 227 KB of shared memory a block). A few
# bfloat16 tiles that compile clean there spill registers on Ampere (sm_80) with Triton 3.9; GPUs
# before Hopper get their safe twins (``implicit_gemm.hopper_tiles_wanted``).
HOPPER = 90
_target_capability: int | None = None


@contextlib.contextmanager
def targeting(capability: int) -> Iterator[None]:
    """Pick tiles for GPUs of compute capability ``capability`` (major x 10 + minor) whatever the
    tensors' device: the compile tier records each target's launches so."""
    global _target_capability
    previous, _target_capability = _target_capability, capability
    try:
        yield
    finally:
        _target_capability = previous


def tile_capability(device: torch.device) -> int:
    """The compute capability the shape heuristic picks tiles for: ``targeting``'s, the CUDA device's,
    else Hopper's (recorded launches on CPU tensors, the interpreter)."""
    if _target_capability is not None:
        return _target_capability
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return major * 10 + minor
    return HOPPER


def check_dtype(name: str, tensor: torch.Tensor) -> None:
    if tensor.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{name} must be float32 or bfloat16 for the Triton kernels, got {tensor.dtype}")


def check_device(*tensors: torch.Tensor) -> None:
    """Kernels run on CUDA tensors, or on CPU tensors under the interpreter; all on one device."""
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise ValueError(f"all tensors must be on one device, got {sorted(map(str, devices))}")
    (device,) = devices
    if device.type != "cuda" and not interpreting() and _recorded is None:
        raise ValueError(f"the Triton kernels need CUDA tensors (or TRITON_INTERPRET=1), got {device}")


# Largest GEMM tile per axis in the interpreter, and the largest tile area (tests lower them to
# cross tile boundaries).
INTERPRETER_TILE_CAPS = {"BLOCK_M": 4096, "BLOCK_N": 128, "BLOCK_K": 128}
INTERPRETER_TILE_AREA = 65536
# Whether the interpreter's tile is a swapped one (``implicit_gemm``: tests set it to run that path).
INTERPRETER_SWAP = 0


def interpreter_tiles(rows: int, columns: int, reduction: int) -> list[triton.Config]:
    """One GEMM tile config for the interpreter: as large as the problem allows (it runs every
    program in Python, so fewer, bigger programs are faster), at least 16 per axis, within the caps."""

    def fit(axis: str, size: int, cap: int) -> int:
        return max(16, min(cap, INTERPRETER_TILE_CAPS[axis], triton.next_power_of_2(max(size, 1))))

    block_k = fit("BLOCK_K", reduction, INTERPRETER_TILE_AREA)
    block_n = fit("BLOCK_N", columns, INTERPRETER_TILE_AREA // block_k)
    block_m = fit("BLOCK_M", rows, INTERPRETER_TILE_AREA // block_k)
    tile = {"BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_K": block_k, "SWAP": INTERPRETER_SWAP}
    return [triton.Config(tile, num_warps=1)]


@dataclass
class Launch:
    """One launch as a launcher issued it: the kernel, the configs the autotuner could pick for it,
    the config the heuristic picks with autotuning off, and its arguments."""

    kernel: Any
    configs: list[triton.Config]
    heuristic: triton.Config
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


_recorded: list[Launch] | None = None


@contextlib.contextmanager
def recording_launches() -> Iterator[list[Launch]]:
    """Record launches instead of running them (CPU tensors are accepted); yields the record."""
    global _recorded
    previous, _recorded = _recorded, []
    try:
        yield _recorded
    finally:
        _recorded = previous


def launch(
    kernel: Any,
    grid: Callable[[dict[str, Any]], tuple[int, ...]],
    configs: Sequence[triton.Config],
    heuristic: triton.Config,
    *args: Any,
    **kwargs: Any,
) -> None:
    """Launch an autotuned kernel (over ``configs``), or ``heuristic`` when autotuning is off or
    ``configs`` holds it alone."""
    if _recorded is not None:
        _recorded.append(Launch(kernel, list(configs), heuristic, args, kwargs))
        return
    if autotune_enabled() and len(configs) > 1:
        kernel[grid](*args, **kwargs)
        return
    meta = {**kwargs, **heuristic.kwargs}
    kernel.fn[grid](*args, **meta, num_warps=heuristic.num_warps, num_stages=heuristic.num_stages)
