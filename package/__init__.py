"""genconv: fused-kernel Langevin sampling and learning for energy-based Generative ConvNets.

The public API. A GCN models p(x) ∝ exp(f(x; w)) N(x; 0, sigma^2 I) with f a bottom-up ReLU
ConvNet; ``GenerativeConvNet`` gives f, the energy, the explicit top-down gradient and the
reconstruction; ``langevin`` samples it; ``Trainer`` learns it by maximum likelihood.

Example:
    >>> import genconv, torch
    >>> model = genconv.GenerativeConvNet(genconv.network_for("texture", 1, 32))
    >>> out = genconv.langevin(model, torch.zeros(2, 1, 32, 32), steps=10, delta=0.3, seed=0)
"""

from genconv.bindings.backends import Backend, resolve_backend
from genconv.bindings.errors import (
    BackendUnavailableError,
    ChainDivergedError,
    CheckpointError,
    ConfigError,
    DataError,
    GenconvError,
)
from genconv.engine.config import TrainConfig
from genconv.engine.data import load_images
from genconv.engine.generate import Samples, model_from_checkpoint, sample_checkpoint
from genconv.engine.langevin import LangevinDiagnostics, LangevinResult, init_chains, langevin
from genconv.engine.model import GenerativeConvNet
from genconv.engine.network import ConvLayer, NetworkSpec
from genconv.engine.presets import PRESETS, network_for
from genconv.engine.trainer import Trainer, TrainSummary

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "Backend",
    "BackendUnavailableError",
    "ChainDivergedError",
    "CheckpointError",
    "ConfigError",
    "ConvLayer",
    "DataError",
    "GenconvError",
    "GenerativeConvNet",
    "LangevinDiagnostics",
    "LangevinResult",
    "NetworkSpec",
    "Samples",
    "TrainConfig",
    "TrainSummary",
    "Trainer",
    "init_chains",
    "langevin",
    "load_images",
    "model_from_checkpoint",
    "network_for",
    "resolve_backend",
    "sample_checkpoint",
]
