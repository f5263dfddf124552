"""GPU tier: compiled kernels at realistic sizes, autotuning, CUDA-graph chains. Skipped without CUDA."""

from collections.abc import Callable

import pytest
import torch
import triton

from genconv.bindings.backends import resolve_backend
from genconv.bindings.graphs import CHAIN_GRAPHS
from genconv.engine.langevin import init_chains, langevin
from genconv.engine.model import GenerativeConvNet
from genconv.engine.presets import network_for

from kernel_support import assert_close, assert_step_agrees

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
def test_preset_step_matches_the_reference(
    preset: str, size: int, batch: int, dtype: torch.dtype, record_property: Callable[[str, object], None]
) -> None:
    model = _preset_model(preset, size)
    x = init_chains("noise", batch, (3, size, size), sigma=30.0, seed=1, device=CUDA, dtype=dtype)
    noise = torch.randn(x.shape, device=CUDA, dtype=dtype)
    flips = assert_step_agrees(model, x, noise, delta=0.3)
    record_property("mask_flip_fraction_per_layer", flips)  # lands in the JUnit report of the GPU check


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


def test_a_warm_chain_compiles_nothing_more(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a shape's kernels are compiled and tuned, later steps and graph captures compile nothing:
    the noise counter moves every step (here by 1875 per image, odd) and is not specialised on."""
    model = _preset_model("faces", 25)
    x = init_chains("noise", 3, (3, 25, 25), sigma=30.0, seed=5, device=CUDA)
    langevin(model, x, steps=3, delta=0.3, seed=1, backend="triton", cuda_graph=False)
    compiled: list[str] = []
    monkeypatch.setattr(triton.knobs.runtime, "jit_post_compile_hook", lambda *_, **kw: compiled.append(kw["repr"]))
    for start in (1, 16, 17, 1000):
        langevin(model, x, steps=2, delta=0.3, seed=1, start_step=start, backend="triton", cuda_graph=False)
        langevin(model, x, steps=2, delta=0.3, seed=1, start_step=start, backend="triton")
    assert compiled == []
