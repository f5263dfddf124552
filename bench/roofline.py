"""The floor under every workload: FLOPs over the measured matrix rate, bytes over the measured bandwidth.

FLOPs of one Langevin step: for every conv layer, the bottom-up convolution and the top-down
transposed convolution (the input gradient; no weight gradient), 2 multiply-adds each:
2 * 2 * H_out * W_out * C_out * C_in * K^2 per image; the fully connected top adds 2 * its inputs.
Elementwise work (bias, ReLU, masks, the update, the noise) is not counted.

Bytes of one step, the model of a fused kernel per layer (genconv's design): the state is read by
the first layer and by the update and written once (3 |x|); every weight is read once; each
hidden activation h_l (all layers but the top) is written once and read once, and so is the
top-down gradient at it (4 |h_l| in the workload dtype); every layer's ReLU mask is written once
and read once as one byte (torch.bool). The Philox noise is made in registers. ``bytes_state``
(2 |x| + weights) is the bound of a whole-step kernel that kept every activation on chip.

The small-energy workload ("pcd") counts its MLP's forward and input gradient per chain and step.

A learning iteration adds, per image of the observed and the synthesized batch, f's forward, the
weight gradient and the input gradient of every layer above the first (FLOPs only).

The ceilings are measured in the same run: a large matrix product in the workload dtype (TF32
operands for float32 on CUDA, as cuDNN convolutions and genconv's kernels use; on the CPU the
better of it and a large oneDNN convolution) and a large device copy (bytes read plus bytes
written).
"""

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from bench.energy import MLPEnergy
from bench.timing import Timing, measure
from bench.workloads import DTYPES, Workload
from genconv.engine.presets import network_for


@dataclass(frozen=True)
class Cost:
    """Work of one timed call of a workload (all steps, the whole batch)."""

    flops: float
    bytes: float
    bytes_state: float
    flops_per_image_step: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def workload_cost(workload: Workload) -> Cost:
    """FLOPs and bytes of ``workload`` under the model of the module docstring."""
    if workload.kind == "pcd":
        return _small_energy_cost(workload)
    if workload.kind == "conv":
        return _conv_energy_cost(workload)
    spec = network_for(workload.preset, workload.channels, workload.image_size)
    element = torch.empty((), dtype=DTYPES[workload.dtype]).element_size()
    size = (workload.image_size, workload.image_size)
    outputs = spec.layer_sizes(size)
    channels_in = spec.in_channels
    layer_flops, weights, activations, masks = [], 0, [], 0
    height, width = size
    for layer, (out_h, out_w) in zip(spec.layers, outputs, strict=True):
        conv_h = (height + 2 * layer.pad - layer.kernel) // layer.stride + 1
        conv_w = (width + 2 * layer.pad - layer.kernel) // layer.stride + 1
        layer_flops.append(2.0 * conv_h * conv_w * layer.channels * channels_in * layer.kernel**2)
        weights += layer.channels * (channels_in * layer.kernel**2 + int(spec.bias))
        masks += layer.channels * conv_h * conv_w
        activations.append(layer.channels * out_h * out_w)
        channels_in, height, width = layer.channels, out_h, out_w
    top_inputs = activations[-1] if spec.top == "fc" else 0
    weights += top_inputs + int(spec.bias and spec.top == "fc")
    forward = sum(layer_flops) + 2.0 * top_inputs
    per_image_step = forward + sum(layer_flops)
    state = workload.channels * size[0] * size[1]
    hidden = sum(activations[:-1])
    batch, steps = workload.batch, workload.steps
    step_bytes = batch * (3 * state * element + 4 * hidden * element + 2 * masks) + weights * element
    state_bytes = batch * 2 * state * element + weights * element
    flops = steps * batch * per_image_step
    if workload.kind == "train":
        flops += 2 * batch * (2 * forward + sum(layer_flops[1:]))
    return Cost(flops, steps * step_bytes, steps * state_bytes, per_image_step)


def _small_energy_cost(workload: Workload) -> Cost:
    """The MLP energy's forward and input gradient (2 x 2 x inputs x outputs per linear layer and
    chain); bytes: every weight read twice and the state read and written, per step."""
    shapes = MLPEnergy(workload.channels).layer_shapes()
    per_chain_step = sum(4.0 * inputs * outputs for inputs, outputs in shapes)
    weights = sum(inputs * outputs + outputs for inputs, outputs in shapes)
    element = torch.empty((), dtype=DTYPES[workload.dtype]).element_size()
    step_bytes = (2 * weights + 3 * workload.batch * workload.channels) * element
    state_bytes = (weights + 2 * workload.batch * workload.channels) * element
    flops = workload.steps * workload.batch * per_chain_step
    return Cost(flops, workload.steps * step_bytes, workload.steps * state_bytes, per_chain_step)


def _conv_energy_cost(workload: Workload) -> Cost:
    """ebmkit's ConvEnergy (3x3 stride-2 convolutions 3 -> 64 -> 128 -> 256 -> 256, a mean, a
    linear head): each convolution's forward and input gradient, 2 x 2 x H_out W_out C_out C_in 9
    per image; bytes as the GCN model counts them, without masks (SiLU keeps its input)."""
    size, channels, macs, hidden = workload.image_size, workload.channels, 0.0, 0.0
    weights = 0.0
    for out_channels in (64, 128, 256, 256):
        size = (size + 1) // 2
        macs += size * size * out_channels * channels * 9
        hidden += size * size * out_channels
        weights += out_channels * channels * 9 + out_channels
        channels = out_channels
    per_image_step = 4.0 * macs
    element = torch.empty((), dtype=DTYPES[workload.dtype]).element_size()
    state = workload.image_size**2 * workload.channels
    step_bytes = (3 * state * workload.batch + 4 * hidden * workload.batch + 2 * weights) * element
    state_bytes = (2 * state * workload.batch + weights) * element
    return Cost(workload.steps * workload.batch * per_image_step, workload.steps * step_bytes,
                workload.steps * state_bytes, per_image_step)  # fmt: skip


@dataclass(frozen=True)
class Ceilings:
    """Measured peak rates of the device for one dtype."""

    matrix_flops_per_s: float
    bandwidth_bytes_per_s: float
    matrix: str
    copy: str
    other_processes_cores: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_ceilings(device: torch.device, dtype: torch.dtype, quick: bool, retries: int = 0) -> Ceilings:
    """A big matmul in ``dtype`` (FLOP/s) and a big copy (read + write bytes/s), on random data.

    On the CPU the matrix rate is the better of the matmul and a large 3x3 convolution (oneDNN,
    channels-last): BLAS libraries do not reach every CPU's vector peak (MKL's sgemm runs at half
    of oneDNN's convolutions on AVX-512 AMD cores), and a floor below what a convolution reaches
    would flatter every provider. ``retries``: on the CPU, time again while other processes keep
    cores busy (see ``measure``).
    """
    cuda = device.type == "cuda"
    n = (8192 if cuda else (2048 if dtype == torch.float32 else 1024)) if not quick else 256
    numel = (1 << 28 if cuda else 1 << 26) if not quick else 1 << 20
    repeats = 3 if quick else 10
    matmul = _time_matmul(n, device, dtype, repeats, retries)
    operands = "tf32" if cuda and dtype == torch.float32 else str(dtype).removeprefix("torch.")
    matrix_rate = 2.0 * n**3 / matmul.median
    matrix = f"{n}x{n} @ {n}x{n} matmul, {operands} operands, median of {len(matmul.samples)}"
    timings = [matmul]
    if not cuda:
        shape = (2, 32, 16) if quick else (16, 256, 32)  # batch, channels, side of a 3x3 same convolution
        conv = _time_convolution(*shape, dtype, repeats, retries)
        timings.append(conv)
        conv_rate = 2.0 * shape[0] * shape[1] ** 2 * 9 * shape[2] ** 2 / conv.median
        if conv_rate > matrix_rate:
            matrix_rate = conv_rate
            matrix = (f"3x3 convolution {shape[1]}->{shape[1]} channels on {shape[0]}x{shape[2]}x{shape[2]}, "
                      f"channels-last, {operands}, median of {len(conv.samples)} (the {n}^3 matmul reached "
                      f"{2.0 * n**3 / matmul.median / 1e9:.1f} GFLOP/s)")  # fmt: skip
    source = torch.randn(numel, device=device)
    target = torch.empty_like(source)
    copy = measure(lambda: target.copy_(source), device, 2, repeats, retries)
    return Ceilings(
        matrix_flops_per_s=matrix_rate,
        bandwidth_bytes_per_s=2.0 * source.element_size() * numel / copy.median,
        matrix=matrix,
        copy=f"copy of {source.element_size() * numel / 2**20:.0f} MiB, read + write, median of {len(copy.samples)}",
        other_processes_cores=_contention(*timings, copy),
    )


def _contention(*timings: Timing) -> float | None:
    """The most cores other processes kept busy during any of ``timings`` (None off the CPU)."""
    found = [t.notes["other_processes_cores"] for t in timings if "other_processes_cores" in t.notes]
    return max(found) if found else None


def _time_matmul(n: int, device: torch.device, dtype: torch.dtype, repeats: int, retries: int) -> Timing:
    generator = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn((n, n), generator=generator).to(device=device, dtype=dtype)
    b = torch.randn((n, n), generator=generator).to(device=device, dtype=dtype)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        return measure(lambda: a @ b, device, 2, repeats, retries)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def _time_convolution(batch: int, channels: int, side: int, dtype: torch.dtype, repeats: int, retries: int) -> Timing:
    generator = torch.Generator(device="cpu").manual_seed(0)
    layout = torch.channels_last
    x = torch.randn((batch, channels, side, side), generator=generator).to(dtype).contiguous(memory_format=layout)
    w = torch.randn((channels, channels, 3, 3), generator=generator).to(dtype).contiguous(memory_format=layout)
    return measure(lambda: F.conv2d(x, w, padding=1), torch.device("cpu"), 2, repeats, retries)


def floor(cost: Cost, ceilings: Ceilings) -> dict[str, float | str]:
    """The floor time of a workload and which term sets it."""
    compute = cost.flops / ceilings.matrix_flops_per_s
    memory = cost.bytes / ceilings.bandwidth_bytes_per_s
    return {
        "floor_s": max(compute, memory),
        "compute_s": compute,
        "memory_s": memory,
        "memory_state_s": cost.bytes_state / ceilings.bandwidth_bytes_per_s,
        "bound": "compute" if compute >= memory else "memory",
    }
