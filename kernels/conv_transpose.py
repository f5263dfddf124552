"""Top-down layer: conv_transpose(G * act'(r), W), the mask applied as tiles are loaded.

The gradient G with respect to a layer's output goes back to the layer's input through the
transposed convolution; act'(r) is 1 where the bottom-up mask is on and ``slope`` where it is
off, so no masked copy of G is ever written. With stride s the input pixels split into s*s phases
(by (row + padding) mod s and likewise for columns); within a phase only kernel taps of the same
residue contribute, so each phase is a dense implicit GEMM: rows M = that phase's input pixels,
columns N = input channels, reduction K = output channels x taps of the phase.

For the bottom layer the Langevin update is fused into the epilogue: the image-space gradient
stays in registers and the kernel writes the next chain state,
x' = x + (delta^2/2)(g - x/sigma^2) + delta*z, z from in-kernel Philox or a given tensor.
"""

import torch
import triton
import triton.language as tl

from genconv.kernels.launch import check_device, check_dtype, dot_dtype, interpreter_tiles, interpreting, launch


def _configs() -> list[triton.Config]:
    shapes = ((64, 64, 32, 4, 3), (128, 64, 32, 4, 3), (64, 32, 32, 4, 3), (64, 16, 64, 4, 3), (32, 32, 32, 2, 2))
    return [
        triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k}, num_warps=warps, num_stages=stages)
        for m, n, k, warps, stages in shapes
    ]


@triton.autotune(configs=_configs(), key=["c_in", "c_out", "h_in", "w_in", "batch", "stride"])
@triton.jit(do_not_specialize=["seed", "offset"])
def _masked_conv_transpose_kernel(
    grad_ptr,
    mask_ptr,
    w_ptr,
    out_ptr,
    x_ptr,
    noise_ptr,
    counter_ptr,
    g_s0,
    g_s1,
    g_s2,
    g_s3,
    m_s0,
    m_s1,
    m_s2,
    m_s3,
    w_s0,
    w_s1,
    w_s2,
    w_s3,
    x_s0,
    x_s1,
    x_s2,
    x_s3,
    n_s0,
    n_s1,
    n_s2,
    n_s3,
    batch,
    c_in,
    h_in,
    w_in,
    c_out,
    h_out,
    w_out,
    kernel_w,
    stride,
    padding,
    slope,
    half_delta_sq,
    sigma_sq,
    delta,
    seed,
    offset,
    clamp_low,
    clamp_high,
    UNIT_GRAD: tl.constexpr,
    FUSE_LANGEVIN: tl.constexpr,
    HAS_NOISE: tl.constexpr,
    COUNTER_FROM_PTR: tl.constexpr,
    CLAMP: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    phase = tl.program_id(2)
    residue_h = phase // stride
    residue_w = phase % stride
    # first input row/column of this phase: the smallest i >= 0 with (i + padding) % stride == residue
    first_h = (residue_h + (stride - 1) * padding) % stride
    first_w = (residue_w + (stride - 1) * padding) % stride
    rows_h = tl.where(first_h < h_in, (h_in - first_h + stride - 1) // stride, 0)
    rows_w = tl.where(first_w < w_in, (w_in - first_w + stride - 1) // stride, 0)
    taps_h = tl.where(residue_h < kernel_w, (kernel_w - residue_h + stride - 1) // stride, 0)
    taps_w = tl.where(residue_w < kernel_w, (kernel_w - residue_w + stride - 1) // stride, 0)
    phase_pixels = rows_h * rows_w
    reduction = c_out * taps_h * taps_w

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < batch * phase_pixels
    mask_n = offs_n < c_in
    sample = (offs_m // tl.maximum(phase_pixels, 1)).to(tl.int64)
    within = offs_m % tl.maximum(phase_pixels, 1)
    row = first_h + (within // tl.maximum(rows_w, 1)) * stride
    col = first_w + (within % tl.maximum(rows_w, 1)) * stride
    base_h = (row + padding) // stride
    base_w = (col + padding) // stride
    phase_taps = tl.maximum(taps_h * taps_w, 1)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for start in range(0, reduction, BLOCK_K):
        offs_k = start + tl.arange(0, BLOCK_K)
        mask_k = offs_k < reduction
        channel = offs_k // phase_taps
        tap = offs_k % phase_taps
        tap_h = tap // tl.maximum(taps_w, 1)
        tap_w = tap % tl.maximum(taps_w, 1)
        out_h = base_h[:, None] - tap_h[None, :]
        out_w = base_w[:, None] - tap_w[None, :]
        inside = (out_h >= 0) & (out_h < h_out) & (out_w >= 0) & (out_w < w_out)
        load_mask = mask_m[:, None] & mask_k[None, :] & inside
        if UNIT_GRAD:
            upstream = tl.where(load_mask, 1.0, 0.0)
        else:
            g_ptrs = grad_ptr + sample[:, None] * g_s0 + channel[None, :] * g_s1 + out_h * g_s2 + out_w * g_s3
            upstream = tl.load(g_ptrs, mask=load_mask, other=0.0).to(tl.float32)
        m_ptrs = mask_ptr + sample[:, None] * m_s0 + channel[None, :] * m_s1 + out_h * m_s2 + out_w * m_s3
        on = tl.load(m_ptrs, mask=load_mask, other=0) != 0
        coefficients = tl.where(on, upstream, upstream * slope)
        kernel_h_index = residue_h + tap_h * stride
        kernel_w_index = residue_w + tap_w * stride
        w_ptrs = w_ptr + channel[:, None] * w_s0 + offs_n[None, :] * w_s1 + kernel_h_index[:, None] * w_s2
        w_ptrs += kernel_w_index[:, None] * w_s3
        weights = tl.load(w_ptrs, mask=mask_k[:, None] & mask_n[None, :], other=0.0)
        acc += tl.dot(coefficients.to(DOT_DTYPE), weights.to(DOT_DTYPE))

    valid = mask_m[:, None] & mask_n[None, :]
    channel_in = offs_n[None, :].to(tl.int64)
    counter = ((sample[:, None] * c_in + channel_in) * h_in + row[:, None]) * w_in + col[:, None]
    if FUSE_LANGEVIN:
        x_ptrs = x_ptr + sample[:, None] * x_s0 + channel_in * x_s1 + row[:, None] * x_s2 + col[:, None] * x_s3
        x = tl.load(x_ptrs, mask=valid, other=0.0).to(tl.float32)
        if HAS_NOISE:
            n_ptrs = noise_ptr + sample[:, None] * n_s0 + channel_in * n_s1 + row[:, None] * n_s2
            n_ptrs += col[:, None] * n_s3
            z = tl.load(n_ptrs, mask=valid, other=0.0).to(tl.float32)
        elif COUNTER_FROM_PTR:
            z = tl.randn(tl.load(counter_ptr), offset + tl.load(counter_ptr + 1) + counter)
        else:
            z = tl.randn(seed, offset + counter)
        result = x + half_delta_sq * (acc - x / sigma_sq) + delta * z
        if CLAMP:
            result = tl.minimum(tl.maximum(result, clamp_low), clamp_high)
    else:
        result = acc
    tl.store(out_ptr + counter, result.to(out_ptr.dtype.element_ty), mask=valid)


# (x, delta, sigma, seed or [seed, base] tensor, offset, noise, clamp) of a fused Langevin update
FusedUpdate = tuple[
    torch.Tensor, float, float, int | torch.Tensor, int, torch.Tensor | None, tuple[float, float] | None
]


def _launch_transpose(
    grad: torch.Tensor | None,
    mask: torch.Tensor,
    weight: torch.Tensor,
    stride: int,
    padding: int,
    slope: float,
    input_hw: tuple[int, int],
    langevin: "FusedUpdate | None",
) -> torch.Tensor:
    unit_grad = grad is None
    grad = mask if unit_grad else grad  # with a unit gradient only the mask is read
    out_dtype = weight.dtype if unit_grad else grad.dtype
    if not unit_grad:
        check_dtype("grad", grad)
    check_device(grad, mask, weight)
    if grad.dim() != 4 or mask.shape != grad.shape or weight.dim() != 4 or weight.shape[0] != grad.shape[1]:
        raise ValueError(
            f"expected grad and mask [B, C_out, H', W'] and weight [C_out, C_in, K, K]; got {list(grad.shape)}, "
            f"{list(mask.shape)}, {list(weight.shape)}"
        )
    batch, c_out, h_out, w_out = grad.shape
    _, c_in, kernel, _ = weight.shape
    h_in, w_in = input_hw
    if (h_in + 2 * padding - kernel) // stride + 1 != h_out or (w_in + 2 * padding - kernel) // stride + 1 != w_out:
        raise ValueError(f"input size {h_in}x{w_in} does not map to the gradient's {h_out}x{w_out}")
    if langevin is None:
        out = torch.empty((batch, c_in, h_in, w_in), dtype=out_dtype, device=grad.device)
        x = noise = counter = out
        scalars = (0.0, 1.0, 0.0, 0, 0, 0.0, 0.0)
        flags = {"UNIT_GRAD": unit_grad, "FUSE_LANGEVIN": False, "HAS_NOISE": False, "COUNTER_FROM_PTR": False,
                 "CLAMP": False}  # fmt: skip
    else:
        x, delta, sigma, seed, offset, noise, clamp = langevin
        check_dtype("x", x)
        from_pointer = isinstance(seed, torch.Tensor)
        check_device(grad, x, *(() if noise is None else (noise,)), *((seed,) if from_pointer else ()))
        if x.shape != (batch, c_in, h_in, w_in) or (noise is not None and noise.shape != x.shape):
            raise ValueError(f"x and noise must have shape {[batch, c_in, h_in, w_in]}, got {list(x.shape)}")
        out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        low, high = clamp if clamp is not None else (0.0, 0.0)
        seed_value = 0 if from_pointer or seed is None else seed
        scalars = (delta * delta / 2.0, sigma * sigma, delta, seed_value, offset, low, high)
        flags = {
            "UNIT_GRAD": unit_grad,
            "FUSE_LANGEVIN": True,
            "HAS_NOISE": noise is not None,
            "COUNTER_FROM_PTR": from_pointer,
            "CLAMP": clamp is not None,
        }
        noise = x if noise is None else noise
        counter = seed if from_pointer else x
    phase_rows = batch * triton.cdiv(h_in, stride) * triton.cdiv(w_in, stride)
    taps = triton.cdiv(kernel, stride) ** 2
    configs = interpreter_tiles(phase_rows, c_in, c_out * taps) if interpreting() else _configs()
    if out.numel():
        launch(
            _masked_conv_transpose_kernel,
            lambda meta: (triton.cdiv(phase_rows, meta["BLOCK_M"]), triton.cdiv(c_in, meta["BLOCK_N"]), stride**2),
            configs,
            grad, mask, weight, out, x, noise, counter,
            *grad.stride(), *mask.stride(), *weight.stride(), *x.stride(), *noise.stride(),
            batch, c_in, h_in, w_in, c_out, h_out, w_out, kernel, stride, padding, float(slope),
            float(scalars[0]), float(scalars[1]), float(scalars[2]), int(scalars[3]), int(scalars[4]),
            float(scalars[5]), float(scalars[6]),
            DOT_DTYPE=dot_dtype(out.dtype), **flags,
        )  # fmt: skip
    return out


def masked_conv_transpose(
    grad: torch.Tensor | None,
    mask: torch.Tensor,
    weight: torch.Tensor,
    stride: int,
    padding: int,
    slope: float,
    input_hw: tuple[int, int],
) -> torch.Tensor:
    """One top-down layer, mask applied on load; the contract of ``reference.masked_conv_transpose``
    (``grad`` None: a unit upstream gradient, only the mask is read)."""
    return _launch_transpose(grad, mask, weight, stride, padding, slope, input_hw, None)


def masked_conv_transpose_langevin(
    grad: torch.Tensor | None,
    mask: torch.Tensor,
    weight: torch.Tensor,
    stride: int,
    padding: int,
    slope: float,
    x: torch.Tensor,
    delta: float,
    sigma: float,
    *,
    seed: int | torch.Tensor | None = None,
    offset: int = 0,
    noise: torch.Tensor | None = None,
    clamp: tuple[float, float] | None = None,
) -> torch.Tensor:
    """The bottom top-down layer with the Langevin update in its epilogue: returns the next state.

    ``seed`` may be an int64 device tensor [seed, base], as for ``langevin_update``.
    """
    if noise is None and seed is None:
        raise ValueError("masked_conv_transpose_langevin needs either noise or a seed")
    seed_argument = seed if isinstance(seed, torch.Tensor) or seed is None else int(seed)
    langevin = (x, float(delta), float(sigma), seed_argument, int(offset), noise, clamp)
    return _launch_transpose(grad, mask, weight, stride, padding, slope, (x.shape[-2], x.shape[-1]), langevin)
