"""The Triton backend: the fused kernels, with cuDNN's convolution as a candidate for every layer pass.

Each conv op has two implementations with one contract: the fused Triton kernel, and cuDNN's
convolution with a one-pass Triton epilogue (``kernels/cudnn_candidate.py``). On CUDA the first
call of a layer pass (bottom-up, summed top, top-down, top-down + update) for a shape times both
(CUDA events, after a warm-up that also compiles and autotunes) and keeps the faster for every
later call, so the backend never loses to the same convolutions called from PyTorch. A call made
while a CUDA graph is being captured, with nothing chosen yet, runs the fused kernel.
``GENCONV_CONV=triton`` or ``cudnn`` forces one way (the interpreter runs triton unless forced).

Importing this module imports triton; ``genconv.bindings.backends`` does so only when the
backend is asked for, so genconv works where triton is not installed.
"""

import os
from collections.abc import Callable, Hashable
from typing import Any

import torch

from genconv.bindings.backends import Backend
from genconv.kernels import conv_forward, conv_transpose, cudnn_candidate
from genconv.kernels.langevin_update import langevin_update
from genconv.kernels.normal import standard_normal

CONV_ENV = "GENCONV_CONV"
IMPLEMENTATIONS = {"triton": (conv_forward, conv_transpose), "cudnn": (cudnn_candidate, cudnn_candidate)}
_TIMED_RUNS = 3


class PassChooser:
    """Which implementation runs each layer pass: forced, timed once per (pass, shape), or the default."""

    def __init__(self) -> None:
        self.choices: dict[Hashable, str] = {}

    def implementation(self, op: str, key: Hashable, device: torch.device, trial: Callable[[str], Any]) -> str:
        """The name of the implementation of ``op`` for ``key``; ``trial(name)`` runs one call."""
        forced = os.environ.get(CONV_ENV, "auto")
        if forced in IMPLEMENTATIONS:
            return forced
        if device.type != "cuda":
            return "triton"
        found = self.choices.get((op, key))
        if found is not None:
            return found
        if torch.cuda.is_current_stream_capturing():
            return "triton"
        timings = {name: _time(lambda name=name: trial(name)) for name in IMPLEMENTATIONS}
        chosen = min(timings, key=timings.get)
        self.choices[(op, key)] = chosen
        return chosen

    def summary(self) -> dict[str, int]:
        """How many layer passes each implementation won (for the benchmark notes)."""
        counts: dict[str, int] = {}
        for name in self.choices.values():
            counts[name] = counts.get(name, 0) + 1
        return counts


def _time(call: Callable[[], Any]) -> float:
    """Milliseconds of the fastest of a few calls after a warm-up (which compiles and autotunes)."""
    call()
    best = float("inf")
    for _ in range(_TIMED_RUNS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end))
    return best


CHOOSER = PassChooser()


def _forward_module(name: str) -> Any:
    return IMPLEMENTATIONS[name][0]


def _transpose_module(name: str) -> Any:
    return IMPLEMENTATIONS[name][1]


Tensor = torch.Tensor


def conv_act_forward(
    x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int, slope: float
) -> tuple[Tensor, Tensor]:
    """Bottom-up layer (h, mask) by the faster of the fused kernel and cuDNN + epilogue."""
    key = (tuple(x.shape), x.dtype, tuple(weight.shape), stride, padding, bias is not None, slope == 0)
    run = lambda name: _forward_module(name).conv_act_forward(x, weight, bias, stride, padding, slope)  # noqa: E731
    return run(CHOOSER.implementation("forward", key, x.device, run))


def conv_act_forward_sum(
    x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int, slope: float, score: bool = True
) -> tuple[Tensor | None, Tensor]:
    """Summed top (score or None, mask) by the faster way."""
    key = (tuple(x.shape), x.dtype, tuple(weight.shape), stride, padding, bias is not None, slope == 0, score)
    run = lambda name: _forward_module(name).conv_act_forward_sum(  # noqa: E731
        x, weight, bias, stride, padding, slope, score=score
    )
    return run(CHOOSER.implementation("forward-sum", key, x.device, run))


def masked_conv_transpose(
    grad: Tensor | None,
    mask: Tensor | None,
    weight: Tensor,
    stride: int,
    padding: int,
    slope: float,
    input_hw: tuple[int, int],
    output_mask: Tensor | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Top-down layer by the faster way."""
    dtype = (dtype or weight.dtype) if grad is None else grad.dtype
    source = mask if grad is None else grad
    key = (tuple(source.shape), dtype, tuple(weight.shape), stride, padding, grad is None, mask is None,
           output_mask is None, tuple(input_hw))  # fmt: skip
    run = lambda name: _transpose_module(name).masked_conv_transpose(  # noqa: E731
        grad, mask, weight, stride, padding, slope, input_hw, output_mask, dtype
    )
    return run(CHOOSER.implementation("transpose", key, source.device, run))


def masked_conv_transpose_langevin(
    grad: Tensor | None,
    mask: Tensor | None,
    weight: Tensor,
    stride: int,
    padding: int,
    slope: float,
    x: Tensor,
    delta: float,
    sigma: float,
    **update: Any,
) -> Tensor:
    """The image layer's top-down pass with the Langevin update (``update``: seed, offset, noise,
    clamp), by the faster way."""
    dtype = weight.dtype if grad is None else grad.dtype
    source = mask if grad is None else grad
    key = (tuple(source.shape), dtype, tuple(weight.shape), stride, padding, grad is None, mask is None,
           tuple(x.shape), x.dtype)  # fmt: skip
    run = lambda name: _transpose_module(name).masked_conv_transpose_langevin(  # noqa: E731
        grad, mask, weight, stride, padding, slope, x, delta, sigma, **update
    )
    return run(CHOOSER.implementation("transpose-update", key, source.device, run))


TRITON_BACKEND = Backend(
    name="triton",
    conv_act_forward=conv_act_forward,
    conv_act_forward_sum=conv_act_forward_sum,
    masked_conv_transpose=masked_conv_transpose,
    langevin_update=langevin_update,
    masked_conv_transpose_langevin=masked_conv_transpose_langevin,
    standard_normal=standard_normal,
)
