"""The torch backend's ops: PyTorch's own convolutions, arranged for speed, and the C++ update.

Same signatures and results (up to float rounding) as the twins in ``reference.py``, which test
them. What makes them faster than the twins and than an autograd loop:
- the top-down pass of a layer is a forward convolution on packed weights (``packing.py``),
  about 2x faster than oneDNN's transposed convolution and 4x for the strided bottom layer; except,
  on the CPU, a strided layer whose input has many channels, where oneDNN's transposed convolution
  is faster: 1.3-1.6x on the object net's 5x5 and 3x3 stride-2 layers, whose sub-pixel form spends
  1.44x and 1.78x the FLOPs on zero taps, and 1.1-1.3x on the 4x4 stride-2 layers of the GGCN nets;
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


def slope_factor(mask: torch.Tensor, slope: float, dtype: torch.dtype) -> torch.Tensor:
    """act'(r) from the mask, equal to ``reference.activation_slope_factor``'s, as a new tensor.

    A boolean mask converts through uint8: torch converts a channels-last bool tensor to float 5-7x
    slower than the same bytes as uint8, and ``torch.where`` with scalars another 2x slower. For a
    leaky slope s the off units get 0 (1 - s) + s = s and the on units fl(fl(1 - s) + s) = 1 exactly
    (1 - s is exact for s >= 1/2 and rounds by at most a quarter of 1's spacing below otherwise).
    """
    if mask.dtype != torch.bool:
        return activation_slope_factor(mask, slope, dtype)
    factor = mask.view(torch.uint8).to(dtype)
    if slope == 0:
        return factor
    off = torch.tensor(slope, dtype=dtype, device=mask.device)
    return factor.mul_(1 - off).add_(off)


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


# Input channels from which a strided layer runs its top-down pass as oneDNN's transposed
# convolution on the CPU (below, the image layer: its sub-pixel form's s^2 C_in output channels make
# the forward convolution 2-2.5x faster).
TRANSPOSED_MIN_CHANNELS = 16


def _transposed_output_padding(
    coefficients: torch.Tensor, weight: torch.Tensor, stride: int, padding: int, input_hw: tuple[int, int]
) -> tuple[int, int] | None:
    """The output padding with which ``conv_transpose2d`` computes this top-down pass directly, where
    that is the faster form (CPU, strided, many input channels), or None (the sub-pixel forward
    convolution)."""
    kernel_h, kernel_w = weight.shape[-2:]
    if coefficients.device.type != "cpu" or stride == 1 or weight.shape[1] < TRANSPOSED_MIN_CHANNELS:
        return None
    extra = tuple(
        size - ((grid - 1) * stride - 2 * padding + kernel)
        for size, grid, kernel in zip(input_hw, coefficients.shape[-2:], (kernel_h, kernel_w), strict=True)
    )
    return extra if all(0 <= e < stride for e in extra) else None  # type: ignore[return-value]


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
        factor = slope_factor(mask, slope, acc)
        coefficients = factor if grad is None else factor.mul_(grad)
    layout = _layout(coefficients.device)
    coefficients = coefficients.contiguous(memory_format=layout)
    weight = weight if weight.dtype == acc else weight.to(acc)
    output_padding = _transposed_output_padding(coefficients, weight, stride, padding, input_hw)
    if output_padding is not None:
        out = F.conv_transpose2d(coefficients, packed_layout(weight, layout), None, stride, padding, output_padding)
    else:
        out = apply_transpose_as_conv(coefficients, packed_transpose(weight, stride, padding, layout), input_hw)
    if output_mask is not None:
        out = out.mul_(slope_factor(output_mask, slope, acc))  # out is this pass's own tensor (or a view of it)
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
