"""Bottom-up layer: h = act(conv(x, W) + b) as an implicit GEMM, emitting the binary ReLU mask.

GEMM view: rows M = output pixels (B * H' * W'), columns N = output channels, reduction
K = C_in * KH * KW. Input patches are gathered on the fly (no im2col buffer); tl.dot accumulates
in float32. The epilogue adds the bias, applies ReLU or leaky ReLU and writes h and the mask
1[pre-activation > 0] (torch.bool). For the top of a stationary model it writes per-pixel partial
sums over each channel tile instead of h, so f(I) never needs the top activations in memory.
"""

import torch
import triton
import triton.language as tl

from genconv.kernels.launch import check_device, check_dtype, dot_dtype, interpreter_tiles, interpreting, launch


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _configs() -> list[triton.Config]:
    shapes = ((64, 64, 32, 4, 3), (128, 64, 32, 4, 3), (64, 32, 32, 4, 3), (128, 128, 32, 8, 3), (32, 32, 32, 2, 2))
    return [
        triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k}, num_warps=warps, num_stages=stages)
        for m, n, k, warps, stages in shapes
    ]


@triton.autotune(configs=_configs(), key=["c_out", "rows", "reduction"], reset_to_zero=["partial_ptr"])
@triton.jit
def _conv_act_forward_kernel(
    x_ptr,
    w_ptr,
    b_ptr,
    out_ptr,
    mask_ptr,
    partial_ptr,
    x_s0,
    x_s1,
    x_s2,
    x_s3,
    w_s0,
    w_s1,
    w_s2,
    w_s3,
    h_in,
    w_in,
    c_out,
    h_out,
    w_out,
    kernel_w,
    rows,
    reduction,
    stride,
    padding,
    slope,
    HAS_BIAS: tl.constexpr,
    STORE_OUTPUT: tl.constexpr,
    STORE_PARTIAL_SUM: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < rows
    mask_n = offs_n < c_out
    pixels = h_out * w_out
    sample = (offs_m // pixels).to(tl.int64)
    pixel = offs_m % pixels
    row_in = (pixel // w_out) * stride - padding
    col_in = (pixel % w_out) * stride - padding
    kernel_area = kernel_w * kernel_w
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for start in range(0, reduction, BLOCK_K):
        offs_k = start + tl.arange(0, BLOCK_K)
        mask_k = offs_k < reduction
        channel = offs_k // kernel_area
        tap = offs_k % kernel_area
        tap_row = tap // kernel_w
        tap_col = tap % kernel_w
        rows_in = row_in[:, None] + tap_row[None, :]
        cols_in = col_in[:, None] + tap_col[None, :]
        inside = (rows_in >= 0) & (rows_in < h_in) & (cols_in >= 0) & (cols_in < w_in)
        a_mask = mask_m[:, None] & mask_k[None, :] & inside
        a_ptrs = x_ptr + sample[:, None] * x_s0 + channel[None, :] * x_s1 + rows_in * x_s2 + cols_in * x_s3
        a = tl.load(a_ptrs, mask=a_mask, other=0.0)
        w_ptrs = w_ptr + offs_n[None, :] * w_s0 + channel[:, None] * w_s1 + tap_row[:, None] * w_s2
        w_ptrs += tap_col[:, None] * w_s3
        w = tl.load(w_ptrs, mask=mask_k[:, None] & mask_n[None, :], other=0.0)
        acc += tl.dot(a.to(DOT_DTYPE), w.to(DOT_DTYPE))
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    on = acc > 0
    h = tl.where(on, acc, acc * slope)
    valid = mask_m[:, None] & mask_n[None, :]
    out_offs = (sample * c_out * pixels + pixel)[:, None] + offs_n[None, :].to(tl.int64) * pixels
    tl.store(mask_ptr + out_offs, on, mask=valid)
    if STORE_OUTPUT:
        tl.store(out_ptr + out_offs, h.to(out_ptr.dtype.element_ty), mask=valid)
    if STORE_PARTIAL_SUM:
        partial = tl.sum(tl.where(valid, h, 0.0), axis=1)
        tl.store(partial_ptr + pid_n.to(tl.int64) * rows + offs_m, partial, mask=mask_m)


def _launch_forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: int,
    slope: float,
    summed: bool,
    score: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    check_dtype("x", x)
    check_device(x, weight, *(() if bias is None else (bias,)))
    if x.dim() != 4 or weight.dim() != 4 or weight.shape[1] != x.shape[1]:
        raise ValueError(
            f"expected x [B, C, H, W] and weight [C_out, C, K, K]; got {list(x.shape)}, {list(weight.shape)}"
        )
    if weight.shape[2] != weight.shape[3]:
        raise ValueError(f"square kernels only, got {list(weight.shape[2:])}")
    batch, _, h_in, w_in = x.shape
    c_out, c_in, kernel, _ = weight.shape
    h_out, w_out = conv_output_size(h_in, kernel, stride, padding), conv_output_size(w_in, kernel, stride, padding)
    rows, reduction = batch * h_out * w_out, c_in * kernel * kernel
    mask = torch.empty((batch, c_out, h_out, w_out), dtype=torch.bool, device=x.device)
    out = mask if summed else torch.empty((batch, c_out, h_out, w_out), dtype=x.dtype, device=x.device)
    max_tiles_n = triton.cdiv(c_out, 16)
    partial = torch.zeros((max_tiles_n, rows), dtype=torch.float32, device=x.device) if summed and score else mask
    configs = interpreter_tiles(rows, c_out, reduction) if interpreting() else _configs()
    if rows:
        launch(
            _conv_act_forward_kernel,
            lambda meta: (triton.cdiv(rows, meta["BLOCK_M"]), triton.cdiv(c_out, meta["BLOCK_N"])),
            configs,
            x, weight, weight if bias is None else bias, out, mask, partial,
            *x.stride(), *weight.stride(),
            h_in, w_in, c_out, h_out, w_out, kernel, rows, reduction, stride, padding, float(slope),
            HAS_BIAS=bias is not None, STORE_OUTPUT=not summed, STORE_PARTIAL_SUM=summed and score,
            DOT_DTYPE=dot_dtype(x.dtype),
        )  # fmt: skip
    if summed:
        if not score:
            return None, mask
        return partial.sum(dim=0).view(batch, h_out * w_out).sum(dim=1), mask
    return out, mask


def conv_act_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int, slope: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One bottom-up layer, fused: (h, mask); the contract of ``reference.conv_act_forward``."""
    return _launch_forward(x, weight, bias, stride, padding, slope, summed=False)


def conv_act_forward_sum(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: int,
    slope: float,
    score: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The stationary top layer: (per-image sum of h as float32 [B], or None without ``score``; mask)."""
    return _launch_forward(x, weight, bias, stride, padding, slope, summed=True, score=score)
