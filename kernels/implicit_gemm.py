"""The implicit-GEMM convolution main loop both conv kernels share, its configs and its heuristic.

A convolution over an input A [B, H, W, C] (read through strides, so NHWC or NCHW) with packed
weights Wp [KH * KW * C, N] (K-major, row tap * C + c, tap = kh * KW + kw; ``packing.py``) is
the GEMM

    acc[m, n] = sum_k A[b, oh * S - P + kh, ow * S - P + kw, c] Wp[k, n],    m = (b, oh, ow)

Kernel size, stride, padding and channels are compile-time constants (a model compiles once per
layer), so the K loop is one static loop over taps x channel blocks: the tap is a scalar of the
loop, and each step loads a [BLOCK_M, BLOCK_K] slab that is contiguous along channels for an
NHWC input. For a layer with fewer than 16 input channels (the image layer: 1-4) a channel block
would be mostly padding, so K runs over one kernel row of (kw, channel) pairs at a time instead,
with constant divisors.
The top-down pass feeds the gradient as A and applies the bottom-up mask as it loads (act'(r):
1 where the unit was on, ``slope`` where off; with no gradient, act'(r) itself).

Offsets are int32 within an image from an int64 base per image, so no launch is limited to 2^31
elements. Dot operands are float32 (TF32 on tensor cores unless IEEE is asked for) or bfloat16;
accumulation is float32.
"""

import os

import torch
import triton
import triton.language as tl

from genconv.kernels.launch import HOPPER, interpreting, tf32_enabled, tile_capability

# A's roles in the main loop (constexpr globals, so kernels may read them; launchers pass .value).
A_PLAIN = tl.constexpr(0)  # the input itself (bottom-up)
A_MASKED = tl.constexpr(1)  # a gradient gated by act'(mask) as it loads (top-down)
A_UNIT = tl.constexpr(2)  # act'(mask) alone: the upstream gradient is 1 (the summed top)

# Channels below which K runs flat over (tap, channel).
FLAT_K_CHANNELS = 16
# Images with fewer output pixels than this share tiles (rows span images); larger ones get tiles
# of their own, so a program's rows have one base pointer and int32 offsets.
SPAN_PIXELS = 64


def spans_images(pixels_per_image: int) -> bool:
    return pixels_per_image < SPAN_PIXELS


# Every packed weight row is padded to a multiple of this many columns (aligned rows).
N_ALIGN = 16

# (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages): tiles for wide N (64-128 output channels) and narrow
# N (the image layer's top-down, N = s^2 C_in = 4-27), each with 8 warps for tall tiles. Every one
# compiles without spills on sm_90 for every preset layer it can be picked for, with the oldest and
# the newest supported Triton, and on sm_80 (compiled for portability) spills at most a few bytes (the
# compile tier, ``bench/compile_tier.py``, checks this in the test suite).
_TILES = (
    (256, 64, 32, 8, 3),
    (128, 64, 64, 8, 2),
    (128, 64, 32, 8, 3),
    (64, 64, 16, 4, 4),
    (64, 64, 32, 4, 6),
    (128, 128, 16, 8, 4),
    (128, 128, 32, 8, 4),
    (128, 128, 64, 8, 3),
    (256, 128, 16, 8, 4),
    (128, 32, 32, 8, 3),
    (64, 32, 32, 4, 6),
    (256, 16, 32, 8, 3),
    (64, 16, 32, 4, 6),
    (256, 64, 32, 4, 3, 1),
    (128, 64, 32, 4, 3, 1),
    (128, 64, 32, 4, 4, 1),
    (128, 64, 64, 4, 4, 1),
)
# The top-down kernel's epilogue (sub-pixel scatter, gate or Langevin update) holds more per
# element: with the Langevin update or a channel-major sub-pixel scatter its tiles stop at 64 columns
# (128 spill with Triton 3.9); other passes may take 128 (64 accumulators per thread over 8 warps),
# which halves how often each wgmma re-reads A from shared memory per output column.
_TOP_DOWN_TILES = (
    (128, 64, 64, 8, 3),
    (128, 64, 32, 8, 3),
    (128, 128, 32, 8, 3),
    (256, 128, 16, 8, 4),
    (64, 64, 32, 4, 6),
    (128, 32, 64, 8, 3),
    (128, 32, 32, 8, 3),
    (64, 32, 32, 4, 6),
    (64, 32, 64, 4, 6),
    (256, 16, 32, 4, 3),
    (64, 16, 32, 4, 6),
    (128, 64, 32, 4, 3, 1),
    (128, 64, 32, 4, 4, 1),
)
# The widest tile of a top-down pass with the Langevin update or the sub-pixel scatter in its epilogue
# (128 columns spill there with Triton 3.9's compiler).
LANGEVIN_COLUMNS = 64
# Tiles with BLOCK_K 64 halve the K-steps, and so the per-step gather arithmetic, of layers with at
# least this many input channels; below it most of their K would be padding. The bottom-up one runs
# 2 stages (two CTAs per SM hide each other's copies; with 3 it spills 4 bytes on sm_80 at 224 px).
# The image layer's flat K (kernel rows of KW x C) takes the widest BLOCK_K that pads a row no more
# than 16 does (``flat_block_k``): the texture net's 60-element rows one 64-wide step each instead of
# four 16-wide ones, the object net's 28 one 32-wide step (the per-step gather arithmetic bound its
# bfloat16 pass; the calibrated model prices it 11-15 % faster, float32 the same).
WIDE_K_CHANNELS = 64
# The tile with autotuning off, by BLOCK_N: (tall tiles for many rows, 64-row tiles otherwise); a
# tile with BLOCK_K 64 takes its BLOCK_K 32 twin below WIDE_K_CHANNELS (a tall one the short tile
# where there is none), and so does a 64-row one whose split-K does not fill the GPU with 64-wide steps
# (the top-down 32-column tile: the texture net's image-layer pass in bfloat16, 1.12x faster at B = 16
# on the calibrated model, 1.04x at B = 4 with 4 runs; at B = 1 32-wide steps split into 12 runs, not 6).
# Wider and taller tiles move fewer shared-memory bytes per FLOP (each wgmma reads its 64 rows of A
# and all of B from shared memory; the copies write both): 64 / BLOCK_N + 32 / BLOCK_M + 1/2
# bytes-per-clock units per tensor-core clock, 1.75 for 128x64, 1.625 for 256x64, 1.25 for 128x128
# (``bench.cost_model``'s shared-memory term); 64-row tiles run 6 stages, since at small batches one
# CTA or a few per SM wait on their copies (the calibrated model prices bfloat16 passes at B = 16
# 13-26 % faster than with 3-4; float32 ones, bound by shared memory, the same).
_HEURISTIC = {
    128: ((128, 128, 16, 8, 4), (64, 64, 32, 4, 6)),
    64: ((128, 64, 64, 8, 2), (64, 64, 32, 4, 6)),
    32: ((128, 32, 32, 8, 3), (64, 32, 32, 4, 6)),
    16: ((256, 16, 32, 8, 3), (64, 16, 32, 4, 6)),
}
_TOP_DOWN_HEURISTIC = {
    128: ((128, 128, 32, 8, 3), (64, 64, 32, 4, 6)),
    64: ((128, 64, 64, 8, 3), (64, 64, 32, 4, 6)),
    32: ((128, 32, 64, 8, 3), (64, 32, 64, 4, 6)),
    16: ((256, 16, 32, 4, 3), (64, 16, 32, 4, 6)),
}


# Swapped tiles (a sixth field of 1 in the tile tuples above): the MMA computes the transposed tile,
# output channels as its rows and pixels as its columns. A wgmma's rows are 64 per warpgroup while its
# columns go to 256, so a layer with 64 output channels gets 128-256-wide wgmmas over the pixels, each
# reading fewer shared-memory bytes per FLOP (``bench.cost_model``'s shared-memory term: 64 / 256 +
# 32 / 64 + 1/2 = 1.25 units for the 256-row swapped tile against 1.625 for 256x64 and 1.75 for
# 128x64). Taken for BLOCK_N 64 where the swapped tile fills the GPU: 256 rows for a bottom-up layer over
# channel blocks where that pads an image's rows no more than 128-row tiles, else 128 rows; not for a
# top-down pass with the Langevin update or the sub-pixel scatter in its epilogue. Each exception
# spills on sm_90: the 256-row tile on the image layer (flat K) and in the top-down epilogues, the
# 128-row one with the scatter or the update (Triton 3.9), 128-column swapped tiles everywhere.
_SWAPPED_TALL = (256, 64, 32, 4, 3, 1)
_SWAPPED = (128, 64, 32, 4, 3, 1)
# The swapped 128-row tile where tall tiles do not fill the GPU (small batches), and where it fills it
# with one CTA per SM (texture's 5x5 layer at B = 32): at most two CTAs per SM, which hide each
# other's copies less, so one more stage in flight (bfloat16 passes 1.24-1.28x faster on the
# calibrated model, float32 ones, bound by shared memory, the same; with three CTAs per SM the
# fourth stage would cost float32 one of them).
_SWAPPED_DEEP = (128, 64, 32, 4, 4, 1)
# The wide tall tile: 256 x 128 moves 64 / 128 + 32 / 256 + 1/2 = 1.125 units against 128 x 128's 1.25,
# but holds 128 accumulators per thread at 254-255 registers. It compiles without spills where
# ``wide_tall_fits`` says: bfloat16 operands on the image layer's flat K and on stride-1 top-down passes
# over several taps. In float32 it spills 4-8 bytes on sm_90 with Triton 3.9, on strided or 1x1
# top-down passes up to 248 bytes; 16-wide K-steps keep it within 16 bytes on sm_80 (32-wide ones
# spill 72-80 there; docs/kernels.md has the table). The heuristic takes it where ``wide_tall_wanted``.
_WIDE_TALL = (256, 128, 16, 8, 4)


def wide_tall_fits(kwargs: dict) -> bool:
    """Whether a launch (its constexpr ``kwargs``) may take the 256 x 128 tile (``_WIDE_TALL``): an
    unsplit launch with bfloat16 operands (``DOT_DTYPE``), bottom-up on the image layer's flat K
    (``C_IN`` < FLAT_K_CHANNELS) or top-down at stride 1 over several taps (``TAPS``) without the
    Langevin update."""
    if kwargs.get("DOT_DTYPE") != tl.bfloat16 or int(kwargs.get("SPLIT", 1)) > 1:
        return False
    if "TAPS" in kwargs:
        return int(kwargs.get("STRIDE", 1)) == 1 and int(kwargs["TAPS"]) > 1 and not narrow_epilogue(kwargs)
    return int(kwargs.get("C_IN", FLAT_K_CHANNELS)) < FLAT_K_CHANNELS


def hopper_tiles_wanted(device: torch.device) -> bool:
    """Whether launches on ``device`` may take the tiles that spill on GPUs before Hopper (``wide_tall_wanted``'s
    on the image layer, ``wide_k_wanted``): on Hopper and later (``launch.tile_capability``), unless
    ``GENCONV_HOPPER_TILES=0`` (an A/B switch: the GPU check times the earlier GPUs' tiles with it)."""
    return tile_capability(device) >= HOPPER and os.environ.get("GENCONV_HOPPER_TILES", "1") != "0"


def wide_tall_wanted(kwargs: dict, hopper: bool = True) -> bool:
    """Whether the shape heuristic may take the 256 x 128 tile for a launch (its constexpr ``kwargs``):
    where it fits (``wide_tall_fits``), on the top-down passes, which both cost models price 10 % faster
    on it (the texture net's TD2), and with ``hopper`` (``hopper_tiles_wanted``) on the image layer,
    1.06x faster at B >= 64 on the assumed model, 1.08-1.11x on the calibrated one (its 16-wide K-steps
    spill 8 bytes on sm_80 with Triton 3.9). ``GENCONV_WIDE_TALL=1`` takes it wherever it fits, ``=0``
    never."""
    switch = os.environ.get("GENCONV_WIDE_TALL", "")
    if switch == "0" or not wide_tall_fits(kwargs):
        return False
    return "TAPS" in kwargs or switch == "1" or hopper


def wide_k_wanted(kwargs: dict, hopper: bool = True) -> bool:
    """Whether the heuristic's 128-row swapped tile takes 64-wide K-steps (``heuristic_config``'s
    ``wide_k``) for a bottom-up launch (its constexpr ``kwargs``): with ``hopper``, bfloat16 operands and
    flat K over FLAT_K_CHANNELS channels or more whose kernel rows 64-wide steps pad no more than 16-wide
    ones (the object net's 5x5 layer: rows of 500). In bfloat16 that loop is integer-bound, and 64-wide
    steps do the rows' gather arithmetic half as often: BU2 at B = 256 1.21x faster on the assumed
    model, 1.07x on the calibrated one (the 256-row swapped tile the texture net's takes gains nothing
    calibrated). With Triton 3.9 it spills 16-32 bytes on sm_80."""
    channels, kernel_w = int(kwargs["C_IN"]), int(kwargs["KW"])
    return (hopper and kwargs.get("DOT_DTYPE") == tl.bfloat16 and channels >= FLAT_K_CHANNELS
            and flat_k(channels, kernel_w) and flat_block_k(kernel_w * channels) == 64)  # fmt: skip


def _config(m: int, n: int, k: int, warps: int, stages: int, swap: int = 0) -> triton.Config:
    return triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "SWAP": swap}, num_warps=warps, num_stages=stages)


def conv_configs(top_down: bool = False) -> list[triton.Config]:
    """Every tile the autotuner may try for the bottom-up or the top-down kernel; ``prune_configs``
    keeps those that fit a layer."""
    return [_config(*tile) for tile in (_TOP_DOWN_TILES if top_down else _TILES)]


def _narrow_n(columns: int, widest: int = 128) -> int:
    """The BLOCK_N that covers ``columns`` with least padding, between 16 and ``widest``."""
    return max(16, min(widest, triton.next_power_of_2(columns)))


def tile_rows(named_args: dict, span: bool) -> int:
    """The rows a layer's tiles cover: an image's (own tiles), or the whole batch's (shared tiles)."""
    if span:
        return int(named_args["n_rows"])
    if "out_h" in named_args:
        return int(named_args["out_h"]) * int(named_args["out_w"])
    return int(named_args["nq_h"]) * int(named_args["nq_w"])


def scatters_channel_major(kwargs: dict) -> bool:
    """Whether a top-down launch (its constexpr ``kwargs``) is strided with channel-major sub-pixel columns
    (``STRIDE`` > 1, neither phase-major ``PHASE_ROW`` nor one ``PHASE``): its epilogue's writes and gate
    loads land ``STRIDE`` pixels apart."""
    return int(kwargs.get("STRIDE", 1)) > 1 and not kwargs.get("PHASE_ROW", 0) and int(kwargs.get("PHASE", -1)) < 0


def narrow_epilogue(kwargs: dict) -> bool:
    """Whether a top-down launch's epilogue holds the Langevin update (``FUSE_LANGEVIN``) or the channel-major
    scatter (``scatters_channel_major``): its tiles stop at LANGEVIN_COLUMNS columns and are not swapped
    (wider or swapped ones spill there)."""
    return bool(kwargs.get("FUSE_LANGEVIN")) or scatters_channel_major(kwargs)


def flat_block_k(row: int) -> int:
    """The widest BLOCK_K (16, 32 or 64) that pads a flat-K kernel row of ``row`` elements no more than 16 does."""
    padded = triton.cdiv(row, 16) * 16
    return max(k for k in (16, 32, 64) if triton.cdiv(row, k) * k == padded)


def prune_configs(configs: list[triton.Config], named_args: dict, **kwargs: object) -> list[triton.Config]:
    """Tiles that fit the layer: BLOCK_N no wider than its N rounded up to a power of two and at
    least half as wide (narrower tiles only repeat the K loop), BLOCK_M no taller than the rows
    its tiles cover, rounded up (at least 64), BLOCK_K 64 only for WIDE_K_CHANNELS channels or more
    (``C`` of the top-down kernel, ``C_IN`` of the bottom-up one, in ``kwargs``), and at most
    LANGEVIN_COLUMNS columns and no swapped tile for a top-down pass (``TAPS``) with the Langevin
    update or the channel-major sub-pixel scatter in its epilogue (``narrow_epilogue``), no 256-row
    swapped tile for the image layer, and none for a split-K launch (``SPLIT`` > 1) over more than
    64 columns; 256 x 128 tiles only where ``wide_tall_fits``."""
    widest = _narrow_n(int(named_args["n_columns"]), max(c.kwargs["BLOCK_N"] for c in configs))
    if "TAPS" in kwargs and narrow_epilogue(kwargs):
        widest = min(widest, LANGEVIN_COLUMNS)
        configs = [c for c in configs if not c.kwargs["SWAP"]]  # they spill with these epilogues
    if not wide_tall_fits(kwargs):
        configs = [c for c in configs if (c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"]) != _WIDE_TALL[:2]]
    if int(kwargs.get("SPLIT", 1)) > 1 and widest > 64:  # storing split-K runs, they spill 12-16 bytes on sm_90
        configs = [c for c in configs if not c.kwargs["SWAP"]]
    channels = int(kwargs.get("C", kwargs.get("C_IN", WIDE_K_CHANNELS)))  # the reduction's channels
    if "KW" in kwargs and flat_k(channels, int(kwargs["KW"])):  # flat K: as wide as pads a kernel row no more than 16
        widest_k = flat_block_k(int(kwargs["KW"]) * channels)
        configs = [c for c in configs if c.kwargs["BLOCK_K"] <= max(32, widest_k)]
    else:  # 64-wide K steps on the layers whose channels fill them, with tiles of at most 64 columns
        wide_k = channels >= WIDE_K_CHANNELS
        configs = [c for c in configs if c.kwargs["BLOCK_K"] <= 32 or (wide_k and c.kwargs["BLOCK_N"] <= 64)]
    if channels < FLAT_K_CHANNELS:  # the 256-row swapped tile spills on the image layer's flat K
        configs = [c for c in configs if not (c.kwargs["SWAP"] and c.kwargs["BLOCK_M"] > 128)]
    kept = [c for c in configs if widest // 2 <= c.kwargs["BLOCK_N"] <= widest]
    rows = tile_rows(named_args, bool(kwargs.get("SPAN", False)))
    fitting = [c for c in kept if c.kwargs["BLOCK_M"] <= max(64, triton.next_power_of_2(rows))]
    return fitting or kept


# Streaming multiprocessors of the GPUs the tiles are sized for (H100 / H200 SXM: 132): a layer whose
# tall tiles leave more than an eighth of them idle takes the swapped 128-row tile or 64-row tiles
# instead. A tall tile moves 1.4-1.6x fewer shared-memory bytes per FLOP than those (the units above),
# so one wave of them at 7/8 of the SMs still beats the smaller tiles' (the texture net's second
# layer at B = 64, 128 programs of 256 swapped rows: 1.19x faster than 256 of 128 on the calibrated
# model, ``bench.tile_search``).
FILL_PROGRAMS = 132
TALL_FILL_PROGRAMS = FILL_PROGRAMS * 7 // 8


def _k_twin(tile: tuple[int, ...], block_k: int, tiles: tuple[tuple[int, ...], ...]) -> tuple[int, ...] | None:
    """The tile of ``tiles`` with ``tile``'s rows, columns, warps and orientation and BLOCK_K ``block_k``,
    its stages the nearest to ``tile``'s (None where there is none)."""
    twins = [t for t in tiles if t[:2] == tile[:2] and t[2] == block_k and t[3] == tile[3] and t[5:] == tile[5:]]
    return min(twins, key=lambda t: abs(t[4] - tile[4]), default=None)


def _narrow_k_twin(tile: tuple[int, ...], tiles: tuple[tuple[int, ...], ...]) -> tuple[int, ...] | None:
    """``tile`` itself if its BLOCK_K is at most 32, else its BLOCK_K 32 twin (``_k_twin``)."""
    return tile if tile[2] <= 32 else _k_twin(tile, 32, tiles)


def _half_width_twin(tile: tuple[int, ...], tiles: tuple[tuple[int, ...], ...]) -> tuple[int, ...] | None:
    """The tile of ``tiles`` like ``tile`` but half as many columns (None where there is none)."""
    return next((t for t in tiles if t[0] == tile[0] and t[1] * 2 == tile[1] and t[2:] == tile[2:]), None)


def heuristic_config(
    columns: int,
    rows: int,
    top_down: bool = False,
    images: int = 1,
    channels: int = WIDE_K_CHANNELS,
    langevin: bool = False,
    kernel_w: int = 1,
    kernel_h: int = 1,
    wide: bool = False,
    wide_k: bool = False,
) -> triton.Config:
    """The tile with autotuning off (one of ``prune_configs``'): BLOCK_N the narrowest power of two
    >= N (16..the widest tile; LANGEVIN_COLUMNS with the fused update or a channel-major sub-pixel
    scatter, ``langevin``); tall tiles when the tiles cover many rows and ``images`` x their tiles
    fill 7/8 of the GPU (swapped ones for 64 columns, and for more than 128 where 64-column tiles pad
    so much less that they move fewer shared-memory bytes; 4 stages on the 128-row swapped one at one
    CTA per SM); where they do not, the swapped 128-row tile with 4 stages for 64 columns or more if
    its programs fill half the GPU (so split-K leaves it whole: the calibrated cost model prices it
    23-34 % under the 64-row tile there, ``bench.tile_search``), but the tall tile over 64 columns
    where its programs make one wave and the swapped tile's more; else the swapped tile (256 rows as
    above, else 128 with 4 stages) where split-K (``split_count``, over the ``kernel_h`` x ``kernel_w``
    taps) makes its programs fill the GPU (64 columns: the texture net's 5x5 layer at B = 4-16),
    64-row tiles otherwise, half as wide
    where N fills them and the K loop is too short for split-K to cut in more than two (the 3x3 layers
    at the smallest batches: twice the programs and no sum launch); BLOCK_K 64 for ``channels`` >= 64
    (on a 64-row tile only where its split, if any, fills the GPU), and on the bottom-up image layer's
    128-column tall tile and small-batch swapped tile (flat K, rows of ``kernel_w`` x ``channels``)
    ``flat_block_k``'s. With ``wide`` (``wide_tall_wanted``) a 128-column tall tile gives way to 256 x 128
    where that fills the GPU too, pads no more rows and its busiest SM moves fewer shared-memory bytes;
    with ``wide_k`` (``wide_k_wanted``) the 128-row swapped tile takes 64-wide K-steps and 4 stages where
    it is not split."""
    table = _TOP_DOWN_HEURISTIC if top_down else _HEURISTIC
    widest = _narrow_n(columns, LANGEVIN_COLUMNS if langevin else max(table))  # ``prune_configs``' too
    tall, short = table[widest]
    tiles = _TOP_DOWN_TILES if top_down else _TILES
    if channels < WIDE_K_CHANNELS:
        short = _narrow_k_twin(short, tiles) or short
        tall = _narrow_k_twin(tall, tiles) or short
    swapped, deep = _SWAPPED, _SWAPPED_DEEP
    if not top_down and channels < FLAT_K_CHANNELS:  # the image layer: its 128-column and 128-row swapped tiles
        block_k = flat_block_k(kernel_w * channels)
        if tall[:2] == (128, 128):
            tall = _k_twin(tall, block_k, tiles) or tall
        swapped, deep = _k_twin(swapped, block_k, tiles) or swapped, _k_twin(deep, block_k, tiles) or deep
    split_deep = deep  # split-K's swapped tile keeps 32-wide K-steps: twice the steps to split
    if wide_k:
        swapped = deep = _k_twin(_SWAPPED_DEEP, 64, tiles) or deep

    def programs(tile: tuple[int, ...]) -> int:
        return images * triton.cdiv(rows, tile[0]) * triton.cdiv(columns, tile[1])

    def fills(tile: tuple[int, ...]) -> bool:
        return rows >= 256 and programs(tile) >= TALL_FILL_PROGRAMS

    def pads_no_more(tile: tuple[int, ...]) -> bool:
        return triton.cdiv(rows, tile[0]) * tile[0] <= triton.cdiv(rows, tall[0]) * tall[0]

    def units(tile: tuple[int, ...]) -> float:
        """Shared-memory bytes per output element per tensor-core clock, in the units above."""
        rows_mma, columns_mma = (tile[1], tile[0]) if len(tile) > 5 and tile[5] else (tile[0], tile[1])
        return 64 / columns_mma + 32 / rows_mma + 0.5

    def shared_cost(tile: tuple[int, ...]) -> float:
        """Shared-memory traffic per output row over the padded columns."""
        return triton.cdiv(columns, tile[1]) * tile[1] * units(tile)

    def wave_cost(tile: tuple[int, ...]) -> float:
        """The busiest SM's shared-memory traffic: its tiles (the programs over the SMs, rounded up: a
        ragged last wave counts whole) x a tile's rows x columns x units."""
        return triton.cdiv(programs(tile), FILL_PROGRAMS) * tile[0] * tile[1] * units(tile)

    def steps(tile: tuple[int, ...]) -> int:
        return k_steps(channels, kernel_h, kernel_w, tile[2], top_down)

    def split_fills(tile: tuple[int, ...]) -> bool:
        """Whether ``tile``'s programs, times the runs split-K cuts its K loop into, fill the GPU."""
        return programs(tile) * split_count(programs(tile), steps(tile)) >= TALL_FILL_PROGRAMS

    swappable = tall[1] >= 64 and not (top_down and langevin)
    channel_blocks = not top_down and channels >= FLAT_K_CHANNELS  # not the image layer
    swapped_tall = channel_blocks and pads_no_more(_SWAPPED_TALL)
    if swappable and tall[1] == 128 and fills(_SWAPPED) and shared_cost(_SWAPPED) < shared_cost(tall):
        return _config(*_SWAPPED)  # e.g. 160 columns: 192 in 64-column tiles move fewer bytes than 256
    if swappable and tall[1] == 64:
        if swapped_tall and fills(_SWAPPED_TALL):
            return _config(*_SWAPPED_TALL)
        if fills(_SWAPPED):  # one CTA per SM: 4 stages, as where it does not fill
            return _config(*(deep if programs(_SWAPPED) <= FILL_PROGRAMS else swapped))
    ragged = swappable and tall[1] == 128 and wave_cost(_SWAPPED) < wave_cost(tall)  # the tall tiles' last wave
    if fills(tall):
        best = swapped if ragged else tall
        if wide and tall[:2] == (128, 128) and fills(_WIDE_TALL) and pads_no_more(_WIDE_TALL):
            best = min(best, _WIDE_TALL, key=wave_cost)
        return _config(*best)
    if swappable and rows >= 256 and 2 * programs(_SWAPPED) > FILL_PROGRAMS:  # half the GPU: no split-K
        return _config(*(deep if ragged or tall[1] < 128 else tall))
    if swappable and tall[1] == 64 and rows >= 256:  # split-K fills the GPU with swapped tiles (``split_for``)
        for tile in ((_SWAPPED_TALL,) if swapped_tall else ()) + (split_deep,):
            if split_fills(tile):
                return _config(*tile)
    if 2 * programs(short) <= FILL_PROGRAMS:  # split-K's batches
        if not split_fills(short):  # 32-wide K-steps leave more to split
            short = _narrow_k_twin(short, tiles) or short
        if short[1] == widest and steps(short) < 3 * SPLIT_MIN_STEPS:  # split-K cuts its K loop in two at most:
            short = _half_width_twin(short, tiles) or short  # twice the programs instead
    return _config(*short)


# Split-K: a pass whose programs fill less than half the GPU (one image, or a few) cuts its K loop
# into runs of at least SPLIT_MIN_STEPS K-steps, at most MAX_SPLIT of them, one program each, so that
# FILL_PROGRAMS are busy; a second launch adds the runs' partial sums and applies the epilogue.
SPLIT_MIN_STEPS = 8
MAX_SPLIT = 16
# The split the interpreter uses (tests raise it to run the split path on tiny shapes).
INTERPRETER_SPLIT = 1
# The sum launch's tile: it has no K loop, only the epilogue (with the Langevin update, thousands of
# instructions per thread at 16 elements each), so small tiles spread it over more SMs.
SUM_TILE = triton.Config({"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 16, "SWAP": 0}, num_warps=4, num_stages=1)


def flat_k(channels: int, kernel_w: int, top_down: bool = False) -> bool:
    """Whether ``conv_tile`` runs K flat over kernel rows of (kw, channel) pairs (``FLAT``): for fewer than
    FLAT_K_CHANNELS channels (the image layer), and in a bottom-up layer whose channels pad each tap's
    32-wide blocks by over a tenth more than its kernel rows pad (100 channels: 25 taps of 128 against
    5 rows of 512 for the 5x5 layers of both nets; not top-down, where the bfloat16 image-layer pass,
    27 columns wide, priced slower so). ``GENCONV_FLAT_K=0`` keeps only the image layer flat (an A/B
    switch for ``bench.measured_passes --ab``)."""
    if channels < FLAT_K_CHANNELS:
        return True
    if top_down or kernel_w == 1 or os.environ.get("GENCONV_FLAT_K", "1") == "0":
        return False
    rows = triton.cdiv(kernel_w * channels, 32) * 32
    return triton.cdiv(channels, 32) * 32 * kernel_w * 10 > rows * 11


def k_steps(channels: int, kernel_h: int, kernel_w: int, block_k: int, top_down: bool = False) -> int:
    """Trip count of ``conv_tile``'s K loop: kernel rows x (kw, channel) blocks where K is flat
    (``flat_k``), taps x channel blocks otherwise."""
    if flat_k(channels, kernel_w, top_down):
        return kernel_h * triton.cdiv(kernel_w * channels, block_k)
    return kernel_h * kernel_w * triton.cdiv(channels, block_k)


def split_count(programs: int, steps: int) -> int:
    """How many runs to cut a pass's K loop into (1: no split) when it launches ``programs`` programs
    of ``steps`` K-steps each."""
    if programs * 2 > FILL_PROGRAMS:
        return 1
    return max(1, min(MAX_SPLIT, FILL_PROGRAMS // max(programs, 1), steps // SPLIT_MIN_STEPS))


def split_for(config: triton.Config, grid, channels: int, kernel_h: int, kernel_w: int, top_down: bool = False) -> int:
    """The split of a launch with ``config`` (the heuristic's) and ``grid`` (``conv_grid``'s)."""
    if interpreting():
        return INTERPRETER_SPLIT
    programs = 1
    for size in grid(config.kwargs):
        programs *= size
    return split_count(programs, k_steps(channels, kernel_h, kernel_w, config.kwargs["BLOCK_K"], top_down))


def split_grid(grid, split: int):
    """``grid`` with a third axis of ``split`` runs."""
    return lambda meta: (*grid(meta), split)


def conv_grid(batch: int, per_image: int, columns: int, span: bool):
    """Programs over (rows, columns): whole tiles per image, or tiles spanning small images."""
    if span:
        return lambda meta: (triton.cdiv(batch * per_image, meta["BLOCK_M"]), triton.cdiv(columns, meta["BLOCK_N"]))
    return lambda meta: (batch * triton.cdiv(per_image, meta["BLOCK_M"]), triton.cdiv(columns, meta["BLOCK_N"]))


def reduction_per_step(channels: int, kernel_w: int, top_down: bool = False) -> int:
    """How much of K one step of the main loop can cover: a kernel row's (kw, channel) pairs for
    the image layer, one tap's channels otherwise (sizes the interpreter's BLOCK_K)."""
    return channels * kernel_w if flat_k(channels, kernel_w, top_down) else channels


def weights_k_major(storage: torch.dtype) -> bool:
    """Whether the packed weights are K-major for tiles stored in ``storage``: for float32. Hopper's
    TF32 MMA reads B from shared memory K-major only (32-bit operands have no transposed form), so
    N-major weights were copied 4 bytes at a time into a transposed layout, which kept the L1 pipe
    78-87 % busy on an H200 (docs/kernels.md); K-major rows load as 16-byte copies. bfloat16 MMAs
    read either layout and keep N-major weights. ``GENCONV_K_MAJOR=0`` keeps float32 N-major too
    (an A/B switch for ``bench.measured_passes --ab``)."""
    return storage == torch.float32 and os.environ.get("GENCONV_K_MAJOR", "1") != "0"


# Strided top-down passes with at least this many input channels order their GEMM columns phase-major.
PHASE_MAJOR_MIN_CHANNELS = 16


def sub_pixel_phase_row(stride: int, in_channels: int) -> int:
    """The padded channel count of each sub-pixel phase when a strided top-down pass orders its columns
    phase-major (column (rh s + rw) row + c), or 0 for the channel-major order (column c s^2 + rh s + rw).

    Channel-major columns send neighbouring columns to s^2 different pixels, so the epilogue loads
    and stores single elements (the object net's strided passes took 4.8-9.6x their predicted time
    on an H200, L2-bound in Nsight Compute); phase-major columns keep a phase's channels contiguous
    in the NHWC output, and a row that is a multiple of 16 keeps them aligned, so they move as
    vectors. The image layer (3 channels) keeps the channel-major order: padding 3 channels to 16
    would multiply its columns. ``GENCONV_PHASE_MAJOR=0`` keeps every pass channel-major (an A/B
    switch for ``bench.measured_passes --ab``)."""
    if stride == 1 or in_channels < PHASE_MAJOR_MIN_CHANNELS or os.environ.get("GENCONV_PHASE_MAJOR", "1") == "0":
        return 0
    return -(-in_channels // N_ALIGN) * N_ALIGN


def input_precision(storage: torch.dtype) -> str:
    """tl.dot's precision for float32 operands: "tf32" (cuDNN's default) unless GENCONV_TF32=0
    asks for IEEE float32 (the interpreter computes in float32 anyway); bfloat16 ignores it."""
    return "tf32" if tf32_enabled() and not interpreting() else "ieee"


def row_divisor(divisor: int) -> tuple[int, int]:
    """(magic, shift) with which ``divide_rows`` computes n // divisor for every 0 <= n < 2^31 by a
    multiply-high and a shift instead of a division (Granlund and Montgomery, "Division by invariant
    integers using multiplication", 1994): l = ceil(log2 divisor), magic = ceil(2^(31 + l) / divisor),
    which lies in [2^31, 2^32); then n // divisor = floor(n magic / 2^(31 + l)) = umulhi(2 n, magic) >> l,
    since magic divisor - 2^(31 + l) < divisor <= 2^l keeps n magic / 2^(31 + l) under n // divisor + 1."""
    if divisor < 1:
        raise ValueError(f"row_divisor: expected a positive divisor, got {divisor}")
    shift = (divisor - 1).bit_length()
    return -(-(1 << (31 + shift)) // divisor), shift


@triton.jit
def divide_rows(n, magic, shift):
    """n // d for int32 0 <= n < 2^31, by ``row_divisor(d)``'s (magic, shift): the signed division by a
    runtime divisor is about 15 instructions a value, this 3."""
    return (tl.umulhi(n.to(tl.uint32) * 2, magic.to(tl.uint32)) >> shift).to(tl.int32)


@triton.jit
def program_rows(pid_m, n_rows, per_image, BLOCK_M: tl.constexpr, SPAN: tl.constexpr):
    """The GEMM rows of program ``pid_m``: (image index, row within its image, in bounds).

    SPAN: small images share a tile, so each row carries its own image index; otherwise a
    program's rows are one tile of one image's ``per_image`` rows."""
    if SPAN:
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        row_ok = offs_m < n_rows
        sample = (offs_m // per_image).to(tl.int64)
        within = offs_m % per_image
    else:
        tiles = tl.cdiv(per_image, BLOCK_M)
        sample = (pid_m // tiles).to(tl.int64)
        within = (pid_m % tiles) * BLOCK_M + tl.arange(0, BLOCK_M)
        row_ok = within < per_image
    return sample, within, row_ok


@triton.jit
def conv_tile(
    a_ptr,
    a_s0,
    a_s1,
    a_s2,
    a_s3,
    mask_ptr,
    m_s0,
    m_s1,
    m_s2,
    m_s3,
    w_ptr,
    w_row_stride,
    w_columns,
    sample,
    oh,
    ow,
    row_ok,
    offs_n,
    height,
    width,
    slope,
    split,
    C: tl.constexpr,
    KH: tl.constexpr,
    KW: tl.constexpr,
    STRIDE: tl.constexpr,
    PAD: tl.constexpr,
    A_MODE: tl.constexpr,
    LEAKY: tl.constexpr,
    DENSE: tl.constexpr,
    SPAN: tl.constexpr,
    SPLIT: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    SWAP: tl.constexpr,
    W_K_MAJOR: tl.constexpr,
    FLAT: tl.constexpr,
):
    """acc[BLOCK_M, BLOCK_N] (float32) of the convolution for rows (sample, oh, ow), columns offs_n.

    ``sample`` is a scalar when a program's rows lie in one image (its base is then one pointer),
    or, with SPAN (images smaller than a tile), one image index per row.

    DENSE: A (and the mask) are dense NHWC with C channels, so offsets are computed from C and the
    width and the compiler sees rows contiguous along channels (vector loads); otherwise they
    come from the strides, whatever the layout.

    SPLIT > 1: the K loop is cut into SPLIT runs of whole K-steps and this program does run ``split``
    (split-K: a partial sum that ``store_split`` writes and ``sum_splits`` adds up).

    FLAT (``flat_k``): K runs over kernel rows of (kw, channel) pairs instead of taps x channel blocks.

    The packed weights (``packing.gemm_weight``) are [K, w_columns] with rows ``w_row_stride`` apart,
    or with W_K_MAJOR [w_columns, K_pad], columns ``w_row_stride`` apart (``weights_k_major``).
    """
    offs_k = tl.arange(0, BLOCK_K)
    # the image's base (int64); offsets within an image are int32
    if DENSE:
        # a dense NHWC image holds height x width x C elements: computed with the constexpr C, the
        # compiler knows the base's alignment (a stride argument not divisible by 16, e.g. 75 x 75 x 100,
        # would be taken as unaligned and split every load into single elements)
        a_image = height * width * C
        m_image = a_image
    else:
        a_image = a_s0
        m_image = m_s0
    # one pointer per program, or (SPAN) one per row
    a_base = a_ptr + sample * a_image
    m_base = mask_ptr + sample * m_image
    top = oh * STRIDE - PAD
    left = ow * STRIDE - PAD
    # The packed weights' columns are zero-padded to a multiple of 16 (N_ALIGN, w_columns), so masking
    # with the padded width keeps the mask constant over 16 columns: N-major weights load as 16-byte
    # asynchronous copies (a mask at N = 100 or 30 splits them into 2-byte synchronous loads for
    # bfloat16).
    packed_ok = offs_n < w_columns
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc_t = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    if FLAT:
        # The image layer has too few channels for channel blocks, and 100 channels would pad each
        # tap's blocks to 128: K runs over one kernel row of (kw, channel) pairs at a time, kh a scalar
        # of the loop (weights row kh * KW * C + j).
        ROW_K: tl.constexpr = KW * C
        ROW_BLOCKS: tl.constexpr = (ROW_K + BLOCK_K - 1) // BLOCK_K
        STEPS: tl.constexpr = KH * ROW_BLOCKS
        if SPLIT > 1:  # this program's run of K-steps
            first = split * ((STEPS + SPLIT - 1) // SPLIT)
            last = tl.minimum(first + (STEPS + SPLIT - 1) // SPLIT, STEPS)
        else:
            first = 0
            last = STEPS
        # Two values per row, computed once before the loop: the window's top row (rows past the grid's
        # end placed above the image, so that no kernel row of theirs lies inside) and its left edge in
        # (kw, channel) pairs. A K-step tests each element with one unsigned compare ((left + kw) C + c
        # lies in [0, width C) exactly when left + kw lies in [0, width)) and adds it to its row's offset.
        # More per-row values (a bit per kernel row, the corner's offset) cost the image layer's
        # swapped tiles, which hold 16 rows a thread, the registers they have left.
        row_top = tl.where(row_ok, top, -KH)
        edge = left * C
        for step in range(first, last):
            kh = step // ROW_BLOCKS
            j = (step % ROW_BLOCKS) * BLOCK_K + offs_k
            j_ok = j < ROW_K
            row = row_top + kh
            row_in = row.to(tl.uint32, bitcast=True) < height
            column = edge[:, None] + j[None, :]
            ok = row_in[:, None] & j_ok[None, :] & (column.to(tl.uint32, bitcast=True) < width * C)
            if DENSE:
                a_offsets = (row * (width * C))[:, None] + column
                m_offsets = a_offsets
            else:
                cols = left[:, None] + (j // C)[None, :]
                channel = (j % C)[None, :]
                a_offsets = (row * a_s1)[:, None] + cols * a_s2 + channel * a_s3
                m_offsets = (row * m_s1)[:, None] + cols * m_s2 + channel * m_s3
            if SPAN:
                a_ptrs = a_base[:, None] + a_offsets
                m_ptrs = m_base[:, None] + m_offsets
            else:
                a_ptrs = a_base + a_offsets
                m_ptrs = m_base + m_offsets
            a = _a_slab(a_ptrs, m_ptrs, ok, slope, A_MODE, LEAKY)
            if W_K_MAJOR:
                w_ptrs = w_ptr + offs_n[None, :] * w_row_stride + (kh * ROW_K + j)[:, None]
            else:
                w_ptrs = w_ptr + (kh * ROW_K + j)[:, None] * w_row_stride + offs_n[None, :]
            b = tl.load(w_ptrs, mask=j_ok[:, None] & packed_ok[None, :], other=0.0)
            acc, acc_t = _accumulate(a, b, acc, acc_t, SWAP, DOT_DTYPE, PRECISION)
    else:
        # Taps x channel blocks: one scalar tap per step, a slab contiguous along channels. What varies
        # per row (the image base, the window's corner, which taps fall inside the image) is computed
        # once, before the loop; a K-step adds one scalar offset to each row's pointer and tests one
        # bit of the row's tap mask, instead of rebuilding every row's coordinates, bounds and offsets.
        C_BLOCKS: tl.constexpr = (C + BLOCK_K - 1) // BLOCK_K
        inside_bits = _taps_inside(top, left, row_ok, height, width, KH, KW)
        # int32 offsets of each row's window corner (64-bit pointers would hold twice the registers)
        if DENSE:
            a_corner = (top * width + left) * C
            m_corner = a_corner
            tap_h, tap_w, a_channel, m_channel = width * C, C, offs_k, offs_k
        else:
            a_corner = top * a_s1 + left * a_s2
            m_corner = top * m_s1 + left * m_s2
            tap_h, tap_w, a_channel, m_channel = a_s1, a_s2, offs_k * a_s3, offs_k * m_s3
        if SPAN:
            a_rows = a_base[:, None]
            m_rows = m_base[:, None]
        else:
            a_rows = a_base
            m_rows = m_base
        if W_K_MAJOR:
            w_slab = w_ptr + offs_n[None, :] * w_row_stride + offs_k[:, None]
            w_k_stride = 1
        else:
            w_slab = w_ptr + offs_k[:, None] * w_row_stride + offs_n[None, :]
            w_k_stride = w_row_stride
        STEPS: tl.constexpr = KH * KW * C_BLOCKS
        if SPLIT > 1:
            first = split * ((STEPS + SPLIT - 1) // SPLIT)
            last = tl.minimum(first + (STEPS + SPLIT - 1) // SPLIT, STEPS)
        else:
            first = 0
            last = STEPS
        for step in range(first, last):
            tap = step // C_BLOCKS
            c0 = (step % C_BLOCKS) * BLOCK_K
            kh = tap // KW
            kw = tap - kh * KW
            k_ok = offs_k < C - c0
            ok = _tap_inside(inside_bits, kh, kw, KH, KW)[:, None] & k_ok[None, :]
            if DENSE:
                shift = kh * tap_h + kw * tap_w + c0
                a_offsets = shift + a_channel
                m_offsets = a_offsets
            else:
                a_offsets = (kh * tap_h + kw * tap_w + c0 * a_s3) + a_channel
                m_offsets = (kh * m_s1 + kw * m_s2 + c0 * m_s3) + m_channel
            a_ptrs = a_rows + (a_corner[:, None] + a_offsets[None, :])
            m_ptrs = m_rows + (m_corner[:, None] + m_offsets[None, :])
            a = _a_slab(a_ptrs, m_ptrs, ok, slope, A_MODE, LEAKY)
            b = tl.load(w_slab + (tap * C + c0) * w_k_stride, mask=k_ok[:, None] & packed_ok[None, :], other=0.0)
            acc, acc_t = _accumulate(a, b, acc, acc_t, SWAP, DOT_DTYPE, PRECISION)
    if SWAP:
        acc = tl.trans(acc_t)
    return acc


@triton.jit
def _accumulate(a, b, acc, acc_t, SWAP: tl.constexpr, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr):
    """One K-step's product: acc += a b, or with SWAP acc_t += b^T a^T (the transposed tile, so the
    output channels are the MMA's rows and the pixels its columns)."""
    if SWAP:
        acc_t = tl.dot(tl.trans(b.to(DOT_DTYPE)), tl.trans(a.to(DOT_DTYPE)), acc_t, input_precision=PRECISION)
    else:
        acc = tl.dot(a.to(DOT_DTYPE), b.to(DOT_DTYPE), acc, input_precision=PRECISION)
    return acc, acc_t


WORKSPACE_ALIGN = tl.constexpr(16)  # elements: a split-K workspace row's pitch is a multiple (64 bytes)


def workspace_shape(split: int, rows: int, columns: int) -> tuple[int, int, int]:
    """The split-K workspace [SPLIT, rows, pitch], float32: each row padded to ``workspace_pitch``."""
    return split, rows, triton.cdiv(columns, WORKSPACE_ALIGN.value) * WORKSPACE_ALIGN.value


@triton.jit
def workspace_pitch(n_columns):
    """A workspace row's length: ``n_columns`` rounded up to WORKSPACE_ALIGN, which the compiler then
    knows divides it, so a thread's adjacent columns store and load as 16-byte vectors (with a pitch
    of 100 or 27 they went as single floats, each with its own 64-bit address)."""
    return tl.cdiv(n_columns, WORKSPACE_ALIGN) * WORKSPACE_ALIGN


@triton.jit
def store_split(ws_ptr, acc, row, offs_n, row_ok, column_ok, n_rows, n_columns):
    """Split-K, first launch: this program's partial sum into the workspace (``workspace_shape``,
    float32), run ``tl.program_id(2)``; ``row`` the GEMM rows (int64)."""
    split = tl.program_id(2).to(tl.int64)
    offsets = (split * n_rows + row)[:, None] * workspace_pitch(n_columns) + offs_n[None, :]
    tl.store(ws_ptr + offsets, acc, mask=row_ok[:, None] & column_ok[None, :])


@triton.jit
def sum_splits(
    ws_ptr, row, offs_n, row_ok, column_ok, n_rows, n_columns, SPLIT: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Split-K, second launch: the tile's accumulator, the SPLIT partial sums added in a fixed order
    (no atomics: the result does not depend on which run finished first)."""
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    ok = row_ok[:, None] & column_ok[None, :]
    # one address per element, then a run's plane (a scalar) added: not the element's offset per run
    pitch = workspace_pitch(n_columns)
    partial = ws_ptr + (row[:, None] * pitch + offs_n[None, :])
    plane = tl.cast(n_rows, tl.int64) * pitch  # a cast, not .to: n_rows == 1 arrives as a constant
    for _ in tl.static_range(SPLIT):
        acc += tl.load(partial, mask=ok, other=0.0)
        partial += plane
    return acc


@triton.jit
def _taps_inside(top, left, row_ok, height, width, KH: tl.constexpr, KW: tl.constexpr):
    """Per row, which taps (kh, kw) of its window fall inside the image: one bit per tap (bit kh * KW +
    kw) when there are at most 31 taps, else a pair (bits of kh, bits of kw) packed as KH | KW << 16."""
    h_bits = tl.zeros_like(top)
    for kh in tl.static_range(KH):
        h_bits |= tl.where(row_ok & (top + kh >= 0) & (top + kh < height), 1 << kh, 0)
    w_bits = tl.zeros_like(left)
    for kw in tl.static_range(KW):
        w_bits |= tl.where((left + kw >= 0) & (left + kw < width), 1 << kw, 0)
    if KH * KW <= 31:
        bits = tl.zeros_like(top)
        for kh in tl.static_range(KH):
            bits |= tl.where(((h_bits >> kh) & 1) != 0, w_bits << (kh * KW), 0)
    else:
        tl.static_assert(KH <= 16 and KW <= 15, "kernels up to 16 x 15 taps")
        bits = h_bits | (w_bits << 16)
    return bits


@triton.jit
def _tap_inside(bits, kh, kw, KH: tl.constexpr, KW: tl.constexpr):
    """Whether tap (kh, kw) of each row's window lies inside the image (``_taps_inside``'s bits)."""
    if KH * KW <= 31:
        inside = ((bits >> (kh * KW + kw)) & 1) != 0
    else:
        inside = ((bits >> kh) & (bits >> (16 + kw)) & 1) != 0
    return inside


@triton.jit
def _a_slab(a_ptrs, m_ptrs, ok, slope, A_MODE: tl.constexpr, LEAKY: tl.constexpr):
    """One [BLOCK_M, BLOCK_K] slab of A: the input, a gradient gated by act'(mask), or act'(mask)."""
    if A_MODE == 2:
        on = tl.load(m_ptrs, mask=ok, other=0)
        if LEAKY:
            a = tl.where(ok, tl.where(on != 0, 1.0, slope), 0.0)
        else:
            a = tl.where(on != 0, 1.0, 0.0)  # the mask reads 0 outside ``ok``
    else:
        a = tl.load(a_ptrs, mask=ok, other=0.0)
        if A_MODE == 1:
            on = tl.load(m_ptrs, mask=ok, other=0)
            a = gated(a, on != 0, slope, LEAKY)
    return a


@triton.jit
def gated(value, on, slope, LEAKY: tl.constexpr):
    """value x act'(r), ``on`` where the unit r was on: ``slope`` x value where off; for ReLU (``LEAKY``
    false, slope 0) one select of 0 there, in value's dtype, whatever value is, as torch's ReLU backward
    gives (the PyTorch twins multiply by act', so an inf or NaN at an off unit is where they differ)."""
    if LEAKY:
        result = tl.where(on, value, value.to(tl.float32) * slope)
    else:
        # slope is 0 here; a runtime zero, since with the literal 0.0 the compiler moves the select after
        # a bfloat16 result's conversion, onto packed halves (object@100 bfloat16 TD2: 202 PRMT after the loop, not 112)
        result = tl.where(on, value, slope)
    return result


def is_dense_nhwc(tensor: torch.Tensor) -> bool:
    """True when a [B, C, H, W] tensor is laid out as dense NHWC (channels-last, no gaps)."""
    batch, channels, height, width = tensor.shape
    expected = (height * width * channels, 1, width * channels, channels)
    layout = zip(tensor.shape, tensor.stride(), expected, strict=True)
    return all(size == 1 or stride == want for size, stride, want in layout)
