"""pytest-benchmark of each hot op on the texture network's layer shapes, per backend and dtype.

CPU: the torch reference (the twins in ``genconv.kernels.reference``), float32, 64 px, batch 4.
CUDA: both backends, float32 and bfloat16, 224 px (the paper's size), batch 64.
"""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

from bench.conftest import synchronised
from genconv.bindings.backends import Backend, resolve_backend
from genconv.engine.presets import network_for

BACKENDS = ["torch", "triton"]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class Shapes:
    """One bottom-up pass of the texture net on random data: every op's inputs."""

    x: torch.Tensor
    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    hidden: list[torch.Tensor]
    masks: list[torch.Tensor]


def texture_shapes(device: torch.device, dtype: torch.dtype) -> Shapes:
    cuda = device.type == "cuda"
    size, batch = (224, 64) if cuda else (64, 4)
    spec = network_for("texture", 3, size)
    generator = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn((batch, 3, size, size), generator=generator).to(device, dtype)
    ops = resolve_backend("torch", device)
    weights, biases, hidden, masks = [], [], [], []
    h, channels = x, 3
    for layer in spec.layers:
        weight = 0.05 * torch.randn((layer.channels, channels, layer.kernel, layer.kernel), generator=generator)
        bias = 0.01 * torch.randn(layer.channels, generator=generator)
        weights.append(weight.to(device))
        biases.append(bias.to(device))
        h, mask = ops.conv_act_forward(h, weights[-1], biases[-1], layer.stride, layer.pad, 0.0)
        hidden.append(h)
        masks.append(mask)
        channels = layer.channels
    return Shapes(x, weights, biases, hidden, masks)


def _backend(name: str, dtype: str, device: torch.device) -> Backend:
    if name == "triton" and device.type != "cuda":
        pytest.skip("the Triton kernels are benchmarked on CUDA only")
    if dtype != "float32" and device.type != "cuda":
        pytest.skip("bfloat16 is benchmarked on CUDA only")
    return resolve_backend(name, device)


def _run(benchmark, fn: Callable[[], object], device: torch.device, group: str) -> None:
    benchmark.group = group
    result = benchmark(synchronised(fn, device))
    tensors = result if isinstance(result, tuple) else (result,)
    assert all(bool(torch.isfinite(t.float()).all()) for t in tensors if t.is_floating_point())


@pytest.fixture(params=list(DTYPES))
def dtype(request) -> str:
    return request.param


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layer", [0, 1])
def test_conv_act_forward(benchmark, device, backend: str, dtype: str, layer: int) -> None:
    ops = _backend(backend, dtype, device)
    s = texture_shapes(device, DTYPES[dtype])
    inputs = s.x if layer == 0 else s.hidden[layer - 1]
    spec = network_for("texture", 3, s.x.shape[-1]).layers[layer]
    fn = lambda: ops.conv_act_forward(inputs, s.weights[layer], s.biases[layer], spec.stride, spec.pad, 0.0)  # noqa: E731
    _run(benchmark, fn, device, f"conv_act_forward layer {layer + 1}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_conv_act_forward_sum(benchmark, device, backend: str, dtype: str) -> None:
    ops = _backend(backend, dtype, device)
    s = texture_shapes(device, DTYPES[dtype])
    fn = lambda: ops.conv_act_forward_sum(s.hidden[1], s.weights[2], s.biases[2], 1, 1, 0.0)  # noqa: E731
    _run(benchmark, fn, device, "conv_act_forward_sum (top layer)")


@pytest.mark.parametrize("backend", BACKENDS)
def test_masked_conv_transpose(benchmark, device, backend: str, dtype: str) -> None:
    ops = _backend(backend, dtype, device)
    s = texture_shapes(device, DTYPES[dtype])
    grad = torch.randn(s.hidden[1].shape, device=device).to(DTYPES[dtype])
    hw = tuple(s.hidden[0].shape[-2:])
    fn = lambda: ops.masked_conv_transpose(grad, s.masks[1], s.weights[1], 1, 2, 0.0, hw)  # noqa: E731
    _run(benchmark, fn, device, "masked_conv_transpose layer 2")


@pytest.mark.parametrize("backend", BACKENDS)
def test_masked_conv_transpose_langevin(benchmark, device, backend: str, dtype: str) -> None:
    ops = _backend(backend, dtype, device)
    s = texture_shapes(device, DTYPES[dtype])
    grad = torch.randn(s.hidden[0].shape, device=device).to(DTYPES[dtype])
    fn = lambda: ops.masked_conv_transpose_langevin(grad, s.masks[0], s.weights[0], 3, 7, 0.0, s.x, 0.3, 1.0, seed=1)  # noqa: E731
    _run(benchmark, fn, device, "masked_conv_transpose_langevin layer 1")


@pytest.mark.parametrize("backend", BACKENDS)
def test_langevin_update(benchmark, device, backend: str, dtype: str) -> None:
    ops = _backend(backend, dtype, device)
    s = texture_shapes(device, DTYPES[dtype])
    grad = torch.randn(s.x.shape, device=device).to(DTYPES[dtype])
    fn = lambda: ops.langevin_update(s.x, grad, 0.3, 1.0, seed=1, offset=0)  # noqa: E731
    _run(benchmark, fn, device, "langevin_update")


@pytest.mark.parametrize("backend", BACKENDS)
def test_standard_normal(benchmark, device, backend: str) -> None:
    ops = _backend(backend, "float32", device)
    shape = (64, 3, 224, 224) if device.type == "cuda" else (4, 3, 64, 64)
    _run(benchmark, lambda: ops.standard_normal(1, 0, shape, device), device, "standard_normal")
