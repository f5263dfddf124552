"""Backend dispatch for the hot operations of a Generative ConvNet.

A backend bundles the operations the engine's explicit passes are built from: a bottom-up layer
(with its mask), the stationary top layer (summed responses), a top-down layer (masked
transposed convolution), the Langevin update, the last top-down layer fused with the update, and
the counter-based normal generator the updates draw their noise from.
``"reference"`` runs the pure-PyTorch twins (the oracle); ``"torch"`` PyTorch's convolutions
arranged for speed with the C++ update on the CPU (``kernels/torch_path.py``, the CPU path);
``"triton"`` the fused kernels; ``"auto"`` picks triton for CUDA tensors and torch elsewhere.
"""

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

import torch

from genconv.bindings.choices import BACKEND_NAMES
from genconv.bindings.errors import BackendUnavailableError, ConfigError
from genconv.kernels import cpu_kernel, reference, torch_path
from genconv.kernels.packing import PACKED

BackendName = Literal["torch", "triton", "auto", "reference"]


@dataclass(frozen=True)
class Backend:
    """The operations one backend provides, each with the signature of its reference twin.

    ``conv_act_forward_sum`` takes ``score=False`` to return (None, mask), and the top-down ops
    take ``grad=None`` for an upstream gradient of ones: a chain needs neither the score nor a
    tensor of ones.
    """

    name: str
    conv_act_forward: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    conv_act_forward_sum: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    masked_conv_transpose: Callable[..., torch.Tensor]
    langevin_update: Callable[..., torch.Tensor]
    masked_conv_transpose_langevin: Callable[..., torch.Tensor]
    standard_normal: Callable[..., torch.Tensor]


REFERENCE_BACKEND = Backend(
    name="reference",
    conv_act_forward=reference.conv_act_forward,
    conv_act_forward_sum=reference.conv_act_forward_sum,
    masked_conv_transpose=reference.masked_conv_transpose,
    langevin_update=reference.langevin_update,
    masked_conv_transpose_langevin=reference.masked_conv_transpose_langevin,
    standard_normal=reference.philox_normal,
)

TORCH_BACKEND = Backend(
    name="torch",
    conv_act_forward=torch_path.conv_act_forward,
    conv_act_forward_sum=torch_path.conv_act_forward_sum,
    masked_conv_transpose=torch_path.masked_conv_transpose,
    langevin_update=torch_path.langevin_update,
    masked_conv_transpose_langevin=torch_path.masked_conv_transpose_langevin,
    standard_normal=torch_path.standard_normal,
)


def packing_scope() -> AbstractContextManager[None]:
    """Keep packed weights for the length of the block (a chain packs each weight once, not every step).

    The weights must not change inside the block; outside one, every op packs afresh.
    """
    return PACKED.scope()


def cpu_kernel_status(build: bool = True) -> str:
    """Whether the torch backend's C++ CPU update runs here: "built", or why the twin runs instead
    (``build=False``: without building it first)."""
    return cpu_kernel.status(build)


def triton_interpreter_enabled() -> bool:
    """True when TRITON_INTERPRET=1 makes Triton kernels run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _triton_backend() -> Backend | None:
    """The Triton backend, or None where Triton cannot be imported."""
    try:
        from genconv.bindings.triton_backend import TRITON_BACKEND
    except ImportError:
        return None
    return TRITON_BACKEND


_warned_auto_fallback = False


def _warn_auto_fallback_once(reason: str) -> None:
    global _warned_auto_fallback
    if not _warned_auto_fallback:
        _warned_auto_fallback = True
        import warnings

        warnings.warn(f"genconv: backend 'auto' falls back to torch: {reason}", RuntimeWarning, stacklevel=3)


def resolve_backend(name: str | Backend, device: torch.device | str) -> Backend:
    """The backend that runs tensors on ``device`` for the request ``name``.

    Args:
        name: "torch", "triton", "auto", "reference", or a ``Backend`` (returned as is).
        device: where the tensors live.
    Returns:
        the Backend to call.
    Raises:
        ConfigError: ``name`` is not a backend name.
        BackendUnavailableError: "triton" was asked for and cannot run on ``device``.

    Example:
        >>> resolve_backend("auto", "cpu").name
        'torch'
    """
    if isinstance(name, Backend):
        return name
    if name not in BACKEND_NAMES:
        raise ConfigError(f"backend must be one of {', '.join(BACKEND_NAMES)}; got {name!r}")
    if name == "torch":
        return TORCH_BACKEND
    if name == "reference":
        return REFERENCE_BACKEND
    device = torch.device(device)
    runs_here = device.type == "cuda" or triton_interpreter_enabled()
    if name == "triton":
        backend = _triton_backend()
        if backend is None:
            raise BackendUnavailableError("backend 'triton' needs the triton package, which cannot be imported")
        if not runs_here:
            raise BackendUnavailableError(
                f"backend 'triton' needs CUDA tensors (got {device.type}); set TRITON_INTERPRET=1 to run "
                "the kernels in Triton's CPU interpreter, or use backend 'torch'"
            )
        return backend
    if device.type != "cuda":
        return TORCH_BACKEND
    backend = _triton_backend()
    if backend is None:
        _warn_auto_fallback_once("triton cannot be imported")
        return TORCH_BACKEND
    return backend
