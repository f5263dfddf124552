"""The torch backend's CPU path against the twins: the top-down pass as forward convolutions on
packed weights, the C++ update with its Philox noise, and the fallback when the C++ kernel is off."""

import math
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F

from genconv.kernels import cpu_kernel, reference, torch_path
from genconv.kernels.packing import PACKED, apply_transpose_as_conv, packed_transpose, transpose_as_conv

from kernel_support import assert_close, case_id, non_contiguous

pytestmark = pytest.mark.usefixtures("one_intra_op_thread")

# c_out, c_in, kernel, stride, padding, height, width: stride 1 with and without a crop, strides
# 2 and 3 with kernels they divide and do not, paddings below s - 1 (the grid needs zero rows).
GEOMETRIES = [
    (4, 3, 3, 1, 1, 9, 11),
    (5, 2, 3, 1, 0, 8, 7),
    (3, 2, 3, 1, 3, 6, 6),
    (6, 1, 1, 1, 0, 5, 4),
    (7, 3, 15, 3, 7, 19, 20),
    (4, 3, 7, 2, 3, 13, 12),
    (6, 2, 4, 2, 1, 10, 9),
    (3, 2, 5, 3, 0, 14, 11),
    (4, 1, 2, 3, 0, 8, 10),
    (5, 4, 3, 2, 2, 7, 9),
]
GEOMETRY_IDS = [case_id(O=g[0], C=g[1], K=g[2], S=g[3], P=g[4], H=g[5], W=g[6]) for g in GEOMETRIES]


def _transpose_reference(grad: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, hw) -> torch.Tensor:
    out_pad = [reference.transposed_output_padding(hw[i], grad.shape[2 + i], weight.shape[-1], stride, padding)
               for i in range(2)]  # fmt: skip
    return F.conv_transpose2d(grad, weight, None, stride, padding, out_pad)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=GEOMETRY_IDS)
def test_transpose_as_conv_equals_the_transposed_convolution(geometry, layout) -> None:
    c_out, c_in, kernel, stride, padding, height, width = geometry
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(c_out, c_in, kernel, kernel, generator=generator, dtype=torch.float64)
    out_h, out_w = ((size + 2 * padding - kernel) // stride + 1 for size in (height, width))
    grad = torch.randn(2, c_out, out_h, out_w, generator=generator, dtype=torch.float64)
    packed = transpose_as_conv(weight, stride, padding, layout)
    taps = math.ceil(kernel / stride)
    assert packed.weight.shape[0] == (c_in if stride == 1 else c_in * stride * stride)
    assert packed.weight.shape[-1] == (kernel if stride == 1 else taps)
    out = apply_transpose_as_conv(grad.contiguous(memory_format=layout), packed, (height, width))
    torch.testing.assert_close(out, _transpose_reference(grad, weight, stride, padding, (height, width)))


@pytest.mark.parametrize("slope", [0.0, 0.2], ids=["relu", "leaky"])
@pytest.mark.parametrize("geometry", GEOMETRIES[:3] + GEOMETRIES[4:7], ids=GEOMETRY_IDS[:3] + GEOMETRY_IDS[4:7])
def test_top_down_ops_match_the_twins(geometry, slope) -> None:
    c_out, c_in, kernel, stride, padding, height, width = geometry
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, c_in, height, width, generator=generator)
    weight = 0.4 * torch.randn(c_out, c_in, kernel, kernel, generator=generator)
    bias = torch.randn(c_out, generator=generator)
    h, mask = torch_path.conv_act_forward(x, weight, bias, stride, padding, slope)
    h_ref, mask_ref = reference.conv_act_forward(x, weight, bias, stride, padding, slope)
    assert torch.equal(mask, mask_ref)
    assert_close(h, h_ref, torch.float32, "h")
    grad = non_contiguous(torch.randn(mask.shape, generator=generator))
    hw = (height, width)
    for upstream in (grad, None):  # None: a unit upstream gradient (the summed top)
        out = torch_path.masked_conv_transpose(upstream, mask, weight, stride, padding, slope, hw)
        expected = reference.masked_conv_transpose(upstream, mask, weight, stride, padding, slope, hw)
        assert out.shape == x.shape and out.dtype == torch.float32
        assert_close(out, expected, torch.float32, "df/dx")
    fused = torch_path.masked_conv_transpose_langevin(grad, mask, weight, stride, padding, slope, x, 0.3, 1.2,
                                                      seed=5, offset=9, clamp=(-1.0, 1.5))  # fmt: skip
    twin = reference.masked_conv_transpose_langevin(grad, mask, weight, stride, padding, slope, x, 0.3, 1.2,
                                                    seed=5, offset=9, clamp=(-1.0, 1.5))  # fmt: skip
    assert fused.is_contiguous()
    assert_close(fused, twin, torch.float32, "x'")


# Strided layers with many input channels: their top-down pass runs as the transposed convolution on
# the CPU (kernels the stride divides or not; odd sizes need an output padding).
TRANSPOSED_GEOMETRIES = [(6, 17, 5, 2, 2, 13, 12), (5, 16, 3, 2, 1, 9, 8), (4, 20, 7, 3, 3, 16, 14),
                         (6, 16, 4, 2, 1, 12, 11)]  # fmt: skip
TRANSPOSED_IDS = [case_id(O=g[0], C=g[1], K=g[2], S=g[3], P=g[4], H=g[5], W=g[6]) for g in TRANSPOSED_GEOMETRIES]


@pytest.mark.parametrize("slope", [0.0, 0.2], ids=["relu", "leaky"])
@pytest.mark.parametrize("geometry", TRANSPOSED_GEOMETRIES, ids=TRANSPOSED_IDS)
def test_transposed_convolution_form_matches_the_twin(geometry, slope) -> None:
    c_out, c_in, kernel, stride, padding, height, width = geometry
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(2, c_in, height, width, generator=generator)
    weight = 0.4 * torch.randn(c_out, c_in, kernel, kernel, generator=generator)
    _, mask = torch_path.conv_act_forward(x, weight, None, stride, padding, slope)
    below = torch.randn(x.shape, generator=generator).contiguous(memory_format=torch.channels_last) > 0
    grad = non_contiguous(torch.randn(mask.shape, generator=generator))
    coefficients = grad.contiguous(memory_format=torch.channels_last)
    assert torch_path._transposed_output_padding(coefficients, weight, stride, padding, (height, width)) is not None
    for upstream in (grad, None):
        out = torch_path.masked_conv_transpose(upstream, mask, weight, stride, padding, slope, (height, width),
                                               output_mask=below)  # fmt: skip
        expected = reference.masked_conv_transpose(upstream, mask, weight, stride, padding, slope, (height, width),
                                                   output_mask=below)  # fmt: skip
        assert out.shape == x.shape
        assert_close(out, expected, torch.float32, "df/dx")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
def test_slope_factor_equals_the_twins_exactly(dtype) -> None:
    generator = torch.Generator().manual_seed(3)
    slopes = [0.0, 0.2, 0.01, 0.1, 0.5, 0.999, 1e-8, *torch.rand(40, generator=generator, dtype=torch.float64).tolist()]
    for index, slope in enumerate(slopes):
        mask = torch.rand(3, 5, 4, 6, generator=generator) > 0.5
        if index % 2:
            mask = mask.contiguous(memory_format=torch.channels_last)
        factor = torch_path.slope_factor(mask, slope, dtype)
        assert factor.dtype == dtype and torch.equal(factor, reference.activation_slope_factor(mask, slope, dtype))


def test_summed_top_skips_the_score_when_asked() -> None:
    x, weight = torch.randn(2, 3, 9, 9), torch.randn(4, 3, 3, 3)
    for ops in (torch_path, reference):
        score, mask = ops.conv_act_forward_sum(x, weight, None, 1, 1, 0.0, score=False)
        assert score is None and torch.equal(mask, reference.conv_act_forward(x, weight, None, 1, 1, 0.0)[1])
    score, _ = torch_path.conv_act_forward_sum(x, weight, None, 1, 1, 0.0)
    assert_close(score, reference.conv_act_forward_sum(x, weight, None, 1, 1, 0.0)[0], torch.float32, "f")


def test_packed_weights_live_for_a_scope_and_follow_in_place_updates() -> None:
    weight = torch.randn(4, 3, 5, 5)
    outside = [packed_transpose(weight, 2, 1, torch.contiguous_format) for _ in range(2)]
    assert outside[0] is not outside[1]  # outside a scope every call packs afresh
    with PACKED.scope():
        first = packed_transpose(weight, 2, 1, torch.contiguous_format)
        assert packed_transpose(weight, 2, 1, torch.contiguous_format) is first
        weight.mul_(2.0)  # an optimizer step: the version moves on
        repacked = packed_transpose(weight, 2, 1, torch.contiguous_format)
        assert repacked is not first
        torch.testing.assert_close(repacked.weight, 2.0 * first.weight)


needs_cpu_kernel = pytest.mark.skipif(not cpu_kernel.available(), reason=f"C++ CPU kernel: {cpu_kernel.status()}")


@needs_cpu_kernel
@pytest.mark.parametrize("shape", [(2, 3, 11, 13), (1, 1, 1, 7), (5, 2), (3, 4, 5, 6, 2), (0, 3, 4, 4)],
                         ids=["4d-odd", "tail-only", "2d", "5d", "empty"])  # fmt: skip
def test_cpu_kernel_update_matches_the_twin(shape) -> None:
    generator = torch.Generator().manual_seed(2)
    x, grad, noise = (torch.randn(shape, generator=generator) for _ in range(3))
    for clamp in (None, (-0.5, 0.7)):
        drawn = cpu_kernel.langevin_update(x, grad, 0.3, 1.3, seed=11, offset=2**33 + 5, clamp=clamp)
        twin = reference.langevin_update(x, grad, 0.3, 1.3, seed=11, offset=2**33 + 5, clamp=clamp)
        torch.testing.assert_close(drawn, twin, rtol=1e-6, atol=1e-6)
        given = cpu_kernel.langevin_update(x, grad, 0.3, 1.3, noise=noise, clamp=clamp)
        assert torch.equal(given, reference.langevin_update(x, grad, 0.3, 1.3, noise=noise, clamp=clamp))
    flow = cpu_kernel.langevin_update(x, grad, 0.0, 1.3, seed=11)  # delta 0: gradient flow, no draw
    assert torch.equal(flow, reference.langevin_update(x, grad, 0.0, 1.3, seed=11))


@needs_cpu_kernel
def test_cpu_kernel_reads_strided_gradients_in_place() -> None:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 10, 12, generator=generator)
    wide = torch.randn(2, 3, 14, 17, generator=generator)
    for grad in (wide[:, :, 2:12, 3:15], x.contiguous(memory_format=torch.channels_last) * 0.5, non_contiguous(x)):
        out = cpu_kernel.langevin_update(x, grad, 0.4, 0.9, seed=torch.tensor([7, 100]), offset=3)
        twin = reference.langevin_update(x, grad.contiguous(), 0.4, 0.9, seed=7, offset=103)
        torch.testing.assert_close(out, twin, rtol=1e-6, atol=1e-6)


@needs_cpu_kernel
def test_cpu_kernel_noise_is_the_philox_stream_whatever_the_blocking() -> None:
    """Element e is the normal at counter offset + e: slices of a long draw, the update's own draws
    and the twin's numbers agree (exactly among the kernel's, to a few ulp with the twin)."""
    long = cpu_kernel.philox_normal(9, 1000, (3000,))
    for start, count in ((0, 3000), (1, 7), (13, 1029), (2995, 5)):
        assert torch.equal(cpu_kernel.philox_normal(9, 1000 + start, (count,)), long[start : start + count])
    x = torch.zeros(3, 1000)
    stepped = cpu_kernel.langevin_update(x, x, 1.0, math.inf, seed=9, offset=1000)
    assert torch.equal(stepped.flatten(), long)
    torch.testing.assert_close(long, reference.philox_normal(9, 1000, (3000,)), rtol=1e-6, atol=1e-6)


def test_without_the_cpu_kernel_the_twin_runs(monkeypatch) -> None:
    monkeypatch.setattr(cpu_kernel, "available", lambda: False)
    x, grad = torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    twin = reference.langevin_update(x, grad, 0.3, 1.0, seed=4, offset=8, clamp=(-1.0, 1.0))
    assert torch.equal(torch_path.langevin_update(x, grad, 0.3, 1.0, seed=4, offset=8, clamp=(-1.0, 1.0)), twin)
    assert torch.equal(torch_path.standard_normal(4, 8, (2, 3)), reference.philox_normal(4, 8, (2, 3)))


@needs_cpu_kernel
@pytest.mark.slow
def test_a_lock_left_by_a_killed_build_does_not_block_the_next(tmp_path) -> None:
    """torch leaves its build lock file behind when a build is killed; genconv's next load clears it."""
    name, built, _ = cpu_kernel._build_location()
    copy = tmp_path / name
    shutil.copytree(built, copy, ignore=shutil.ignore_patterns("lock", "genconv-build.lock"))
    (copy / "lock").write_text("")  # what a killed build leaves, here an hour ago
    an_hour_ago = time.time() - 3600
    os.utime(copy / "lock", (an_hour_ago, an_hour_ago))
    environment = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    command = [sys.executable, "-c", "from genconv.kernels import cpu_kernel; print(cpu_kernel.status())"]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=240)
    assert done.stdout.strip() == "built", done.stdout + done.stderr[-2000:]
    assert not (copy / "lock").exists()
