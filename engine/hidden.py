"""Langevin dynamics in the hidden space of GGCN: z ~ p(z) ∝ exp(f(g(z))) N(z; 0, I).

    z <- z + (s^2 / 2) (d f(g(z)) / dz - z) + s * eps

d f(g(z))/dz = J_g(z)^T df/dx(g(z)): df/dx comes from the model's explicit top-down pass (the
fused kernels on CUDA), the product with J_g^T from autograd through g, and the update itself is
the fused Langevin kernel with reference std 1. If z ~ p(z) then g(z) follows
exp(f(x)) q_g(x) / Z, with q_g the push-forward of N(0, I) through g.
"""

import torch
from torch import nn

from genconv.bindings.backends import Backend, packing_scope, resolve_backend
from genconv.bindings.errors import ConfigError
from genconv.engine.langevin import LangevinResult, check_step_sizes
from genconv.engine.model import GenerativeConvNet


def hidden_energy_scale(model: GenerativeConvNet, hidden_gradient: str | None) -> float:
    """What the hidden steps divide d f(g(z))/dz by: the model's energy scale for "relative", else 1."""
    return model.scale if hidden_gradient == "relative" else 1.0


def hidden_grad(
    model: GenerativeConvNet,
    generator: nn.Module,
    z: torch.Tensor,
    backend: str | Backend,
    max_norm: float | None = None,
    energy_scale: float = 1.0,
) -> torch.Tensor:
    """d f(g(z)) / dz / ``energy_scale`` for every row of z, each row scaled down to norm ``max_norm`` if longer."""
    with torch.enable_grad():
        latent = z.detach().requires_grad_(True)
        images = generator(latent)
        image_grad = model.grad_f(images.detach(), backend)
        if energy_scale != 1.0:
            image_grad = image_grad / energy_scale
        (grad,) = torch.autograd.grad(images, latent, grad_outputs=image_grad.to(images.dtype))
    if max_norm is not None:
        norms = grad.flatten(1).norm(dim=1).clamp_min(1e-30)
        grad = grad * (max_norm / norms).clamp(max=1.0).view(-1, *([1] * (grad.dim() - 1)))
    return grad


def hidden_langevin(
    model: GenerativeConvNet,
    generator: nn.Module,
    z: torch.Tensor,
    *,
    steps: int,
    step_size: float,
    seed: int,
    start_step: int = 0,
    stream_offset: int = 0,
    stream_stride: int | None = None,
    grad_clip: float | None = None,
    energy_scale: float = 1.0,
    backend: str | Backend = "auto",
) -> LangevinResult:
    """Run ``steps`` hidden-space Langevin steps from the latent codes ``z`` ([B, d]).

    ``grad_clip`` bounds the norm of each chain's d f(g(z))/dz (None: unbounded, the exact dynamics).
    When f grows steep during learning the unbounded hidden dynamics become unstable for the
    spec's step s = 0.1; GGCN training clips by default (genconv's choice).

    ``energy_scale`` divides the gradient (and so sets the units of the clip): with f = h / sigma^2
    (GGCN's energy scale) passing 1 / sigma^2 makes the steps follow d h(g(z))/dz, i.e. sample
    exp(h(g(z))) N(z; 0, I), f at temperature 1 / sigma^2; d f(g(z))/dz itself is ~1e4 there and a
    clip of 100 would fix every step's drift at s^2 / 2 * 100 whatever f is.

    Noise is counter-based like the image-space sampler's: step t draws element e at counter
    stream_offset + (start_step + t) * stream_stride + e of ``seed`` (stride default z.numel()).
    """
    check_step_sizes(step_size, 1.0)
    if steps < 0:
        raise ConfigError(f"hidden steps must be >= 0, got {steps}")
    ops = resolve_backend(backend, z.device)
    stride = z.numel() if stream_stride is None else stream_stride
    state = z
    with packing_scope():
        for step in range(steps):
            grad = hidden_grad(model, generator, state, ops, grad_clip, energy_scale)
            offset = stream_offset + (start_step + step) * stride
            state = ops.langevin_update(state, grad, step_size, 1.0, seed=seed, offset=offset)
    return LangevinResult(x=state, seed=seed, next_step=start_step + steps)
