"""Representative launches for the compile tier: every kernel on the presets' layer shapes.

A case runs genconv's own code paths on the Triton backend with CPU tensors while
``recording_launches()`` is active, so what gets compiled is what a chain, a bottom-up pass with
its score, and an unfused top-down pass launch for that preset and dtype. Batches are small (the
batch is never a compile-time constant); sizes are the presets' paper sizes and 64 px.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from unittest import mock

import torch

from genconv.bindings.triton_backend import TRITON_BACKEND
from genconv.engine.langevin import langevin
from genconv.engine.model import GenerativeConvNet
from genconv.engine.presets import network_for
from genconv.kernels import cudnn_candidate
from genconv.kernels.launch import launch, recording_launches

# (preset, image size): paper sizes and 64 px for the GCN presets, the DCGAN-style nets at theirs.
PRESET_SHAPES = [("texture", 224), ("texture", 64), ("object", 100), ("object", 64), ("faces", 25),
                 ("dcgan32", 32), ("dcgan64", 64)]  # fmt: skip
QUICK_PRESET_SHAPES = [("texture", 224), ("texture", 64), ("object", 100), ("faces", 25)]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
BATCH = 4


@dataclass
class CompileCase:
    """A named piece of genconv that launches kernels."""

    name: str
    dtype: str
    run: Callable[[], None]


CONV_KERNELS = ("_conv_forward_kernel", "_conv_transpose_kernel")


def _preset_case(preset: str, size: int, dtype: str) -> CompileCase:
    def run() -> None:
        spec = network_for(preset, 3, size)
        model = GenerativeConvNet(spec, init_seed=0)
        x = torch.zeros(BATCH, 3, size, size, dtype=DTYPES[dtype])
        # recorded launches write nothing, so the chain's output is uninitialised memory: no finiteness check
        langevin(model, x, steps=1, delta=0.1, seed=0, backend=TRITON_BACKEND, cuda_graph=False, check_finite=False)
        model.bottom_up(x, TRITON_BACKEND)  # with the score
        model.grad_f(x, TRITON_BACKEND)  # the unfused bottom layer
        with mock.patch.dict(os.environ, {"GENCONV_PHASE_SPLIT": "1"}):  # the per-phase launches of large batches
            model.grad_f(x, TRITON_BACKEND)

    return CompileCase(f"{preset}@{size}", dtype, run)


def _update_case(dtype: str) -> CompileCase:
    def run() -> None:
        x = torch.zeros(BATCH, 3, 64, 64, dtype=DTYPES[dtype])
        TRITON_BACKEND.langevin_update(x, x, 0.1, 1.0, seed=torch.zeros(2, dtype=torch.int64), offset=0)
        TRITON_BACKEND.langevin_update(x, x, 0.1, 1.0, noise=x, clamp=(-1.0, 1.0))

    return CompileCase("langevin_update", dtype, run)


def _normal_case() -> CompileCase:
    def run() -> None:
        TRITON_BACKEND.standard_normal(0, 0, (BATCH, 3, 64, 64), "cpu")

    return CompileCase("standard_normal", "float32", run)


def _cudnn_epilogue_case(dtype: str) -> CompileCase:
    """The Triton epilogues of the cuDNN candidate (the convolutions themselves run on CPU here)."""

    def run() -> None:
        spec = network_for("texture", 3, 64)
        model = GenerativeConvNet(spec, init_seed=0)
        x = torch.zeros(BATCH, 3, 64, 64, dtype=DTYPES[dtype])
        conv = model.convs[1]
        h, mask = cudnn_candidate.conv_act_forward(x, model.convs[0].weight, model.convs[0].bias, 3, 7, 0.0)
        cudnn_candidate.conv_act_forward_sum(h, conv.weight, conv.bias, 1, 2, 0.0)
        cudnn_candidate.masked_conv_transpose_langevin(None, mask, model.convs[0].weight, 3, 7, 0.0, x.float(), 0.1,
                                                       1.0, seed=0)  # fmt: skip

    return CompileCase("cudnn-epilogues", dtype, run)


def _large_batch_case() -> CompileCase:
    """The object net's bottom-up pass at B = 256 in bfloat16, where the heuristic takes the tiles only
    Hopper gets (``implicit_gemm.hopper_tiles_wanted``: the image layer's 256 x 128, 64-wide K-steps on
    the 5x5 layer); sm_80 compiles the tiles it takes there instead."""

    def run() -> None:
        model = GenerativeConvNet(network_for("object", 3, 100), init_seed=0)
        model.bottom_up(torch.zeros(256, 3, 100, 100, dtype=torch.bfloat16), TRITON_BACKEND)

    return CompileCase("object@100 B=256", "bfloat16", run)


def _sub_pixel_large_batch_case() -> CompileCase:
    """The object net's fused image-layer top-down pass at B = 256 in bfloat16 in the sub-pixel form
    (``GENCONV_PATCH_FOLD=0``: the GPU check's A/B column, and the form of layers too narrow for the
    patch GEMM), whose large tiles draw 16 normals a thread in their epilogue: the chain step is
    recorded apart and only that launch issued again."""

    def run() -> None:
        model = GenerativeConvNet(network_for("object", 3, 100), init_seed=0)
        x = torch.zeros(256, 3, 100, 100, dtype=torch.bfloat16)
        with mock.patch.dict(os.environ, {"GENCONV_PATCH_FOLD": "0"}), recording_launches() as step:
            langevin(model, x, steps=1, delta=0.1, seed=0, backend=TRITON_BACKEND, cuda_graph=False, check_finite=False)
        fused = step[-1]
        launch(fused.kernel, lambda meta: (1,), fused.configs, fused.heuristic, *fused.args, **fused.kwargs)

    return CompileCase("object@100 B=256 sub-pixel", "bfloat16", run)


def _one_row_split_case() -> CompileCase:
    """A split-K pass over a single GEMM row (one image, a 1x1 output, a long K loop): Triton passes a
    row count of 1 as a constant, which the split-K sum must take."""

    def run() -> None:
        x = torch.zeros(1, 64, 5, 5)
        TRITON_BACKEND.conv_act_forward(x, torch.zeros(32, 64, 5, 5), None, 1, 0, 0.0)

    return CompileCase("one-row-split", "float32", run)


def compile_cases(quick: bool) -> list[CompileCase]:
    """Every case of the tier; ``quick``: the paper-size texture and object nets, the faces net, and the
    texture net at 64 px (whose batch takes the small-batch tiles: split-K on swapped tiles, half-width ones).
    Both have the object net's large-batch bottom-up pass and its large-batch sub-pixel top-down pass."""
    shapes = QUICK_PRESET_SHAPES if quick else PRESET_SHAPES
    cases = [_preset_case(preset, size, dtype) for preset, size in shapes for dtype in DTYPES]
    cases += [_cudnn_epilogue_case(dtype) for dtype in DTYPES]
    cases += [_update_case(dtype) for dtype in DTYPES]
    return cases + [_normal_case(), _one_row_split_case(), _large_batch_case(), _sub_pixel_large_batch_case()]
