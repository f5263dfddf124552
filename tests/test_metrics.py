"""Sample-quality figures: the Laplacian pyramid, sliced Wasserstein distances, FID and IS."""

import math

import pytest
import torch

from genconv.bindings.errors import ConfigError
from genconv.engine.data import load_images
from genconv.engine.metrics import (
    frechet_distance,
    inception_score,
    laplacian_pyramid,
    load_inception,
    sliced_wasserstein,
    sliced_wasserstein_distance,
)


def test_laplacian_pyramid_reconstructs_the_image() -> None:
    images = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(0)) * 255
    levels = laplacian_pyramid(images, smallest=16)
    assert [tuple(level.shape[-2:]) for level in levels] == [(64, 48), (32, 24)]
    square = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    assert [tuple(level.shape[-2:]) for level in laplacian_pyramid(square)] == [(64, 64), (32, 32), (16, 16)]
    current = levels[-1]
    for band in reversed(levels[:-1]):
        upsampled = torch.nn.functional.interpolate(current, size=band.shape[-2:], mode="bilinear", align_corners=False)
        current = band + upsampled
    torch.testing.assert_close(current, images, rtol=0, atol=1e-3)


def test_sliced_distance_of_shifted_gaussians() -> None:
    """For N(0, I) and N(mu, I), each 1-D projection on u is shifted by <u, mu>: W1 = |<u, mu>|."""
    generator = torch.Generator().manual_seed(1)
    mu = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0, 0.0, -1.0, 0.5])
    a = torch.randn(20_000, 8, generator=generator)
    b = mu + torch.randn(20_000, 8, generator=generator)
    directions = torch.randn(8, 64, generator=generator)
    directions = directions / directions.norm(dim=0, keepdim=True)
    expected = float((mu @ directions).abs().mean())
    assert sliced_wasserstein(a, b, directions) == pytest.approx(expected, abs=0.03)


def test_patch_swd_ranks_distributions() -> None:
    faces = load_images("faces:lfw", 32)
    same = sliced_wasserstein_distance(faces[:50], faces[50:], seed=0)
    noise = torch.rand(50, 1, 32, 32, generator=torch.Generator().manual_seed(2)) * 255
    different = sliced_wasserstein_distance(faces[:50], noise, seed=0)
    assert set(same.per_level) == {32, 16}
    assert different.mean > 3 * same.mean
    assert same.mean == pytest.approx(sum(same.per_level.values()) / 2)
    assert sliced_wasserstein_distance(faces[:50], faces[50:], seed=0).mean == same.mean
    with pytest.raises(ConfigError, match="differ in shape"):
        sliced_wasserstein_distance(faces[:5], noise[:5, :, :16, :16])


def test_frechet_distance_of_gaussian_features() -> None:
    generator = torch.Generator().manual_seed(3)
    a = torch.randn(50_000, 4, generator=generator, dtype=torch.float64)
    b = 2.0 * torch.randn(50_000, 4, generator=generator, dtype=torch.float64) + 1.0
    # ||mu_a - mu_b||^2 + Tr(I + 4 I - 2 * 2 I) = 4 + 4
    assert frechet_distance(a, b) == pytest.approx(8.0, rel=0.03)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_inception_score_extremes() -> None:
    uniform = torch.zeros(100, 10)
    assert inception_score(uniform, splits=5)[0] == pytest.approx(1.0)
    confident = torch.full((100, 10), -50.0)
    confident[torch.arange(100), torch.arange(100) % 10] = 50.0
    score, spread = inception_score(confident, splits=5)
    assert score == pytest.approx(10.0, rel=1e-6) and spread == pytest.approx(0.0, abs=1e-6)


class _FeatureNet(torch.nn.Module):
    """A stand-in with the calling convention of the StyleGAN2-ADA Inception TorchScript module."""

    def forward(self, x: torch.Tensor, return_features: bool = False, no_output_bias: bool = False) -> torch.Tensor:
        pooled = x.float().mean(dim=(2, 3))
        if return_features:
            return torch.cat([pooled, pooled.pow(2) / 255.0], dim=1)
        return torch.cat([pooled, -pooled], dim=1) / 50.0


def test_inception_network_is_a_local_torchscript_file(tmp_path) -> None:
    path = tmp_path / "inception.pt"
    torch.jit.script(_FeatureNet()).save(str(path))
    network = load_inception(path)
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    assert network(images, return_features=True).shape == (4, 6)
    with pytest.raises(ConfigError, match="does not exist"):
        load_inception(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="cannot load"):
        load_inception(tmp_path / "junk.pt")
    assert math.isfinite(frechet_distance(torch.randn(10, 3).double(), torch.randn(10, 3).double()))
