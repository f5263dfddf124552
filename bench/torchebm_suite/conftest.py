"""Yardstick harness: SWAP=torchebm|genconv picks the LangevinDynamics the TorchEBM tests see.

SWAP unset runs the files as published (the CD file then uses its own local stand-in class).
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("GENCONV_AUTOTUNE", "0")

import pytest
import torchebm.losses
import torchebm.samplers

# The repository test file imports ParallelTemperingCD, which 0.8.9 no longer ships; it is unused there.
if not hasattr(torchebm.losses, "ParallelTemperingCD"):
    torchebm.losses.ParallelTemperingCD = None

SWAP = os.environ.get("SWAP", "")
if SWAP == "genconv":
    import genconv

    CHOSEN = genconv.TorchEBMSampler
    torchebm.samplers.LangevinDynamics = CHOSEN
elif SWAP == "torchebm":
    from torchebm.samplers.langevin_dynamics import LangevinDynamics as CHOSEN
else:
    CHOSEN = None


@pytest.fixture(autouse=True)
def _swap_module_global(request, monkeypatch):
    # The CD test file shadows the imported name with a local stand-in class.
    if CHOSEN is not None and hasattr(request.module, "LangevinDynamics"):
        monkeypatch.setattr(request.module, "LangevinDynamics", CHOSEN)
    yield
