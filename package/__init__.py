"""genconv: fused-kernel Langevin sampling and learning for energy-based Generative ConvNets.

The public API. A GCN models p(x) ∝ exp(f(x; w)) N(x; 0, sigma^2 I) with f a bottom-up ReLU
ConvNet; ``GenerativeConvNet`` gives f, the energy, the explicit top-down gradient and the
reconstruction; ``langevin`` samples it; ``Trainer`` learns it by maximum likelihood.

For other energy-based models: ``sample_langevin`` runs Langevin dynamics on any energy through
genconv's fused update (``GCNStep``, ``SGLDStep`` or ``TorchEBMStep`` parameterisations, fixed
or scheduled per step, MALA, clipping, clamping), ``ReplayBuffer`` keeps persistent chains, ``ops``
holds the ``torch.ops.genconv`` operators, ``TorchEBMSampler`` (needs the optional torchebm package)
plugs the sampler into TorchEBM's losses, and ``EbmkitLangevin`` / ``EbmkitMALA`` (need the optional
ebmkit package) into ebmkit's.

``import genconv`` is light when torch is not imported yet (the ``genconv`` command answers
``--help`` at once): the API loads, and registers the ``torch.ops.genconv`` operators, on the
first use of any of its names, or at once when torch was imported before genconv.

Example:
    >>> import genconv, torch
    >>> model = genconv.GenerativeConvNet(genconv.network_for("texture", 1, 32))
    >>> out = genconv.langevin(model, torch.zeros(2, 1, 32, 32), steps=10, delta=0.3, seed=0)
"""

import importlib
import sys
from typing import Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_API: dict[str, str] = {
    "ops": "genconv.bindings",
    "Backend": "genconv.bindings.backends",
    "resolve_backend": "genconv.bindings.backends",
    "BackendUnavailableError": "genconv.bindings.errors",
    "ChainDivergedError": "genconv.bindings.errors",
    "CheckpointError": "genconv.bindings.errors",
    "ConfigError": "genconv.bindings.errors",
    "DataError": "genconv.bindings.errors",
    "GenconvError": "genconv.bindings.errors",
    "InputTypeError": "genconv.bindings.errors",
    "OutputBusyError": "genconv.bindings.errors",
    "ReplayBuffer": "genconv.bindings.replay",
    "SamplerDiagnostics": "genconv.bindings.sampler",
    "SamplerOutput": "genconv.bindings.sampler",
    "register_fast_chain": "genconv.bindings.sampler",
    "sample_langevin": "genconv.bindings.sampler",
    "GCNStep": "genconv.bindings.update_rules",
    "SGLDStep": "genconv.bindings.update_rules",
    "TorchEBMStep": "genconv.bindings.update_rules",
    "UpdateRule": "genconv.bindings.update_rules",
    "TorchEBMSampler": "genconv.bindings.torchebm_adapter",
    "EbmkitLangevin": "genconv.bindings.ebmkit_adapter",
    "EbmkitMALA": "genconv.bindings.ebmkit_adapter",
    "TrainConfig": "genconv.engine.config",
    "load_images": "genconv.engine.data",
    "Samples": "genconv.engine.generate",
    "model_from_checkpoint": "genconv.engine.generate",
    "sample_checkpoint": "genconv.engine.generate",
    "LangevinDiagnostics": "genconv.engine.langevin",
    "LangevinResult": "genconv.engine.langevin",
    "init_chains": "genconv.engine.langevin",
    "langevin": "genconv.engine.langevin",
    "AISEstimate": "genconv.engine.likelihood",
    "LikelihoodReport": "genconv.engine.likelihood",
    "annealed_log_z": "genconv.engine.likelihood",
    "adaptive_betas": "genconv.engine.likelihood",
    "log_likelihood": "genconv.engine.likelihood",
    "GenerativeConvNet": "genconv.engine.model",
    "ConvLayer": "genconv.engine.network",
    "NetworkSpec": "genconv.engine.network",
    "PRESETS": "genconv.engine.presets",
    "network_for": "genconv.engine.presets",
    "Trainer": "genconv.engine.trainer",
    "TrainSummary": "genconv.engine.trainer",
}
# Loading the API: the ops register with torch, and GCNs sampled through sample_langevin in the
# GCN form take the engine's fused chain.
_CORE = ("genconv.bindings.ops", "genconv.engine.langevin")
_loaded = False


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in _CORE:
            importlib.import_module(module)
        from genconv.bindings.sampler import register_fast_chain
        from genconv.engine.langevin import langevin
        from genconv.engine.model import GenerativeConvNet

        register_fast_chain(GenerativeConvNet, langevin)
        _loaded = True


def __getattr__(name: str) -> Any:
    """The public API, loaded on first use (``genconv.TorchEBMSampler`` needs the torchebm package)."""
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'genconv' has no attribute {name!r}")
    _load()
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


__all__ = sorted(_API)

if "torch" in sys.modules:  # a program that imported torch first gets the ops registered at once
    _load()
