"""Parity of the bottom-up conv + bias + activation kernel (and its mask) with the reference."""

import pytest
import torch

from genconv.kernels import implicit_gemm, launch, reference
from genconv.kernels.conv_forward import conv_act_forward, conv_act_forward_sum

from kernel_support import DEVICE, assert_close, case_id, nan_poisoned_outputs, non_contiguous  # noqa: F401

pytestmark = pytest.mark.interpreter

# batch, c_in, height, width, c_out, kernel, stride, padding, slope, bias, dtype
CASES = [
    (1, 1, 9, 9, 3, 3, 1, 1, 0.0, True, torch.float32),
    (2, 3, 11, 7, 5, 3, 2, 0, 0.2, True, torch.float32),
    (3, 2, 17, 13, 4, 5, 2, 2, 0.0, False, torch.float32),
    (2, 1, 19, 19, 6, 7, 3, 3, 0.0, True, torch.float32),
    (1, 4, 6, 5, 17, 1, 1, 0, 0.1, True, torch.float32),
    (2, 3, 11, 7, 5, 3, 2, 0, 0.2, True, torch.bfloat16),
    (2, 1, 19, 19, 6, 7, 3, 3, 0.0, True, torch.bfloat16),
    # the image layer's flat K (kernel 15, stride 3); flat K over 20 and 33 channels (their 32-wide
    # channel blocks would pad each tap more than the kernel rows pad)
    (2, 4, 12, 10, 6, 15, 3, 7, 0.0, True, torch.float32),
    (1, 3, 16, 16, 5, 15, 3, 7, 0.0, True, torch.bfloat16),
    (1, 20, 9, 11, 7, 3, 1, 1, 0.0, True, torch.float32),
    (2, 33, 7, 8, 9, 3, 2, 1, 0.2, False, torch.bfloat16),
    # channel blocks with a ragged last block (60 and 40 channels: flat K would pad no less)
    (1, 60, 9, 8, 6, 3, 1, 1, 0.0, True, torch.float32),
    (2, 40, 7, 6, 9, 1, 1, 0, 0.2, False, torch.bfloat16),
    # 49 taps: more than one bit each fits an int32, so rows keep kh and kw masks apart
    (1, 16, 9, 8, 5, 7, 1, 3, 0.0, True, torch.float32),
]
IDS = [case_id(B=c[0], C=c[1], H=c[2], W=c[3], O=c[4], K=c[5], S=c[6], dtype=c[10]) for c in CASES]


def _layer(case, seed=0):
    batch, c_in, height, width, c_out, kernel, stride, padding, slope, bias, dtype = case
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, c_in, height, width, generator=generator).to(DEVICE, dtype)
    weight = (0.4 * torch.randn(c_out, c_in, kernel, kernel, generator=generator)).to(DEVICE)
    b = (0.3 * torch.randn(c_out, generator=generator)).to(DEVICE) if bias else None
    return x, weight, b, stride, padding, slope, dtype


def _assert_masks_agree(mask, x, weight, bias, stride, padding, dtype):
    """Masks must agree wherever the pre-activation is not within rounding of zero."""
    bias64 = None if bias is None else bias.double()
    pre = torch.nn.functional.conv2d(x.double(), weight.double(), bias64, stride, padding)
    rtol, atol_fraction = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (3e-2, 2e-2)}[dtype]
    decided = pre.abs() > atol_fraction * float(pre.abs().max()) + 1e-6
    assert torch.equal(mask[decided], (pre > 0)[decided])
    assert int(decided.sum()) > 0.9 * pre.numel()


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.usefixtures("nan_poisoned_outputs")
def test_activations_and_masks(case) -> None:
    x, weight, bias, stride, padding, slope, dtype = _layer(case)
    h, mask = conv_act_forward(x, weight, bias, stride, padding, slope)
    expected_h, _ = reference.conv_act_forward(x, weight, bias, stride, padding, slope)
    assert h.dtype == dtype and mask.dtype == torch.bool
    assert_close(h, expected_h, dtype, "h")
    _assert_masks_agree(mask, x, weight, bias, stride, padding, dtype)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.usefixtures("nan_poisoned_outputs")
def test_summed_top_layer(case) -> None:
    x, weight, bias, stride, padding, slope, dtype = _layer(case, seed=1)
    score, mask = conv_act_forward_sum(x, weight, bias, stride, padding, slope)
    expected_score, _ = reference.conv_act_forward_sum(x, weight, bias, stride, padding, slope)
    assert score.shape == (x.shape[0],) and score.dtype == torch.float32
    assert_close(score, expected_score, dtype, "f")
    _assert_masks_agree(mask, x, weight, bias, stride, padding, dtype)


@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[9]], ids=[IDS[1], IDS[3], IDS[9]])
def test_non_contiguous_input_and_small_tiles(case, monkeypatch) -> None:
    """Strided inputs, and tiles small enough that every GEMM axis spans several programs."""
    monkeypatch.setattr(launch, "INTERPRETER_TILE_CAPS", {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16})
    x, weight, bias, stride, padding, slope, dtype = _layer(case, seed=2)
    strided = non_contiguous(x)
    assert not strided.is_contiguous()
    h, mask = conv_act_forward(strided, non_contiguous(weight), bias, stride, padding, slope)
    expected_h, expected_mask = reference.conv_act_forward(x, weight, bias, stride, padding, slope)
    assert_close(h, expected_h, dtype, "h")
    _assert_masks_agree(mask, x, weight, bias, stride, padding, dtype)


@pytest.mark.parametrize("case", [CASES[8], CASES[10]], ids=[IDS[8], IDS[10]])
def test_channels_last_input_and_chain_top_without_score(case) -> None:
    """An NHWC input (the layout the chain keeps), and the summed top asked for its mask alone."""
    x, weight, bias, stride, padding, slope, dtype = _layer(case, seed=3)
    h, mask = conv_act_forward(x.contiguous(memory_format=torch.channels_last), weight, bias, stride, padding, slope)
    assert_close(h, reference.conv_act_forward(x, weight, bias, stride, padding, slope)[0], dtype, "h")
    score, top_mask = conv_act_forward_sum(x, weight, bias, stride, padding, slope, score=False)
    assert score is None and torch.equal(top_mask, mask)
    assert top_mask.stride(1) == 1 and top_mask.stride(3) % 16 == 0  # NHWC rows padded for the top-down pass


# the image layer's flat K (4 kernel rows: the last of 3 runs empty), 9 taps in 3 runs, 18 steps in 3 runs
@pytest.mark.parametrize("case", [CASES[0], CASES[7], CASES[9], CASES[10]], ids=[IDS[0], IDS[7], IDS[9], IDS[10]])
@pytest.mark.parametrize("swap", [0, 1], ids=["plain", "swapped"])
@pytest.mark.usefixtures("nan_poisoned_outputs")
def test_split_k(case, swap, monkeypatch) -> None:
    """The K loop cut into 3 runs (what a small batch gets on a GPU), partial sums added by a second
    launch; on plain and swapped tiles (the autotuner may pick either for a split pass)."""
    monkeypatch.setattr(implicit_gemm, "INTERPRETER_SPLIT", 3)
    monkeypatch.setattr(launch, "INTERPRETER_SWAP", swap)
    monkeypatch.setattr(launch, "INTERPRETER_TILE_CAPS", {"BLOCK_M": 4096, "BLOCK_N": 128, "BLOCK_K": 16})
    x, weight, bias, stride, padding, slope, dtype = _layer(case, seed=4)
    h, mask = conv_act_forward(x, weight, bias, stride, padding, slope)
    assert_close(h, reference.conv_act_forward(x, weight, bias, stride, padding, slope)[0], dtype, "h")
    _assert_masks_agree(mask, x, weight, bias, stride, padding, dtype)
    score, _ = conv_act_forward_sum(x, weight, bias, stride, padding, slope)
    assert_close(score, reference.conv_act_forward_sum(x, weight, bias, stride, padding, slope)[0], dtype, "f")


def test_bad_shapes() -> None:
    x = torch.randn(1, 2, 8, 8, device=DEVICE)
    with pytest.raises(ValueError, match="expected x"):
        conv_act_forward(x, torch.randn(3, 4, 3, 3, device=DEVICE), None, 1, 1, 0.0)
    with pytest.raises(ValueError, match="square kernels"):
        conv_act_forward(x, torch.randn(3, 2, 3, 1, device=DEVICE), None, 1, 1, 0.0)


# the image layer's flat K, channel blocks, a ragged last block, the summed top; whole and small tiles
@pytest.mark.parametrize("case", [CASES[1], CASES[7], CASES[9], CASES[10]], ids=[IDS[1], IDS[7], IDS[9], IDS[10]])
@pytest.mark.parametrize("small_tiles", [False, True], ids=["whole", "small-tiles"])
@pytest.mark.usefixtures("nan_poisoned_outputs")
def test_swapped_tiles(case, small_tiles, monkeypatch) -> None:
    """Tiles whose MMA computes the transposed product (output channels as its rows), as wide layers
    get on a GPU, agree with the reference like the plain ones."""
    monkeypatch.setattr(launch, "INTERPRETER_SWAP", 1)
    if small_tiles:
        monkeypatch.setattr(launch, "INTERPRETER_TILE_CAPS", {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16})
    x, weight, bias, stride, padding, slope, dtype = _layer(case, seed=5)
    h, mask = conv_act_forward(non_contiguous(x), weight, bias, stride, padding, slope)
    assert_close(h, reference.conv_act_forward(x, weight, bias, stride, padding, slope)[0], dtype, "h")
    _assert_masks_agree(mask, x, weight, bias, stride, padding, dtype)
    score, _ = conv_act_forward_sum(x, weight, bias, stride, padding, slope)
    assert_close(score, reference.conv_act_forward_sum(x, weight, bias, stride, padding, slope)[0], dtype, "f")


def test_tiles_where_the_heuristic_takes_them() -> None:
    """Large batches of 64-column passes take swapped tiles, except where those spill: the image
    layer's 256-row one, a top-down pass with the channel-major sub-pixel scatter or the Langevin
    update; where tall tiles do not fill the GPU, passes of 64 columns or more take the swapped
    128-row tile if it fills half of it (with a fourth stage), 64-column ones a swapped tile split-K
    makes fill it, unswapped 64-row tiles otherwise (split-K's batches), half as wide where the K loop
    is too short to split; tall tiles count as filling at 7/8 of the SMs. The image layer's tall and
    small-batch swapped tiles step through K as wide as pads a kernel row no more than 16; the
    top-down 32-column short tile 64-wide on deep layers unless split-K cuts its K loop."""

    def tile(**kwargs) -> tuple[int, int, int]:
        config = implicit_gemm.heuristic_config(**kwargs)
        return config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"], config.kwargs["SWAP"]

    def tile_k(**kwargs) -> int:
        return implicit_gemm.heuristic_config(**kwargs).kwargs["BLOCK_K"]

    def stages(**kwargs) -> int:
        return implicit_gemm.heuristic_config(**kwargs).num_stages

    assert tile(columns=64, rows=22 * 22, images=256, channels=100) == (256, 64, 1)  # texture's 5x5 layer
    assert tile(columns=64, rows=25 * 25, images=256, channels=100) == (128, 64, 1)  # 256 rows would pad more
    assert tile(columns=64, rows=22 * 22, images=256, channels=32, top_down=True) == (128, 64, 1)
    assert tile(columns=64, rows=22 * 22, images=256, channels=32, top_down=True, langevin=True)[2] == 0
    assert tile(columns=64, rows=22 * 22, images=1, channels=100, kernel_h=5, kernel_w=5) == (64, 64, 0)
    assert tile(columns=100, rows=22 * 22, images=256, channels=64)[2] == 0  # no 128-column swapped tile
    # B = 16 at 64 px: texture's image layer and its top-down twin (17 x 17 pixels, 100 channels) fill
    # 96 of 132 SMs with the swapped tile, 48 with the tall one; the 13 x 13 layers too few rows
    assert tile(columns=100, rows=17 * 17, images=16, channels=4) == (128, 64, 1)
    assert tile(columns=100, rows=17 * 17, images=16, channels=64, top_down=True) == (128, 64, 1)
    assert tile(columns=100, rows=17 * 17, images=16, channels=64, top_down=True, langevin=True)[2] == 0
    assert tile(columns=64, rows=13 * 13, images=16, channels=100, kernel_h=5, kernel_w=5) == (64, 64, 0)
    # texture's 5x5 layer at B = 16: 32 programs of the 256-row swapped tile, split-K 4 (80 flat K-steps);
    # at B = 4 the 128-row one, 16 programs split 8; at B = 1 two of either would need 50 runs each
    texture_deep = {"columns": 64, "rows": 22 * 22, "channels": 100, "kernel_h": 5, "kernel_w": 5}
    assert tile(images=16, **texture_deep) == (256, 64, 1)
    assert tile(images=4, **texture_deep) == (128, 64, 1) and stages(images=4, **texture_deep) == 4
    assert tile(images=1, **texture_deep) == (64, 64, 0)
    assert tile(images=16, **{**texture_deep, "kernel_h": 1, "kernel_w": 1}) == (64, 64, 0)  # 4 K-steps: no split
    # K loops too short to split (3x3 taps over 32-64 channels) take half-width tiles at small batches
    assert tile(columns=64, rows=22 * 22, images=8, channels=32, kernel_h=3, kernel_w=3, top_down=True) == (64, 32, 0)
    assert tile(columns=64, rows=22 * 22, images=16, channels=32, kernel_h=3, kernel_w=3, top_down=True) == (64, 64, 0)
    assert tile(columns=32, rows=22 * 22, images=8, channels=64, kernel_h=3, kernel_w=3) == (64, 16, 0)
    assert tile(columns=16, rows=64 * 64, images=4, channels=100) == (64, 16, 0)  # narrow: no swap
    # the small-batch swapped tile runs 4 stages (at most two CTAs per SM), and so does the filling one
    # at one CTA per SM (texture's 5x5 layer at B = 32: 128 programs); with more, 3
    assert stages(columns=100, rows=17 * 17, images=16, channels=64, top_down=True) == 4
    assert stages(columns=64, rows=22 * 22, images=256, channels=32, top_down=True) == 3
    assert tile(columns=64, rows=22 * 22, images=32, channels=100) == (128, 64, 1)
    assert stages(columns=64, rows=22 * 22, images=32, channels=100) == 4
    assert stages(columns=64, rows=22 * 22, images=40, channels=100) == 3
    # the object net's image layer (47 x 47 pixels, 100 columns, flat K of 7 x 4), by the busiest SM's
    # tiles: at B = 4 one wave of 72 tall tiles, not 144 swapped ones (two on some SMs); at B = 8 three
    # swapped tiles on the busiest SM, not two tall ones (144 programs); at B = 16 a tie (3 against 5)
    # keeps the tall tile; at B = 2 the swapped tile, 4 stages kept with the flat K's BLOCK_K 32
    object_image = {"columns": 100, "rows": 47 * 47, "channels": 4, "kernel_h": 7, "kernel_w": 7}
    assert tile(images=4, **object_image) == (128, 128, 0)
    assert tile(images=8, **object_image) == (128, 64, 1)
    assert tile(images=16, **object_image) == (128, 128, 0)
    assert tile(images=2, **object_image) == (128, 64, 1) and stages(images=2, **object_image) == 4
    # the texture net's at 224 px (75 x 75, flat K of 15 x 4) at B = 4: swapped, 64-wide K-steps
    texture_image = {"columns": 100, "rows": 75 * 75, "channels": 4, "kernel_h": 15, "kernel_w": 15}
    assert tile(images=4, **texture_image) == (128, 64, 1) and tile_k(images=4, **texture_image) == 64
    # B = 64: 128 programs of the 256-row swapped tile leave 4 of 132 SMs idle (7/8 fill), 112 too many
    assert tile(columns=64, rows=22 * 22, images=64, channels=100) == (256, 64, 1)
    assert tile(columns=64, rows=22 * 22, images=56, channels=100) == (128, 64, 1)
    # the texture net's image-layer top-down pass without the patch form (27 columns, 100 channels,
    # 22 x 22 sub-pixel rows, 5 x 5 taps): 64-wide K-steps at B = 16, and at B = 4 (split-K 4 fills the
    # GPU with them), 32-wide at B = 1 (with 64 the split, 6 runs of 8 programs, would not)
    image_top_down = {"columns": 27, "rows": 22 * 22, "channels": 100, "top_down": True, "langevin": True,
                      "kernel_h": 5, "kernel_w": 5}  # fmt: skip
    assert tile(images=16, **image_top_down) == (64, 32, 0) and tile_k(images=16, **image_top_down) == 64
    assert tile(images=4, **image_top_down) == (64, 32, 0) and tile_k(images=4, **image_top_down) == 64
    assert tile_k(images=1, **image_top_down) == 32
    # over 128 columns, the swapped tile where 64-column tiles pad so much less that they move fewer
    # shared-memory bytes: the object net's 160-column patch rows (192 against 256), not the texture net's 688
    assert tile(columns=160, rows=47 * 47, images=256, channels=100, top_down=True) == (128, 64, 1)
    assert tile(columns=688, rows=17 * 17, images=256, channels=100, top_down=True) == (128, 128, 0)
    assert tile(columns=160, rows=47 * 47, images=256, channels=100, top_down=True, langevin=True)[2] == 0
    # the image layer's flat K: the widest BLOCK_K that pads a kernel row (KW x 4 channels) no more than 16
    assert [implicit_gemm.flat_block_k(kw * 4) for kw in (15, 7, 3)] == [64, 32, 16]
    image = {"channels": 4, "images": 256, "columns": 100}
    assert [tile_k(rows=47 * 47, kernel_w=kw, **image) for kw in (15, 7, 3)] == [64, 32, 16]
    assert [tile_k(rows=17 * 17, images=16, columns=100, channels=4, kernel_w=kw) for kw in (15, 7)] == [64, 32]
    flat = {"n_columns": 100, "n_rows": 256 * 2209, "out_h": 47, "out_w": 47}
    assert max(c.kwargs["BLOCK_K"] for c in implicit_gemm.prune_configs(implicit_gemm.conv_configs(), flat, C_IN=4,
                                                                         KW=7)) == 32  # fmt: skip
    deep = {"n_columns": 128, "n_rows": 256 * 1024, "out_h": 32, "out_w": 32}  # no 64-wide K on 128 columns
    assert not any(c.kwargs["BLOCK_K"] > 32 and c.kwargs["BLOCK_N"] > 64
                   for c in implicit_gemm.prune_configs(implicit_gemm.conv_configs(), deep, C_IN=100))  # fmt: skip
    # a split-K launch over more than 64 columns takes no swapped tile (storing its runs, they spill on
    # sm_90: the texture net's image layer and TD2 at B = 4); over 64 columns or unsplit, it may
    wide = {"n_columns": 100, "n_rows": 4 * 484, "out_h": 22, "out_w": 22}

    def swaps(named: dict, **kwargs) -> bool:
        return any(c.kwargs["SWAP"] for c in implicit_gemm.prune_configs(implicit_gemm.conv_configs(), named, **kwargs))

    assert swaps(wide, C_IN=4, KW=15) and not swaps(wide, C_IN=4, KW=15, SPLIT=2)
    assert swaps({**wide, "n_columns": 64}, C_IN=100, SPLIT=2)
    image_layer = {"n_columns": 64, "n_rows": 256 * 1024, "out_h": 32, "out_w": 32}
    kept = implicit_gemm.prune_configs(implicit_gemm.conv_configs(), image_layer, C_IN=4)
    assert kept and not any(c.kwargs["SWAP"] and c.kwargs["BLOCK_M"] > 128 for c in kept)
    # the object net's strided top-down pass: phase-major columns store whole vectors, so its tiles may
    # be 128 columns wide and swapped; channel-major columns (the scatter) and the Langevin update not
    strided = {"n_columns": 448, "n_rows": 256 * 576, "nq_h": 24, "nq_w": 24}
    top_down = implicit_gemm.conv_configs(top_down=True)

    def widest(**kwargs) -> tuple[int, bool]:
        kept = implicit_gemm.prune_configs(top_down, strided, C=64, TAPS=3, **kwargs)
        return max(c.kwargs["BLOCK_N"] for c in kept), any(c.kwargs["SWAP"] for c in kept)

    assert widest(STRIDE=2, PHASE_ROW=112) == (128, True)
    assert widest(STRIDE=2, PHASE_ROW=0) == (64, False)
    assert widest(STRIDE=2, PHASE_ROW=112, FUSE_LANGEVIN=True) == (64, False)
    assert tile(columns=448, rows=24 * 24, images=256, channels=64, top_down=True) == (128, 128, 0)
    # 256 x 128 where it compiles without spills (``wide``: bfloat16, the image layer's flat K or a
    # stride-1 top-down pass over several taps), fills the GPU and pads no more rows: the texture net's
    # image layer and TD2 at B = 64 (128 programs; 256 of 128 x 128 make two waves), not at B = 32 (64
    # programs), nor the object net's TD2 phases (25 x 25 rows: 768 in 256-row tiles against 640)
    texture_wide = {"columns": 100, "rows": 22 * 22, "channels": 4, "kernel_h": 15, "kernel_w": 15}
    assert tile(images=64, wide=True, **texture_wide) == (256, 128, 0)
    assert tile(images=64, **texture_wide) == (128, 128, 0)
    assert tile(images=32, wide=True, **texture_wide) == (128, 128, 0)
    assert tile(columns=100, rows=22 * 22, images=256, channels=64, top_down=True, wide=True) == (256, 128, 0)
    assert tile(columns=100, rows=25 * 25, images=256, channels=64, top_down=True, wide=True) == (128, 128, 0)
    assert tile(columns=64, rows=22 * 22, images=256, channels=100, wide=True) == (256, 64, 1)  # 64 columns: swapped
    bf16, f32 = implicit_gemm.tl.bfloat16, implicit_gemm.tl.float32
    assert implicit_gemm.wide_tall_fits({"C_IN": 4, "DOT_DTYPE": bf16})
    assert not implicit_gemm.wide_tall_fits({"C_IN": 4, "DOT_DTYPE": f32})
    assert not implicit_gemm.wide_tall_fits({"C_IN": 4, "DOT_DTYPE": bf16, "SPLIT": 2})
    assert not implicit_gemm.wide_tall_fits({"C_IN": 64, "DOT_DTYPE": bf16})
    assert implicit_gemm.wide_tall_fits({"TAPS": 5, "STRIDE": 1, "DOT_DTYPE": bf16})
    assert not implicit_gemm.wide_tall_fits({"TAPS": 1, "STRIDE": 1, "DOT_DTYPE": bf16})  # the patch GEMM
    assert not implicit_gemm.wide_tall_fits({"TAPS": 3, "STRIDE": 2, "PHASE_ROW": 112, "DOT_DTYPE": bf16})
    assert not implicit_gemm.wide_tall_fits({"TAPS": 5, "STRIDE": 1, "FUSE_LANGEVIN": True, "DOT_DTYPE": bf16})

    def wide_tiles(**kwargs) -> bool:
        kept = implicit_gemm.prune_configs(implicit_gemm.conv_configs(), {**flat, "n_rows": 64 * 2209}, **kwargs)
        return any((c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"]) == (256, 128) for c in kept)

    assert wide_tiles(C_IN=4, KW=7, DOT_DTYPE=bf16) and not wide_tiles(C_IN=4, KW=7, DOT_DTYPE=f32)


def test_the_heuristic_wants_the_wide_tall_tile_top_down_and_on_the_image_layer_on_hopper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """256 x 128 where it fits: on a stride-1 top-down pass, on the image layer on Hopper (it spills
    there before), everywhere with GENCONV_WIDE_TALL=1, nowhere with =0."""
    bf16 = implicit_gemm.tl.bfloat16
    top_down, image_layer = {"TAPS": 5, "STRIDE": 1, "DOT_DTYPE": bf16}, {"C_IN": 4, "DOT_DTYPE": bf16}
    monkeypatch.delenv("GENCONV_WIDE_TALL", raising=False)
    assert implicit_gemm.wide_tall_wanted(top_down) and implicit_gemm.wide_tall_wanted(image_layer)
    assert implicit_gemm.wide_tall_wanted(top_down, hopper=False)
    assert not implicit_gemm.wide_tall_wanted(image_layer, hopper=False)
    assert not implicit_gemm.wide_tall_wanted({**top_down, "DOT_DTYPE": implicit_gemm.tl.float32})
    monkeypatch.setenv("GENCONV_WIDE_TALL", "1")
    assert implicit_gemm.wide_tall_wanted(image_layer, hopper=False)
    monkeypatch.setenv("GENCONV_WIDE_TALL", "0")
    assert not implicit_gemm.wide_tall_wanted(top_down) and not implicit_gemm.wide_tall_wanted(image_layer)


def test_hopper_only_tiles_where_the_tiles_are_for_hopper(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiles that spill before Hopper (the bfloat16 image layer's 256 x 128, 64-wide K-steps on the
    object net's 5x5 layer) go to Hopper and later GPUs: the launch's own, the compile tier's target
    (``launch.targeting``), Hopper's for launches on CPU tensors; not with GENCONV_HOPPER_TILES=0."""
    cpu = torch.device("cpu")
    monkeypatch.delenv("GENCONV_HOPPER_TILES", raising=False)
    assert launch.tile_capability(cpu) == launch.HOPPER and implicit_gemm.hopper_tiles_wanted(cpu)
    with launch.targeting(80):
        assert launch.tile_capability(cpu) == 80 and not implicit_gemm.hopper_tiles_wanted(cpu)
        with launch.targeting(90):
            assert implicit_gemm.hopper_tiles_wanted(cpu)
        assert not implicit_gemm.hopper_tiles_wanted(cpu)
    assert launch.tile_capability(cpu) == launch.HOPPER
    monkeypatch.setenv("GENCONV_HOPPER_TILES", "0")
    assert not implicit_gemm.hopper_tiles_wanted(cpu)
    bf16, f32 = implicit_gemm.tl.bfloat16, implicit_gemm.tl.float32
    object_5x5 = {"C_IN": 100, "KW": 5, "DOT_DTYPE": bf16}  # flat K rows of 500: 64-wide steps pad as 16-wide
    assert implicit_gemm.wide_k_wanted(object_5x5) and not implicit_gemm.wide_k_wanted(object_5x5, hopper=False)
    assert not implicit_gemm.wide_k_wanted({**object_5x5, "DOT_DTYPE": f32})
    assert not implicit_gemm.wide_k_wanted({"C_IN": 4, "KW": 7, "DOT_DTYPE": bf16})  # the image layer
    assert not implicit_gemm.wide_k_wanted({"C_IN": 64, "KW": 3, "DOT_DTYPE": bf16})  # channel blocks, not flat
    assert not implicit_gemm.wide_k_wanted({"C_IN": 100, "KW": 3, "DOT_DTYPE": bf16})  # rows of 300: 304 or 320

    def tile(**kwargs) -> tuple[int, int, int, int, int]:
        config = implicit_gemm.heuristic_config(**kwargs)
        return (config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"], config.kwargs["BLOCK_K"], config.kwargs["SWAP"],
                config.num_stages)  # fmt: skip

    # the object net's 5x5 layer (25 x 25 rows, 64 columns): its 128-row swapped tile, 64-wide K-steps
    # and 4 stages with ``wide_k``, at B = 256 and at B = 16 (split-K); the texture net's 256-row one stays
    layer = {"columns": 64, "rows": 25 * 25, "channels": 100, "kernel_h": 5, "kernel_w": 5}
    for images in (256, 16):
        assert tile(images=images, wide_k=True, **layer) == (128, 64, 64, 1, 4)
        assert tile(images=images, **layer)[2] == 32
    texture = {"columns": 64, "rows": 22 * 22, "channels": 100, "kernel_h": 5, "kernel_w": 5, "images": 256}
    assert tile(wide_k=True, **texture) == tile(**texture) == (256, 64, 32, 1, 3)


def test_k_runs_flat_where_kernel_rows_pad_less_than_channel_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flat K: the image layer, and bottom-up layers whose 32-wide channel blocks pad each tap by over a
    tenth more than their kernel rows pad (100 channels x 5 taps: 640 against 512); not top-down passes
    over 16 channels or more, 1x1 layers, or 64 and 60 channels; ``GENCONV_FLAT_K=0`` keeps the image layer's."""
    monkeypatch.delenv("GENCONV_FLAT_K", raising=False)
    assert implicit_gemm.flat_k(100, 5) and implicit_gemm.flat_k(4, 15) and implicit_gemm.flat_k(20, 3)
    assert not implicit_gemm.flat_k(64, 5) and not implicit_gemm.flat_k(100, 1) and not implicit_gemm.flat_k(60, 3)
    assert not implicit_gemm.flat_k(100, 5, top_down=True) and implicit_gemm.flat_k(4, 5, top_down=True)
    assert implicit_gemm.k_steps(100, 5, 5, 64) == 40 and implicit_gemm.k_steps(100, 5, 5, 64, top_down=True) == 50
    monkeypatch.setenv("GENCONV_FLAT_K", "0")
    assert not implicit_gemm.flat_k(100, 5) and implicit_gemm.flat_k(4, 15)
    assert implicit_gemm.k_steps(100, 5, 5, 32) == 100


def test_float32_weights_are_k_major_unless_the_ab_switch_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENCONV_K_MAJOR", raising=False)
    assert implicit_gemm.weights_k_major(torch.float32) and not implicit_gemm.weights_k_major(torch.bfloat16)
    monkeypatch.setenv("GENCONV_K_MAJOR", "0")
    assert not implicit_gemm.weights_k_major(torch.float32)
    x, weight, bias, stride, padding, slope, _ = _layer(CASES[-1])
    expected_h, _ = reference.conv_act_forward(x, weight, bias, stride, padding, slope)
    assert_close(conv_act_forward(x, weight, bias, stride, padding, slope)[0], expected_h, torch.float32, "h")


@pytest.mark.parametrize("c_out,c_in,kernel,in_channels", [(5, 3, 3, 4), (100, 4, 15, None), (20, 64, 3, None)])
def test_k_major_weights_are_the_n_major_operand_transposed(c_out, c_in, kernel, in_channels) -> None:
    from genconv.kernels.packing import K_ROW_ALIGN, gemm_weight

    weight = torch.randn(c_out, c_in, kernel, kernel, generator=torch.Generator().manual_seed(c_out))
    n_major = gemm_weight(weight, torch.float32, implicit_gemm.N_ALIGN, in_channels)
    k_major = gemm_weight(weight, torch.float32, implicit_gemm.N_ALIGN, in_channels, k_major=True)
    reduction, columns = n_major.shape
    assert k_major.shape[0] == columns and k_major.shape[1] % K_ROW_ALIGN == 0
    assert k_major.shape[1] - reduction < K_ROW_ALIGN
    assert torch.equal(k_major[:, :reduction], n_major.t())
    assert not k_major[:, reduction:].any()  # the row padding is zeros, as the kernels' masks assume
    assert k_major.is_contiguous()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_a_nan_input_stays_nan_through_relu(dtype) -> None:
    """A NaN pre-activation stays NaN through ReLU (slope 0), as torch.relu keeps it, so a chain's
    finiteness check still sees it; its mask is off."""
    x, weight, bias, stride, padding, slope, _ = _layer((2, 5, 9, 8, 6, 3, 1, 1, 0.0, True, dtype))
    x[1, 2, 4, 4] = float("nan")
    h, mask = conv_act_forward(x, weight, bias, stride, padding, slope)
    expected, _ = reference.conv_act_forward(x, weight, bias, stride, padding, slope)
    assert int(torch.isnan(expected).sum()) == 9 * 6
    assert torch.equal(torch.isnan(h), torch.isnan(expected))
    assert not bool(mask[torch.isnan(expected)].any())
