"""Do the providers compute the same chain? Each one against genconv-torch, from the same start.

Three comparisons on a small batch, per preset and dtype:
- ``drift``: the noise-free chain (gradient descent on E), x_K - x0, relative L2 error;
- ``given_noise``: ``steps`` steps with the same given standard normals, final states, relative L2 error;
- ``noise_scale``: the free-running chain (the timed code, each provider's own noise) minus the
  noise-free chain, its standard deviation over all elements relative to genconv-torch's: the
  noise enters with the right scale (a distributional check, a tolerance of 10%).

At initialisation (weights ~ N(0, 0.01^2)) df/dx is ~1e-6 of x/sigma^2, so a wrong network
gradient would hide under the reference term: the check rescales the weights (f is positively
homogeneous without biases, and the biases start at zero) until ||df/dx|| = ||x/sigma^2|| at x0,
and uses delta = sigma, so that a step moves x by about half its size (x' = x/2 + (sigma^2/2) df/dx
+ sigma z), far more than bfloat16 rounding whatever the preset's sigma. (With delta = 1 and the
object preset's sigma = 8, a step moved x by 1 % of its size, near bfloat16's resolution: on an
H200 correct providers, eager PyTorch included, then differed by 12-13 % in the drift measure.)
"""

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from bench.providers import PROVIDERS
from bench.workloads import SMALL_ENERGY, Setup, Workload, build_setup
from genconv.engine.presets import get_preset

# Relative L2 tolerance per (device type, dtype): float32 on CUDA runs TF32 convolutions.
TOLERANCES = {
    ("cpu", "float32"): 1e-4,
    ("cuda", "float32"): 1e-2,
    ("cpu", "bfloat16"): 5e-2,
    ("cuda", "bfloat16"): 5e-2,
}
# The noisy chains visit states where some ReLU pre-activation sits within float rounding of 0:
# two correct float32 implementations (autograd's transposed convolution, genconv's forward
# convolutions on packed weights) can then switch that unit differently, which moves the check's
# state by about 1e-3 relative. The given-noise comparison allows that; a wrong gradient or noise
# scale is off by O(1).
GIVEN_NOISE_FLOOR = 1e-2
NOISE_SCALE_TOLERANCE = 0.1
REFERENCE = "genconv-torch"
PCD_REFERENCE = "eager"  # the hand-written loop: genconv-torch runs GCNs only
PCD_CHECK_CHAINS = 1024  # enough elements for the spread to be known within 2 %


@dataclass
class CheckResult:
    """One provider on one check workload."""

    provider: str
    workload: Workload
    drift_error: float
    given_noise_error: float
    noise_scale_ratio: float
    tolerance: float
    given_noise_tolerance: float = 0.0  # 0: max(tolerance, GIVEN_NOISE_FLOOR)
    against: str = "reference"  # what the errors are measured against (bfloat16: "float32 reference")

    def __post_init__(self) -> None:
        if not self.given_noise_tolerance:
            self.given_noise_tolerance = max(self.tolerance, GIVEN_NOISE_FLOOR)

    @property
    def passed(self) -> bool:
        return (
            self.drift_error <= self.tolerance
            and self.given_noise_error <= self.given_noise_tolerance
            and abs(self.noise_scale_ratio - 1.0) <= NOISE_SCALE_TOLERANCE
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "workload": self.workload.to_dict(),
            "drift_rel_error": self.drift_error,
            "given_noise_rel_error": self.given_noise_error,
            "noise_scale_ratio": self.noise_scale_ratio,
            "tolerance": self.tolerance,
            "given_noise_tolerance": self.given_noise_tolerance,
            "against": self.against,
            "noise_scale_tolerance": NOISE_SCALE_TOLERANCE,
            "passed": self.passed,
        }


def _relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    value, reference = value.double(), reference.double()
    return float((value - reference).norm() / reference.norm().clamp_min(1e-30))


def _rescale_weights(setup: Setup) -> None:
    """Scale every layer of the model by one factor so that ||df/dx(x0)|| = ||x0 / sigma^2||."""
    model = setup.model
    layers = model._weighted_layers()
    grad = model.grad_f(setup.x0.float(), "torch")
    ratio = float(setup.x0.float().norm() / setup.sigma**2 / grad.norm().clamp_min(1e-30))
    factor = ratio ** (1.0 / len(layers))
    with torch.no_grad():
        for layer in layers:
            layer.weight.mul_(factor)


def tf32_in_use(device: torch.device) -> bool:
    """Whether float32 chains on ``device`` multiply in TF32: cuDNN's convolutions (torch's default) or
    genconv's kernels (``GENCONV_TF32``, on by default)."""
    genconv_tf32 = os.environ.get("GENCONV_TF32", "1") != "0"
    return device.type == "cuda" and (torch.backends.cudnn.allow_tf32 or genconv_tf32)


@contextlib.contextmanager
def ieee_float32() -> Iterator[None]:
    """Float32 convolutions and matrix products without TF32 for a block (cuDNN's and cuBLAS's switches
    and genconv's ``GENCONV_TF32``), each restored after."""
    previous = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32, os.environ.get("GENCONV_TF32"))
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    os.environ["GENCONV_TF32"] = "0"
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = previous[:2]
        if previous[2] is None:
            os.environ.pop("GENCONV_TF32", None)
        else:
            os.environ["GENCONV_TF32"] = previous[2]


def check_setup(preset: str, image_size: int, channels: int, dtype: str, device: torch.device, steps: int) -> Setup:
    """A small batch of the preset with rescaled weights and delta = sigma."""
    workload = Workload("chain", preset, image_size, channels, 2, dtype, steps)
    setup = build_setup(workload, device, delta=get_preset(preset).sigma)
    _rescale_weights(setup)
    return setup


def check_setup_pcd(device: torch.device, steps: int) -> Setup:
    """The small-energy workload on enough chains for the noise-scale comparison."""
    return build_setup(Workload("pcd", SMALL_ENERGY, 1, 2, PCD_CHECK_CHAINS, "float32", steps), device)


def _runs(name: str, setup: Setup, noise: torch.Tensor) -> dict[str, torch.Tensor]:
    build = PROVIDERS[name].builder(setup.workload.kind)
    assert build is not None
    sampler = build(setup)
    try:
        zeros = torch.zeros((setup.steps, *setup.x0.shape), device=setup.device, dtype=setup.dtype)
        return {
            "noise_free": sampler.chain_with_noise(setup.x0, zeros).float(),
            "given": sampler.chain_with_noise(setup.x0, noise).float(),
            "free": sampler.chain(setup.x0).float(),
        }
    finally:
        sampler.close()


def check_providers(names: list[str], setup: Setup) -> list[CheckResult]:
    """Compare every provider in ``names`` (available ones) with genconv-torch (pcd: eager) on ``setup``.

    bfloat16 chains are compared with the reference run in float32 from the same start, and each
    tolerance is at least twice the bfloat16 reference's own distance from it: correct bfloat16
    implementations switch different near-zero units and part by several percent within a few steps
    (on the CPU and on an H200 alike), while a wrong gradient or noise is off by O(1). Float32 chains
    that multiply in TF32 (CUDA) are compared the same way with the reference run in IEEE float32 (on an
    H200 correct TF32 providers parted from the TF32 reference by 1.4 % after one step)."""
    workload = setup.workload
    reference_name = PCD_REFERENCE if workload.kind == "pcd" else REFERENCE
    generator = torch.Generator(device="cpu").manual_seed(7)
    noise = torch.randn((setup.steps, *setup.x0.shape), generator=generator).to(setup.device, setup.dtype)
    reference = _runs(reference_name, setup, noise)
    x0 = setup.x0.float()
    reference_spread = float((reference["free"] - reference["noise_free"]).std())
    tolerance = TOLERANCES[(setup.device.type, workload.dtype)]
    given_tolerance = max(tolerance, GIVEN_NOISE_FLOOR)
    against, exact = "reference", reference
    if setup.dtype == torch.bfloat16:
        twin = dataclasses.replace(setup, dtype=torch.float32, x0=x0,
                                   workload=dataclasses.replace(workload, dtype="float32"))  # fmt: skip
        against, exact = "float32 reference", _runs(reference_name, twin, noise.float())
    elif setup.dtype == torch.float32 and tf32_in_use(setup.device):
        with ieee_float32():
            against, exact = "IEEE float32 reference", _runs(reference_name, setup, noise)
    if exact is not reference:
        tolerance = max(tolerance, 2 * _relative_error(reference["noise_free"] - x0, exact["noise_free"] - x0))
        given_tolerance = max(given_tolerance, 2 * _relative_error(reference["given"], exact["given"]))
    results = []
    for name in names:
        provider = PROVIDERS[name]
        if name == reference_name or provider.builder(workload.kind) is None:
            continue
        if provider.unavailable(setup.device) is not None:
            continue
        runs = _runs(name, setup, noise)
        spread = float((runs["free"] - reference["noise_free"]).std())
        results.append(
            CheckResult(
                provider=name,
                workload=workload,
                drift_error=_relative_error(runs["noise_free"] - x0, exact["noise_free"] - x0),
                given_noise_error=_relative_error(runs["given"], exact["given"]),
                noise_scale_ratio=spread / reference_spread,
                tolerance=tolerance,
                given_noise_tolerance=given_tolerance,
                against=against,
            )
        )
    return results
