"""One strided top-down layer on the CPU in its two forms: the sub-pixel forward convolution and
oneDNN's transposed convolution, on the presets' strided layers.

    python -m bench.cpu_topdown_forms                 # batches 1 and 16, 2 threads

Both read a channels-last gradient and return a channels-last result; each time is the median of
9 calls after a warm-up, one form after the other. ``kernels/torch_path.py`` picks the form per
layer from these timings (``TRANSPOSED_MIN_CHANNELS`` and the kernel-divides-stride test).
"""
# ruff: noqa: E402

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python bench/cpu_topdown_forms.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from genconv.kernels.packing import apply_transpose_as_conv, transpose_as_conv

# name, the layer's output channels (the gradient's), its input channels, kernel, stride, padding, input side
LAYERS = [
    ("object@100 layer 2 (5x5 s2, 64 <- 100)", 64, 100, 5, 2, 2, 50),
    ("object@100 layer 3 (3x3 s2, 20 <- 64)", 20, 64, 3, 2, 1, 25),
    ("object@100 layer 1 (7x7 s2, 100 <- 1)", 100, 1, 7, 2, 3, 100),
    ("object@64 layer 2 (5x5 s2, 64 <- 100)", 64, 100, 5, 2, 2, 32),
    ("faces@25 layer 3 (4x4 s2, 128 <- 64)", 128, 64, 4, 2, 1, 12),
    ("faces@25 layer 2 (4x4 s2, 64 <- 32)", 64, 32, 4, 2, 1, 25),
    ("dcgan64 layer 2 (4x4 s2, 128 <- 64)", 128, 64, 4, 2, 1, 64),
    ("dcgan64 layer 4 (4x4 s2, 512 <- 256)", 512, 256, 4, 2, 1, 16),
    ("texture@64 layer 1 (15x15 s3, 100 <- 3)", 100, 3, 15, 3, 7, 64),
]


def median_ms(call, calls: int = 9) -> float:
    call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def forms(batch: int, layer: tuple) -> tuple[Callable[[], torch.Tensor], Callable[[], torch.Tensor]]:
    """The layer's top-down pass on a random channels-last gradient: (sub-pixel, transposed)."""
    _, c_out, c_in, kernel, stride, padding, side = layer
    layout = torch.channels_last
    grid = (side + 2 * padding - kernel) // stride + 1
    weight = 0.05 * torch.randn(c_out, c_in, kernel, kernel)
    grad = torch.randn(batch, c_out, grid, grid).contiguous(memory_format=layout)
    extra = side - ((grid - 1) * stride - 2 * padding + kernel)
    packed = transpose_as_conv(weight, stride, padding, layout)
    transposed_weight = weight.contiguous(memory_format=layout)

    def sub_pixel() -> torch.Tensor:
        return apply_transpose_as_conv(grad, packed, (side, side)).contiguous(memory_format=layout)

    def transposed() -> torch.Tensor:
        return F.conv_transpose2d(grad, transposed_weight, None, stride, padding, extra)

    return sub_pixel, transposed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_topdown_forms", description=__doc__.split("\n")[0])
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"{'layer':42s} {'batch':>5s} {'sub-pixel ms':>12s} {'transposed ms':>13s} {'sub-pixel / transposed':>22s}")
    for batch in (int(b) for b in args.batches.split(",")):
        for layer in LAYERS:
            sub_pixel, transposed = forms(batch, layer)
            torch.testing.assert_close(sub_pixel(), transposed(), rtol=1e-4, atol=1e-4)
            first, second = median_ms(sub_pixel), median_ms(transposed)
            print(f"{layer[0]:42s} {batch:5d} {first:12.2f} {second:13.2f} {first / second:22.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
