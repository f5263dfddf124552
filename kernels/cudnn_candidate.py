"""The other way to run each layer pass on a GPU: cuDNN's convolution and a one-pass Triton epilogue.

Same signatures and results as the fused kernels (``conv_forward.py``, ``conv_transpose.py``):

- bottom-up: ``conv2d`` (channels-last, no bias) then ``epilogues.bias_act_mask`` (bias, activation,
  mask, or the summed top's partial sums);
- top-down: the forward convolution on the sub-pixel packed weights, ``pixel_shuffle`` and a crop,
  then ``epilogues.masked_coefficients`` to gate the result with the mask of the layer below (or,
  for the image layer, a view read in place by the update);
- the image layer's top-down ends in the Triton ``langevin_update`` kernel, which reads that view.

The Triton backend times both ways once per layer pass and shape and keeps the faster one, so the
fused kernels never lose to the same convolutions called from PyTorch.
"""

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from genconv.kernels import epilogues
from genconv.kernels.langevin_update import langevin_update
from genconv.kernels.launch import tf32_enabled
from genconv.kernels.packing import apply_transpose_as_conv, packed_layout, packed_transpose

_LAYOUT = torch.channels_last


@contextlib.contextmanager
def _tf32_policy() -> Iterator[None]:
    """cuDNN's TF32 switch set to genconv's policy (GENCONV_TF32=0: IEEE float32) for a block,
    every other cuDNN setting of the user's left alone."""
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = tf32_enabled()
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = previous


def _conv(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    with _tf32_policy():
        return F.conv2d(x, weight, None, stride, padding)


def _pre_activation(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    packed = packed_layout(weight if weight.dtype == x.dtype else weight.to(x.dtype), _LAYOUT)
    return _conv(x.contiguous(memory_format=_LAYOUT), packed, stride, padding)


def conv_act_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int, slope: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One bottom-up layer: (h, mask), channels-last; the contract of ``reference.conv_act_forward``."""
    h, mask = epilogues.bias_act_mask(_pre_activation(x, weight, stride, padding), bias, slope, x.dtype)
    assert h is not None
    return h, mask


def conv_act_forward_sum(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: int,
    slope: float,
    score: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The stationary top layer: (per-image sum of h, or None without ``score``; mask)."""
    pre = _pre_activation(x, weight, stride, padding)
    return epilogues.bias_act_mask(pre, bias, slope, x.dtype, summed=True, score=score)


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
    """One top-down layer (channels-last); the contract of ``reference.masked_conv_transpose``."""
    dtype = (dtype or weight.dtype) if grad is None else grad.dtype
    coefficients = grad if mask is None else epilogues.masked_coefficients(grad, mask, slope, dtype)
    packed = packed_transpose(weight if weight.dtype == dtype else weight.to(dtype), stride, padding, _LAYOUT)
    with _tf32_policy():
        out = apply_transpose_as_conv(coefficients.contiguous(memory_format=_LAYOUT), packed, input_hw)
    if output_mask is None:
        return out
    return epilogues.masked_coefficients(out, output_mask, slope, dtype)


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
    """The image layer's top-down pass and the Langevin update: the next chain state (contiguous)."""
    grad_f = masked_conv_transpose(grad, mask, weight, stride, padding, slope, (x.shape[-2], x.shape[-1]))
    return langevin_update(x, grad_f, delta, sigma, seed=seed, offset=offset, noise=noise, clamp=clamp)
