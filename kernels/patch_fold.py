"""The image layer's top-down pass with the Langevin update as a patch GEMM and a fold.

The sub-pixel form (``conv_transpose``) computes the image layer's top-down pass as a GEMM with
s^2 C_in columns (27 for the texture net's 3 channels at stride 3, 12 for the object net's at
stride 2) over C_out K'^2 reductions: each gradient element is re-read from shared memory once per
tap for a handful of columns, and on an H200 that pass was the slowest of every large chain step
(``docs/kernels.md``). Here the same pass is two launches:

1. the patch GEMM: P[b, q, (c, ky, kx)] = sum_o G[b, o, q] W[o, c, ky, kx], a 1x1 top-down pass of
   ``conv_transpose`` with C_in K^2 columns (675 and 147), so each gradient element is read once
   per wide tile; P is stored channels-last in the gradient's dtype (the weights' for a unit gradient);
2. the fold with the Langevin update: pixel (y, x) of channel c sums the ceil(K / s)^2 patch entries
   that land on it (ky = y + p - q s) and writes x' = x + (delta^2/2)(g - x/sigma^2) + delta z, z drawn as
   the fused kernels draw it (``normal_at(seed, base + offset + e)``, e the state's row-major element;
   large fused tiles' ``tl.randn`` differs in the cosine's last bits), so a chain's noise depends on
   the form in those bits only.

P costs memory (C_in K^2 / s^2 times the image: 75x for the texture net): batches whose patches
exceed ``PATCH_CHUNK_BYTES`` run in chunks of images. Which layers take it: ``patch_fold_wanted``;
``GENCONV_PATCH_FOLD=0`` keeps the sub-pixel form (an A/B switch for ``bench.measured_passes --ab``).
"""

import os

import torch
import triton
import triton.language as tl

from genconv.kernels.langevin_update import update_arguments
from genconv.kernels.launch import launch
from genconv.kernels.normal import COUNTER_ARGUMENTS, normal_at
from genconv.kernels.packing import PACKED

# Patch columns (C_in K^2) below which the sub-pixel form is kept: its s^2 C_in columns are then
# about as wide, and the fold would only add a launch and a round trip through memory.
PATCH_MIN_COLUMNS = 64
# Patch rows are padded to a multiple of this many elements (16 bytes or more in either dtype), so the
# patch GEMM stores them as vectors (675 columns of 2 bytes would store element by element).
PATCH_ROW_ALIGN = 16
# Largest patch tensor one launch pair writes and reads; a larger batch runs in chunks of images.
PATCH_CHUNK_BYTES = 256 * 1024 * 1024


def patch_fold_wanted(in_channels: int, kernel: int, stride: int) -> bool:
    """Whether the image layer's fused top-down pass runs as a patch GEMM and a fold: where it can, kernels
    that overlap (K > s) with at least ``PATCH_MIN_COLUMNS`` patch columns, in either dtype. Both cost
    models predict it faster for both nets' chains since the patch GEMM takes its rows as pixels
    (``conv_transpose._patch_gemm``); before, the calibrated one priced it 2-7 % slower for bfloat16
    texture chains, which kept the sub-pixel form (docs/kernels.md). ``GENCONV_PATCH_FOLD=0`` never
    takes it, ``=1`` takes it wherever eligible (the default)."""
    switch = os.environ.get("GENCONV_PATCH_FOLD", "")
    eligible = kernel > stride and in_channels * kernel * kernel >= PATCH_MIN_COLUMNS
    return eligible and switch != "0"


def patch_row(in_channels: int, kernel: int) -> int:
    """The patch tensor's pixel row: C_in K^2 columns padded to a multiple of ``PATCH_ROW_ALIGN``."""
    return -(-in_channels * kernel * kernel // PATCH_ROW_ALIGN) * PATCH_ROW_ALIGN


def patch_weight(weight: torch.Tensor) -> torch.Tensor:
    """W [C_out, C_in, K, K] as the 1x1 top-down layer [C_out, R, 1, 1] whose output is the patches (R =
    ``patch_row``: zero columns after the C_in K^2), kept with the weight's packed forms (so the 1x1
    layer's own packed operand is cached too)."""
    c_out, c_in, kernel, _ = weight.shape
    columns = c_in * kernel * kernel

    def build() -> torch.Tensor:
        flat = weight.detach().reshape(c_out, columns, 1, 1)
        return torch.nn.functional.pad(flat, (0, 0, 0, 0, 0, patch_row(c_in, kernel) - columns))

    return PACKED.get(weight, ("patch-layer",), build)


def images_per_chunk(batch: int, patch_bytes_per_image: int) -> int:
    """Images per chunk: the fewest chunks whose patches fit ``PATCH_CHUNK_BYTES`` (at least one image
    each), of equal size but the last."""
    fitting = max(1, PATCH_CHUNK_BYTES // max(1, patch_bytes_per_image))
    chunks = -(-batch // fitting) if batch else 1
    return max(1, -(-batch // chunks))


def _configs() -> list[triton.Config]:
    """The fold's tiles; the first is the shape heuristic's. With several elements a thread (the first
    three) a thread's are adjacent, so adjacent lanes' gathers land a few pixels apart, each in its own
    sector; with one a thread (256 x 8 warps) adjacent lanes take adjacent pixels, whose taps share patch
    pixels and sectors, at more instructions an element. Neither cost model prices sectors: the
    autotuner measures both on a GPU."""
    shapes = ((512, 4), (256, 4), (1024, 8), (256, 8))
    return [triton.Config({"BLOCK": block}, num_warps=warps) for block, warps in shapes]


@triton.autotune(configs=_configs(), key=["per_sample"])
@triton.jit(do_not_specialize=[*COUNTER_ARGUMENTS, "first_image"])
def _fold_langevin_kernel(
    p_ptr,
    x_ptr,
    noise_ptr,
    out_ptr,
    counter_ptr,
    x_s0,
    x_s1,
    x_s2,
    x_s3,
    n_s0,
    n_s1,
    n_s2,
    n_s3,
    per_sample,
    first_image,
    half_delta_sq,
    sigma_sq,
    delta,
    offset_low,
    offset_high,
    clamp_low,
    clamp_high,
    C_IN: tl.constexpr,
    IN_H: tl.constexpr,
    IN_W: tl.constexpr,
    G_H: tl.constexpr,
    G_W: tl.constexpr,
    KERNEL: tl.constexpr,
    STRIDE: tl.constexpr,
    PAD: tl.constexpr,
    ROW: tl.constexpr,
    HAS_NOISE: tl.constexpr,
    CLAMP: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # a program: BLOCK elements of one image's state in row-major order (so the state, the noise and the
    # result move in whole lines); pixel y takes tap ky = (y + p) % s + t s from patch row (y + p) // s - t
    sample = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < per_sample
    col = offs % IN_W
    row = (offs // IN_W) % IN_H
    channel = offs // (IN_W * IN_H)
    phase_h, last_h = (row + PAD) % STRIDE, (row + PAD) // STRIDE
    phase_w, last_w = (col + PAD) % STRIDE, (col + PAD) // STRIDE
    # tap (t_h, t_w) reads patch (last_h - t_h, last_w - t_w), column (phase_h + t_h s) K + phase_w + t_w s:
    # one per-element address, minus a compile-time offset per tap
    nearest = (last_h * G_W + last_w) * ROW + channel * (KERNEL * KERNEL) + phase_h * KERNEL + phase_w
    patches = p_ptr + sample * (G_H * G_W * ROW) + nearest
    g = tl.zeros([BLOCK], dtype=tl.float32)
    TAPS: tl.constexpr = (KERNEL + STRIDE - 1) // STRIDE
    for t_h in tl.static_range(TAPS):
        ok_h = inside & (last_h >= t_h) & (last_h < G_H + t_h)
        if (t_h + 1) * STRIDE > KERNEL:  # a tap past the kernel for the larger phases
            ok_h = ok_h & (phase_h < KERNEL - t_h * STRIDE)
        for t_w in tl.static_range(TAPS):
            ok = ok_h & (last_w >= t_w) & (last_w < G_W + t_w)
            if (t_w + 1) * STRIDE > KERNEL:
                ok = ok & (phase_w < KERNEL - t_w * STRIDE)
            g += tl.load(patches - (t_h * (G_W * ROW - STRIDE * KERNEL) + t_w * (ROW - STRIDE)), mask=ok,
                         other=0.0).to(tl.float32)  # fmt: skip
    x = tl.load(x_ptr + sample * x_s0 + (channel * x_s1 + row * x_s2 + col * x_s3), mask=inside, other=0.0)
    x = x.to(tl.float32)
    if HAS_NOISE:
        z = tl.load(noise_ptr + sample * n_s0 + (channel * n_s1 + row * n_s2 + col * n_s3), mask=inside, other=0.0)
        z = z.to(tl.float32)
    else:  # the state's row-major element of the whole chain, as the fused kernels number it
        base = tl.load(counter_ptr + 1) + (offset_high.to(tl.int64) << 31) + offset_low
        z = normal_at(tl.load(counter_ptr), base + (first_image + sample) * per_sample + offs)
    new = x + half_delta_sq * (g - x / sigma_sq) + delta * z
    if CLAMP:
        new = tl.minimum(tl.maximum(new, clamp_low), clamp_high)
    tl.store(out_ptr + sample * per_sample + offs, new.to(out_ptr.dtype.element_ty), mask=inside)


def fold_langevin(
    patches: torch.Tensor,
    x: torch.Tensor,
    out: torch.Tensor,
    kernel: int,
    stride: int,
    padding: int,
    first_image: int,
    delta: float,
    sigma: float,
    seed: int | torch.Tensor | None,
    offset: int,
    noise: torch.Tensor | None,
    clamp: tuple[float, float] | None,
) -> None:
    """Write into ``out`` (contiguous [B, C, H, W], B images from ``first_image`` of the chain) the
    Langevin update of ``x`` with the image gradient folded from ``patches`` (dense channels-last
    [B, R, H', W'], column c K^2 + ky K + kx, R >= C K^2)."""
    batch, channels, in_h, in_w = x.shape
    g_h, g_w = patches.shape[-2:]
    counter, scalars = update_arguments(delta, sigma, seed, offset, noise, clamp, x.device)
    given = x if noise is None else noise
    per_sample = channels * in_h * in_w
    if batch and per_sample:
        launch(
            _fold_langevin_kernel,
            lambda meta: (batch, triton.cdiv(per_sample, meta["BLOCK"])),
            _configs(), _configs()[0],
            patches, x, given, out, counter,
            *x.stride(), *given.stride(),
            per_sample, first_image, *scalars,
            C_IN=channels, IN_H=in_h, IN_W=in_w, G_H=g_h, G_W=g_w, KERNEL=kernel, STRIDE=stride, PAD=padding,
            ROW=patches.shape[1],
            HAS_NOISE=noise is not None, CLAMP=clamp is not None,
        )  # fmt: skip
