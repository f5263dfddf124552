"""Elementwise Triton kernels that finish or feed a cuDNN convolution in one pass each.

When cuDNN's convolution serves a layer pass (``cudnn_candidate.py``), what the fused conv kernels
do in their epilogue or as they load runs here instead, in one memory pass:

- ``bias_act_mask``: h = act(pre + b) and the mask 1[pre + b > 0] (or, for the summed top, per-image
  partial sums of h, or the mask alone);
- ``masked_coefficients``: G * act'(mask), the input of the next top-down convolution (or act'(mask)
  alone for a unit upstream gradient).

Both walk [B, C, H, W] tensors of any strides in channels-last order and write channels-last.
"""

import torch
import triton
import triton.language as tl

from genconv.kernels.implicit_gemm import gated
from genconv.kernels.launch import check_device, launch

_BLOCK = 1024


def _configs() -> list[triton.Config]:
    return [triton.Config({"BLOCK": _BLOCK}, num_warps=4), triton.Config({"BLOCK": 2048}, num_warps=8)]


@triton.jit
def _nhwc_offsets(offs, channels, width):
    """(channel, row, column) of the elements ``offs`` of one image walked in channels-last order."""
    channel = offs % channels
    pixel = offs // channels
    return channel, pixel // width, pixel % width


@triton.autotune(configs=_configs(), key=["per_sample"], reset_to_zero=["partial_ptr"])
@triton.jit
def _bias_act_mask_kernel(
    pre_ptr,
    bias_ptr,
    out_ptr,
    mask_ptr,
    partial_ptr,
    p_s0,
    p_s1,
    p_s2,
    p_s3,
    o_s0,
    o_s1,
    o_s2,
    o_s3,
    channels,
    width,
    per_sample,
    partial_blocks,
    slope,
    HAS_BIAS: tl.constexpr,
    STORE_OUTPUT: tl.constexpr,
    STORE_PARTIAL: tl.constexpr,
    BLOCK: tl.constexpr,
):
    sample = tl.program_id(0).to(tl.int64)
    block = tl.program_id(1)
    offs = block * BLOCK + tl.arange(0, BLOCK)
    ok = offs < per_sample
    channel, row, col = _nhwc_offsets(offs, channels, width)
    pre = tl.load(pre_ptr + sample * p_s0 + (channel * p_s1 + row * p_s2 + col * p_s3), mask=ok, other=0.0)
    pre = pre.to(tl.float32)
    if HAS_BIAS:
        pre += tl.load(bias_ptr + channel, mask=ok, other=0.0).to(tl.float32)
    on = pre > 0
    h = tl.where(on, pre, pre * slope)
    out_offsets = sample * o_s0 + (channel * o_s1 + row * o_s2 + col * o_s3)
    tl.store(mask_ptr + out_offsets, on, mask=ok)
    if STORE_OUTPUT:
        tl.store(out_ptr + out_offsets, h.to(out_ptr.dtype.element_ty), mask=ok)
    if STORE_PARTIAL:
        tl.store(partial_ptr + sample * partial_blocks + block, tl.sum(tl.where(ok, h, 0.0), axis=0))


@triton.autotune(configs=_configs(), key=["per_sample"])
@triton.jit
def _masked_coefficients_kernel(
    grad_ptr,
    mask_ptr,
    out_ptr,
    g_s0,
    g_s1,
    g_s2,
    g_s3,
    m_s0,
    m_s1,
    m_s2,
    m_s3,
    o_s0,
    o_s1,
    o_s2,
    o_s3,
    channels,
    width,
    per_sample,
    slope,
    LEAKY: tl.constexpr,
    UNIT_GRAD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    sample = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < per_sample
    channel, row, col = _nhwc_offsets(offs, channels, width)
    on = tl.load(mask_ptr + sample * m_s0 + (channel * m_s1 + row * m_s2 + col * m_s3), mask=ok, other=0)
    if UNIT_GRAD:
        value = tl.where(on != 0, 1.0, slope)
    else:
        g = tl.load(grad_ptr + sample * g_s0 + (channel * g_s1 + row * g_s2 + col * g_s3), mask=ok, other=0.0)
        value = gated(g.to(tl.float32), on != 0, slope, LEAKY)
    tl.store(out_ptr + sample * o_s0 + (channel * o_s1 + row * o_s2 + col * o_s3),
             value.to(out_ptr.dtype.element_ty), mask=ok)  # fmt: skip


def _grid(batch: int, per_sample: int):
    return lambda meta: (batch, triton.cdiv(per_sample, meta["BLOCK"]))


def bias_act_mask(
    pre: torch.Tensor,
    bias: torch.Tensor | None,
    slope: float,
    out_dtype: torch.dtype,
    *,
    summed: bool = False,
    score: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(h, mask) of a convolution's output ``pre`` [B, C, H, W]; with ``summed`` (the stationary top)
    (per-image sum of h as float32 [B], or None without ``score``; mask). Channels-last results."""
    check_device(pre, *(() if bias is None else (bias,)))
    batch, channels, height, width = pre.shape
    per_sample = channels * height * width
    layout = torch.channels_last
    mask = torch.empty(pre.shape, dtype=torch.bool, device=pre.device, memory_format=layout)
    out = mask if summed else torch.empty(pre.shape, dtype=out_dtype, device=pre.device, memory_format=layout)
    keeps_score = summed and score
    blocks = triton.cdiv(per_sample, min(c.kwargs["BLOCK"] for c in _configs()))
    partial = torch.zeros((batch, blocks), dtype=torch.float32, device=pre.device) if keeps_score else mask
    if batch and per_sample:
        launch(_bias_act_mask_kernel, _grid(batch, per_sample), _configs(), _configs()[0],
               pre, pre if bias is None else bias, out, mask, partial, *pre.stride(), *mask.stride(),
               channels, width, per_sample, blocks, float(slope),
               HAS_BIAS=bias is not None, STORE_OUTPUT=not summed, STORE_PARTIAL=keeps_score)  # fmt: skip
    if not summed:
        return out, mask
    return (partial.sum(dim=1) if score else None), mask


def masked_coefficients(
    grad: torch.Tensor | None, mask: torch.Tensor, slope: float, out_dtype: torch.dtype
) -> torch.Tensor:
    """grad * act'(mask) ([B, C, H, W], channels-last, ``out_dtype``); act'(mask) itself when grad is None."""
    check_device(mask, *(() if grad is None else (grad,)))
    batch, channels, height, width = mask.shape
    per_sample = channels * height * width
    out = torch.empty(mask.shape, dtype=out_dtype, device=mask.device, memory_format=torch.channels_last)
    source = mask if grad is None else grad
    if batch and per_sample:
        launch(_masked_coefficients_kernel, _grid(batch, per_sample), _configs(), _configs()[0],
               source, mask, out, *source.stride(), *mask.stride(), *out.stride(), channels, width, per_sample,
               float(slope), LEAKY=slope != 0, UNIT_GRAD=grad is None)  # fmt: skip
    return out
