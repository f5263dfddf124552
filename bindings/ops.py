"""genconv's hot operations as ``torch.library`` ops in the ``genconv::`` namespace.

Each op runs the PyTorch reference twin (``kernels/reference.py``) on CPU tensors and the fused
Triton kernel on CUDA tensors (``DEVICE_BACKENDS``), has a fake implementation so that
``torch.compile`` and ``torch.export`` trace it as one opaque node, and has autograd formulas
that are themselves differentiable, so every op supports a second derivative.

The ops are ``custom_op``s dispatching to the kernels' launchers rather than ``triton_op``s:
a ``triton_op`` body must be traceable with fake tensors, which needs every launch in
``kernels/`` to go through ``torch.library.wrap_triton``; the launchers call ``kernel[grid]``.

Noise is counter-based Philox: element e of a call draws the normal of ``counter[0]`` at counter
``counter[1] + offset + e`` (``kernels.normal``). ``counter`` is an int64 tensor ``[seed, base]`` on
the op's device, so a CUDA graph that replays a chain reads fresh values from memory
(``noise_counter`` builds one).

Example:
    >>> import genconv  # registers the ops
    >>> x = torch.zeros(2, 3)
    >>> torch.ops.genconv.langevin_update(x, torch.ones(2, 3), 0.1, 1.0, noise_counter(7), 0).shape
    torch.Size([2, 3])
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from genconv.bindings.backends import Backend, resolve_backend
from genconv.bindings.errors import ConfigError
from genconv.bindings.seeding import MAX_SEED
from genconv.kernels.reference import accumulation_dtype, activation_slope_factor

# Which backend runs each device type. Tests point "cpu" at "triton" to run the kernels in
# Triton's interpreter (TRITON_INTERPRET=1) behind the same ops.
DEVICE_BACKENDS: dict[str, str] = {"cpu": "torch", "cuda": "triton"}


def noise_counter(seed: int, base: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """The int64 ``[seed, base]`` tensor the ops read their Philox stream from.

    Args:
        seed: an integer in [0, 2**63 - 1].
        base: counter of the stream's first element, >= 0.
        device: the device of the op's tensors.
    Returns:
        int64 tensor of shape [2].

    Example:
        >>> noise_counter(7, base=100).tolist()
        [7, 100]
    """
    if not 0 <= int(seed) <= MAX_SEED:
        raise ConfigError(f"seed must be an integer in [0, 2**63 - 1], got {seed}")
    if int(base) < 0:
        raise ConfigError(f"base (the first counter) must be >= 0, got {base}")
    return torch.tensor([int(seed), int(base)], dtype=torch.int64, device=device)


def _backend(device: torch.device) -> Backend:
    return resolve_backend(DEVICE_BACKENDS.get(device.type, "torch"), device)


def _clamp_bounds(clamp: Sequence[float] | None) -> tuple[float, float] | None:
    if clamp is None:
        return None
    if len(clamp) != 2 or not clamp[0] < clamp[1]:
        raise ConfigError(f"clamp must be [low, high] with low < high, got {list(clamp)}")
    return float(clamp[0]), float(clamp[1])


def _check_like(name: str, tensor: torch.Tensor | None, x: torch.Tensor) -> None:
    if tensor is not None and tensor.shape != x.shape:
        raise ConfigError(f"{name} must have the shape of x, {list(x.shape)}; got {list(tensor.shape)}")


def _check_counter(counter: torch.Tensor, x: torch.Tensor) -> None:
    if counter.shape != (2,) or counter.dtype != torch.int64 or counter.device != x.device:
        raise ConfigError(
            f"counter must be an int64 tensor [seed, base] on x's device {x.device} (see noise_counter); got "
            f"{counter.dtype} of shape {list(counter.shape)} on {counter.device}"
        )


def _check_conv(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int) -> None:
    if x.dim() != 4 or weight.dim() != 4 or weight.shape[1] != x.shape[1] or weight.shape[2] != weight.shape[3]:
        raise ConfigError(
            f"expected x [B, C, H, W] and a square weight [C_out, C, K, K]; got {list(x.shape)}, {list(weight.shape)}"
        )
    if stride < 1 or padding < 0:
        raise ConfigError(f"stride must be >= 1 and padding >= 0, got {stride}, {padding}")


def _check_step_sizes(delta: float, sigma: float) -> None:
    if not (delta >= 0 and sigma > 0):
        raise ConfigError(f"delta must be >= 0 and sigma > 0 (inf: no reference term), got {delta}, {sigma}")


def _check_langevin_args(x, grad_f, delta, sigma, counter, noise, clamp) -> None:
    _check_step_sizes(delta, sigma)
    _check_like("grad_f", grad_f, x)
    _check_like("noise", noise, x)
    _check_counter(counter, x)
    _clamp_bounds(clamp)


def _check_transpose_args(grad, mask, weight, stride, padding, input_hw) -> None:
    if grad.dim() != 4 or weight.dim() != 4 or grad.shape[1] != weight.shape[0]:
        raise ConfigError(
            f"expected grad [B, C_out, H', W'] and weight [C_out, C_in, K, K]; got {list(grad.shape)}, "
            f"{list(weight.shape)}"
        )
    _check_like("mask", mask, grad)
    if mask.dtype != torch.bool:
        raise ConfigError(f"mask must be the bool mask of the bottom-up pass, got {mask.dtype}")
    if len(input_hw) != 2 or stride < 1 or padding < 0:
        raise ConfigError(f"input_hw must be [H, W], stride >= 1, padding >= 0; got {input_hw}, {stride}, {padding}")


def _check_fused_args(grad, mask, weight, stride, padding, x, delta, sigma, counter, noise, clamp) -> None:
    _check_step_sizes(delta, sigma)
    if x.dim() != 4 or x.shape[:2] != (grad.shape[0], weight.shape[1]):
        expected = f"[{grad.shape[0]}, {weight.shape[1]}, H, W]"
        raise ConfigError(f"x must be [B, C_in, H, W] = {expected}; got {list(x.shape)}")
    _check_transpose_args(grad, mask, weight, stride, padding, [x.shape[-2], x.shape[-1]])
    _check_like("noise", noise, x)
    _check_counter(counter, x)
    _clamp_bounds(clamp)


def _flat_batch(tensor: torch.Tensor | None, batch: int) -> torch.Tensor | None:
    """[B, ...] as [B, N]: the Triton update takes up to 4 dims and numbers elements row-major."""
    return None if tensor is None else tensor.reshape(batch, -1)


def langevin_update_direct(
    x: torch.Tensor,
    grad_f: torch.Tensor,
    delta: float,
    sigma: float,
    counter: torch.Tensor,
    offset: int,
    noise: torch.Tensor | None = None,
    clamp: list[float] | None = None,
) -> torch.Tensor:
    """One Langevin step, GCN convention: clamp(x + (delta^2/2)(grad_f - x/sigma^2) + delta*z).

    ``langevin_update_direct`` is the op's body as a plain function: samplers call it outside
    autograd and torch.compile, where the op's dispatch (tens of microseconds) would cost more
    than the update of a small state. z is ``noise`` when given, else Philox normals drawn in the kernel at counters
    counter[1] + offset + e. ``sigma`` = inf drops the reference term. Linear in x, grad_f and
    noise; second derivative: supported (it is zero; the backward is differentiable).

    Args:
        x: chain states [B, ...]; grad_f: the drift direction (df/dx), same shape.
        delta, sigma: step size (= noise std) and reference std.
        counter: int64 [seed, base] on x's device; offset: added to base.
        noise: optional standard normals shaped like x; clamp: optional [low, high].
    Returns:
        the new states [B, ...] (contiguous, x's dtype).
    """
    _check_langevin_args(x, grad_f, delta, sigma, counter, noise, clamp)
    bounds = _clamp_bounds(clamp)
    update = _backend(x.device).langevin_update
    batch = x.shape[0]
    if x.dim() <= 4:
        return update(x, grad_f, delta, sigma, seed=counter, offset=offset, noise=noise, clamp=bounds)
    flat = update(
        _flat_batch(x, batch), _flat_batch(grad_f, batch), delta, sigma,
        seed=counter, offset=offset, noise=_flat_batch(noise, batch), clamp=bounds,
    )  # fmt: skip
    return flat.view(x.shape)


langevin_update = torch.library.custom_op(
    "genconv::langevin_update", langevin_update_direct, mutates_args=(), device_types=("cpu", "cuda")
)


@langevin_update.register_fake
def _(x, grad_f, delta, sigma, counter, offset, noise=None, clamp=None):
    _check_langevin_args(x, grad_f, delta, sigma, counter, noise, clamp)
    return x.new_empty(x.shape)


def _langevin_input_grads(
    grad_out: torch.Tensor, out: torch.Tensor | None, delta: float, sigma: float, clamp: Sequence[float] | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """d/dx, d/dgrad_f and d/dnoise of the update, given the gradient of its output.

    The clamp passes gradient where the output lies strictly inside the bounds.
    """
    if clamp is not None and out is not None:
        grad_out = grad_out * ((out > clamp[0]) & (out < clamp[1])).to(grad_out.dtype)
    half_delta_sq = delta * delta / 2.0
    return grad_out * (1.0 - half_delta_sq / (sigma * sigma)), grad_out * half_delta_sq, grad_out * delta


def _langevin_setup(ctx, inputs, output) -> None:
    x, grad_f, delta, sigma, _counter, _offset, noise, clamp = inputs
    ctx.delta, ctx.sigma, ctx.clamp = delta, sigma, clamp
    ctx.dtypes = (x.dtype, grad_f.dtype, None if noise is None else noise.dtype)
    ctx.save_for_backward(output if clamp is not None else None)


def _langevin_backward(ctx, grad_out):
    (out,) = ctx.saved_tensors
    d_x, d_grad, d_noise = _langevin_input_grads(grad_out, out, ctx.delta, ctx.sigma, ctx.clamp)
    x_dtype, grad_dtype, noise_dtype = ctx.dtypes
    return (
        d_x.to(x_dtype),
        d_grad.to(grad_dtype),
        None,
        None,
        None,
        None,
        None if noise_dtype is None else d_noise.to(noise_dtype),
        None,
    )


langevin_update.register_autograd(_langevin_backward, setup_context=_langevin_setup)


@torch.library.custom_op("genconv::conv_act_forward", mutates_args=(), device_types=("cpu", "cuda"))
def conv_act_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int, slope: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One bottom-up layer: h = act(conv(x, W) + b) and its binary mask 1[conv(x, W) + b > 0].

    act is ReLU (slope 0) or leaky ReLU. Differentiable in x, weight and bias (the x-gradient is
    ``genconv::masked_conv_transpose``); second derivative: supported (act'' = 0 almost
    everywhere, as for torch's relu).

    Args:
        x: [B, C, H, W]; weight: [C_out, C, K, K]; bias: [C_out] or None.
        stride, padding: of the convolution; slope: 0 for ReLU, else the leaky slope.
    Returns:
        (h [B, C_out, H', W'] in x's dtype, mask bool [B, C_out, H', W']), both contiguous.
    """
    _check_conv(x, weight, stride, padding)
    h, mask = _backend(x.device).conv_act_forward(x, weight, bias, stride, padding, slope)
    return h.contiguous(), mask.contiguous()


@conv_act_forward.register_fake
def _(x, weight, bias, stride, padding, slope):
    _check_conv(x, weight, stride, padding)
    kernel = weight.shape[-1]
    height = (x.shape[2] + 2 * padding - kernel) // stride + 1
    width = (x.shape[3] + 2 * padding - kernel) // stride + 1
    shape = (x.shape[0], weight.shape[0], height, width)
    return x.new_empty(shape), x.new_empty(shape, dtype=torch.bool)


def _conv_setup(ctx, inputs, output) -> None:
    x, weight, bias, stride, padding, slope = inputs
    ctx.stride, ctx.padding, ctx.slope, ctx.has_bias = stride, padding, slope, bias is not None
    ctx.bias_dtype = None if bias is None else bias.dtype
    ctx.save_for_backward(x, weight, output[1])


def _conv_backward(ctx, grad_h, _grad_mask):
    x, weight, mask = ctx.saved_tensors
    acc = accumulation_dtype(x.dtype)
    coefficients = grad_h.to(acc) * activation_slope_factor(mask, ctx.slope, acc)
    d_x = d_weight = d_bias = None
    if ctx.needs_input_grad[0]:
        hw = [x.shape[-2], x.shape[-1]]
        d_x = masked_conv_transpose(grad_h, mask, weight, ctx.stride, ctx.padding, ctx.slope, hw).to(x.dtype)
    if ctx.needs_input_grad[1]:
        d_weight = torch.nn.grad.conv2d_weight(x.to(acc), weight.shape, coefficients, ctx.stride, ctx.padding)
        d_weight = d_weight.to(weight.dtype)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        d_bias = coefficients.sum(dim=(0, 2, 3)).to(ctx.bias_dtype)
    return d_x, d_weight, d_bias, None, None, None


conv_act_forward.register_autograd(_conv_backward, setup_context=_conv_setup)


@torch.library.custom_op("genconv::masked_conv_transpose", mutates_args=(), device_types=("cpu", "cuda"))
def masked_conv_transpose(
    grad: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    stride: int,
    padding: int,
    slope: float,
    input_hw: list[int],
) -> torch.Tensor:
    """One top-down layer: conv_transpose(grad * act'(mask), W), sized back to the layer input.

    Linear in grad and weight; second derivative: supported (the backward is made of
    differentiable convolutions).

    Args:
        grad: [B, C_out, H', W'] gradient with respect to the layer output.
        mask: bool [B, C_out, H', W'] from the bottom-up pass; weight: [C_out, C_in, K, K].
        stride, padding, slope: of the layer; input_hw: [H, W] of the layer input.
    Returns:
        [B, C_in, H, W] in grad's dtype, contiguous.
    """
    _check_transpose_args(grad, mask, weight, stride, padding, input_hw)
    hw = (int(input_hw[0]), int(input_hw[1]))
    return _backend(grad.device).masked_conv_transpose(grad, mask, weight, stride, padding, slope, hw).contiguous()


@masked_conv_transpose.register_fake
def _(grad, mask, weight, stride, padding, slope, input_hw):
    _check_transpose_args(grad, mask, weight, stride, padding, input_hw)
    return grad.new_empty((grad.shape[0], weight.shape[1], input_hw[0], input_hw[1]))


def _transpose_input_grads(
    grad_out: torch.Tensor,
    grad: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    stride: int,
    padding: int,
    slope: float,
    needs: tuple[bool, bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """d/dgrad and d/dweight of conv_transpose(grad * act'(mask), W), given the output's gradient.

    conv_transpose(., W) is the adjoint of conv(., W), so d/dgrad is conv(grad_out, W) * act' and
    d/dW is the weight gradient of that convolution.
    """
    acc = accumulation_dtype(grad.dtype)
    factor = activation_slope_factor(mask, slope, acc)
    upstream = grad_out.to(acc)
    d_grad = d_weight = None
    if needs[0]:
        d_grad = (F.conv2d(upstream, weight.to(acc), None, stride, padding) * factor).to(grad.dtype)
    if needs[1]:
        coefficients = grad.to(acc) * factor
        d_weight = torch.nn.grad.conv2d_weight(upstream, weight.shape, coefficients, stride, padding).to(weight.dtype)
    return d_grad, d_weight


def _transpose_setup(ctx, inputs, output) -> None:
    grad, mask, weight, stride, padding, slope, _input_hw = inputs
    ctx.stride, ctx.padding, ctx.slope = stride, padding, slope
    ctx.save_for_backward(grad, mask, weight)


def _transpose_backward(ctx, grad_out):
    grad, mask, weight = ctx.saved_tensors
    needs = (ctx.needs_input_grad[0], ctx.needs_input_grad[2])
    d_grad, d_weight = _transpose_input_grads(grad_out, grad, mask, weight, ctx.stride, ctx.padding, ctx.slope, needs)
    return d_grad, None, d_weight, None, None, None, None


masked_conv_transpose.register_autograd(_transpose_backward, setup_context=_transpose_setup)


@torch.library.custom_op("genconv::masked_conv_transpose_langevin", mutates_args=(), device_types=("cpu", "cuda"))
def masked_conv_transpose_langevin(
    grad: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    stride: int,
    padding: int,
    slope: float,
    x: torch.Tensor,
    delta: float,
    sigma: float,
    counter: torch.Tensor,
    offset: int,
    noise: torch.Tensor | None = None,
    clamp: list[float] | None = None,
) -> torch.Tensor:
    """The bottom top-down layer fused with the Langevin update: the next chain state.

    Equals ``langevin_update(x, masked_conv_transpose(grad, mask, weight, ...), delta, sigma,
    ...)``; on CUDA the image-space gradient never leaves registers. Second derivative:
    supported (composition of the two ops' differentiable backwards).

    Args:
        grad, mask, weight, stride, padding, slope: as for ``masked_conv_transpose``.
        x: [B, C_in, H, W] chain states; delta, sigma, counter, offset, noise, clamp: as for
            ``langevin_update``.
    Returns:
        the new states [B, C_in, H, W] (contiguous, x's dtype).
    """
    _check_fused_args(grad, mask, weight, stride, padding, x, delta, sigma, counter, noise, clamp)
    return _backend(x.device).masked_conv_transpose_langevin(
        grad, mask, weight, stride, padding, slope, x, delta, sigma,
        seed=counter, offset=offset, noise=noise, clamp=_clamp_bounds(clamp),
    ).contiguous()  # fmt: skip


@masked_conv_transpose_langevin.register_fake
def _(grad, mask, weight, stride, padding, slope, x, delta, sigma, counter, offset, noise=None, clamp=None):
    _check_fused_args(grad, mask, weight, stride, padding, x, delta, sigma, counter, noise, clamp)
    return x.new_empty(x.shape)


def _fused_setup(ctx, inputs, output) -> None:
    grad, mask, weight, stride, padding, slope, x, delta, sigma, _counter, _offset, noise, clamp = inputs
    ctx.stride, ctx.padding, ctx.slope = stride, padding, slope
    ctx.delta, ctx.sigma, ctx.clamp = delta, sigma, clamp
    ctx.dtypes = (x.dtype, None if noise is None else noise.dtype)
    ctx.save_for_backward(grad, mask, weight, output if clamp is not None else None)


def _fused_backward(ctx, grad_out):
    grad, mask, weight, out = ctx.saved_tensors
    d_x, d_grad_f, d_noise = _langevin_input_grads(grad_out, out, ctx.delta, ctx.sigma, ctx.clamp)
    needs = (ctx.needs_input_grad[0], ctx.needs_input_grad[2])
    d_grad, d_weight = _transpose_input_grads(d_grad_f, grad, mask, weight, ctx.stride, ctx.padding, ctx.slope, needs)
    x_dtype, noise_dtype = ctx.dtypes
    d_noise = None if noise_dtype is None else d_noise.to(noise_dtype)
    return d_grad, None, d_weight, None, None, None, d_x.to(x_dtype), None, None, None, None, d_noise, None


masked_conv_transpose_langevin.register_autograd(_fused_backward, setup_context=_fused_setup)

OPS = (langevin_update, conv_act_forward, masked_conv_transpose, masked_conv_transpose_langevin)
