"""Fused Langevin update: x' = x + (delta^2/2)(g - x/sigma^2) + delta*z in one pass.

z is drawn in the kernel from Philox (``normal_at(seed, base + offset + e)`` for logical element e,
the seed and base read from an int64 device tensor), so no noise tensor exists; or it is read
from a given tensor to replay a noise sequence. Clamping runs in the same pass. Inputs may have
any strides (a cropped or channels-last gradient is read in place); the result is contiguous.
"""

import torch
import triton
import triton.language as tl

from genconv.kernels.launch import check_device, check_dtype, launch
from genconv.kernels.normal import COUNTER_ARGUMENTS, counter_tensor, normal_at, split_offset


def _configs() -> list[triton.Config]:
    return [triton.Config({"BLOCK": block}, num_warps=warps) for block, warps in ((1024, 4), (512, 4), (2048, 8))]


def _as_4d(tensor: torch.Tensor) -> torch.Tensor:
    """View [B, ...] (up to 4 dims) as [B, C, H, W] without copying."""
    while tensor.dim() < 4:
        tensor = tensor.unsqueeze(-1)
    if tensor.dim() > 4:
        raise ValueError(f"tensors of up to 4 dimensions are supported, got shape {list(tensor.shape)}")
    return tensor


@triton.autotune(configs=_configs(), key=["per_sample"])
@triton.jit(do_not_specialize=COUNTER_ARGUMENTS)
def _langevin_update_kernel(
    x_ptr,
    grad_ptr,
    noise_ptr,
    out_ptr,
    counter_ptr,
    x_s0,
    x_s1,
    x_s2,
    x_s3,
    g_s0,
    g_s1,
    g_s2,
    g_s3,
    n_s0,
    n_s1,
    n_s2,
    n_s3,
    size1,
    size2,
    size3,
    per_sample,
    half_delta_sq,
    sigma_sq,
    delta,
    offset_low,
    offset_high,
    clamp_low,
    clamp_high,
    HAS_NOISE: tl.constexpr,
    CLAMP: tl.constexpr,
    BLOCK: tl.constexpr,
):
    sample = tl.program_id(0).to(tl.int64)
    block = tl.program_id(1)
    offs = block * BLOCK + tl.arange(0, BLOCK)
    mask = offs < per_sample
    i3 = offs % size3
    i2 = (offs // size3) % size2
    i1 = offs // (size3 * size2)
    x = tl.load(x_ptr + sample * x_s0 + (i1 * x_s1 + i2 * x_s2 + i3 * x_s3), mask=mask, other=0.0).to(tl.float32)
    g = tl.load(grad_ptr + sample * g_s0 + (i1 * g_s1 + i2 * g_s2 + i3 * g_s3), mask=mask, other=0.0).to(tl.float32)
    element = sample * per_sample + offs
    if HAS_NOISE:
        z = tl.load(noise_ptr + sample * n_s0 + (i1 * n_s1 + i2 * n_s2 + i3 * n_s3), mask=mask, other=0.0)
        z = z.to(tl.float32)
    else:
        base = tl.load(counter_ptr + 1) + (offset_high.to(tl.int64) << 31) + offset_low
        z = normal_at(tl.load(counter_ptr), base + element)
    new = x + half_delta_sq * (g - x / sigma_sq) + delta * z
    if CLAMP:
        new = tl.minimum(tl.maximum(new, clamp_low), clamp_high)
    tl.store(out_ptr + element, new.to(out_ptr.dtype.element_ty), mask=mask)


# (delta^2 / 2, sigma^2, delta, offset low and high int32 halves, clamp low, high): the scalar arguments of every
# kernel with the fused update, in their order
UpdateScalars = tuple[float, float, float, int, int, float, float]


def update_arguments(
    delta: float,
    sigma: float,
    seed: int | torch.Tensor | None,
    offset: int,
    noise: torch.Tensor | None,
    clamp: tuple[float, float] | None,
    device: torch.device,
) -> tuple[torch.Tensor, UpdateScalars]:
    """The counter tensor ([seed, base], read only without ``noise``) and the scalar arguments a kernel
    with the fused Langevin update takes."""
    counter = counter_tensor(seed, device, needed=noise is None)
    low, high = clamp if clamp is not None else (0.0, 0.0)
    offset_low, offset_high = split_offset(int(offset))
    scalars = (float(delta) * float(delta) / 2.0, float(sigma) * float(sigma), float(delta), offset_low, offset_high,
               float(low), float(high))  # fmt: skip
    return counter, scalars


def langevin_update(
    x: torch.Tensor,
    grad_f: torch.Tensor,
    delta: float,
    sigma: float,
    *,
    seed: int | torch.Tensor | None = None,
    offset: int = 0,
    noise: torch.Tensor | None = None,
    clamp: tuple[float, float] | None = None,
) -> torch.Tensor:
    """One Langevin step of the GCN convention, fused; same contract as the reference twin.

    Args:
        x: chain states [B, ...] (up to 4 dims), float32 or bfloat16, any strides.
        grad_f: df/dx, same shape, any strides and dtype of the two.
        delta, sigma: step size and reference std.
        seed, offset: in-kernel Philox noise, element e at counter offset + e (used unless ``noise``);
            ``seed`` may be an int64 device tensor [seed, base] read by the kernel (counter
            offset + base + e), so a captured CUDA graph replays with new values.
        noise: standard normals shaped like x, read instead of generating.
        clamp: optional (low, high) bounds on the new state.
    Returns:
        the new states (contiguous, x's dtype).
    """
    check_dtype("x", x)
    if grad_f.shape != x.shape or (noise is not None and noise.shape != x.shape):
        raise ValueError("grad_f and noise must have the shape of x")
    if noise is None and seed is None:
        raise ValueError("langevin_update needs either noise or a seed")
    check_device(x, grad_f, *(() if noise is None else (noise,)), *((seed,) if isinstance(seed, torch.Tensor) else ()))
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    batch = x.shape[0]
    per_sample = x[0].numel() if batch else 0
    x4, g4 = _as_4d(x), _as_4d(grad_f)
    n4 = _as_4d(noise) if noise is not None else x4
    counter, scalars = update_arguments(delta, sigma, seed, offset, noise, clamp, x.device)
    if batch and per_sample:
        launch(
            _langevin_update_kernel,
            lambda meta: (batch, triton.cdiv(per_sample, meta["BLOCK"])),
            _configs(), _configs()[0],
            x4, g4, n4, out, counter,
            *x4.stride(), *g4.stride(), *n4.stride(),
            x4.shape[1], x4.shape[2], x4.shape[3], per_sample,
            *scalars,
            HAS_NOISE=noise is not None, CLAMP=clamp is not None,
        )  # fmt: skip
    return out
