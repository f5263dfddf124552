"""GPU tier: compiled kernels at realistic sizes, autotuning, CUDA-graph chains. Skipped without CUDA."""

import pytest
import torch

from genconv.bindings.backends import resolve_backend
from genconv.bindings.graphs import CHAIN_GRAPHS
from genconv.engine.langevin import init_chains, langevin
from genconv.engine.model import GenerativeConvNet
from genconv.engine.presets import network_for

from kernel_support import assert_close

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


def _preset_model(preset: str, size: int, channels: int = 3) -> GenerativeConvNet:
    model = GenerativeConvNet(network_for(preset, channels, size), sigma=1.0, init_seed=0).to(CUDA)
    with torch.no_grad():  # weights of a trained scale, so that masks are mixed
        for conv in model.convs:
            conv.weight.mul_(5.0)
    return model


def test_auto_picks_the_kernels_on_cuda() -> None:
    assert resolve_backend("auto", CUDA).name == "triton"


@pytest.mark.parametrize(
    "preset,size,batch,dtype",
    [
        ("texture", 64, 16, torch.float32),
        ("texture", 224, 2, torch.float32),
        ("object", 64, 64, torch.float32),
        ("texture", 64, 16, torch.bfloat16),
        ("object", 100, 1, torch.bfloat16),
    ],
)
def test_preset_step_matches_the_reference(preset: str, size: int, batch: int, dtype: torch.dtype) -> None:
    model = _preset_model(preset, size)
    x = init_chains("noise", batch, (3, size, size), sigma=30.0, seed=1, device=CUDA, dtype=dtype)
    assert_close(model.grad_f(x, "triton"), model.grad_f(x, "torch"), dtype, "df/dx")
    noise = torch.randn((1, *x.shape), device=CUDA, dtype=dtype)
    fused = langevin(model, x, steps=1, delta=0.3, noise=noise, backend="triton").x
    expected = langevin(model, x, steps=1, delta=0.3, noise=noise, backend="torch").x
    assert_close(fused, expected, dtype, "x'")


def test_thousand_chain_batch() -> None:
    model = _preset_model("texture", 32, channels=1)
    x = init_chains("noise", 1024, (1, 32, 32), sigma=30.0, seed=2, device=CUDA)
    fused = langevin(model, x, steps=2, delta=0.3, seed=3, backend="triton", cuda_graph=False).x
    expected = langevin(model, x, steps=2, delta=0.3, seed=3, backend="torch").x
    assert_close(fused, expected, torch.float32, "chains")


def test_cuda_graph_chains_replay_the_eager_chain() -> None:
    model = _preset_model("texture", 48, channels=1)
    x = init_chains("noise", 8, (1, 48, 48), sigma=30.0, seed=4, device=CUDA)
    eager = [
        langevin(model, x, steps=5, delta=0.3, seed=9, start_step=start, backend="triton", cuda_graph=False).x
        for start in (0, 5, 10)
    ]
    graphed = [
        langevin(model, x, steps=5, delta=0.3, seed=9, start_step=start, backend="triton").x for start in (0, 5, 10)
    ]
    assert len(CHAIN_GRAPHS._captured) >= 1
    for start, (replayed, expected) in enumerate(zip(graphed, eager, strict=True)):
        assert torch.equal(replayed, expected), f"run {start}"
    with torch.no_grad():  # weights updated in place are seen by the replay
        model.convs[0].weight.mul_(1.1)
    after = langevin(model, x, steps=5, delta=0.3, seed=9, backend="triton").x
    assert torch.equal(after, langevin(model, x, steps=5, delta=0.3, seed=9, backend="triton", cuda_graph=False).x)
