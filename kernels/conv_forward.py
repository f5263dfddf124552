"""Bottom-up layer: h = act(conv(x, W) + b) as an implicit GEMM, emitting the binary ReLU mask.

GEMM view (``implicit_gemm.py``): rows M = output pixels (B * H' * W'), columns N = output
channels, K = KH * KW * C_in over the weights packed once per chain. The epilogue adds the bias,
applies ReLU or leaky ReLU and writes h and the mask 1[pre-activation > 0] (one byte each),
channels-last. For the top of a stationary model it writes instead per-row partial sums of h over
each column tile (f without the top activations in memory), or, in a sampling chain that does not
need f, the mask alone.
"""

import torch
import triton
import triton.language as tl

from genconv.kernels.implicit_gemm import (
    A_PLAIN,
    FLAT_K_CHANNELS,
    N_ALIGN,
    SUM_TILE,
    conv_configs,
    conv_grid,
    conv_tile,
    flat_k,
    heuristic_config,
    hopper_tiles_wanted,
    input_precision,
    is_dense_nhwc,
    program_rows,
    prune_configs,
    reduction_per_step,
    spans_images,
    split_for,
    split_grid,
    store_split,
    sum_splits,
    tile_rows,
    weights_k_major,
    wide_k_wanted,
    wide_tall_wanted,
    workspace_shape,
)
from genconv.kernels.launch import (
    BATCH_BUCKET,
    batch_bucket,
    check_device,
    check_dtype,
    dot_dtype,
    interpreter_tiles,
    interpreting,
    launch,
)
from genconv.kernels.packing import packed_gemm_weight


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


@triton.autotune(
    configs=conv_configs(),
    key=["n_columns", "out_h", "out_w", "height", "width", BATCH_BUCKET],
    prune_configs_by={"early_config_prune": prune_configs},
    reset_to_zero=["partial_ptr"],
)
@triton.jit(do_not_specialize=[BATCH_BUCKET])
def _conv_forward_kernel(
    x_ptr,
    w_ptr,
    b_ptr,
    out_ptr,
    mask_ptr,
    partial_ptr,
    ws_ptr,
    x_s0,
    x_s1,
    x_s2,
    x_s3,
    o_s0,
    w_row_stride,
    w_columns,
    height,
    width,
    out_h,
    out_w,
    n_rows,
    n_columns,
    slope,
    batch_bucket,
    C_IN: tl.constexpr,
    C_OUT: tl.constexpr,
    KH: tl.constexpr,
    KW: tl.constexpr,
    STRIDE: tl.constexpr,
    PAD: tl.constexpr,
    DENSE: tl.constexpr,
    SPAN: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    STORE_OUTPUT: tl.constexpr,
    STORE_PARTIAL_SUM: tl.constexpr,
    SPLIT: tl.constexpr,
    SPLIT_PHASE: tl.constexpr,
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
    pixels = out_h * out_w
    sample, pixel, row_ok = program_rows(pid_m, n_rows, pixels, BLOCK_M, SPAN)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    column_ok = offs_n < n_columns
    oh = pixel // out_w
    ow = pixel % out_w
    row = sample * pixels + pixel  # the GEMM row (int64)
    if SPLIT_PHASE == 2:
        acc = sum_splits(ws_ptr, row, offs_n, row_ok, column_ok, n_rows, n_columns, SPLIT, BLOCK_M, BLOCK_N)
    else:
        acc = conv_tile(
            x_ptr, x_s0, x_s1, x_s2, x_s3, x_ptr, 0, 0, 0, 0, w_ptr, w_row_stride, w_columns, sample, oh, ow,
            row_ok, offs_n, height, width, slope, tl.program_id(2), C_IN, KH, KW, STRIDE, PAD, A_PLAIN, False, DENSE,
            SPAN, SPLIT, DOT_DTYPE, PRECISION, BLOCK_M, BLOCK_N, BLOCK_K, SWAP, W_K_MAJOR, FLAT,
        )  # fmt: skip
    if SPLIT_PHASE == 1:
        store_split(ws_ptr, acc, row, offs_n, row_ok, column_ok, n_rows, n_columns)
    else:
        _epilogue(
            acc, b_ptr, out_ptr, mask_ptr, partial_ptr, sample, pixel, pixels, row_ok, offs_n, column_ok, n_rows,
            slope, pid_n, C_OUT, SPAN, HAS_BIAS, STORE_OUTPUT, STORE_PARTIAL_SUM,
        )  # fmt: skip


@triton.jit
def _epilogue(
    acc, b_ptr, out_ptr, mask_ptr, partial_ptr, sample, pixel, pixels, row_ok, offs_n, column_ok, n_rows, slope,
    pid_n, C_OUT: tl.constexpr, SPAN: tl.constexpr, HAS_BIAS: tl.constexpr, STORE_OUTPUT: tl.constexpr,
    STORE_PARTIAL_SUM: tl.constexpr,
):  # fmt: skip
    """Bias, activation and the stores of h, the mask or the per-row partial sums of h."""
    if HAS_BIAS:
        # where C_OUT is the channel count (not the summed top's padded mask rows) the constexpr bound lets
        # a thread load its pairs of adjacent columns as one vector (the runtime one: one masked load each)
        bias_ok = (offs_n < C_OUT) if STORE_OUTPUT else column_ok
        acc += tl.load(b_ptr + offs_n, mask=bias_ok, other=0.0).to(tl.float32)[None, :]
    on = acc > 0
    h = tl.where(on, acc, acc * slope)
    # Bounded by the constexpr row width, not the runtime column count: the compiler then knows the
    # mask constant over runs of columns and stores h and the mask as vectors (a runtime bound of 100
    # split them into single elements). The summed top's padding columns have zero weights and bias,
    # so they store h = 0 and an off mask into its padded rows.
    valid = row_ok[:, None] & (offs_n < C_OUT)[None, :]
    # h and the mask are NHWC with pixel rows of C_OUT (the channels, or the summed top's padded mask
    # rows); int32 within the image
    offsets = (pixel * C_OUT)[:, None] + offs_n[None, :]
    # o_s0 = pixels x C_OUT (outputs are allocated so); the product with the constexpr keeps its alignment known
    image = sample[:, None] * (pixels * C_OUT) if SPAN else sample * (pixels * C_OUT)
    tl.store(mask_ptr + image + offsets, on, mask=valid)
    if STORE_OUTPUT:
        tl.store(out_ptr + image + offsets, h.to(out_ptr.dtype.element_ty), mask=valid)
    if STORE_PARTIAL_SUM:
        partial = tl.sum(tl.where(valid, h, 0.0), axis=1)
        tl.store(partial_ptr + (pid_n.to(tl.int64) * n_rows + sample * pixels) + pixel, partial, mask=row_ok)


# The image layer's input is read as dense NHWC rows of this many channels (a multiple of it), zero
# padded: a pixel is then 16 bytes (float32) or 8 bytes (bfloat16), so a kernel row's run of
# (kw, channel) pairs loads with aligned asynchronous copies, not element by element (and, for
# bfloat16, not with synchronous 2-byte loads).
IMAGE_CHANNELS = 4
# The summed top's mask rows are padded to a multiple of this many bytes (its channels stay C_out).
MASK_ROW_ALIGN = 16


def image_rows(x: torch.Tensor) -> torch.Tensor:
    """x [B, C, H, W] (C < 16) as a dense NHWC view [B, C4, H, W], C4 = C rounded up to a multiple of
    ``IMAGE_CHANNELS``, the extra channels zero (one copy)."""
    channels = x.shape[1]
    padded = -(-channels // IMAGE_CHANNELS) * IMAGE_CHANNELS
    rows = torch.nn.functional.pad(x.permute(0, 2, 3, 1), (0, padded - channels))
    return rows.permute(0, 3, 1, 2)


def nhwc_strides(tensor: torch.Tensor) -> tuple[int, int, int, int]:
    """The (batch, row, column, channel) strides of a [B, C, H, W] tensor, whatever its layout."""
    return tensor.stride(0), tensor.stride(2), tensor.stride(3), tensor.stride(1)


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
    if x.shape[1] < FLAT_K_CHANNELS and (x.shape[1] % IMAGE_CHANNELS or not is_dense_nhwc(x)):
        x = image_rows(x)  # the image layer reads dense NHWC rows of 4k channels
    if weight.shape[2] != weight.shape[3]:
        raise ValueError(f"square kernels only, got {list(weight.shape[2:])}")
    batch, c_in, height, width = x.shape
    c_out, weight_c_in, kernel_h, kernel_w = weight.shape
    out_h, out_w = (
        conv_output_size(height, kernel_h, stride, padding),
        conv_output_size(width, kernel_w, stride, padding),
    )
    rows = batch * out_h * out_w
    span = spans_images(out_h * out_w)
    layout = torch.channels_last
    if summed:
        # the summed top's mask feeds the first top-down pass as its A operand: pixel rows padded to 16
        # bytes let that pass load it with aligned asynchronous copies (``conv_transpose``)
        row = -(-c_out // MASK_ROW_ALIGN) * MASK_ROW_ALIGN
        rows_buffer = torch.empty((batch, out_h, out_w, row), dtype=torch.bool, device=x.device)
        mask = rows_buffer.permute(0, 3, 1, 2)[:, :c_out]
    else:
        mask = torch.empty((batch, c_out, out_h, out_w), dtype=torch.bool, device=x.device, memory_format=layout)
    out = mask if summed else torch.empty(mask.shape, dtype=x.dtype, device=x.device, memory_format=layout)
    keeps_score = summed and score
    partial = torch.zeros((triton.cdiv(c_out, 16), rows), dtype=torch.float32, device=x.device) if keeps_score else mask
    k_major = weights_k_major(x.dtype)
    packed = packed_gemm_weight(weight, x.dtype, N_ALIGN, c_in if c_in != weight_c_in else None, k_major)
    grid = conv_grid(batch, out_h * out_w, c_out, span)
    if interpreting():
        configs = interpreter_tiles(rows, c_out, reduction_per_step(c_in, kernel_w))
        heuristic = configs[0]
        split = split_for(heuristic, grid, c_in, kernel_h, kernel_w)
    else:
        named = {"n_columns": c_out, "n_rows": rows, "out_h": out_h, "out_w": out_w}
        hopper = hopper_tiles_wanted(x.device)
        layer = {"C_IN": c_in, "KW": kernel_w, "DOT_DTYPE": dot_dtype(x.dtype)}
        heuristic = heuristic_config(c_out, tile_rows(named, span), images=1 if span else batch, channels=c_in,
                                     kernel_w=kernel_w, kernel_h=kernel_h, wide=wide_tall_wanted(layer, hopper),
                                     wide_k=wide_k_wanted(layer, hopper))  # fmt: skip
        split = split_for(heuristic, grid, c_in, kernel_h, kernel_w)
        configs = prune_configs(conv_configs(), named, SPAN=span, C_IN=c_in, KW=kernel_w, SPLIT=split,
                                DOT_DTYPE=dot_dtype(x.dtype))  # fmt: skip
    # split-K: the runs' partial sums, then a launch that adds them and applies the epilogue
    ws = partial
    if split > 1:
        ws = torch.empty(workspace_shape(split, rows, c_out), dtype=torch.float32, device=x.device)
    for phase in (1, 2) if split > 1 else (0,):
        if not rows:
            break
        launch(
            _conv_forward_kernel,
            split_grid(grid, split) if phase == 1 else grid,
            *((configs, heuristic) if phase < 2 else ([SUM_TILE], SUM_TILE)),
            x, packed, packed if bias is None else bias, out, mask, partial, ws,
            *nhwc_strides(x), mask.stride(0), packed.stride(0), packed.shape[0 if k_major else 1],
            height, width, out_h, out_w, rows, c_out, float(slope), batch_bucket=batch_bucket(batch),
            C_IN=c_in, C_OUT=mask.stride(3), KH=kernel_h, KW=kernel_w, STRIDE=stride, PAD=padding,
            DENSE=is_dense_nhwc(x), SPAN=span,
            HAS_BIAS=bias is not None, STORE_OUTPUT=not summed, STORE_PARTIAL_SUM=keeps_score,
            SPLIT=split, SPLIT_PHASE=phase, DOT_DTYPE=dot_dtype(x.dtype), PRECISION=input_precision(x.dtype),
            W_K_MAJOR=k_major, FLAT=flat_k(c_in, kernel_w),
        )  # fmt: skip
    if not summed:
        return out, mask
    if not score:
        return None, mask
    return partial.sum(dim=0).view(batch, out_h * out_w).sum(dim=1), mask


def conv_act_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int, slope: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One bottom-up layer, fused: (h, mask), channels-last; the contract of ``reference.conv_act_forward``."""
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
