"""Networks and training defaults, usable at any image size that fits.

``texture`` and ``object`` are the two networks of the GCN paper (Experiments 1 and 2). ``texture``
keeps the spec's defaults (sigma = 1 on images in [0, 255] minus the channel mean). ``object``
samples and learns with the ``faces`` values (sigma 8, delta 5.6, Adam lr 1e-3; 400 iterations at
100 px): with the paper's sigma 1 and delta 0.1 on pixels of std ~47 a step moves a chain 0.5 % of
the way to its reconstruction, the chains stay near noise while f grows, and the samples end as
smooth blobs (``--sigma 1 --delta 0.1 --lr 1e-4 --iterations 1000`` gives the paper's settings back). ``dcgan32`` and
``dcgan64`` are the scoring network of genconv's GGCN formulation (conv3x3 64, then 4x4 stride-2
convs 128/256/512, leaky ReLU 0.2, a linear top) for 32 and 64 px image folders (CIFAR-10,
CelebA); ``faces`` (the bundled LFW faces at their native 25 px) and ``patches`` (32 px natural
image patches) are CPU-sized versions of it. Sampling and learning defaults depend on the model
family: GCN and wGCN use the preset's values; GGCN uses its own regime (``GGCNRegime``: images
in [-1, 1], sigma 0.016, f = h / sigma^2, 10 refinement steps of delta 0.016) with the preset's
fixed chain count where it has one (64 chains otherwise).
"""

from dataclasses import dataclass

from genconv.bindings.errors import ConfigError
from genconv.engine.network import ConvLayer, NetworkSpec, TopKind


@dataclass(frozen=True)
class Preset:
    """An architecture plus the data, sampling and learning defaults it was tuned with."""

    name: str
    summary: str
    layers: tuple[ConvLayer, ...]
    top: TopKind
    slope: float
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
    generator_width: int


@dataclass(frozen=True)
class GGCNRegime:
    """The GGCN sampling and learning defaults, whatever the preset.

    genconv's regime (see docs/models.md, "GGCN on the bundled faces"): images in [-1, 1] and the
    spec's sigma 0.016, with
    - the energy scale f(x) = h(x) / sigma^2 (He-initialised convs, the top at zero: f = 0 at the
      start), so the network only needs dh/dx = O(1) to reconstruct images;
    - refinement steps of delta = sigma (T = delta^2 / (2 sigma^2) = 1/2 per step: ten of them
      travel 99.9 % of the way to the reconstruction sigma^2 df/dx, so the refined images follow
      the model, not g's proposals; at 0.006 they travel half the way and the energies swing while f first
      grows; the spec's 0.002 travels 7.5 % and leaves f a discriminator of g's proposals);
    - a batch-normalised generator at Adam lr 1e-3, f at lr 5e-4 (at 1e-3 f overcorrects every
      other iteration while it first grows), beta1 0.5 for both, and a linear warm-up of f's lr
      over the first ``warmup`` iterations.
    ``SPEC_GGCN_FLAGS`` gives the CoopNets-style regime of the spec (section 4.5) back.
    """

    pixel_range: str = "unit"
    sigma: float = 0.016
    delta: float = 0.016
    langevin_steps: int = 10
    hidden_steps: int = 0
    hidden_step_size: float = 0.1
    hidden_grad_clip: float = 100.0
    hidden_gradient: str = "relative"
    latent_dim: int = 100
    lr: float = 5e-4
    generator_lr: float = 1e-3
    generator_norm: str = "batch"
    energy_scale: str = "inverse-variance"
    top_init: str = "zero"
    refine_clamp: str = "none"
    warmup: int = 50
    lambda_w: float = 0.0
    beta1: float = 0.5
    num_chains: int = 64


GGCN_REGIME = GGCNRegime()
# The command-line flags that give GGCN the spec's CoopNets-style regime (genconv's defaults before
# the energy scale): N(0, 0.01^2) weights, delta 0.002, f lr 7e-3, g without normalisation at lr 1e-4,
# 10 hidden steps of 0.1 clipped at 100, the wGCN term at lambda_W = 1.
SPEC_GGCN_FLAGS = (
    "--energy-scale none --delta 0.002 --lr 7e-3 --warmup 0 --generator-norm none --generator-lr 1e-4 "
    "--hidden-steps 10 --lambda-w 1"
)

_DCGAN_LAYERS = (ConvLayer(64, 3, 1, 1), ConvLayer(128, 4, 2, 1), ConvLayer(256, 4, 2, 1), ConvLayer(512, 4, 2, 1))
_SMALL_LAYERS = (ConvLayer(32, 3, 1, 1), ConvLayer(64, 4, 2, 1), ConvLayer(128, 4, 2, 1))

PRESETS: dict[str, Preset] = {
    "texture": Preset(
        name="texture",
        summary="GCN paper, stationary: 3 conv layers, f = sum of top responses over positions",
        layers=(ConvLayer(100, 15, 3, 7), ConvLayer(64, 5, 1, 2), ConvLayer(30, 3, 1, 1)),
        top="sum", slope=0.0, paper_image_size=224, data="texture:brick", sigma=1.0, delta=0.3,
        langevin_steps=20, chains_per_image=3, num_chains=None, lr=5e-4, beta1=0.5, iterations=600,
        max_images=None, generator_width=128,
    ),
    "object": Preset(
        name="object",
        summary="GCN paper, non-stationary: 3 strided conv layers + a fully connected top",
        layers=(ConvLayer(100, 7, 2, 3), ConvLayer(64, 5, 2, 2), ConvLayer(20, 3, 2, 1)),
        top="fc", slope=0.0, paper_image_size=100, data="faces:lfw", sigma=8.0, delta=5.6,
        langevin_steps=10, chains_per_image=None, num_chains=16, lr=1e-3, beta1=0.5, iterations=400,
        max_images=16, generator_width=128,
    ),
    "dcgan32": Preset(
        name="dcgan32",
        summary="GGCN scoring net at 32 px (CIFAR-10 size): conv 64 -> 128/256/512 stride 2, leaky ReLU, linear top",
        layers=_DCGAN_LAYERS, top="fc", slope=0.2, paper_image_size=32, data="faces:lfw", sigma=1.0, delta=0.1,
        langevin_steps=10, chains_per_image=None, num_chains=64, lr=1e-4, beta1=0.5, iterations=10000,
        max_images=None, generator_width=512,
    ),
    "dcgan64": Preset(
        name="dcgan64",
        summary="GGCN scoring net at 64 px (CelebA size); generator from 4 x 4 x 1024",
        layers=_DCGAN_LAYERS, top="fc", slope=0.2, paper_image_size=64, data="faces:lfw", sigma=1.0, delta=0.1,
        langevin_steps=10, chains_per_image=None, num_chains=64, lr=1e-4, beta1=0.5, iterations=10000,
        max_images=None, generator_width=1024,
    ),
    "faces": Preset(
        name="faces",
        summary="CPU-sized GGCN net for the bundled LFW faces at their native 25 px",
        layers=_SMALL_LAYERS, top="fc", slope=0.2, paper_image_size=25, data="faces:lfw", sigma=8.0, delta=5.6,
        langevin_steps=10, chains_per_image=None, num_chains=32, lr=1e-3, beta1=0.5, iterations=400,
        max_images=None, generator_width=128,
    ),
    "patches": Preset(
        name="patches",
        summary="CPU-sized GGCN net for 32 px natural image patches of the bundled photographs",
        layers=_SMALL_LAYERS, top="fc", slope=0.2, paper_image_size=32, data="patches:photos", sigma=8.0,
        delta=5.6, langevin_steps=10, chains_per_image=None, num_chains=32, lr=1e-3, beta1=0.5, iterations=400,
        max_images=None, generator_width=128,
    ),
}  # fmt: skip


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ConfigError names the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def network_for(
    preset: str, in_channels: int, image_size: int, slope: float | None = None, bias: bool = True
) -> NetworkSpec:
    """The preset's network for images of ``in_channels`` x ``image_size`` x ``image_size``.

    Raises:
        ConfigError: unknown preset, or an image size too small for the network.
    """
    chosen = get_preset(preset)
    return NetworkSpec(
        in_channels=in_channels,
        layers=chosen.layers,
        top=chosen.top,
        slope=chosen.slope if slope is None else slope,
        bias=bias,
        image_size=(image_size, image_size),
    )
