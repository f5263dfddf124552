"""pytest-benchmark of one Langevin step of the texture GCN on the reference path."""

import pytest
import torch

from genconv.engine.langevin import init_chains, langevin
from genconv.engine.model import GenerativeConvNet
from genconv.engine.presets import network_for


@pytest.mark.parametrize("batch", [1, 16])
def test_texture_step_reference(benchmark, batch: int) -> None:
    model = GenerativeConvNet(network_for("texture", 1, 64), init_seed=0)
    chains = init_chains("noise", batch, (1, 64, 64), sigma=1.0, seed=0)
    result = benchmark(lambda: langevin(model, chains, steps=1, delta=0.3, seed=0, backend="torch").x)
    assert torch.isfinite(result).all()
