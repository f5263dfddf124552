"""Shared builders for the test suite: small networks of every shape the engine supports."""

import torch

from genconv.engine.model import GenerativeConvNet
from genconv.engine.network import ConvLayer, NetworkSpec

# (id, layers, top, slope, image size) — strides, paddings, pooling, leaky slopes, odd sizes.
ARCHITECTURES = [
    ("plain-relu-sum", (ConvLayer(4, 3, 1, 1), ConvLayer(3, 3, 1, 1)), "sum", 0.0, (11, 11)),
    ("strided-sum-odd", (ConvLayer(5, 5, 2, 2), ConvLayer(4, 3, 2, 0)), "sum", 0.0, (17, 13)),
    ("texture-like", (ConvLayer(6, 7, 3, 3), ConvLayer(5, 5, 1, 2), ConvLayer(3, 3, 1, 1)), "sum", 0.0, (19, 19)),
    ("maxpool-fc", (ConvLayer(4, 3, 1, 1, pool=2), ConvLayer(3, 3, 2, 1)), "fc", 0.0, (14, 15)),
    (
        "avgpool-leaky-sum",
        (ConvLayer(4, 3, 1, 1, pool=2, pool_kind="avg"), ConvLayer(3, 3, 1, 0)),
        "sum",
        0.2,
        (13, 13),
    ),
    ("leaky-fc-object", (ConvLayer(5, 7, 2, 3), ConvLayer(4, 5, 2, 2), ConvLayer(3, 3, 2, 1)), "fc", 0.2, (21, 21)),
    ("pool-on-top", (ConvLayer(4, 3, 1, 1), ConvLayer(3, 3, 1, 1, pool=3)), "sum", 0.0, (12, 12)),
]
ARCHITECTURE_IDS = [entry[0] for entry in ARCHITECTURES]


def build(
    entry: tuple, in_channels: int = 2, bias: bool = True, dtype: torch.dtype = torch.float64, seed: int = 0
) -> GenerativeConvNet:
    """A model for one ARCHITECTURES entry with weights large enough to switch units on and off."""
    _, layers, top, slope, size = entry
    spec = NetworkSpec(in_channels, layers, top=top, slope=slope, bias=bias, image_size=size, init_std=0.3)
    torch.manual_seed(seed)
    model = GenerativeConvNet(spec, sigma=1.3).to(dtype)
    if bias:
        with torch.no_grad():
            for conv in model.convs:
                conv.bias.normal_(0.0, 0.5)
    return model


def random_input(model: GenerativeConvNet, batch: int = 3, seed: int = 1) -> torch.Tensor:
    size = model.spec.image_size
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, model.spec.in_channels, *size, generator=generator, dtype=model.dtype)
