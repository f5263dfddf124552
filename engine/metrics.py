"""Sample-quality figures that need no download.

``sliced_wasserstein_distance``: the multi-scale patch sliced Wasserstein distance used to
evaluate progressive GANs (Karras et al., 2018). Each image set is decomposed into a Laplacian
pyramid (from the full resolution down to 16 px); from every level 128 random 7 x 7 patches per
image are taken and normalised per channel over the level; the SWD of the two patch sets is the
mean over 512 random unit directions (4 repeats of 128) of the 1-D Wasserstein-1 distance between
the sorted projections. Reported per level (x 1e3, as in the paper) and averaged.

``frechet_inception_distance`` and ``inception_score`` run only with an Inception network the
user supplies as a TorchScript file (for example the ``inception-2015-12-05`` module of the
StyleGAN2-ADA metrics); genconv never downloads weights.
"""

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import linalg

from genconv.bindings.errors import ConfigError

PATCH_SIZE = 7
PATCHES_PER_IMAGE = 128
DIRECTIONS_PER_REPEAT = 128
REPEATS = 4
SMALLEST_LEVEL = 16

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(images: torch.Tensor) -> torch.Tensor:
    channels = images.shape[1]
    kernel = torch.outer(_BINOMIAL, _BINOMIAL).to(images).expand(channels, 1, 5, 5)
    return F.conv2d(F.pad(images, (2, 2, 2, 2), mode="reflect"), kernel, groups=channels)


def laplacian_pyramid(images: torch.Tensor, smallest: int = SMALLEST_LEVEL) -> list[torch.Tensor]:
    """Band-pass levels, finest first, ending with the low-pass residual of side >= ``smallest``."""
    levels = []
    current = images.float()
    while min(current.shape[-2:]) // 2 >= smallest:
        smaller = _blur(current)[..., ::2, ::2]
        upsampled = F.interpolate(smaller, size=current.shape[-2:], mode="bilinear", align_corners=False)
        levels.append(current - upsampled)
        current = smaller
    levels.append(current)
    return levels


def _patches(level: torch.Tensor, count: int, generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """``count`` random PATCH_SIZE x PATCH_SIZE patches per image, flattened ([N * count, 49 C]), and C."""
    batch, channels, height, width = level.shape
    size = min(PATCH_SIZE, height, width)
    rows = torch.randint(0, height - size + 1, (batch, count), generator=generator)
    cols = torch.randint(0, width - size + 1, (batch, count), generator=generator)
    offsets = torch.arange(size)
    row_index = (rows[..., None, None] + offsets[:, None]).expand(batch, count, size, size)
    col_index = (cols[..., None, None] + offsets[None, :]).expand(batch, count, size, size)
    images = torch.arange(batch)[:, None, None, None].expand_as(row_index)
    gathered = level.permute(0, 2, 3, 1)[images, row_index, col_index]  # [N, count, size, size, C]
    return gathered.reshape(batch * count, size * size * channels), channels


def _normalise(patches: torch.Tensor, channels: int) -> torch.Tensor:
    per_channel = patches.view(patches.shape[0], -1, channels)
    mean = per_channel.mean(dim=(0, 1), keepdim=True)
    std = per_channel.std(dim=(0, 1), keepdim=True).clamp_min(1e-8)
    return ((per_channel - mean) / std).view_as(patches)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: torch.Tensor) -> float:
    """Mean over unit ``directions`` [d, k] of W1 between the projections of point sets a and b [n, d]."""
    projected_a = torch.sort(a @ directions, dim=0).values
    projected_b = torch.sort(b @ directions, dim=0).values
    return float((projected_a - projected_b).abs().mean())


@dataclass
class SWDResult:
    """SWD x 1e3 per pyramid level (finest first, by resolution) and their mean."""

    per_level: dict[int, float]
    mean: float


def sliced_wasserstein_distance(first: torch.Tensor, second: torch.Tensor, seed: int = 0) -> SWDResult:
    """Multi-scale patch SWD between two image sets [N, C, H, W] in the same units (e.g. pixels).

    Both sets contribute the same number of patches (that of the smaller set).
    """
    if first.shape[1:] != second.shape[1:]:
        raise ConfigError(f"image sets differ in shape: {list(first.shape[1:])} and {list(second.shape[1:])}")
    count = min(first.shape[0], second.shape[0])
    if count < 1:
        raise ConfigError("SWD needs at least one image in each set")
    generator = torch.Generator().manual_seed(seed)
    per_level = {}
    for level_a, level_b in zip(laplacian_pyramid(first[:count].cpu()), laplacian_pyramid(second[:count].cpu()),
                                strict=True):  # fmt: skip
        patches_a, channels = _patches(level_a, PATCHES_PER_IMAGE, generator)
        patches_b, _ = _patches(level_b, PATCHES_PER_IMAGE, generator)
        patches_a, patches_b = _normalise(patches_a, channels), _normalise(patches_b, channels)
        distances = []
        for _ in range(REPEATS):
            directions = torch.randn(patches_a.shape[1], DIRECTIONS_PER_REPEAT, generator=generator)
            directions = directions / directions.norm(dim=0, keepdim=True)
            distances.append(sliced_wasserstein(patches_a, patches_b, directions))
        per_level[level_a.shape[-1]] = 1e3 * float(np.mean(distances))
    return SWDResult(per_level, float(np.mean(list(per_level.values()))))


def load_inception(path: str | Path, device: torch.device | str = "cpu") -> torch.nn.Module:
    """A user-supplied Inception network (never downloaded): a torch.export program (.pt2) or TorchScript.

    It is called as network(uint8 images [N, 3, H, W], return_features=True) for pool features
    and network(images, no_output_bias=True) for logits, the convention of the StyleGAN2-ADA
    ``inception-2015-12-05`` TorchScript module.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Inception network {str(path)!r} does not exist; FID and IS need a local network file")
    try:
        if path.suffix == ".pt2":
            return torch.export.load(str(path)).module().to(device)
        with warnings.catch_warnings():
            # TorchScript is deprecated in favour of torch.export, but the published Inception
            # networks for FID are TorchScript files.
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location=device).eval()
    except (RuntimeError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "zip archive" in first_line or "PytorchStreamReader" in first_line:  # torch's advice is about checkpoints
            first_line = "not a TorchScript or torch.export archive"
        raise ConfigError(f"cannot load {str(path)!r} as a network: {first_line}") from None


def inception_outputs(
    network: torch.nn.Module, pixels: torch.Tensor, batch: int = 100, **options: bool
) -> torch.Tensor:
    """Outputs of the network on uint8 RGB images [N, 3, H, W] (grey images are repeated to 3 channels)."""
    if pixels.shape[1] == 1:
        pixels = pixels.repeat(1, 3, 1, 1)
    outputs = []
    with torch.no_grad():
        for start in range(0, pixels.shape[0], batch):
            outputs.append(network(pixels[start : start + batch], **options).double().cpu())
    return torch.cat(outputs)


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two feature sets [N, d]."""
    mean_a, mean_b = features_a.mean(0).numpy(), features_b.mean(0).numpy()
    cov_a, cov_b = np.cov(features_a.numpy(), rowvar=False), np.cov(features_b.numpy(), rowvar=False)
    root = np.real(linalg.sqrtm(cov_a @ cov_b))
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))), mean and std over ``splits`` splits."""
    probabilities = torch.softmax(logits.double(), dim=1)
    scores = []
    for part in probabilities.chunk(splits):
        marginal = part.mean(dim=0, keepdim=True)
        kl = (part * (torch.log(part.clamp_min(1e-30)) - torch.log(marginal.clamp_min(1e-30)))).sum(dim=1)
        scores.append(math.exp(float(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))
