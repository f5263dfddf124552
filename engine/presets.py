"""The paper's two networks and their training defaults, usable at any image size that fits.

Values follow the GCN spec's proposed defaults: the texture net of Experiment 1 (224 px in the
paper) and the object net of Experiment 2 (about 100 px), both with sigma = 1 on images in
[0, 255] minus the per-channel mean.
"""

from dataclasses import dataclass

from genconv.bindings.errors import ConfigError
from genconv.engine.network import ConvLayer, NetworkSpec, TopKind


@dataclass(frozen=True)
class Preset:
    """An architecture plus the sampling and learning defaults it was tuned with."""

    name: str
    summary: str
    layers: tuple[ConvLayer, ...]
    top: TopKind
    paper_image_size: int
    data: str
    sigma: float
    delta: float
    langevin_steps: int
    chains_per_image: int | None
    num_chains: int | None
    lr: float
    beta1: float
    iterations: int
    max_images: int | None


PRESETS: dict[str, Preset] = {
    "texture": Preset(
        name="texture",
        summary="stationary model: 3 conv layers, f = sum of top responses over positions",
        layers=(ConvLayer(100, 15, 3, 7), ConvLayer(64, 5, 1, 2), ConvLayer(30, 3, 1, 1)),
        top="sum",
        paper_image_size=224,
        data="texture:brick",
        sigma=1.0,
        delta=0.3,
        langevin_steps=20,
        chains_per_image=3,
        num_chains=None,
        lr=5e-4,
        beta1=0.5,
        iterations=600,
        max_images=None,
    ),
    "object": Preset(
        name="object",
        summary="non-stationary model: 3 strided conv layers + a fully connected top",
        layers=(ConvLayer(100, 7, 2, 3), ConvLayer(64, 5, 2, 2), ConvLayer(20, 3, 2, 1)),
        top="fc",
        paper_image_size=100,
        data="faces:lfw",
        sigma=1.0,
        delta=0.1,
        langevin_steps=10,
        chains_per_image=None,
        num_chains=16,
        lr=1e-4,
        beta1=0.5,
        iterations=1000,
        max_images=16,
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ConfigError names the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def network_for(preset: str, in_channels: int, image_size: int, slope: float = 0.0, bias: bool = True) -> NetworkSpec:
    """The preset's network for images of ``in_channels`` x ``image_size`` x ``image_size``.

    Raises:
        ConfigError: unknown preset, or an image size too small for the network.
    """
    chosen = get_preset(preset)
    return NetworkSpec(
        in_channels=in_channels,
        layers=chosen.layers,
        top=chosen.top,
        slope=slope,
        bias=bias,
        image_size=(image_size, image_size),
    )
