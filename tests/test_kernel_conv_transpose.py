"""Parity of the masked transposed-convolution kernel, plain and with the fused Langevin update."""

import pytest
import torch

from genconv.kernels import conv_transpose, implicit_gemm, launch, normal, reference
from genconv.kernels.conv_transpose import masked_conv_transpose, masked_conv_transpose_langevin

from kernel_support import (  # noqa: F401
    COMPILED,
    DEVICE,
    assert_close,
    case_id,
    nan_poisoned_outputs,
    non_contiguous,
    transposed_layer,
)

pytestmark = pytest.mark.interpreter

# batch, c_in, height, width, c_out, kernel, stride, padding, slope, dtype
CASES = [
    (1, 1, 9, 9, 3, 3, 1, 1, 0.0, torch.float32),
    (2, 3, 11, 7, 5, 3, 2, 0, 0.2, torch.float32),
    (3, 2, 17, 13, 4, 5, 2, 2, 0.0, torch.float32),
    (2, 1, 19, 19, 6, 7, 3, 3, 0.0, torch.float32),
    (1, 2, 8, 10, 3, 2, 3, 0, 0.0, torch.float32),
    (1, 17, 6, 5, 4, 1, 1, 0, 0.1, torch.float32),
    (2, 3, 11, 7, 5, 3, 2, 0, 0.2, torch.bfloat16),
    (2, 1, 19, 19, 6, 7, 3, 3, 0.0, torch.bfloat16),
    # N = s^2 C_in for C_in = 3, 4, 1: kernel 15 and 3 at stride 3, the DCGAN 4x4 stride 2; the
    # gradient's channels in blocks with a ragged last block
    (1, 3, 16, 17, 5, 15, 3, 7, 0.0, torch.float32),
    (2, 4, 9, 11, 20, 3, 3, 1, 0.2, torch.float32),
    (1, 1, 12, 12, 33, 4, 2, 1, 0.0, torch.bfloat16),
    (2, 4, 10, 10, 6, 3, 1, 1, 0.0, torch.bfloat16),
    # strided with 16 or more input channels: phase-major columns, each phase padded to 32, 16 and 48
    (2, 20, 9, 11, 6, 3, 2, 1, 0.0, torch.float32),
    (1, 16, 10, 9, 8, 4, 2, 1, 0.2, torch.bfloat16),
    (2, 33, 8, 7, 5, 5, 2, 2, 0.0, torch.float32),
]
PHASE_MAJOR = [12, 13, 14]
IDS = [case_id(B=c[0], C=c[1], H=c[2], W=c[3], O=c[4], K=c[5], S=c[6], dtype=c[9]) for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.usefixtures("nan_poisoned_outputs")
def test_input_gradient(case) -> None:
    x, weight, mask, grad, stride, padding, slope, dtype = transposed_layer(case)
    hw = (x.shape[-2], x.shape[-1])
    out = masked_conv_transpose(grad, mask, weight, stride, padding, slope, hw)
    expected = reference.masked_conv_transpose(grad, mask, weight, stride, padding, slope, hw)
    assert out.shape == x.shape and out.dtype == dtype
    assert_close(out, expected, dtype, "df/dx")


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.usefixtures("nan_poisoned_outputs")
def test_fused_langevin_update_with_counter_noise(case) -> None:
    x, weight, mask, grad, stride, padding, slope, dtype = transposed_layer(case, seed=1)
    out = masked_conv_transpose_langevin(grad, mask, weight, stride, padding, slope, x, 0.3, 1.4, seed=99, offset=7)
    expected = reference.masked_conv_transpose_langevin(
        grad, mask, weight, stride, padding, slope, x, 0.3, 1.4, seed=99, offset=7
    )
    assert out.shape == x.shape and out.dtype == dtype
    assert_close(out, expected, dtype, "x'")


@pytest.mark.skipif(COMPILED, reason="switches a constexpr global, which a compiled kernel refuses")
@pytest.mark.parametrize("case", [CASES[i] for i in (0, 3)], ids=[IDS[i] for i in (0, 3)])  # float32: bits to differ in
def test_counter_noise_is_the_same_draw_on_small_and_large_tiles(case, monkeypatch) -> None:
    """Small tiles draw with ``normal_at``, large ones with ``tl.randn`` (``normal.tile_normal``): both
    the reference's numbers, differing in the last bits of the cosine only."""
    x, weight, mask, grad, stride, padding, slope, dtype = transposed_layer(case, seed=3)
    layer = (grad, mask, weight, stride, padding, slope, x, 0.3, 1.4)
    expected = reference.masked_conv_transpose_langevin(*layer, seed=12, offset=5)
    draws = []
    for limit in (1 << 30, 0):  # every tile straight-line, then none
        monkeypatch.setattr(normal, "STRAIGHT_NOISE_ELEMENTS", normal.tl.constexpr(limit))
        draws.append(masked_conv_transpose_langevin(*layer, seed=12, offset=5))
        assert_close(draws[-1], expected, dtype, f"x' with tiles up to {limit} drawing straight-line")
    assert not torch.equal(draws[0], draws[1])  # the two paths did run


@pytest.mark.parametrize("case", [CASES[i] for i in (2, 8, 9, 11, 14)], ids=[IDS[i] for i in (2, 8, 9, 11, 14)])
@pytest.mark.usefixtures("nan_poisoned_outputs")
def test_split_k(case, monkeypatch) -> None:
    """The K loop cut into 3 runs, the partial sums added before the gate or the Langevin update."""
    monkeypatch.setattr(implicit_gemm, "INTERPRETER_SPLIT", 3)
    monkeypatch.setattr(launch, "INTERPRETER_TILE_CAPS", {"BLOCK_M": 4096, "BLOCK_N": 128, "BLOCK_K": 16})
    x, weight, mask, grad, stride, padding, slope, dtype = transposed_layer(case, seed=5)
    hw = (x.shape[-2], x.shape[-1])
    out = masked_conv_transpose(grad, mask, weight, stride, padding, slope, hw)
    assert_close(out, reference.masked_conv_transpose(grad, mask, weight, stride, padding, slope, hw), dtype, "df/dx")
    out = masked_conv_transpose_langevin(grad, mask, weight, stride, padding, slope, x, 0.3, 1.4, seed=99, offset=7)
    expected = reference.masked_conv_transpose_langevin(
        grad, mask, weight, stride, padding, slope, x, 0.3, 1.4, seed=99, offset=7
    )
    assert_close(out, expected, dtype, "x'")


@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[6], CASES[9]], ids=[IDS[1], IDS[3], IDS[6], IDS[9]])
def test_fused_update_with_given_noise_clamp_strides_and_small_tiles(case, monkeypatch) -> None:
    monkeypatch.setattr(launch, "INTERPRETER_TILE_CAPS", {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16})
    x, weight, mask, grad, stride, padding, slope, dtype = transposed_layer(case, seed=2)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3)).to(DEVICE, dtype)
    strided = [non_contiguous(t) for t in (grad, x, noise)]
    strided_mask = mask.transpose(2, 3).contiguous().transpose(2, 3)
    out = masked_conv_transpose_langevin(
        strided[0], strided_mask, non_contiguous(weight), stride, padding, slope, strided[1], 0.5, 1.0,
        noise=strided[2], clamp=(-3.0, 3.0),
    )  # fmt: skip
    expected = reference.masked_conv_transpose_langevin(
        grad, mask, weight, stride, padding, slope, x, 0.5, 1.0, noise=noise, clamp=(-3.0, 3.0)
    )
    assert_close(out, expected, dtype, "x'")


GATED = [1, 5, *PHASE_MAJOR]


@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("case", [CASES[i] for i in GATED], ids=[IDS[i] for i in GATED])
@pytest.mark.usefixtures("nan_poisoned_outputs")
def test_result_gated_by_the_mask_of_the_layer_below(case, layout) -> None:
    """act' of the layer below in the epilogue, read through dense NHWC offsets or through its strides."""
    x, weight, mask, grad, stride, padding, slope, dtype = transposed_layer(case, seed=4)
    hw = (x.shape[-2], x.shape[-1])
    below = (torch.randn(x.shape, generator=torch.Generator().manual_seed(6)) > 0).to(DEVICE)
    below = below.contiguous(memory_format=layout)
    out = masked_conv_transpose(grad, mask, weight, stride, padding, slope, hw, output_mask=below)
    expected = reference.masked_conv_transpose(grad, mask, weight, stride, padding, slope, hw, output_mask=below)
    assert_close(out, expected, dtype, "gated df/dx")
    unit = masked_conv_transpose(None, mask, weight, stride, padding, slope, hw, output_mask=below)
    twin = reference.masked_conv_transpose(None, mask, weight, stride, padding, slope, hw, output_mask=below)
    assert_close(unit, twin, torch.float32, "gated unit df/dx")


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the interpreter's matmul over inf and NaN
@pytest.mark.parametrize("slope", [0.0, 0.2], ids=["relu", "leaky"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_an_off_relu_unit_passes_zero_whatever_its_gradient(slope: float, dtype: torch.dtype) -> None:
    """As torch's ReLU backward: an off unit's act' selects 0, so an inf or NaN upstream of it goes no
    further (a leaky unit passes slope x it on)."""
    x, weight, mask, grad, stride, padding, slope, dtype = transposed_layer((2, 3, 11, 7, 5, 3, 2, 0, slope, dtype))
    hw = (x.shape[-2], x.shape[-1])
    off = ~mask
    poison = torch.where(torch.rand(grad.shape, generator=torch.Generator().manual_seed(2)) < 0.5, torch.inf, torch.nan)
    poisoned = torch.where(off, poison.to(DEVICE, dtype), grad)
    out = masked_conv_transpose(poisoned, mask, weight, stride, padding, slope, hw)
    if slope == 0:
        assert off.any() and torch.equal(out, masked_conv_transpose(grad, mask, weight, stride, padding, slope, hw))
    else:
        assert not torch.isfinite(out).all()


def test_phase_major_columns_where_strided_layers_have_16_or_more_input_channels(monkeypatch) -> None:
    monkeypatch.delenv("GENCONV_PHASE_MAJOR", raising=False)
    assert [implicit_gemm.sub_pixel_phase_row(CASES[i][6], CASES[i][1]) for i in PHASE_MAJOR] == [32, 16, 48]
    assert implicit_gemm.sub_pixel_phase_row(1, 100) == 0  # stride 1: one phase
    assert implicit_gemm.sub_pixel_phase_row(3, 3) == 0  # the image layer keeps channel-major columns
    monkeypatch.setenv("GENCONV_PHASE_MAJOR", "0")  # the A/B switch: channel-major everywhere
    assert implicit_gemm.sub_pixel_phase_row(2, 64) == 0


@pytest.mark.parametrize("case", [CASES[i] for i in PHASE_MAJOR], ids=[IDS[i] for i in PHASE_MAJOR])
@pytest.mark.usefixtures("nan_poisoned_outputs")
def test_one_launch_per_phase_over_its_weighted_taps(case, monkeypatch) -> None:
    """Strided phase-major passes run one GEMM per sub-pixel phase over only the taps that carry weights
    (K^2 tap-phases in all, against s^2 ceil(K / s)^2 for one launch), gated and split-K alike, and give the
    single launch's result (``GENCONV_PHASE_SPLIT=0``); by default only where each phase fills the GPU."""
    x, weight, mask, grad, stride, padding, slope, dtype = transposed_layer(case, seed=9)
    hw = (x.shape[-2], x.shape[-1])
    below = (torch.randn(x.shape, generator=torch.Generator().manual_seed(10)) > 0).to(DEVICE)
    kernel = weight.shape[-1]
    monkeypatch.setenv("GENCONV_PHASE_SPLIT", "1")  # these small shapes would keep one launch
    with launch.recording_launches() as launches:
        masked_conv_transpose(grad.cpu(), mask.cpu(), weight.cpu(), stride, padding, slope, hw)
    phases = [(record.kwargs["PHASE"], record.kwargs["TAPS_H"] * record.kwargs["TAPS_W"]) for record in launches]
    assert [phase for phase, _ in phases] == list(range(stride * stride))
    assert sum(taps for _, taps in phases) == kernel * kernel
    for split in (1, 2):
        monkeypatch.setattr(implicit_gemm, "INTERPRETER_SPLIT", split)
        monkeypatch.setenv("GENCONV_PHASE_SPLIT", "1")
        per_phase = masked_conv_transpose(grad, mask, weight, stride, padding, slope, hw, output_mask=below)
        expected = reference.masked_conv_transpose(grad, mask, weight, stride, padding, slope, hw, output_mask=below)
        assert_close(per_phase, expected, dtype, "gated df/dx, one launch per phase")
        monkeypatch.setenv("GENCONV_PHASE_SPLIT", "0")
        whole = masked_conv_transpose(grad, mask, weight, stride, padding, slope, hw, output_mask=below)
        assert_close(per_phase, whole, dtype, "one launch per phase against one launch")
    monkeypatch.delenv("GENCONV_PHASE_SPLIT")
    assert not conv_transpose.phase_split_wanted(32, conv_transpose.PHASE_SPLIT_TILES - 1)
    assert conv_transpose.phase_split_wanted(32, conv_transpose.PHASE_SPLIT_TILES)
    assert not conv_transpose.phase_split_wanted(0, 10**6)  # channel-major columns: one launch


@pytest.mark.parametrize("case", [CASES[2], CASES[8], CASES[10], CASES[13]], ids=[IDS[2], IDS[8], IDS[10], IDS[13]])
@pytest.mark.usefixtures("nan_poisoned_outputs")
def test_unit_upstream_gradient_reads_the_mask_alone(case) -> None:
    """grad None (the summed top): act'(mask) goes back, plain and with the fused update."""
    x, weight, mask, _, stride, padding, slope, dtype = transposed_layer(case, seed=5)
    hw = (x.shape[-2], x.shape[-1])
    out = masked_conv_transpose(None, mask, weight, stride, padding, slope, hw)
    assert out.dtype == weight.dtype
    assert_close(out, reference.masked_conv_transpose(None, mask, weight, stride, padding, slope, hw), torch.float32,
                 "df/dx")  # fmt: skip
    fused = masked_conv_transpose_langevin(None, mask, weight, stride, padding, slope, x, 0.3, 1.1, seed=8, offset=3)
    twin = reference.masked_conv_transpose_langevin(None, mask, weight, stride, padding, slope, x, 0.3, 1.1, seed=8,
                                                    offset=3)  # fmt: skip
    assert_close(fused, twin, dtype, "x'")


@pytest.mark.parametrize("case", [CASES[3], CASES[9], CASES[10]], ids=[IDS[3], IDS[9], IDS[10]])
@pytest.mark.usefixtures("nan_poisoned_outputs")
def test_dense_nhwc_gradient_and_mask(case) -> None:
    """Channels-last gradient and mask: the layout the chain keeps, read through dense offsets."""
    x, weight, mask, grad, stride, padding, slope, dtype = transposed_layer(case, seed=6)
    hw = (x.shape[-2], x.shape[-1])
    nhwc_grad, nhwc_mask = (t.contiguous(memory_format=torch.channels_last) for t in (grad, mask))
    out = masked_conv_transpose(nhwc_grad, nhwc_mask, weight, stride, padding, slope, hw)
    assert_close(out, reference.masked_conv_transpose(grad, mask, weight, stride, padding, slope, hw), dtype, "df/dx")
    fused = masked_conv_transpose_langevin(nhwc_grad, nhwc_mask, weight, stride, padding, slope, x, 0.3, 1.0, seed=2)
    twin = reference.masked_conv_transpose_langevin(grad, mask, weight, stride, padding, slope, x, 0.3, 1.0, seed=2)
    assert_close(fused, twin, dtype, "x'")


def test_row_divisor_divides_every_row_index_exactly() -> None:
    """``divide_rows``' arithmetic, umulhi(2 n, magic) >> shift, is n // d for every d and every int32 n >= 0:
    each divisor up to 3000 and 2000 random ones up to 2^31 - 1 (powers of two and their neighbours among
    them), at n = 0, the multiples' edges, the largest n and random n; magic lies in [2^31, 2^32)."""
    generator = torch.Generator().manual_seed(0)
    divisors = list(range(1, 3001)) + [2**k + e for k in range(12, 31) for e in (-1, 0, 1)]
    divisors += torch.randint(1, 2**31, (2000,), generator=generator).tolist()
    for d in divisors:
        magic, shift = implicit_gemm.row_divisor(d)
        assert 2**31 <= magic < 2**32, (d, magic)
        rows = [0, 1, d - 1, d, d + 1, 2 * d - 1, 2**31 - 2, 2**31 - 1]
        rows += torch.randint(0, 2**31, (20,), generator=generator).tolist()
        for n in (n for n in rows if 0 <= n < 2**31):
            assert ((2 * n * magic) >> 32) >> shift == n // d, (n, d)
    with pytest.raises(ValueError, match="positive divisor"):
        implicit_gemm.row_divisor(0)


# 1x1 layers at stride 1 without padding: 17 channels on 6 x 5 pixels (rows spanning images), 40 channels
# on 23 x 19 (437 rows: a ragged last row tile of its own per image)
POINTWISE = [
    (3, 17, 6, 5, 4, 1, 1, 0, 0.1, torch.float32),
    (2, 40, 23, 19, 36, 1, 1, 0, 0.0, torch.float32),
    (2, 40, 23, 19, 36, 1, 1, 0, 0.0, torch.bfloat16),
]
POINTWISE_IDS = [case_id(B=c[0], C=c[1], H=c[2], O=c[4], dtype=c[9]) for c in POINTWISE]


@pytest.mark.parametrize("case", POINTWISE, ids=POINTWISE_IDS)
@pytest.mark.usefixtures("nan_poisoned_outputs")
def test_pointwise_layer_on_dense_nhwc_tensors(case) -> None:
    """A 1x1 layer over dense NHWC tensors takes its rows as pixels, without windows or bounds (the patch
    GEMM's form): plain, gated by a dense NHWC or an NCHW mask of the layer below, and from a unit
    gradient, against the reference."""
    x, weight, mask, grad, stride, padding, slope, dtype = transposed_layer(case, seed=7)
    hw = (x.shape[-2], x.shape[-1])
    nhwc_grad, nhwc_mask = (t.contiguous(memory_format=torch.channels_last) for t in (grad, mask))
    with launch.recording_launches() as launches:  # recorded, not run
        masked_conv_transpose(nhwc_grad, nhwc_mask, weight, stride, padding, slope, hw)
    out = masked_conv_transpose(nhwc_grad, nhwc_mask, weight, stride, padding, slope, hw)
    named = {**launches[0].kwargs}
    assert named["DENSE"] and (named["TAPS"], named["STRIDE"], named["PAD"]) == (1, 1, 0)
    assert_close(out, reference.masked_conv_transpose(grad, mask, weight, stride, padding, slope, hw), dtype, "df/dx")
    below = (torch.randn(x.shape, generator=torch.Generator().manual_seed(8)) > 0).to(DEVICE)
    for layout in (torch.channels_last, torch.contiguous_format):
        gate = below.contiguous(memory_format=layout)
        gated = masked_conv_transpose(nhwc_grad, nhwc_mask, weight, stride, padding, slope, hw, output_mask=gate)
        twin = reference.masked_conv_transpose(grad, mask, weight, stride, padding, slope, hw, output_mask=gate)
        assert_close(gated, twin, dtype, f"gated df/dx ({layout})")
    unit = masked_conv_transpose(None, nhwc_mask, weight, stride, padding, slope, hw, dtype=dtype)
    twin = reference.masked_conv_transpose(None, mask, weight, stride, padding, slope, hw, dtype=dtype)
    assert_close(unit, twin, dtype, "unit df/dx")


@pytest.mark.parametrize("case", [CASES[2], CASES[9]], ids=[IDS[2], IDS[9]])
@pytest.mark.usefixtures("nan_poisoned_outputs")
def test_unit_gradient_from_the_summed_tops_padded_mask_rows(case) -> None:
    """The summed top's mask as the forward kernel writes it: NHWC pixel rows padded to 16 bytes, the
    extra bytes arbitrary (here all set). The pass reads whole rows; the extra channels weigh nothing."""
    from genconv.kernels.conv_transpose import padded_rows

    x, weight, mask, _, stride, padding, slope, dtype = transposed_layer(case, seed=7)
    batch, channels, height, width = mask.shape
    rows = torch.ones((batch, height, width, 16 * -(-channels // 16)), dtype=torch.bool, device=DEVICE)
    padded = rows.permute(0, 3, 1, 2)[:, :channels]
    padded.copy_(mask)
    assert padded_rows(padded) is not None and padded_rows(mask) is None
    hw = (x.shape[-2], x.shape[-1])
    out = masked_conv_transpose(None, padded, weight, stride, padding, slope, hw)
    expected = reference.masked_conv_transpose(None, mask, weight, stride, padding, slope, hw)
    assert_close(out, expected, torch.float32, "df/dx")
    # a bfloat16 chain's summed top: computed and returned in bfloat16 though the weights are float32
    half = masked_conv_transpose(None, padded, weight, stride, padding, slope, hw, dtype=torch.bfloat16)
    twin = reference.masked_conv_transpose(None, mask, weight, stride, padding, slope, hw, dtype=torch.bfloat16)
    assert half.dtype == twin.dtype == torch.bfloat16
    assert_close(half, twin, torch.bfloat16, "df/dx")


def test_expanded_top_coefficients() -> None:
    """The summed top sends all-ones coefficients: a stride-0 tensor must read correctly."""
    x, weight, mask, _, stride, padding, slope, dtype = transposed_layer(CASES[2])
    ones = torch.ones((1,), device=DEVICE).expand(mask.shape)
    hw = (x.shape[-2], x.shape[-1])
    out = masked_conv_transpose(ones, mask, weight, stride, padding, slope, hw)
    expected = reference.masked_conv_transpose(ones.contiguous(), mask, weight, stride, padding, slope, hw)
    assert_close(out, expected, dtype, "df/dx")


def test_bad_shapes() -> None:
    x, weight, mask, grad, stride, padding, slope, _ = transposed_layer(CASES[1])
    with pytest.raises(ValueError, match="does not map"):
        masked_conv_transpose(grad, mask, weight, stride, padding, slope, (30, 30))
    with pytest.raises(ValueError, match="expected grad and mask"):
        masked_conv_transpose(grad, mask[:, :2], weight, stride, padding, slope, (11, 7))
    with pytest.raises(ValueError, match="noise or a seed"):
        masked_conv_transpose_langevin(grad, mask, weight, stride, padding, slope, x, 0.3, 1.0)


def test_fused_update_reads_seed_and_counter_base_from_device_memory() -> None:
    x, weight, mask, grad, stride, padding, slope, dtype = transposed_layer(CASES[1], seed=4)
    counter = torch.tensor([31, 500], dtype=torch.int64, device=DEVICE)
    layer = (grad, mask, weight, stride, padding, slope, x, 0.3, 1.0)
    from_memory = masked_conv_transpose_langevin(*layer, seed=counter, offset=11)
    direct = masked_conv_transpose_langevin(*layer, seed=31, offset=511)
    assert torch.equal(from_memory, direct)


SWAPPED = [1, 8, 9, 10, 12, 13]


@pytest.mark.parametrize("case", [CASES[i] for i in SWAPPED], ids=[IDS[i] for i in SWAPPED])
@pytest.mark.parametrize("split", [1, 3], ids=["whole-k", "split-k"])
@pytest.mark.usefixtures("nan_poisoned_outputs")
def test_swapped_tiles(case, split, monkeypatch) -> None:
    """Tiles whose MMA computes the transposed product (output channels as its rows), alone and with
    split-K, before the scatter (channel- or phase-major), the gate or the Langevin update."""
    monkeypatch.setattr(launch, "INTERPRETER_SWAP", 1)
    monkeypatch.setattr(implicit_gemm, "INTERPRETER_SPLIT", split)
    monkeypatch.setattr(launch, "INTERPRETER_TILE_CAPS", {"BLOCK_M": 4096, "BLOCK_N": 16, "BLOCK_K": 16})
    x, weight, mask, grad, stride, padding, slope, dtype = transposed_layer(case, seed=6)
    hw = (x.shape[-2], x.shape[-1])
    out = masked_conv_transpose(non_contiguous(grad), mask, weight, stride, padding, slope, hw)
    assert_close(out, reference.masked_conv_transpose(grad, mask, weight, stride, padding, slope, hw), dtype, "df/dx")
    below = (torch.randn(x.shape, generator=torch.Generator().manual_seed(8)) > 0).to(DEVICE)
    out = masked_conv_transpose(grad, mask, weight, stride, padding, slope, hw, output_mask=below)
    expected = reference.masked_conv_transpose(grad, mask, weight, stride, padding, slope, hw, output_mask=below)
    assert_close(out, expected, dtype, "gated df/dx")
    out = masked_conv_transpose_langevin(grad, mask, weight, stride, padding, slope, x, 0.3, 1.4, seed=99, offset=7)
    expected = reference.masked_conv_transpose_langevin(
        grad, mask, weight, stride, padding, slope, x, 0.3, 1.4, seed=99, offset=7
    )
    assert_close(out, expected, dtype, "x'")
