"""The top-down pass as forward convolutions, and weights packed once per weight version.

A layer's top-down pass is the transposed convolution conv_transpose(G, W) with stride s and
padding p (W [C_out, C_in, K, K]). It equals one forward convolution (the sub-pixel identity):

    conv_transpose(G, W)[i] = sum_u G[q - u] W[r + s u],    i + p = q s + r,  0 <= r < s

so phase r of the output is a stride-1 correlation of G with the flipped sub-kernel
W[r + s (U - 1 - u)], U = ceil(K / s) (taps past K are zero). Stacking the s * s phases as output
channels (channel c s^2 + rh s + rw) gives one convolution with N = s^2 C_in outputs, padding
U - 1; ``pixel_shuffle(., s)`` interleaves the phases and a crop of p returns the layer input's
grid. For s = 1 it is the familiar conv(G, flip(W)^T, padding K - 1 - p) with no crop. Forward
convolutions run faster than transposed ones on oneDNN (about 2x for the bottom layer) and turn
the bottom layer's N = C_in = 3 into N = 27 for a GEMM.

Packing depends only on W. Inside ``PACKED.scope()`` (a sampling chain opens one) packed forms
are kept per weight tensor and version, so a K-step chain packs each weight once; outside a
scope, and after any change to a weight, they are packed afresh. Keeping them only for a scope
means no edit of a weight can be missed (an edit through ``.data`` does not bump the version), and
a chain recorded in a CUDA graph packs inside the graph, so every replay packs the current weights.
"""

import contextlib
import functools
import math
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class TransposeAsConv:
    """conv_transpose(., W, stride, padding) as conv2d(., weight, padding=conv_padding), then
    pixel_shuffle(stride) and rows/columns [crop, crop + H) of the result (stride 1: no shuffle, no crop)."""

    weight: torch.Tensor
    stride: int
    conv_padding: int
    crop: int


def transpose_as_conv(
    weight: torch.Tensor, stride: int, padding: int, memory_format: torch.memory_format = torch.contiguous_format
) -> TransposeAsConv:
    """The packed forward-convolution form of a layer's transposed convolution.

    Args:
        weight: [C_out, C_in, K, K] of the layer.
        stride, padding: of the layer's (bottom-up) convolution.
        memory_format: layout of the packed weight (channels_last where the convolution runs so).
    Returns:
        the packed weight [s^2 C_in, C_out, U, U] (stride 1: [C_in, C_out, K, K]) and how to apply it.

    Example:
        >>> packed = transpose_as_conv(torch.randn(100, 3, 15, 15), stride=3, padding=7)
        >>> tuple(packed.weight.shape)
        (27, 100, 5, 5)
    """
    plan = _packing_plan(tuple(weight.shape), stride, padding, memory_format, weight.device)
    # One gather: slot 0 of the source is the zero that padded taps read.
    source = torch.cat([weight.new_zeros(1), weight.reshape(-1)])
    packed = source[plan.gather].as_strided(plan.form.weight.shape, plan.form.weight.stride())
    return TransposeAsConv(packed, plan.form.stride, plan.form.conv_padding, plan.form.crop)


def _rearrange(weight: torch.Tensor, stride: int, padding: int, memory_format: torch.memory_format) -> TransposeAsConv:
    """The packing written as tensor operations (flip, pad, permute): what ``_packing_plan`` records."""
    c_out, c_in, kernel, _ = weight.shape
    if stride == 1 and padding <= kernel - 1:
        flipped = weight.flip(2, 3).transpose(0, 1)
        return TransposeAsConv(flipped.contiguous(memory_format=memory_format), 1, kernel - 1 - padding, 0)
    taps = math.ceil(kernel / stride)
    extra = taps * stride - kernel
    padded = F.pad(weight, (0, extra, 0, extra)).view(c_out, c_in, taps, stride, taps, stride)
    # [c_in, rh, rw, c_out, u, v], flipped in u and v: channel c s^2 + rh s + rw, tap rh + s (U - 1 - u).
    stacked = padded.permute(1, 3, 5, 0, 2, 4).flip(-1, -2).reshape(c_in * stride * stride, c_out, taps, taps)
    return TransposeAsConv(stacked.contiguous(memory_format=memory_format), stride, taps - 1, padding)


@dataclass(frozen=True)
class _PackingPlan:
    """Where every element of a packed weight comes from: ``gather`` indexes [0, weight...] in the
    packed tensor's memory order; ``form`` is the rearranged index tensor (shape, strides, geometry)."""

    gather: torch.Tensor
    form: TransposeAsConv


@functools.lru_cache(maxsize=128)
def _packing_plan(
    shape: tuple[int, ...], stride: int, padding: int, memory_format: torch.memory_format, device: torch.device
) -> _PackingPlan:
    """The packing of a weight of ``shape`` as a gather map, found by rearranging 1..numel (0 marks a
    padded tap). Rearranging values with flip and pad costs several passes; the map depends only
    on the geometry, so each later packing is one gather."""
    positions = torch.arange(1, math.prod(shape) + 1, dtype=torch.float64).view(shape)
    form = _rearrange(positions, stride, padding, memory_format)
    in_memory_order = form.weight.as_strided((form.weight.numel(),), (1,))
    return _PackingPlan(in_memory_order.to(device=device, dtype=torch.int64), form)


def apply_transpose_as_conv(
    coefficients: torch.Tensor, packed: TransposeAsConv, input_hw: tuple[int, int]
) -> torch.Tensor:
    """conv_transpose(coefficients, W) sized to ``input_hw``, through the packed form (may be a view)."""
    out = F.conv2d(coefficients, packed.weight, None, 1, packed.conv_padding)
    if packed.stride == 1 and packed.crop == 0:
        return out
    if packed.stride > 1:
        out = F.pixel_shuffle(out, packed.stride)
    height, width = input_hw
    short_h = max(0, packed.crop + height - out.shape[-2])
    short_w = max(0, packed.crop + width - out.shape[-1])
    if short_h or short_w:
        # Rows past the shuffled grid receive no tap of the kernel: they are zero.
        out = F.pad(out, (0, short_w, 0, short_h))
    return out[..., packed.crop : packed.crop + height, packed.crop : packed.crop + width]


class PackCache:
    """Packed forms by (weight tensor, its version, what was asked), kept while a scope is open.

    A weight enters by identity, checked through a weak reference (a freed tensor's id cannot
    alias), its storage address and its version counter (in-place updates bump it).
    """

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[Hashable, tuple[weakref.ref, int, int, Any]] = OrderedDict()
        self._depth = 0

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Keep packed forms until the outermost scope closes (one chain, or one training iteration)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._entries.clear()

    def get(self, weight: torch.Tensor, how: Hashable, build: Callable[[], Any]) -> Any:
        """``build()`` for ``weight`` and ``how``: once per weight version inside a scope, else every call."""
        if self._depth == 0 or weight.is_inference():  # inference tensors have no version counter
            with torch.no_grad():
                return build()
        key = (id(weight), how)
        version = weight._version
        found = self._entries.get(key)
        if found is not None:
            reference, address, seen_version, value = found
            if reference() is weight and address == weight.data_ptr() and seen_version == version:
                self._entries.move_to_end(key)
                return value
        with torch.no_grad():
            value = build()
        self._entries[key] = (weakref.ref(weight), weight.data_ptr(), version, value)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return value


PACKED = PackCache()


def packed_transpose(
    weight: torch.Tensor, stride: int, padding: int, memory_format: torch.memory_format
) -> TransposeAsConv:
    """``transpose_as_conv`` of ``weight``, cached per weight version."""
    return PACKED.get(weight, ("transpose", stride, padding, memory_format),
                      lambda: transpose_as_conv(weight.detach(), stride, padding, memory_format))  # fmt: skip


def packed_layout(weight: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """``weight`` in ``memory_format`` (the bottom-up convolution's packed weight), cached per version."""
    if weight.is_contiguous(memory_format=memory_format):
        return weight
    how = ("layout", memory_format)
    return PACKED.get(weight, how, lambda: weight.detach().contiguous(memory_format=memory_format))


# Row length of K-major weights, in elements: a multiple of 16 lets the kernels see every row start
# 16-byte aligned (Triton specialises integer arguments divisible by 16), so rows load as 16-byte copies.
K_ROW_ALIGN = 16


def gemm_weight(
    weight: torch.Tensor,
    dtype: torch.dtype,
    columns_multiple: int,
    in_channels: int | None = None,
    k_major: bool = False,
) -> torch.Tensor:
    """W [C_out, C_in, KH, KW] as the GEMM operand of the conv kernels: [KH * KW * C_in, N_pad]
    (reduction index (kh * KW + kw) * C_in + c, columns padded with zeros to a multiple), or with
    ``k_major`` its transpose [N_pad, K_pad], each column's reduction contiguous and zero-padded to
    ``K_ROW_ALIGN``. ``in_channels`` (>= C_in) pads the input channels with zero rows, for an input
    padded with zero channels."""
    c_out, c_in, kernel_h, kernel_w = weight.shape
    if in_channels is not None and in_channels > c_in:
        weight = torch.nn.functional.pad(weight.detach(), (0, 0, 0, 0, 0, in_channels - c_in))
        c_in = in_channels
    rows = weight.detach().permute(2, 3, 1, 0).reshape(kernel_h * kernel_w * c_in, c_out)
    padded = -(-c_out // columns_multiple) * columns_multiple
    if k_major:
        reduction = -(-rows.shape[0] // K_ROW_ALIGN) * K_ROW_ALIGN
        out = torch.zeros((padded, reduction), dtype=dtype, device=weight.device)
        out[:c_out, : rows.shape[0]] = rows.t()
        return out
    out = torch.zeros((rows.shape[0], padded), dtype=dtype, device=weight.device)
    out[:, :c_out] = rows
    return out


def packed_gemm_weight(
    weight: torch.Tensor,
    dtype: torch.dtype,
    columns_multiple: int,
    in_channels: int | None = None,
    k_major: bool = False,
) -> torch.Tensor:
    """``gemm_weight`` of the bottom-up convolution, cached per weight version inside a scope."""
    return PACKED.get(weight, ("gemm", dtype, columns_multiple, in_channels, k_major),
                      lambda: gemm_weight(weight, dtype, columns_multiple, in_channels, k_major))  # fmt: skip


def phase_taps(kernel: int, stride: int, phase: int) -> tuple[int, int]:
    """The first tap and the number of taps of sub-pixel phase ``phase`` (rh or rw) along one axis: tap u
    of the U = ceil(K / s) sub-kernel holds W[phase + s (U - 1 - u)], a weight only where that is < K."""
    count = (kernel - 1 - phase) // stride + 1
    return math.ceil(kernel / stride) - count, count


def packed_phase_gemm(
    weight: torch.Tensor,
    stride: int,
    padding: int,
    phase: int,
    dtype: torch.dtype,
    columns_multiple: int,
    in_channels: int | None = None,
    k_major: bool = False,
) -> torch.Tensor:
    """One sub-pixel phase (``phase`` = rh s + rw) of the top-down pass as a GEMM operand of its own: the
    phase's C_in columns over only the taps that carry weights (``phase_taps``), as ``gemm_weight``
    packs a [C_in, C_out, taps_h, taps_w] kernel."""

    def build() -> torch.Tensor:
        kernel = weight.shape[-1]
        stack = transpose_as_conv(weight.detach(), stride, padding).weight
        (u0, rows), (v0, columns) = (phase_taps(kernel, stride, r) for r in divmod(phase, stride))
        sub = stack[phase :: stride * stride, :, u0 : u0 + rows, v0 : v0 + columns]
        return gemm_weight(sub, dtype, columns_multiple, in_channels, k_major)

    key = ("gemm-phase", stride, padding, phase, dtype, columns_multiple, in_channels, k_major)
    return PACKED.get(weight, key, build)


def packed_gemm_transpose(
    weight: torch.Tensor,
    stride: int,
    padding: int,
    dtype: torch.dtype,
    columns_multiple: int,
    in_channels: int | None = None,
    k_major: bool = False,
    phase_row: int = 0,
) -> tuple[torch.Tensor, TransposeAsConv]:
    """The top-down pass's GEMM operand: the sub-pixel stack [s^2 C_in, C_out, U, U] as
    [U * U * C_out, N_pad] (N = s^2 C_in, channel c s^2 + rh s + rw; ``k_major``: its transpose, as
    ``gemm_weight``), and its geometry; ``in_channels`` pads C_out with zero rows (for a gradient or
    mask with padded pixel rows). ``phase_row`` > 0 orders the columns phase-major instead, column
    (rh s + rw) phase_row + c, each phase's C_in channels padded with zero columns to ``phase_row``
    (``sub_pixel_phase_row``)."""

    def build() -> tuple[torch.Tensor, TransposeAsConv]:
        form = transpose_as_conv(weight.detach(), stride, padding)
        stack = form.weight
        if phase_row:
            c_in = weight.shape[1]
            phases = stack.reshape(c_in, stride * stride, *stack.shape[1:]).transpose(0, 1)
            phases = torch.nn.functional.pad(phases, (0, 0, 0, 0, 0, 0, 0, phase_row - c_in))
            stack = phases.reshape(stride * stride * phase_row, *stack.shape[1:])
        return gemm_weight(stack, dtype, columns_multiple, in_channels, k_major), form

    key = ("gemm-transpose", stride, padding, dtype, columns_multiple, in_channels, k_major, phase_row)
    return PACKED.get(weight, key, build)
