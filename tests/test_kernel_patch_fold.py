"""The image layer's fused top-down pass as a patch GEMM and a fold (``kernels/patch_fold.py``), against
the reference twin and against the sub-pixel form with the same noise."""

import pytest
import torch

from genconv.kernels import patch_fold, reference
from genconv.kernels.conv_transpose import masked_conv_transpose_langevin
from genconv.kernels.launch import recording_launches

from kernel_support import (  # noqa: F401
    DEVICE,
    assert_close,
    case_id,
    nan_poisoned_outputs,
    non_contiguous,
    transposed_layer,
)

pytestmark = pytest.mark.interpreter

# batch, c_in, height, width, c_out, kernel, stride, padding, slope, dtype: the texture and object nets'
# image layers (15/3/7 and 7/2/3) on odd sizes, stride 1 with padding, a kernel that does not divide by
# its stride with no padding, bfloat16
CASES = [
    (2, 3, 16, 17, 5, 15, 3, 7, 0.0, torch.float32),
    (3, 3, 13, 11, 6, 7, 2, 3, 0.2, torch.float32),
    (2, 2, 9, 10, 4, 5, 1, 2, 0.0, torch.float32),
    (1, 4, 12, 11, 7, 5, 3, 0, 0.1, torch.float32),
    (2, 3, 13, 11, 6, 7, 2, 3, 0.0, torch.bfloat16),
]
IDS = [case_id(B=c[0], C=c[1], H=c[2], W=c[3], O=c[4], K=c[5], S=c[6], dtype=c[9]) for c in CASES]


@pytest.fixture
def every_layer_folds(monkeypatch):
    """The patch form for every layer whose kernel overlaps, however few its patch columns."""
    monkeypatch.setattr(patch_fold, "PATCH_MIN_COLUMNS", 1)


def _named(launch) -> dict:
    """A recorded launch's arguments by name."""
    jit = getattr(launch.kernel, "fn", launch.kernel)
    return {**dict(zip(jit.arg_names, launch.args, strict=False)), **launch.kwargs}


def _kernels(*args, **kwargs) -> list[str]:
    with recording_launches() as launches:
        masked_conv_transpose_langevin(*args, **kwargs)
    return [getattr(launch.kernel, "fn", launch.kernel).fn.__name__ for launch in launches]


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.usefixtures("nan_poisoned_outputs", "every_layer_folds")
def test_patch_fold_matches_the_reference_and_the_sub_pixel_form(case, monkeypatch) -> None:
    """Counter noise: the fold draws element e's normal as the sub-pixel kernel does, so the two forms
    agree to rounding, and both agree with the reference."""
    x, weight, mask, grad, stride, padding, slope, dtype = transposed_layer(case, seed=1)
    layer = (grad, mask, weight, stride, padding, slope, x, 0.3, 1.4)
    assert _kernels(*layer, seed=99, offset=7) == ["_conv_transpose_kernel", "_fold_langevin_kernel"]
    folded = masked_conv_transpose_langevin(*layer, seed=99, offset=7)
    expected = reference.masked_conv_transpose_langevin(*layer, seed=99, offset=7)
    assert folded.shape == x.shape and folded.dtype == dtype and folded.is_contiguous()
    assert_close(folded, expected, dtype, "x'")
    monkeypatch.setenv("GENCONV_PATCH_FOLD", "0")
    assert _kernels(*layer, seed=99, offset=7) == ["_conv_transpose_kernel"]
    assert_close(folded, masked_conv_transpose_langevin(*layer, seed=99, offset=7), dtype, "x', sub-pixel form")


@pytest.mark.parametrize("config", patch_fold._configs(), ids=lambda c: f"BLOCK{c.kwargs['BLOCK']}-w{c.num_warps}")
@pytest.mark.usefixtures("nan_poisoned_outputs", "every_layer_folds")
def test_every_fold_tile_the_autotuner_may_pick_matches_the_reference(config, monkeypatch) -> None:
    """Each candidate tile of the fold (the GPU's autotuner picks among them) as the only one."""
    monkeypatch.setattr(patch_fold, "_configs", lambda: [config])
    for case in (CASES[1], CASES[4]):
        x, weight, mask, grad, stride, padding, slope, dtype = transposed_layer(case, seed=2)
        layer = (grad, mask, weight, stride, padding, slope, x, 0.3, 1.4)
        with recording_launches() as launches:
            masked_conv_transpose_langevin(*layer, seed=5, offset=11)
        assert launches[-1].heuristic is config
        folded = masked_conv_transpose_langevin(*layer, seed=5, offset=11)
        assert_close(folded, reference.masked_conv_transpose_langevin(*layer, seed=5, offset=11), dtype, "x'")


@pytest.mark.parametrize("case", [CASES[1], CASES[4]], ids=[IDS[1], IDS[4]])
@pytest.mark.usefixtures("nan_poisoned_outputs", "every_layer_folds")
def test_chunks_of_images_keep_each_images_noise(case, monkeypatch) -> None:
    """Patches over the chunk limit run one image at a time: the fold offsets each chunk's noise by its
    first image, so the result is one launch pair's over the batch (to rounding: compiled, a one-image
    GEMM may split its K loop where the batch's does not; a misplaced noise stream moves x' by ~delta)."""
    x, weight, mask, grad, stride, padding, slope, dtype = transposed_layer(case, seed=2)
    layer = (grad, mask, weight, stride, padding, slope, x, 0.3, 1.4)
    whole = masked_conv_transpose_langevin(*layer, seed=5, offset=123)
    monkeypatch.setattr(patch_fold, "PATCH_CHUNK_BYTES", 1)
    assert _kernels(*layer, seed=5, offset=123).count("_fold_langevin_kernel") == x.shape[0]
    chunked = masked_conv_transpose_langevin(*layer, seed=5, offset=123)
    assert_close(chunked, whole, dtype, "x', in chunks")


@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[4]], ids=[IDS[0], IDS[1], IDS[4]])
@pytest.mark.usefixtures("nan_poisoned_outputs", "every_layer_folds")
def test_channels_last_patches_run_as_one_row_of_pixels(case, monkeypatch) -> None:
    """The chain's dense NHWC gradient and mask: the patch GEMM takes the batch's pixels as one row (its row
    tiles run on across images), in chunks too, and the result is the reference's."""
    x, weight, mask, grad, stride, padding, slope, dtype = transposed_layer(case, seed=5)
    nhwc_grad, nhwc_mask = (t.contiguous(memory_format=torch.channels_last) for t in (grad, mask))
    layer = (nhwc_grad, nhwc_mask, weight, stride, padding, slope, x, 0.3, 1.4)
    expected = reference.masked_conv_transpose_langevin(grad, mask, weight, stride, padding, slope, x, 0.3, 1.4,
                                                        seed=11, offset=3)  # fmt: skip
    for chunk in (patch_fold.PATCH_CHUNK_BYTES, 1):
        monkeypatch.setattr(patch_fold, "PATCH_CHUNK_BYTES", chunk)
        with recording_launches() as launches:  # recorded, not run
            masked_conv_transpose_langevin(*layer, seed=11, offset=3)
        folded = masked_conv_transpose_langevin(*layer, seed=11, offset=3)
        gemms = [_named(launch) for launch in launches if launch.kwargs.get("TAPS") == 1]
        images = x.shape[0] if chunk > 1 else 1
        pixels = images * mask.shape[-2] * mask.shape[-1]
        assert len(gemms) == x.shape[0] // images
        assert all((named["nq_h"], named["nq_w"], named["n_rows"]) == (1, pixels, pixels) for named in gemms)
        assert_close(folded, expected, dtype, f"x' (chunks of {images})")


@pytest.mark.parametrize("case", [CASES[1], CASES[3]], ids=[IDS[1], IDS[3]])
@pytest.mark.usefixtures("every_layer_folds")
def test_given_noise_clamp_strided_inputs_and_a_unit_gradient(case) -> None:
    """Given noise, a clamp, non-contiguous gradient, state and noise; and grad None (the summed top)."""
    x, weight, mask, grad, stride, padding, slope, dtype = transposed_layer(case, seed=3)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(4)).to(DEVICE, dtype)
    out = masked_conv_transpose_langevin(
        non_contiguous(grad), mask, weight, stride, padding, slope, non_contiguous(x), 0.5, 1.0,
        noise=non_contiguous(noise), clamp=(-3.0, 3.0),
    )  # fmt: skip
    expected = reference.masked_conv_transpose_langevin(
        grad, mask, weight, stride, padding, slope, x, 0.5, 1.0, noise=noise, clamp=(-3.0, 3.0)
    )
    assert_close(out, expected, dtype, "x'")
    unit = masked_conv_transpose_langevin(None, mask, weight, stride, padding, slope, x, 0.3, 1.1, seed=8)
    twin = reference.masked_conv_transpose_langevin(None, mask, weight, stride, padding, slope, x, 0.3, 1.1, seed=8)
    assert_close(unit, twin, dtype, "x', unit gradient")


def test_which_layers_fold(monkeypatch) -> None:
    """The texture and object nets' image layers fold, in either dtype; a 3x3 stride-1 RGB layer (27 patch
    columns) and a kernel no wider than its stride (no overlap to sum) keep the sub-pixel form.
    GENCONV_PATCH_FOLD=0 keeps the sub-pixel form everywhere."""
    monkeypatch.delenv("GENCONV_PATCH_FOLD", raising=False)
    assert patch_fold.patch_fold_wanted(3, 15, 3) and patch_fold.patch_fold_wanted(3, 7, 2)
    assert not patch_fold.patch_fold_wanted(3, 3, 1)
    assert not patch_fold.patch_fold_wanted(16, 2, 2)
    monkeypatch.setenv("GENCONV_PATCH_FOLD", "1")
    assert patch_fold.patch_fold_wanted(3, 15, 3) and not patch_fold.patch_fold_wanted(3, 3, 1)
    monkeypatch.setenv("GENCONV_PATCH_FOLD", "0")
    assert not patch_fold.patch_fold_wanted(3, 15, 3) and not patch_fold.patch_fold_wanted(3, 7, 2)


def test_chunk_sizes() -> None:
    """The fewest chunks that fit the limit, as even as they can be: 201 images fit, so 256 run as two
    chunks of 128 (not 201 and 55); at least one image a chunk, at most the batch."""
    limit = patch_fold.PATCH_CHUNK_BYTES
    assert patch_fold.images_per_chunk(256, limit // 201) == 128
    assert patch_fold.images_per_chunk(256, limit // 10) == 10
    assert patch_fold.images_per_chunk(256, 2 * limit) == 1
    assert patch_fold.images_per_chunk(4, 1) == 4


def test_bad_state_shape_is_refused() -> None:
    """A state whose channels are not the layer's inputs: one message naming x, before any launch."""
    x, weight, mask, grad, stride, padding, slope, _ = transposed_layer(CASES[0])
    with pytest.raises(ValueError, match="x and noise must have shape"):
        masked_conv_transpose_langevin(grad, mask, weight, stride, padding, slope, x[:, :2], 0.3, 1.0, seed=1)
