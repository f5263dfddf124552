"""What is timed: a K-step Langevin chain of a preset GCN on a batch, one learning iteration, or
the sampler of a small-energy persistent-CD run.

A ``Workload`` is plain data (it goes into the JSON as is); ``build_setup`` turns it into tensors
on a device: the genconv model (float32 weights, ``init_seed`` 0), the start states and, for a
learning iteration, a batch of "observed" images; for the "pcd" kind a small MLP energy and
chains on a 2-D mixture of Gaussians. Every provider samples from the same start with the same
weights.
"""

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

from bench.energy import MLPEnergy, gaussian_mixture
from genconv.engine.model import GenerativeConvNet
from genconv.engine.presets import get_preset, network_for

Kind = Literal["chain", "train", "pcd", "conv"]
KINDS: tuple[str, ...] = ("chain", "train", "pcd", "conv")
# The kinds that sample a plain energy module (``Setup.energy``) with TorchEBM's parameters.
ENERGY_KINDS: tuple[str, ...] = ("pcd", "conv")
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# The small-energy workload: TorchEBM's LangevinDynamics parameters of a persistent-CD run.
SMALL_ENERGY = "mlp-gmm"
SMALL_STEP_SIZE = 0.01
SMALL_NOISE_SCALE = 1.0
# The image-energy workload: ebmkit's ConvEnergy (spectral norm, eval mode) on 32x32 RGB images.
CONV_ENERGY = "ebmkit-conv"
CONV_SIZE = 32
CONV_CHAINS = 64


@dataclass(frozen=True)
class Workload:
    """One cell of the matrix.

    kind "chain": ``steps`` Langevin steps of ``batch`` chains; "train": one maximum-likelihood
    iteration (``steps`` steps on ``batch`` persistent chains, then an Adam step on
    mean f(synthesized) - mean f(observed) over ``batch`` observed images); "pcd": ``steps`` steps
    of TorchEBM's Langevin dynamics (step size 0.01, noise scale 1) on ``batch`` chains of the
    small MLP energy over 2-D points (``preset`` "mlp-gmm", ``channels`` the dimension 2,
    ``image_size`` 1): what a persistent-CD iteration samples, dominated by per-step overhead;
    "conv": the same dynamics on ebmkit's ``ConvEnergy`` over ``batch`` 32x32 RGB images
    (``preset`` "ebmkit-conv"), a small image EBM as ebmkit users train them.
    """

    kind: Kind
    preset: str
    image_size: int
    channels: int
    batch: int
    dtype: str
    steps: int

    @property
    def group(self) -> str:
        """The panel a workload is plotted in: everything but the batch."""
        if self.kind == "pcd":
            return f"pcd {self.preset} {self.channels}-D {self.dtype} K={self.steps}"
        if self.kind == "conv":
            return f"conv {self.preset} {self.image_size}px {self.dtype} K={self.steps}"
        return f"{self.kind} {self.preset} {self.image_size}px {self.dtype} K={self.steps}"

    @property
    def label(self) -> str:
        return f"{self.group} B={self.batch}"

    @property
    def image_steps(self) -> int:
        """Images times steps: the unit of the throughput figure."""
        return self.batch * self.steps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_size(preset: str, size: str | int) -> int:
    """An image size: an integer, or "paper" for the preset's paper size (texture 224, object 100)."""
    if str(size) == "paper":
        return get_preset(preset).paper_image_size
    return int(size)


def matrix(
    kinds: list[str],
    presets: list[str],
    sizes: list[str],
    batches: list[int],
    dtypes: list[str],
    steps: int,
    channels: int,
    train_batches: list[int],
    train_steps: int | None,
    pcd_chains: int = 256,
) -> Iterator[Workload]:
    """Every workload of the run, grouped so that batches of one panel run in increasing order.

    Learning iterations run in float32 only (an Adam step on bfloat16 weights is not what anyone
    trains with); ``train_steps`` None takes the preset's steps per iteration (texture 20, object 10).
    """
    for kind in kinds:
        if kind == "pcd":
            yield Workload("pcd", SMALL_ENERGY, 1, 2, pcd_chains, "float32", steps)
            continue
        if kind == "conv":
            yield Workload("conv", CONV_ENERGY, CONV_SIZE, 3, CONV_CHAINS, "float32", steps)
            continue
        for preset in presets:
            for size in sizes:
                image_size = resolve_size(preset, size)
                if kind == "chain":
                    for dtype in dtypes:
                        for batch in sorted(batches):
                            yield Workload("chain", preset, image_size, channels, batch, dtype, steps)
                else:
                    k = train_steps if train_steps is not None else get_preset(preset).langevin_steps
                    for batch in sorted(train_batches):
                        yield Workload("train", preset, image_size, channels, batch, "float32", k)


@dataclass
class Setup:
    """A workload on a device: the model every provider copies, the start states, the step sizes.

    For the "pcd" kind ``model`` is None and ``energy`` the small MLP energy, sampled with
    TorchEBM's ``step_size`` and ``noise_scale``.
    """

    workload: Workload
    device: torch.device
    dtype: torch.dtype
    model: GenerativeConvNet | None
    x0: torch.Tensor
    observed: torch.Tensor | None
    delta: float
    sigma: float
    seed: int = 0
    energy: torch.nn.Module | None = None
    step_size: float = SMALL_STEP_SIZE
    noise_scale: float = SMALL_NOISE_SCALE

    @property
    def steps(self) -> int:
        return self.workload.steps


def setup_missing(workload: Workload) -> str | None:
    """Why ``build_setup`` cannot build ``workload`` here (the conv kind needs ebmkit), or None."""
    if workload.kind != "conv":
        return None
    try:
        import ebm.nets  # noqa: F401
    except ImportError as error:
        return f"ebmkit is not importable ({error}); pip install ebmkit"
    return None


def build_setup(workload: Workload, device: torch.device, delta: float | None = None) -> Setup:
    """Tensors for ``workload`` on ``device``: model (float32 weights), x0 ~ N(0, sigma^2) in the workload dtype.

    Args:
        delta: step size; default the preset's (texture 0.3, object 0.1).
    """
    if workload.kind == "pcd":
        generator = torch.Generator(device="cpu").manual_seed(1)
        energy = MLPEnergy(workload.channels).to(device)
        x0 = gaussian_mixture(workload.batch, generator).to(device)
        return Setup(workload, device, torch.float32, None, x0, None, 0.0, 1.0, energy=energy)
    if workload.kind == "conv":
        from ebm.nets import ConvEnergy as EbmkitConvEnergy

        torch.manual_seed(0)
        energy = EbmkitConvEnergy(workload.channels).to(device).eval()
        generator = torch.Generator(device="cpu").manual_seed(1)
        shape = (workload.batch, workload.channels, workload.image_size, workload.image_size)
        x0 = (2 * torch.rand(shape, generator=generator) - 1).to(device)
        return Setup(workload, device, torch.float32, None, x0, None, 0.0, 1.0, energy=energy)
    preset = get_preset(workload.preset)
    spec = network_for(workload.preset, workload.channels, workload.image_size)
    model = GenerativeConvNet(spec, sigma=preset.sigma, init_seed=0).to(device)
    dtype = DTYPES[workload.dtype]
    generator = torch.Generator(device="cpu").manual_seed(1)
    shape = (workload.batch, workload.channels, workload.image_size, workload.image_size)
    x0 = (preset.sigma * torch.randn(shape, generator=generator)).to(device=device, dtype=dtype)
    observed = None
    if workload.kind == "train":
        observed = (preset.sigma * torch.randn(shape, generator=generator)).to(device=device, dtype=dtype)
    step = preset.delta if delta is None else float(delta)
    return Setup(workload, device, dtype, model, x0, observed, step, preset.sigma)


def learning_iteration(
    chain: Callable[[torch.Tensor], torch.Tensor],
    score: Callable[[torch.Tensor], torch.Tensor],
    parameters: list[torch.nn.Parameter],
    x0: torch.Tensor,
    observed: torch.Tensor,
) -> Callable[[], torch.Tensor]:
    """One MLE iteration as genconv's trainer runs it: persistent chains, then Adam on f's weights.

    The same code for every provider; only ``chain`` (K Langevin steps) and the module behind
    ``score`` (f per image) differ. Adam settings are the texture preset's (lr 5e-4, beta1 0.5).
    """
    optimizer = torch.optim.Adam(parameters, lr=5e-4, betas=(0.5, 0.999))
    state = {"chains": x0}

    def run() -> torch.Tensor:
        synthesized = chain(state["chains"])
        state["chains"] = synthesized
        loss = score(synthesized.detach()).mean() - score(observed).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return synthesized

    return run
