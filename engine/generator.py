"""The trainable non-linear upsampling g: R^d -> images of GGCN (a DCGAN-style generator).

z -> fully connected -> 4 x 4 x width -> [transposed conv 4x4 stride 2 (+ norm) + ReLU] ... ->
transposed conv to the image channels -> tanh, mapped onto the model-space image of pixel range
[0, 255], then centre-cropped to the image size when that is not 4 * 2^n. genconv's choices
(the paper's architecture could not be recovered): width halves at every block down to 16, and
normalisation "none" by default, so every chain of a hidden-space Langevin run stays independent
of the others; "batch" gives the DCGAN batch normalisation (batch statistics couple the chains).
"""

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from genconv.bindings.errors import ConfigError

GENERATOR_NORMS: tuple[str, ...] = ("none", "batch")


@dataclass(frozen=True)
class GeneratorSpec:
    """Architecture of g and the model-space interval its outputs span."""

    latent_dim: int
    out_channels: int
    image_size: tuple[int, int]
    width: int = 256
    norm: str = "none"
    output_low: tuple[float, ...] = (-1.0,)
    output_high: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if self.latent_dim < 1 or self.out_channels < 1 or self.width < 1:
            raise ConfigError("latent_dim, out_channels and width must be positive")
        if min(self.image_size) < 8:
            raise ConfigError(f"the generator needs images of at least 8 px, got {self.image_size}")
        if self.norm not in GENERATOR_NORMS:
            raise ConfigError(f"generator norm must be one of {', '.join(GENERATOR_NORMS)}; got {self.norm!r}")

    @property
    def blocks(self) -> int:
        """Number of 2x upsampling blocks from 4 x 4 to at least the image size."""
        count = 0
        while 4 * 2**count < max(self.image_size):
            count += 1
        return count

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("image_size", "output_low", "output_high"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GeneratorSpec":
        values = dict(data)
        for key in ("image_size", "output_low", "output_high"):
            values[key] = tuple(values[key])
        return cls(**values)


class UpsamplingGenerator(nn.Module):
    """g(z): [B, latent_dim] -> [B, C, H, W] model-space images.

    Example:
        >>> g = UpsamplingGenerator(GeneratorSpec(latent_dim=8, out_channels=1, image_size=(25, 25), width=32))
        >>> g(torch.randn(2, 8)).shape
        torch.Size([2, 1, 25, 25])
    """

    def __init__(self, spec: GeneratorSpec, init_seed: int | None = None) -> None:
        super().__init__()
        self.spec = spec
        widths = [max(spec.width // 2**index, 16) for index in range(spec.blocks)]
        self.project = nn.Linear(spec.latent_dim, widths[0] * 16)
        layers: list[nn.Module] = [self._norm(widths[0]), nn.ReLU()]
        for index in range(spec.blocks):
            last = index == spec.blocks - 1
            out = spec.out_channels if last else widths[index + 1]
            layers.append(nn.ConvTranspose2d(widths[index], out, 4, 2, 1))
            if not last:
                layers += [self._norm(out), nn.ReLU()]
        self.upsample = nn.Sequential(*layers)
        self._first_width = widths[0]
        low = torch.tensor(spec.output_low).view(1, -1, 1, 1)
        high = torch.tensor(spec.output_high).view(1, -1, 1, 1)
        self.register_buffer("output_centre", (high + low) / 2)
        self.register_buffer("output_half_range", (high - low) / 2)
        generator = None if init_seed is None else torch.Generator().manual_seed(init_seed)
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.ConvTranspose2d):
                nn.init.normal_(module.weight, 0.0, 0.02, generator=generator)
                nn.init.zeros_(module.bias)

    def _norm(self, channels: int) -> nn.Module:
        return nn.BatchNorm2d(channels) if self.spec.norm == "batch" else nn.Identity()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.spec.latent_dim:
            raise ConfigError(f"z must have shape [B, {self.spec.latent_dim}], got {list(z.shape)}")
        features = self.project(z).view(z.shape[0], self._first_width, 4, 4)
        image = torch.tanh(self.upsample(features)) * self.output_half_range + self.output_centre
        height, width = self.spec.image_size
        top, left = (image.shape[-2] - height) // 2, (image.shape[-1] - width) // 2
        return image[..., top : top + height, left : left + width]
