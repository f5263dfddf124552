"""Pure-PyTorch twins of every genconv kernel: readable, float32 (or float64) accumulation.

A GCN layer computes r = conv(h, W) + b and h' = act(r) with act(r) = r for r > 0 and
slope * r otherwise (slope 0: ReLU). Its binary mask is m = 1[r > 0]. The top-down pass sends a
gradient G back through the layer as conv_transpose(G * act'(r), W), act'(r) = 1 if m else slope.
The Langevin update is x' = x + (delta^2 / 2) (g - x / sigma^2) + delta * z.
"""

import math

import torch
import torch.nn.functional as F

_MASK32 = 0xFFFFFFFF
_PHILOX_KEY_A = 0x9E3779B9
_PHILOX_KEY_B = 0xBB67AE85
_PHILOX_ROUND_A = 0xD2511F53
_PHILOX_ROUND_B = 0xCD9E8D57
_PHILOX_ROUNDS = 10
_UINT_TO_UNIFORM_SCALE = 4.6566127342e-10
_TWO_PI = 6.283185307179586


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype every op computes in: float64 stays float64, everything else uses float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _philox_first_two_words(seed: int, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Words 0 and 1 of Philox-4x32-10 on counters (offset_lo, offset_hi, 0, 0), as Triton does.

    uint32 words live in int64. The product of two uint32 values needs 64 unsigned bits; int64
    multiplication wraps modulo 2**64 (two's complement), so the bit pattern, and hence both
    32-bit halves read back with shifts and masks, is exact. One round maps
    (c0, c1, c2, c3) to (hi(B c2) ^ c1 ^ k0, lo(B c2), hi(A c0) ^ c3 ^ k1, lo(A c0)); the words
    are updated in place (this is the CPU path's noise, so its speed matters), and the first
    round, where c2 = c3 = 0, is written out.
    """
    c0 = offsets & _MASK32
    c1 = offsets >> 32
    k0, k1 = seed & _MASK32, (seed >> 32) & _MASK32
    product_a = c0 * _PHILOX_ROUND_A
    c0 = c1.bitwise_xor_(k0)
    c1 = torch.zeros_like(c0)
    c2 = (product_a >> 32).bitwise_and_(_MASK32).bitwise_xor_(k1)
    c3 = product_a.bitwise_and_(_MASK32)
    product_a, product_b = torch.empty_like(c0), torch.empty_like(c0)
    for _ in range(_PHILOX_ROUNDS - 1):
        k0 = (k0 + _PHILOX_KEY_A) & _MASK32
        k1 = (k1 + _PHILOX_KEY_B) & _MASK32
        torch.mul(c2, _PHILOX_ROUND_B, out=product_b)
        torch.mul(c0, _PHILOX_ROUND_A, out=product_a)
        c1.bitwise_xor_(k0)
        c3.bitwise_xor_(k1)
        torch.bitwise_right_shift(product_b, 32, out=c0).bitwise_and_(_MASK32).bitwise_xor_(c1)
        torch.bitwise_right_shift(product_a, 32, out=c2).bitwise_and_(_MASK32).bitwise_xor_(c3)
        torch.bitwise_and(product_b, _MASK32, out=c1)
        torch.bitwise_and(product_a, _MASK32, out=c3)
    return c0, c1


def _uint_to_uniform(words: torch.Tensor) -> torch.Tensor:
    """Triton's uint32 -> [0, 1) map: bit-cast to int32 and fold negatives (-v - 1), then scale.

    For a word w >= 2**31 the int32 value is w - 2**32 and its fold 2**32 - 1 - w = w ^ 0xFFFFFFFF,
    so the fold is w ^ (0xFFFFFFFF if w >= 2**31 else 0).
    """
    folded = (words >> 31).mul_(_MASK32).bitwise_xor_(words)
    return folded.to(torch.float32).mul_(_UINT_TO_UNIFORM_SCALE)


def philox_normal(
    seed: int, offset: int, shape: tuple[int, ...] | torch.Size, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Standard normals from a counter-based generator, element e drawn at counter offset + e.

    The same numbers as ``normal.normal_at(seed, offset + e)`` in a Triton kernel (up to the last bits
    of log/cos), so a chain is fixed by (seed, offset) whatever computes it.

    Args:
        seed: a non-negative integer below 2**63.
        offset: counter of the first element, a non-negative integer.
        shape: the shape of the result; elements are numbered in row-major order.
        device: where to build the result.
    Returns:
        float32 tensor of ``shape``.

    Example:
        >>> z = philox_normal(seed=7, offset=0, shape=(2, 3))
        >>> z.shape
        torch.Size([2, 3])
    """
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed}")
    if offset < 0:
        raise ValueError(f"offset must be non-negative, got {offset}")
    numel = math.prod(shape)
    offsets = torch.arange(numel, dtype=torch.int64, device=device) + offset
    word0, word1 = _philox_first_two_words(seed, offsets)
    u1 = torch.clamp_min(_uint_to_uniform(word0), 1.0e-7)
    theta = torch.tensor(_TWO_PI, dtype=torch.float32) * _uint_to_uniform(word1)
    radius = torch.sqrt(-2.0 * torch.log(u1))
    return (radius * torch.cos(theta)).reshape(shape)


def conv_act_forward(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: int,
    slope: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One bottom-up layer: h = act(conv(x, W) + b) and its mask 1[conv(x, W) + b > 0].

    Args:
        x: [B, C_in, H, W] layer input.
        weight: [C_out, C_in, K, K]; bias: [C_out] or None.
        stride, padding: of the convolution; slope: 0 for ReLU, else the leaky slope.
    Returns:
        (h, mask): h [B, C_out, H', W'] in x's dtype; mask bool of the same shape.

    Example:
        >>> h, m = conv_act_forward(torch.randn(1, 3, 9, 9), torch.randn(4, 3, 3, 3), None, 1, 1, 0.0)
        >>> bool((h[m] > 0).all())
        True
    """
    acc = accumulation_dtype(x.dtype)
    pre = F.conv2d(x.to(acc), weight.to(acc), None if bias is None else bias.to(acc), stride, padding)
    mask = pre > 0
    out = F.relu(pre) if slope == 0 else F.leaky_relu(pre, slope)
    return out.to(x.dtype), mask


def conv_act_forward_sum(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: int,
    slope: float,
    score: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The top layer of a stationary model: per-image sum of act(conv(x, W) + b), and its mask.

    Returns:
        (score, mask): score [B] in the accumulation dtype (None when ``score`` is False: a chain
        needs only the mask), mask as in ``conv_act_forward``.
    """
    acc = accumulation_dtype(x.dtype)
    pre = F.conv2d(x.to(acc), weight.to(acc), None if bias is None else bias.to(acc), stride, padding)
    mask = pre > 0
    if not score:
        return None, mask
    out = F.relu(pre) if slope == 0 else F.leaky_relu(pre, slope)
    return out.sum(dim=(1, 2, 3)), mask


def transposed_output_padding(input_size: int, output_size: int, kernel: int, stride: int, padding: int) -> int:
    """The output_padding that makes conv_transpose return exactly the conv's input size."""
    extra = input_size - ((output_size - 1) * stride - 2 * padding + kernel)
    if not 0 <= extra < stride:
        raise ValueError(
            f"a {kernel}x{kernel} convolution with stride {stride} and padding {padding} cannot map "
            f"size {input_size} to {output_size}"
        )
    return extra


def activation_slope_factor(mask: torch.Tensor, slope: float, dtype: torch.dtype) -> torch.Tensor:
    """act'(r) from the mask: 1 where the unit is on, ``slope`` where it is off."""
    if slope == 0:
        return mask.to(dtype)
    return torch.where(mask, torch.ones((), dtype=dtype), torch.full((), slope, dtype=dtype))


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
    """One top-down layer: conv_transpose(grad * act'(r), W), sized back to the layer input.

    Args:
        grad: [B, C_out, H', W'] gradient of f with respect to the layer output; None means 1
            everywhere (the summed top of a stationary model), so only act'(r) goes back.
        mask: bool [B, C_out, H', W'] from the bottom-up pass; None when ``grad`` already carries
            act'(r) (the layer above gated its result with ``output_mask``).
        weight: [C_out, C_in, K, K] of the layer.
        input_hw: (H, W) of the layer input.
        output_mask: the mask of the layer below (bool [B, C_in, H, W]): the result is gated by its
            act' at once, ready to be the next top-down layer's ``grad`` with ``mask`` None.
        dtype: with ``grad`` None, the dtype to compute and return in (a bfloat16 chain's top-down
            pass); the weights' by default.
    Returns:
        [B, C_in, H, W] gradient with respect to the layer input (times act'(output_mask) if given),
        in grad's dtype (``dtype``, or weight's, when grad is None).
    """
    if grad is None and mask is None:
        raise ValueError("masked_conv_transpose needs a gradient, a mask, or both")
    dtype = (dtype or weight.dtype) if grad is None else grad.dtype
    acc = accumulation_dtype(dtype)
    if mask is None:
        coefficients = grad.to(acc)
    else:
        factor = activation_slope_factor(mask, slope, acc)
        coefficients = factor if grad is None else grad.to(acc) * factor
    kernel_h, kernel_w = weight.shape[-2:]
    output_padding = (
        transposed_output_padding(input_hw[0], coefficients.shape[-2], kernel_h, stride, padding),
        transposed_output_padding(input_hw[1], coefficients.shape[-1], kernel_w, stride, padding),
    )
    out = F.conv_transpose2d(coefficients, weight.to(acc), None, stride, padding, output_padding)
    if output_mask is not None:
        out = out * activation_slope_factor(output_mask, slope, acc)
    return out.to(dtype)


def langevin_update(
    x: torch.Tensor,
    grad_f: torch.Tensor,
    delta: float,
    sigma: float,
    *,
    seed: int | torch.Tensor | None = None,
    offset: int = 0,
    noise: torch.Tensor | None = None,
    clamp: tuple[float, float] | None = None,
) -> torch.Tensor:
    """One Langevin step of the GCN convention: x + (delta^2/2)(grad_f - x/sigma^2) + delta*z.

    The noise z is ``noise`` when given, else ``philox_normal(seed, offset, x.shape)``; a step
    with ``delta`` = 0 is plain gradient flow and draws nothing. ``seed`` may also be an int64
    tensor [seed, base], meaning counter offset + base (the kernels read it from device memory).

    Args:
        x: chain states [B, ...]; grad_f: df/dx, same shape.
        delta: step size (also the noise std); sigma: std of the reference distribution.
        seed, offset: counter-based noise (used when ``noise`` is None); seed an int or [seed, base].
        noise: standard normals shaped like x, to replay a given noise sequence.
        clamp: optional (low, high) bounds applied to the new state.
    Returns:
        the new states, in x's dtype.
    """
    acc = accumulation_dtype(x.dtype)
    x_acc = x.to(acc)
    drift = (delta * delta / 2.0) * (grad_f.to(acc) - x_acc / (sigma * sigma))
    new = x_acc + drift
    if delta != 0:
        if noise is None:
            if seed is None:
                raise ValueError("langevin_update needs either noise or a seed")
            if isinstance(seed, torch.Tensor):
                seed, base = (int(value) for value in seed.tolist())
                offset += base
            noise = philox_normal(seed, offset, tuple(x.shape), x.device)
        new = new + delta * noise.to(acc)
    if clamp is not None:
        new = new.clamp(clamp[0], clamp[1])
    return new.to(x.dtype)


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
    """The bottom top-down layer fused with the Langevin update: returns the next chain state."""
    grad_f = masked_conv_transpose(grad, mask, weight, stride, padding, slope, (x.shape[-2], x.shape[-1]))
    return langevin_update(x, grad_f, delta, sigma, seed=seed, offset=offset, noise=noise, clamp=clamp)
