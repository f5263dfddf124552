"""genconv: fused-kernel Langevin sampling and learning for energy-based Generative ConvNets.

The public API. A GCN models p(x) ∝ exp(f(x; w)) N(x; 0, sigma^2 I) with f a bottom-up ReLU
ConvNet; ``GenerativeConvNet`` gives f, the energy, the explicit top-down gradient and the
reconstruction; ``langevin`` samples it; ``Trainer`` learns it by maximum likelihood.

For other energy-based models: ``sample_langevin`` runs Langevin dynamics on any energy through
genconv's fused update (``GCNStep``, ``SGLDStep`` or ``TorchEBMStep`` parameterisations, fixed or
scheduled per step, MALA, clipping, clamping), ``ReplayBuffer`` keeps persistent chains, ``ops`` holds the
``torch.ops.genconv`` operators, and ``TorchEBMSampler`` (needs the optional torchebm package)
plugs the sampler into TorchEBM's losses.

Example:
    >>> import genconv, torch
    >>> model = genconv.GenerativeConvNet(genconv.network_for("texture", 1, 32))
    >>> out = genconv.langevin(model, torch.zeros(2, 1, 32, 32), steps=10, delta=0.3, seed=0)
"""

from genconv.bindings import ops
from genconv.bindings.backends import Backend, resolve_backend
from genconv.bindings.errors import (
    BackendUnavailableError,
    ChainDivergedError,
    CheckpointError,
    ConfigError,
    DataError,
    GenconvError,
)
from genconv.bindings.replay import ReplayBuffer
from genconv.bindings.sampler import SamplerDiagnostics, SamplerOutput, register_fast_chain, sample_langevin
from genconv.bindings.update_rules import GCNStep, SGLDStep, TorchEBMStep, UpdateRule
from genconv.engine.config import TrainConfig
from genconv.engine.data import load_images
from genconv.engine.generate import Samples, model_from_checkpoint, sample_checkpoint
from genconv.engine.langevin import LangevinDiagnostics, LangevinResult, init_chains, langevin
from genconv.engine.model import GenerativeConvNet
from genconv.engine.network import ConvLayer, NetworkSpec
from genconv.engine.presets import PRESETS, network_for
from genconv.engine.trainer import Trainer, TrainSummary

__version__ = "0.1.0"

# GCNs sampled through sample_langevin in the GCN form take the engine's fused chain.
register_fast_chain(GenerativeConvNet, langevin)


def __getattr__(name: str) -> object:
    """``genconv.TorchEBMSampler`` imports the optional torchebm package on first use."""
    if name == "TorchEBMSampler":
        from genconv.bindings.torchebm_adapter import TorchEBMSampler

        return TorchEBMSampler
    raise AttributeError(f"module 'genconv' has no attribute {name!r}")


__all__ = [
    "PRESETS",
    "Backend",
    "BackendUnavailableError",
    "ChainDivergedError",
    "CheckpointError",
    "ConfigError",
    "ConvLayer",
    "DataError",
    "GCNStep",
    "GenconvError",
    "GenerativeConvNet",
    "LangevinDiagnostics",
    "LangevinResult",
    "NetworkSpec",
    "ReplayBuffer",
    "SGLDStep",
    "SamplerDiagnostics",
    "SamplerOutput",
    "Samples",
    "TorchEBMStep",
    "TrainConfig",
    "TrainSummary",
    "Trainer",
    "UpdateRule",
    "init_chains",
    "langevin",
    "load_images",
    "model_from_checkpoint",
    "network_for",
    "ops",
    "resolve_backend",
    "sample_checkpoint",
    "sample_langevin",
]
