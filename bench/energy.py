"""The energies the benchmark samples, as research code writes them.

``ConvEnergy``: the GCN energy E(x) = ||x||^2 / (2 sigma^2) - f(x) with nn.Conv2d layers, ReLU and
autograd for df/dx. It has the parameter names of ``GenerativeConvNet`` (``convs.*``, ``fc.*``),
so it loads a genconv model's state dict and computes the same f with the same weights.

``MLPEnergy`` and ``gaussian_mixture``: the small energy of a TorchEBM-style persistent-CD run on
a 2-D mixture of Gaussians, where the sampler's per-step overhead, not arithmetic, is the cost.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from genconv.engine.model import GenerativeConvNet
from genconv.engine.network import NetworkSpec


class ConvEnergy(nn.Module):
    """E(x) = ||x||^2/(2 sigma^2) - f(x) with f the spec's conv + bias + ReLU stack and its top.

    Example:
        >>> energy = ConvEnergy.from_model(model)
        >>> energy(torch.randn(2, 3, 64, 64)).shape  # [2]
    """

    def __init__(self, spec: NetworkSpec, sigma: float) -> None:
        super().__init__()
        self.spec = spec
        self.sigma = float(sigma)
        self.convs = nn.ModuleList()
        channels = spec.in_channels
        for layer in spec.layers:
            conv = nn.Conv2d(channels, layer.channels, layer.kernel, layer.stride, layer.pad, bias=spec.bias)
            self.convs.append(conv)
            channels = layer.channels
        self.fc: nn.Linear | None = None
        if spec.top == "fc":
            assert spec.image_size is not None
            height, width = spec.layer_sizes(spec.image_size)[-1]
            self.fc = nn.Linear(channels * height * width, 1, bias=spec.bias)

    @classmethod
    def from_model(cls, model: GenerativeConvNet) -> "ConvEnergy":
        """A copy of ``model``'s f (same weights, same device, float32) as a plain module."""
        energy = cls(model.spec, model.sigma).to(device=model.convs[0].weight.device)
        energy.load_state_dict(model.state_dict())
        return energy

    def f(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) per image [B]."""
        h = x
        for layer, conv in zip(self.spec.layers, self.convs, strict=True):
            h = conv(h)
            h = F.relu(h) if self.spec.slope == 0 else F.leaky_relu(h, self.spec.slope)
            if layer.pool > 1:
                pool = F.max_pool2d if layer.pool_kind == "max" else F.avg_pool2d
                h = pool(h, layer.pool, layer.pool)
        if self.fc is not None:
            return self.fc(h.flatten(1)).squeeze(1)
        return h.sum(dim=(1, 2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """E(x) per image [B]."""
        return x.pow(2).flatten(1).sum(dim=1) / (2.0 * self.sigma**2) - self.f(x)


class MLPEnergy(nn.Module):
    """E(x) [B] of 2-D points x [B, 2]: an MLP (2 -> 128 -> 128 -> 1, SELU), as in TorchEBM's examples."""

    HIDDEN = 128

    def __init__(self, dim: int = 2, seed: int = 0) -> None:
        super().__init__()
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Linear(dim, self.HIDDEN), nn.SELU(), nn.Linear(self.HIDDEN, self.HIDDEN), nn.SELU(),
            nn.Linear(self.HIDDEN, 1),
        )  # fmt: skip
        torch.random.set_rng_state(generator_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)

    def layer_shapes(self) -> list[tuple[int, int]]:
        """(inputs, outputs) of each linear layer, for the FLOP count."""
        return [(m.in_features, m.out_features) for m in self.net if isinstance(m, nn.Linear)]


def gaussian_mixture(count: int, generator: torch.Generator, modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """``count`` points [count, 2] of an equal mixture of ``modes`` Gaussians (std 0.1) on a circle."""
    index = torch.randint(0, modes, (count,), generator=generator)
    angle = 2.0 * math.pi * index.double() / modes
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return (centres + 0.1 * torch.randn(count, 2, generator=generator, dtype=torch.float64)).float()
