"""The GCN energy as research code writes it: nn.Conv2d layers, ReLU, autograd for df/dx.

    E(x) = ||x||^2 / (2 sigma^2) - f(x)

``ConvEnergy`` has the parameter names of ``GenerativeConvNet`` (``convs.*``, ``fc.*``), so it
loads a genconv model's state dict and computes the same f with the same weights.
"""

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
