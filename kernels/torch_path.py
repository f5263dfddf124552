"""The torch backend's ops: PyTorch's own convolutions, arranged for speed, and the C++ update.

Same signatures and results (up to float rounding) as the twins in ``reference.py``, which test
them. What makes them faster than the twins and than an autograd loop:
- the top-down pass of every layer is a forward convolution on packed weights (``packing.py``),
  about 2x faster than oneDNN's transposed convolution and 4x for the strided bottom layer;
- on the CPU activations, masks and gradients are channels-last (oneDNN's fastest layout here)
  and every weight is repacked only when it changes;
- the Langevin update and its Philox noise run as one C++ pass on the CPU (``cpu_kernel.py``);
- the summed top computes its score only when asked, and the top-down pass starts from its mask
  alone: an upstream gradient of ones is never built.
"""

import torch
import torch.nn.functional as F

from genconv.kernels import cpu_kernel
from genconv.kernels.packing import apply_transpose_as_conv, packed_layout, packed_transpose
from genconv.kernels.reference import accumulation_dtype, activation_slope_factor


def _layout(device: torch.device) -> torch.memory_format:
    """Channels-last on the CPU, where it measures faster; torch's default elsewhere."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def _pre_activation(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int
) -> torch.Tensor:
    acc = accumulation_dtype(x.dtype)
    layout = _layout(x.device)
    packed = packed_layout(weight if weight.dtype == acc else weight.to(acc), layout)
    bias = None if bias is None else bias.to(acc)
    return F.conv2d(x.to(acc).contiguous(memory_format=layout), packed, bias, stride, padding)


def _activate_(pre: torch.Tensor, slope: float) -> torch.Tensor:
    return pre.relu_() if slope == 0 else F.leaky_relu(pre, slope, inplace=True)


def conv_act_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int, slope: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One bottom-up layer: (h, mask); the contract of ``reference.conv_act_forward``."""
    pre = _pre_activation(x, weight, bias, stride, padding)
    mask = pre > 0
    return _activate_(pre, slope).to(x.dtype), mask


def conv_act_forward_sum(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: int,
    slope: float,
    score: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The summed top: (per-image sum of h, or None when ``score`` is False, mask)."""
    pre = _pre_activation(x, weight, bias, stride, padding)
    mask = pre > 0
    if not score:
        return None, mask
    return _activate_(pre, slope).sum(dim=(1, 2, 3)), mask


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
    """One top-down layer as a forward convolution; the contract of ``reference.masked_conv_transpose``.

    The result may be a strided view (a crop of the sub-pixel grid, channels-last on the CPU).
    """
    dtype = (dtype or weight.dtype) if grad is None else grad.dtype
    acc = accumulation_dtype(dtype)
    if mask is None:
        coefficients = grad.to(acc)
    else:
        factor = activation_slope_factor(mask, slope, acc)
        coefficients = factor if grad is None else grad.to(acc) * factor
    layout = _layout(coefficients.device)
    packed = packed_transpose(weight if weight.dtype == acc else weight.to(acc), stride, padding, layout)
    out = apply_transpose_as_conv(coefficients.contiguous(memory_format=layout), packed, input_hw)
    if output_mask is not None:
        out = out * activation_slope_factor(output_mask, slope, acc)
    return out.to(dtype)


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
    """The bottom top-down layer and the Langevin update: the next chain state (contiguous, x's dtype)."""
    grad_f = masked_conv_transpose(grad, mask, weight, stride, padding, slope, (x.shape[-2], x.shape[-1]))
    return cpu_kernel.langevin_update(x, grad_f, delta, sigma, seed=seed, offset=offset, noise=noise, clamp=clamp)


langevin_update = cpu_kernel.langevin_update
standard_normal = cpu_kernel.philox_normal
