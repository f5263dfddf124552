"""Top-down layer: conv_transpose(G * act'(r), W) as one forward implicit GEMM (the sub-pixel form).

With stride s, padding p and kernel K, the transposed convolution equals a stride-1 convolution
of G (padding U - 1, U = ceil(K / s)) with the s^2 phases' flipped sub-kernels stacked as output
channels (``packing.transpose_as_conv``): column n = c s^2 + rh s + rw of conv row q lands on input
pixel q s + r - p. So every layer's top-down pass is the same main loop as the bottom-up pass
(``implicit_gemm.conv_tile``) with N = s^2 C_in: the image layer's N = C_in = 3 becomes 27 (one
tile of 32, not 3 padded to 16 in each of s^2 phase launches), and the epilogue scatters each
column to its pixel. Only the conv rows that land inside the image are computed. In a chain each
layer's epilogue gates its result with act' of the layer below (1 where that unit was on,
``slope`` where off: one mask read per element), so the next layer's main loop reads plain
coefficients; a gradient given with a mask is gated as it loads instead, and without a gradient
(the summed top) act'(mask) itself is the input: no tensor of ones exists.

For the image layer the Langevin update runs in the epilogue: the image-space gradient stays in
registers and the kernel writes the next chain state x' = x + (delta^2/2)(g - x/sigma^2) + delta z,
z = normal(seed, base + offset + e) for the state's row-major element e (``normal.tile_normal``), or a
given tensor.
"""

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from genconv.kernels.conv_forward import nhwc_strides
from genconv.kernels.implicit_gemm import (
    A_MASKED,
    A_PLAIN,
    A_UNIT,
    FILL_PROGRAMS,
    N_ALIGN,
    SUM_TILE,
    conv_configs,
    conv_grid,
    conv_tile,
    divide_rows,
    flat_k,
    gated,
    heuristic_config,
    input_precision,
    is_dense_nhwc,
    narrow_epilogue,
    program_rows,
    prune_configs,
    reduction_per_step,
    row_divisor,
    spans_images,
    split_for,
    split_grid,
    store_split,
    sub_pixel_phase_row,
    sum_splits,
    tile_rows,
    weights_k_major,
    wide_tall_wanted,
    workspace_shape,
)
from genconv.kernels.langevin_update import update_arguments
from genconv.kernels.launch import (
    BATCH_BUCKET,
    SUPPORTED_DTYPES,
    batch_bucket,
    check_device,
    check_dtype,
    dot_dtype,
    interpreter_tiles,
    interpreting,
    launch,
)
from genconv.kernels.normal import COUNTER_ARGUMENTS, tile_normal
from genconv.kernels.packing import packed_gemm_transpose, packed_phase_gemm, phase_taps
from genconv.kernels.patch_fold import fold_langevin, images_per_chunk, patch_fold_wanted, patch_row, patch_weight


@triton.autotune(
    configs=conv_configs(top_down=True),
    key=["n_columns", "nq_h", "nq_w", "g_h", "g_w", BATCH_BUCKET],
    prune_configs_by={"early_config_prune": prune_configs},
)
@triton.jit(do_not_specialize=[*COUNTER_ARGUMENTS, BATCH_BUCKET, "nq_w_magic", "nq_w_shift"])
def _conv_transpose_kernel(
    g_ptr,
    mask_ptr,
    w_ptr,
    out_ptr,
    x_ptr,
    noise_ptr,
    counter_ptr,
    gate_ptr,
    ws_ptr,
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
    x_s0,
    x_s1,
    x_s2,
    x_s3,
    n_s0,
    n_s1,
    n_s2,
    n_s3,
    t_s0,
    t_s1,
    t_s2,
    t_s3,
    w_row_stride,
    w_columns,
    g_h,
    g_w,
    in_h,
    in_w,
    q0_h,
    q0_w,
    nq_h,
    nq_w,
    nq_w_magic,
    nq_w_shift,
    n_rows,
    n_columns,
    slope,
    half_delta_sq,
    sigma_sq,
    delta,
    offset_low,
    offset_high,
    clamp_low,
    clamp_high,
    batch_bucket,
    C: tl.constexpr,
    C_IN: tl.constexpr,
    TAPS: tl.constexpr,
    TAPS_H: tl.constexpr,
    TAPS_W: tl.constexpr,
    TAP0_H: tl.constexpr,
    TAP0_W: tl.constexpr,
    PHASE: tl.constexpr,
    STRIDE: tl.constexpr,
    PAD: tl.constexpr,
    A_MODE: tl.constexpr,
    DENSE: tl.constexpr,
    SPAN: tl.constexpr,
    OUT_GATE: tl.constexpr,
    GATE_DENSE: tl.constexpr,
    PHASE_ROW: tl.constexpr,
    FUSE_LANGEVIN: tl.constexpr,
    HAS_NOISE: tl.constexpr,
    CLAMP: tl.constexpr,
    SPLIT: tl.constexpr,
    SPLIT_PHASE: tl.constexpr,
    LEAKY: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    SWAP: tl.constexpr,
    W_K_MAJOR: tl.constexpr,
    FLAT: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    sample, within, row_ok = program_rows(pid_m, n_rows, nq_h * nq_w, BLOCK_M, SPAN)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    column_ok = offs_n < n_columns
    # A 1x1 layer at stride 1 without padding over dense NHWC tensors (``patch_fold``'s patch GEMM): GEMM
    # row ``within`` is the same pixel of the gradient and of the result, so a row needs no window and no
    # division into (row, column): the image is taken as one row of pixels
    POINTWISE: tl.constexpr = (TAPS == 1 and STRIDE == 1 and PAD == 0 and DENSE and not FUSE_LANGEVIN
                               and (GATE_DENSE or not OUT_GATE))  # fmt: skip
    if POINTWISE:
        qh = tl.zeros_like(within)
        qw = within
        g_w = g_h * g_w
        g_h = 1
    else:  # within // nq_w by a multiply-high (``row_divisor``): the epilogue computes it again per row
        q_row = divide_rows(within, nq_w_magic, nq_w_shift)
        qh = q0_h + q_row
        qw = q0_w + (within - q_row * nq_w)
    row = sample * (nq_h * nq_w) + within  # the GEMM row (int64)
    if SPLIT_PHASE == 2:
        acc = sum_splits(ws_ptr, row, offs_n, row_ok, column_ok, n_rows, n_columns, SPLIT, BLOCK_M, BLOCK_N)
    else:
        # the taps [TAP0, TAP0 + TAPS_*) of the U x U sub-pixel kernel (all of them, or one phase's)
        acc = conv_tile(
            g_ptr, g_s0, g_s1, g_s2, g_s3, mask_ptr, m_s0, m_s1, m_s2, m_s3, w_ptr, w_row_stride, w_columns, sample,
            qh + TAP0_H, qw + TAP0_W, row_ok, offs_n, g_h, g_w, slope, tl.program_id(2), C, TAPS_H, TAPS_W, 1,
            TAPS - 1, A_MODE, LEAKY, DENSE, SPAN, SPLIT, DOT_DTYPE, PRECISION, BLOCK_M, BLOCK_N, BLOCK_K, SWAP,
            W_K_MAJOR, FLAT,
        )  # fmt: skip
    if SPLIT_PHASE == 1:
        store_split(ws_ptr, acc, row, offs_n, row_ok, column_ok, n_rows, n_columns)
    else:
        # Column n = c s^2 + rh s + rw of conv row (qh, qw) is input pixel (qh s + rh - p, qw s + rw - p);
        # with PHASE_ROW > 0 (phase-major columns, ``sub_pixel_phase_row``) n = (rh s + rw) PHASE_ROW + c;
        # with PHASE >= 0 (one phase's launch) n = c of phase PHASE = rh s + rw.
        # At stride 1 conv row ``within`` is the result's pixel ``within`` (q = y + p over the whole image):
        # it lies inside, and dense offsets need no (row, column), only strided tensors do (the state,
        # the noise, a strided gate), so the epilogue divides ``within`` only for those.
        if STRIDE == 1:
            channel = offs_n[None, :]
            if not POINTWISE:  # (the pointwise form has no strided tensor)
                rows = (qh - PAD)[:, None]
                cols = (qw - PAD)[:, None]
        elif PHASE >= 0:
            channel = offs_n[None, :]
            rows = (qh * STRIDE + (PHASE // STRIDE - PAD))[:, None]
            cols = (qw * STRIDE + (PHASE % STRIDE - PAD))[:, None]
        elif PHASE_ROW > 0:
            phase = offs_n // PHASE_ROW
            channel = (offs_n % PHASE_ROW)[None, :]
            rows = qh[:, None] * STRIDE + (phase // STRIDE)[None, :] - PAD
            cols = qw[:, None] * STRIDE + (phase % STRIDE)[None, :] - PAD
        else:
            channel = (offs_n // (STRIDE * STRIDE))[None, :]
            rows = qh[:, None] * STRIDE + ((offs_n // STRIDE) % STRIDE)[None, :] - PAD
            cols = qw[:, None] * STRIDE + (offs_n % STRIDE)[None, :] - PAD
        # channel < C_IN is column_ok with a constexpr bound: the compiler then knows the mask constant over
        # runs of channels and loads and stores vectors (a runtime bound of 100 splits them into elements)
        channel_ok = channel < C_IN
        if PHASE_ROW > 0:  # a tile's columns past the last phase would read as phases s^2, s^2 + 1, ...
            channel_ok = channel_ok & (offs_n < STRIDE * STRIDE * PHASE_ROW)[None, :]
        if STRIDE == 1:
            valid = row_ok[:, None] & channel_ok
        else:
            valid = row_ok[:, None] & channel_ok & (rows >= 0) & (rows < in_h) & (cols >= 0) & (cols < in_w)
        image = sample[:, None] if SPAN else sample  # broadcasts against [BLOCK_M, BLOCK_N] offsets
        if FUSE_LANGEVIN:
            x = tl.load(x_ptr + image * x_s0 + (rows * x_s1 + cols * x_s2 + channel * x_s3), mask=valid, other=0.0)
            x = x.to(tl.float32)
            if HAS_NOISE:
                z = tl.load(noise_ptr + image * n_s0 + (rows * n_s1 + cols * n_s2 + channel * n_s3), mask=valid,
                            other=0.0).to(tl.float32)  # fmt: skip
            else:
                # the state's row-major element: image base (int64) + (c, row, col) within it (int32)
                base = tl.load(counter_ptr + 1) + (offset_high.to(tl.int64) << 31) + offset_low
                base += image * (C_IN * in_h * in_w)
                z = tile_normal(tl.load(counter_ptr), base + ((channel * in_h + rows) * in_w + cols), BLOCK_M, BLOCK_N)
            result = x + half_delta_sq * (acc - x / sigma_sq) + delta * z
            if CLAMP:
                result = tl.minimum(tl.maximum(result, clamp_low), clamp_high)
            out_offsets = rows * o_s1 + cols * o_s2 + channel * o_s3
        else:
            result = acc
            if OUT_GATE:  # act' of the layer below, so its top-down pass reads gated coefficients
                if GATE_DENSE:  # dense NHWC: offsets from the constexpr C_IN, whose alignment the compiler knows
                    if STRIDE == 1:
                        gate = gate_ptr + image * (in_h * in_w * C_IN) + (within[:, None] * C_IN + channel)
                    else:
                        gate = gate_ptr + image * (in_h * in_w * C_IN) + ((rows * in_w + cols) * C_IN + channel)
                else:
                    gate = gate_ptr + image * t_s0 + (rows * t_s1 + cols * t_s2 + channel * t_s3)
                on = tl.load(gate, mask=valid, other=0)
                result = gated(result, on != 0, slope, LEAKY)
            if STRIDE == 1:  # the layer input's gradient: dense NHWC
                out_offsets = within[:, None] * C_IN + channel
            else:
                out_offsets = (rows * in_w + cols) * C_IN + channel
        # o_s0 = in_h x in_w x C_IN (the launcher allocates out densely, NHWC or NCHW); the product with the
        # constexpr keeps its alignment known to the compiler
        tl.store(out_ptr + image * (in_h * in_w * C_IN) + out_offsets, result.to(out_ptr.dtype.element_ty), mask=valid)


def padded_rows(mask: torch.Tensor) -> torch.Tensor | None:
    """The [B, C_row, H, W] view of an NHWC mask [B, C, H, W] whose pixel rows hold C_row > C bytes
    (a multiple of 16: the summed top's), or None for any other layout."""
    batch, channels, height, width = mask.shape
    s0, s1, s2, s3 = mask.stride()
    row = s3
    if s1 != 1 or row <= channels or row % 16 or s2 != width * row or (batch > 1 and s0 != height * width * row):
        return None
    return mask.as_strided((batch, row, height, width), (height * width * row, 1, width * row, row),
                           mask.storage_offset())  # fmt: skip


# (x, delta, sigma, seed or [seed, base] tensor, offset, noise, clamp) of a fused Langevin update
FusedUpdate = tuple[
    torch.Tensor, float, float, int | torch.Tensor | None, int, torch.Tensor | None, tuple[float, float] | None
]


def _launch_transpose(
    grad: torch.Tensor | None,
    mask: torch.Tensor | None,
    weight: torch.Tensor,
    stride: int,
    padding: int,
    slope: float,
    input_hw: tuple[int, int],
    langevin: FusedUpdate | None,
    output_mask: torch.Tensor | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    unit = grad is None
    if unit and mask is None:
        raise ValueError("masked_conv_transpose needs a gradient, a mask, or both")
    if not unit:
        check_dtype("grad", grad)
    given = [t for t in (grad, mask, output_mask) if t is not None]
    check_device(weight, *given)
    source = mask if unit else grad
    if (
        source.dim() != 4
        or weight.dim() != 4
        or weight.shape[0] != source.shape[1]
        or (grad is not None and mask is not None and grad.shape != mask.shape)
    ):
        raise ValueError(
            f"expected grad and mask [B, C_out, H', W'] and weight [C_out, C_in, K, K]; got "
            f"{None if grad is None else list(grad.shape)}, {None if mask is None else list(mask.shape)}, "
            f"{list(weight.shape)}"
        )
    batch, c_out, g_h, g_w = source.shape
    _, c_in, kernel, _ = weight.shape
    in_h, in_w = input_hw
    if (in_h + 2 * padding - kernel) // stride + 1 != g_h or (in_w + 2 * padding - kernel) // stride + 1 != g_w:
        raise ValueError(f"input size {in_h}x{in_w} does not map to the gradient's {g_h}x{g_w}")
    compute_dtype = (dtype or weight.dtype) if unit else grad.dtype
    if compute_dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"the weights must be float32 or bfloat16 for the Triton kernels, got {compute_dtype}")
    channels = c_out
    if unit:
        wide = padded_rows(mask)
        if wide is not None:  # the summed top's mask: read its padded rows whole, the extra channels' weights 0
            mask = source = wide
            channels = wide.shape[1]
    k_major = weights_k_major(compute_dtype)
    phase_row = sub_pixel_phase_row(stride, c_in) if langevin is None else 0
    # Conv rows q whose pixels q s + r - p fall inside the image.
    q0_h, q0_w = padding // stride, padding // stride
    nq_h, nq_w = (in_h - 1 + padding) // stride - q0_h + 1, (in_w - 1 + padding) // stride - q0_w + 1
    rows = batch * nq_h * nq_w
    span = spans_images(nq_h * nq_w)
    row_tiles = triton.cdiv(rows, 128) if span else batch * triton.cdiv(nq_h * nq_w, 128)
    split_phases = phase_split_wanted(phase_row, row_tiles * triton.cdiv(c_in, 128))
    in_channels = channels if channels != c_out else None
    gemms = _sub_pixel_gemms(weight, stride, padding, compute_dtype, in_channels, k_major, phase_row, split_phases)
    mask = source if mask is None else mask  # read only with a mask mode
    if output_mask is not None and output_mask.shape != (batch, c_in, in_h, in_w):
        raise ValueError(f"output_mask must have shape {[batch, c_in, in_h, in_w]}, got {list(output_mask.shape)}")
    gate = source if output_mask is None else output_mask
    if langevin is None:
        out = torch.empty((batch, c_in, in_h, in_w), dtype=compute_dtype, device=source.device,
                          memory_format=torch.channels_last)  # fmt: skip
        x = noise = out
        counter, scalars = torch.zeros(2, dtype=torch.int64, device=source.device), (0.0, 1.0, 0.0, 0, 0, 0.0, 0.0)
        flags = {"FUSE_LANGEVIN": False, "HAS_NOISE": False, "CLAMP": False}
    else:
        x, delta, sigma, seed, offset, noise, clamp = langevin
        check_dtype("x", x)
        check_device(source, x, *(() if noise is None else (noise,)))
        if x.shape != (batch, c_in, in_h, in_w) or (noise is not None and noise.shape != x.shape):
            raise ValueError(f"x and noise must have shape {[batch, c_in, in_h, in_w]}, got {list(x.shape)}")
        out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        counter, scalars = update_arguments(delta, sigma, seed, offset, noise, clamp, x.device)
        flags = {"FUSE_LANGEVIN": True, "HAS_NOISE": noise is not None, "CLAMP": clamp is not None}
        noise = x if noise is None else noise
    a_mode = (A_UNIT if unit else A_PLAIN if mask is source else A_MASKED).value
    if not (rows and out.numel()):
        return out
    for gemm in gemms:
        columns = gemm.columns
        grid = conv_grid(batch, nq_h * nq_w, columns, span)
        if interpreting():
            configs = interpreter_tiles(rows, columns, reduction_per_step(channels, gemm.taps_w, top_down=True))
            heuristic = configs[0]
            split = split_for(heuristic, grid, channels, gemm.taps_h, gemm.taps_w, top_down=True)
        else:
            named = {"n_columns": columns, "n_rows": rows, "nq_h": nq_h, "nq_w": nq_w}
            epilogue = {"STRIDE": stride, "FUSE_LANGEVIN": langevin is not None, "PHASE_ROW": gemm.phase_row,
                        "PHASE": gemm.phase, "DOT_DTYPE": dot_dtype(compute_dtype)}  # fmt: skip
            wide = wide_tall_wanted({"TAPS": gemm.taps, **epilogue})
            heuristic = heuristic_config(columns, tile_rows(named, span), top_down=True, images=1 if span else batch,
                                         channels=channels, langevin=narrow_epilogue(epilogue), kernel_w=gemm.taps_w,
                                         kernel_h=gemm.taps_h, wide=wide)  # fmt: skip
            split = split_for(heuristic, grid, channels, gemm.taps_h, gemm.taps_w, top_down=True)
            configs = prune_configs(conv_configs(top_down=True), named, SPAN=span, C=channels, TAPS=gemm.taps,
                                    SPLIT=split, **epilogue)  # fmt: skip
        # split-K: the runs' partial sums, then a launch that adds them and runs the epilogue
        ws = counter
        if split > 1:
            ws = torch.empty(workspace_shape(split, rows, columns), dtype=torch.float32, device=source.device)
        packed = gemm.packed
        for phase in (1, 2) if split > 1 else (0,):
            launch(
                _conv_transpose_kernel,
                split_grid(grid, split) if phase == 1 else grid,
                *((configs, heuristic) if phase < 2 else ([SUM_TILE], SUM_TILE)),
                source, mask, packed, out, x, noise, counter, gate, ws,
                *nhwc_strides(source), *nhwc_strides(mask), *nhwc_strides(out), *nhwc_strides(x),
                *nhwc_strides(noise), *nhwc_strides(gate),
                packed.stride(0), packed.shape[0 if k_major else 1], g_h, g_w, in_h, in_w, q0_h, q0_w, nq_h, nq_w,
                *row_divisor(nq_w), rows, columns, float(slope), *scalars,
                batch_bucket=batch_bucket(batch),
                C=channels, C_IN=c_in, TAPS=gemm.taps, TAPS_H=gemm.taps_h, TAPS_W=gemm.taps_w, TAP0_H=gemm.tap0_h,
                TAP0_W=gemm.tap0_w, PHASE=gemm.phase, STRIDE=stride, PAD=padding, A_MODE=a_mode,
                DENSE=is_dense_nhwc(source) and is_dense_nhwc(mask), SPAN=span, OUT_GATE=output_mask is not None,
                GATE_DENSE=output_mask is not None and is_dense_nhwc(output_mask), PHASE_ROW=gemm.phase_row,
                SPLIT=split, SPLIT_PHASE=phase, LEAKY=slope != 0, DOT_DTYPE=dot_dtype(compute_dtype),
                PRECISION=input_precision(compute_dtype), W_K_MAJOR=k_major,
                FLAT=flat_k(channels, gemm.taps_w, top_down=True), **flags,
            )  # fmt: skip
    return out


@dataclass(frozen=True)
class SubPixelGemm:
    """One GEMM of a top-down pass: its packed weights, its columns, the taps [tap0, tap0 + taps_*) of the
    U x U sub-pixel kernel it runs (``taps`` = U), and the columns' order: all phases (``phase`` -1,
    channel-major, or phase-major rows of ``phase_row``) or the C_in channels of one phase."""

    packed: torch.Tensor
    columns: int
    taps: int
    taps_h: int
    taps_w: int
    tap0_h: int = 0
    tap0_w: int = 0
    phase: int = -1
    phase_row: int = 0


# A phase's GEMM is launched on its own where it has at least this many 128 x 128 tiles (a GPU's worth):
# with fewer, s^2 launches of a quarter of the programs each leave SMs idle (the cost model prices the
# object net's strided passes at B = 16 1.1-2.1x slower split, at B = 256 5-21 % faster).
PHASE_SPLIT_TILES = FILL_PROGRAMS


def phase_split_wanted(phase_row: int, phase_tiles: int) -> bool:
    """Whether a strided top-down pass with phase-major columns runs as one GEMM per sub-pixel phase.

    One GEMM over all s^2 phases runs every phase over all U^2 taps of the sub-pixel kernel, but phase
    (rh, rw) has weights on only ceil((K - rh) / s) x ceil((K - rw) / s) of them: the object net's
    5x5 stride-2 layer computes 36 tap-phases for 25 that carry weights (its 3x3 one 16 for 9). Each
    phase's own launch runs only its taps, and stores its C_in channels of whole pixels. Taken where
    each phase's GEMM has ``PHASE_SPLIT_TILES`` tiles (``phase_tiles``) or more; ``GENCONV_PHASE_SPLIT=0``
    keeps the single phase-major launch everywhere, ``=1`` splits wherever columns are phase-major."""
    switch = os.environ.get("GENCONV_PHASE_SPLIT", "")
    if switch in ("0", "1"):
        return phase_row > 0 and switch == "1"
    return phase_row > 0 and phase_tiles >= PHASE_SPLIT_TILES


def _sub_pixel_gemms(
    weight: torch.Tensor,
    stride: int,
    padding: int,
    dtype: torch.dtype,
    in_channels: int | None,
    k_major: bool,
    phase_row: int,
    split_phases: bool,
) -> list[SubPixelGemm]:
    """The GEMMs of a top-down pass: the whole sub-pixel stack, or one per phase (``phase_split_wanted``)."""
    c_in, kernel = weight.shape[1], weight.shape[-1]
    if split_phases:
        taps = -(-kernel // stride)
        gemms = []
        for phase in range(stride * stride):
            (tap0_h, taps_h), (tap0_w, taps_w) = (phase_taps(kernel, stride, r) for r in divmod(phase, stride))
            packed = packed_phase_gemm(weight, stride, padding, phase, dtype, N_ALIGN, in_channels, k_major)
            gemms.append(SubPixelGemm(packed, c_in, taps, taps_h, taps_w, tap0_h, tap0_w, phase))
        return gemms
    packed, form = packed_gemm_transpose(weight, stride, padding, dtype, N_ALIGN, in_channels, k_major, phase_row)
    taps = form.weight.shape[-1]
    return [SubPixelGemm(packed, stride * stride * (phase_row or c_in), taps, taps, taps, phase_row=phase_row)]


def masked_conv_transpose(
    grad: torch.Tensor | None,
    mask: torch.Tensor | None,
    weight: torch.Tensor,
    stride: int,
    padding: int,
    slope: float,
    input_hw: tuple[int, int],
    output_mask: torch.Tensor | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """One top-down layer, channels-last; the contract of ``reference.masked_conv_transpose``.

    ``grad`` None: a unit upstream gradient, only the mask is read; ``mask`` None: ``grad`` is
    already gated; ``output_mask``: the result is gated by act' of the layer below in the epilogue;
    ``dtype``: with ``grad`` None, the dtype to compute and return in (the weights' by default).
    """
    return _launch_transpose(grad, mask, weight, stride, padding, slope, input_hw, None, output_mask, dtype)


def masked_conv_transpose_langevin(
    grad: torch.Tensor | None,
    mask: torch.Tensor | None,
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
    """The bottom top-down layer with the Langevin update in its epilogue: the next state (contiguous).

    ``seed`` may be an int64 device tensor [seed, base], as for ``langevin_update``.
    """
    if noise is None and seed is None:
        raise ValueError("masked_conv_transpose_langevin needs either noise or a seed")
    langevin = (x, float(delta), float(sigma), seed, int(offset), noise, clamp)
    if weight.dim() == 4 and patch_fold_wanted(weight.shape[1], weight.shape[-1], stride):
        return _patch_fold_langevin(grad, mask, weight, stride, padding, slope, langevin)
    return _launch_transpose(grad, mask, weight, stride, padding, slope, (x.shape[-2], x.shape[-1]), langevin)


def _patch_fold_langevin(
    grad: torch.Tensor | None,
    mask: torch.Tensor | None,
    weight: torch.Tensor,
    stride: int,
    padding: int,
    slope: float,
    langevin: FusedUpdate,
) -> torch.Tensor:
    """``masked_conv_transpose_langevin`` as a patch GEMM and a fold (``patch_fold``), in chunks of images."""
    x, delta, sigma, seed, offset, noise, clamp = langevin
    check_dtype("x", x)
    source = mask if grad is None else grad
    if source is None:
        raise ValueError("masked_conv_transpose needs a gradient, a mask, or both")
    c_out, c_in, kernel, _ = weight.shape
    batch, _, g_h, g_w = source.shape
    if x.dim() != 4 or x.shape[:2] != (batch, c_in) or (noise is not None and noise.shape != x.shape):
        raise ValueError(f"x and noise must have shape [{batch}, {c_in}, H, W], got {list(x.shape)}")
    in_h, in_w = x.shape[-2:]
    if (in_h + 2 * padding - kernel) // stride + 1 != g_h or (in_w + 2 * padding - kernel) // stride + 1 != g_w:
        raise ValueError(f"input size {in_h}x{in_w} does not map to the gradient's {g_h}x{g_w}")
    check_device(weight, source, x, *(() if noise is None else (noise,)))
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    patch_dtype = weight.dtype if grad is None else grad.dtype  # what the 1x1 pass computes and stores in
    per_image = patch_row(c_in, kernel) * g_h * g_w * patch_dtype.itemsize
    chunk = images_per_chunk(batch, per_image)
    layer = patch_weight(weight)
    for first in range(0, batch, chunk):
        part = slice(first, first + chunk)
        patches = _patch_gemm(None if grad is None else grad[part], None if mask is None else mask[part], layer, slope)
        fold_langevin(patches, x[part], out[part], kernel, stride, padding, first, delta, sigma, seed, offset,
                      None if noise is None else noise[part], clamp)  # fmt: skip
    return out


def _patch_gemm(
    grad: torch.Tensor | None, mask: torch.Tensor | None, layer: torch.Tensor, slope: float
) -> torch.Tensor:
    """The patches of a chunk of images: the 1x1 top-down ``layer`` over them, [B, R, H', W'] channels-last.
    Dense NHWC inputs are taken as one row of B H' W' pixels, so the GEMM's row tiles run on across
    images instead of padding each image's last one (the texture net's 22 x 22 = 484 rows in four
    128-row tiles: 5.5 % of the rows)."""
    given = [t for t in (grad, mask) if t is not None]
    batch, _, height, width = given[0].shape
    pixels = batch * height * width
    if not all(is_dense_nhwc(t) for t in given) or pixels * max(given[0].shape[1], layer.shape[1]) >= 2**31:
        return _launch_transpose(grad, mask, layer, 1, 0, slope, (height, width), None)
    row = _launch_transpose(*(None if t is None else _pixel_row(t) for t in (grad, mask)), layer, 1, 0, slope,
                            (1, pixels), None)  # fmt: skip
    return row.permute(0, 2, 3, 1).reshape(batch, height, width, -1).permute(0, 3, 1, 2)


def _pixel_row(tensor: torch.Tensor) -> torch.Tensor:
    """A dense NHWC [B, C, H, W] tensor as a view [1, C, 1, B H W] (the same memory)."""
    batch, channels, height, width = tensor.shape
    return tensor.permute(0, 2, 3, 1).reshape(1, 1, batch * height * width, channels).permute(0, 3, 1, 2)
