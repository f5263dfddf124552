"""Fused Langevin update: x' = x + (delta^2/2)(g - x/sigma^2) + delta*z in one pass.

z is drawn in the kernel from Philox (``tl.randn(seed, offset + e)`` for logical element e), so no
noise tensor exists; or it is read from a given tensor to replay a noise sequence. Optional in
the same pass: clamping, and per-sample partial sums of ||g||^2 and ||x||^2 for diagnostics.
Inputs may have any strides; the result is contiguous.
"""

import torch
import triton
import triton.language as tl

from genconv.kernels.launch import check_device, check_dtype, launch


def _configs() -> list[triton.Config]:
    return [triton.Config({"BLOCK": block}, num_warps=warps) for block, warps in ((1024, 4), (512, 4), (2048, 8))]


def _as_4d(tensor: torch.Tensor) -> torch.Tensor:
    """View [B, ...] (up to 4 dims) as [B, C, H, W] without copying."""
    while tensor.dim() < 4:
        tensor = tensor.unsqueeze(-1)
    if tensor.dim() > 4:
        raise ValueError(f"tensors of up to 4 dimensions are supported, got shape {list(tensor.shape)}")
    return tensor


@triton.autotune(configs=_configs(), key=["per_sample"], reset_to_zero=["partial_ptr"])
@triton.jit(do_not_specialize=["seed", "offset"])
def _langevin_update_kernel(
    x_ptr,
    grad_ptr,
    noise_ptr,
    out_ptr,
    partial_ptr,
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
    partial_blocks,
    half_delta_sq,
    sigma_sq,
    delta,
    seed,
    offset,
    clamp_low,
    clamp_high,
    HAS_NOISE: tl.constexpr,
    COUNTER_FROM_PTR: tl.constexpr,
    CLAMP: tl.constexpr,
    REDUCE: tl.constexpr,
    BLOCK: tl.constexpr,
):
    sample = tl.program_id(0).to(tl.int64)
    block = tl.program_id(1)
    offs = block * BLOCK + tl.arange(0, BLOCK)
    mask = offs < per_sample
    i3 = offs % size3
    i2 = (offs // size3) % size2
    i1 = offs // (size3 * size2)
    x = tl.load(x_ptr + sample * x_s0 + i1 * x_s1 + i2 * x_s2 + i3 * x_s3, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(grad_ptr + sample * g_s0 + i1 * g_s1 + i2 * g_s2 + i3 * g_s3, mask=mask, other=0.0).to(tl.float32)
    counter = sample * per_sample + offs
    if HAS_NOISE:
        z = tl.load(noise_ptr + sample * n_s0 + i1 * n_s1 + i2 * n_s2 + i3 * n_s3, mask=mask, other=0.0)
        z = z.to(tl.float32)
    elif COUNTER_FROM_PTR:
        z = tl.randn(tl.load(counter_ptr), offset + tl.load(counter_ptr + 1) + counter)
    else:
        z = tl.randn(seed, offset + counter)
    new = x + half_delta_sq * (g - x / sigma_sq) + delta * z
    if CLAMP:
        new = tl.minimum(tl.maximum(new, clamp_low), clamp_high)
    tl.store(out_ptr + counter, new.to(out_ptr.dtype.element_ty), mask=mask)
    if REDUCE:
        slot = partial_ptr + (sample * partial_blocks + block) * 2
        tl.store(slot, tl.sum(tl.where(mask, g * g, 0.0), axis=0))
        tl.store(slot + 1, tl.sum(tl.where(mask, x * x, 0.0), axis=0))


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
    norms: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Langevin step of the GCN convention, fused; same contract as the reference twin.

    Args:
        x: chain states [B, ...] (up to 4 dims), float32 or bfloat16, any strides.
        grad_f: df/dx, same shape.
        delta, sigma: step size and reference std.
        seed, offset: in-kernel Philox noise, element e at counter offset + e (used unless ``noise``);
            ``seed`` may be an int64 device tensor [seed, base] read by the kernel (counter
            offset + base + e), so a captured CUDA graph replays with new values.
        noise: standard normals shaped like x, read instead of generating.
        clamp: optional (low, high) bounds on the new state.
        norms: also return per-sample ||grad_f||^2 and ||x||^2 (float32 [B]).
    Returns:
        the new states (contiguous, x's dtype), and with ``norms`` the two sums of squares.
    """
    check_dtype("x", x)
    if grad_f.shape != x.shape or (noise is not None and noise.shape != x.shape):
        raise ValueError("grad_f and noise must have the shape of x")
    if noise is None and seed is None:
        raise ValueError("langevin_update needs either noise or a seed")
    counter = seed if isinstance(seed, torch.Tensor) else None
    check_device(x, grad_f, *(() if noise is None else (noise,)), *(() if counter is None else (counter,)))
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    batch = x.shape[0]
    per_sample = x[0].numel() if batch else 0
    x4, g4 = _as_4d(x), _as_4d(grad_f)
    n4 = _as_4d(noise) if noise is not None else x4
    max_blocks = triton.cdiv(per_sample, min(c.kwargs["BLOCK"] for c in _configs()))
    partial = torch.zeros((batch, max_blocks, 2), dtype=torch.float32, device=x.device) if norms else out
    low, high = clamp if clamp is not None else (0.0, 0.0)
    if batch and per_sample:
        launch(
            _langevin_update_kernel,
            lambda meta: (batch, triton.cdiv(per_sample, meta["BLOCK"])),
            _configs(),
            x4, g4, n4, out, partial, x4 if counter is None else counter,
            *x4.stride(), *g4.stride(), *n4.stride(),
            x4.shape[1], x4.shape[2], x4.shape[3], per_sample, max_blocks,
            float(delta) * float(delta) / 2.0, float(sigma) * float(sigma), float(delta),
            0 if counter is not None or seed is None else int(seed), int(offset), float(low), float(high),
            HAS_NOISE=noise is not None, COUNTER_FROM_PTR=counter is not None, CLAMP=clamp is not None,
            REDUCE=norms,
        )  # fmt: skip
    if not norms:
        return out
    sums = partial.sum(dim=1)
    return out, sums[:, 0], sums[:, 1]
