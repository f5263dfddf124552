"""Predicted time and fraction of the roofline of every layer pass of a Langevin chain step, without a GPU.

    python -m bench.cost_model                                  # -> bench/results/roofline-<date>.json
    python -m bench.cost_model --gpu H100-SXM --workloads texture@64:1,16 --dtypes float32
    python -m bench.cost_model --calibration bench/results/calibration-nvidia-h200-2026-12-04.json

Each workload's chain step is recorded as the launchers issue it, with the tile the shape heuristic
picks (what ``GENCONV_AUTOTUNE=0`` runs), each launch's variant is compiled for sm_90 with Triton's own compiler
(``bench.compile_tier``), and the main loop's instructions per K-step are counted from the SASS
(``bench.sass``). A per-SM cost model turns the counts into cycles:

- per K-step of one CTA, per scheduler (SMSP; a CTA's warps spread over the 4 of an SM):
  issue = warps/4 x loop instructions x cycles per instruction (1 assumed: an SMSP issues every clock);
  int/ALU = warps/4 x 2 x integer/logic instructions (16 INT32 lanes per SMSP: 2 clocks a warp);
  tensor = the loop's MMA FLOPs / the SM's dense tensor FLOPs per clock (dot dtype);
  shared = the loop's shared-memory bytes (the wgmmas' operand reads, from their shapes and whether A
  comes from registers; LDS/STS/LDSM; the cp.async writes) / 128 B per clock (assumed);
  l1 (calibrated only) = warps x the narrow copies' L1 cycles;
  latency = one global round trip (600 cycles assumed) divided by the copies in flight (stages - 1);
  a synchronous global load in the loop exposes a whole round trip plus the step's issue;
  a full wgmma wait in the loop (``WARPGROUP.DEPBAR ... 0x0``) adds the step's tensor time;
- r CTAs resident on an SM share it: a step takes max(r x (the largest throughput term), latency);
- the busiest SM runs ceil(grid / SMs) CTAs in rounds of the occupancy (registers, shared memory,
  warps); each CTA adds its epilogue (instructions after the loop x 1.5 cycles assumed x warps/4 per
  SMSP) and one round trip to fill the pipeline;
- a pass takes max(those cycles / clock + a launch's fixed time, its compulsory bytes / HBM bandwidth);
- a split-K pass (small batches) is its runs' launch plus the launch that adds them, whose code runs once
  per tile (no main loop) and which reads the float32 workspace the runs wrote: both launches' times
  count for the pass, the workspace's bytes in its time but not in its roofline.

Roofline of a pass: max(useful FLOPs / the dense tensor peak of the chain's dtype (TF32 for float32),
compulsory bytes / HBM bandwidth); % roofline = roofline / predicted time; for a chain step, the sums.
Useful FLOPs are the convolution's own (2 x output pixels x C_out x C_in x K^2; a top-down pass
counts its layer's); padding efficiency = useful / executed MMA FLOPs (tile padding, zero taps).
Compulsory bytes: every tensor a launch reads or writes, once (activations, masks, weights).
The constants no datasheet gives (``Constants``) are assumptions by default; ``--calibration`` takes
them from a fit to a GPU's measured passes (``bench.calibrate``), which also prices what the assumed
model leaves at zero: an L1 cost per loop copy of 4 or 8 bytes a lane, a cost per epilogue global
access under 4 bytes a lane (dense, or in a strided pass's sub-pixel scatter), issue stalls (cycles
per loop instruction) and a fixed time per launch. Narrow accesses are listed per pass either way:
the loop's copies into shared memory under 16 bytes a lane (per K-step) and the epilogue's global
loads and stores under 4 bytes a lane.
Not modelled: L2 misses beyond compulsory traffic, the torch ops between kernels (pooling, the fc
top), launch gaps (a chain replays as a CUDA graph), clock throttling. These are predictions to
be checked on a GPU, not measurements.
"""
# ruff: noqa: E402

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python bench/cost_model.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import torch
import triton

from bench import report, sass
from bench.sass import SM_LIMITS, warps_per_sm

# Published figures (dense, i.e. without structured sparsity: the datasheets' "with sparsity" / 2).
# Sources: NVIDIA H100 Tensor Core GPU datasheet (SXM5: BF16 1,979 and TF32 989 TFLOPS with sparsity,
# HBM3 3.35 TB/s); NVIDIA H200 Tensor Core GPU datasheet (SXM: BF16 1,979 and TF32 989 TFLOPS with
# sparsity, HBM3e 4.8 TB/s); NVIDIA H100 Tensor Core GPU Architecture whitepaper (Hopper, 2022):
# 132 SMs on the SXM5 part, 4 schedulers (SMSPs) per SM each issuing one warp instruction per clock,
# 16 INT32 and 32 FP32 lanes per SMSP, 64K registers, 228 KB shared memory (227 KB per block),
# 64 warps and 32 blocks per SM, and a fourth-generation tensor core with twice A100's per-SM
# dense rate: 1024 FP16/BF16 FMA per clock per SM on A100, so 4096 BF16 FLOP (2048 TF32) per clock
# per SM on Hopper. The clock is the one the dense peak implies: 989.4e12 / (132 x 4096) = 1.83 GHz.
GPUS: dict[str, dict[str, float]] = {
    "H100-SXM": {"sms": 132, "hbm_bytes_per_s": 3.35e12, "bf16_flops": 989.4e12, "tf32_flops": 494.7e12},
    "H200": {"sms": 132, "hbm_bytes_per_s": 4.8e12, "bf16_flops": 989.4e12, "tf32_flops": 494.7e12},
}
BF16_FLOP_PER_CLOCK_SM = 4096
TF32_FLOP_PER_CLOCK_SM = 2048
SCHEDULERS_PER_SM = 4
INT_CLOCKS_PER_WARP_INSTRUCTION = 2  # 16 INT32 lanes per SMSP


@dataclass(frozen=True)
class Constants:
    """The model's unpublished constants. The defaults are assumptions (the kernels-v2 review's); the
    terms after ``epilogue_cpi`` are zero unless a calibration (``bench.calibrate``, fitted to a GPU's
    measured passes) sets them."""

    shared_bytes_per_clock: float = 128.0  # shared-memory bandwidth per SM
    latency: float = 600.0  # cycles of a global load round trip (L2 / HBM)
    issue_cpi: float = 1.0  # cycles per loop instruction per warp on an SMSP (1: it issues every clock)
    epilogue_cpi: float = 1.5  # cycles per epilogue instruction per warp (mixed ALU / memory, no overlap)
    copy4_cycles: float = 0.0  # L1 cycles per loop copy of <= 4 B a lane per warp (a transposing gather)
    copy8_cycles: float = 0.0  # L1 cycles per loop copy of 8 B a lane per warp
    narrow_epilogue_cycles: float = 0.0  # cycles per narrow (< 4 B a lane) epilogue access per warp
    scatter_epilogue_cycles: float = 0.0  # the same in a strided top-down pass's sub-pixel scatter
    launch_us: float = 0.0  # fixed time of a launch beyond its cycles (ramp-up, tail, drain)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


ASSUMED = Constants()


def clock_hz(gpu: str) -> float:
    return GPUS[gpu]["bf16_flops"] / (GPUS[gpu]["sms"] * BF16_FLOP_PER_CLOCK_SM)


@dataclass
class PassInput:
    """What the cost model needs of one layer pass."""

    name: str
    dot: str  # "tf32" or "bf16"
    block_m: int
    block_n: int
    block_k: int
    warps: int
    stages: int
    registers: int
    shared_bytes: int
    grid: int
    k_steps: int
    useful_flops: float
    bytes: float
    mix: sass.LoopMix
    roofline_dot: str = ""  # the chain's dtype ("tf32" / "bf16"), whose peak bounds the pass; default: dot
    extra_bytes: float = 0.0  # traffic beyond the compulsory bytes (a split-K workspace): time, not roofline
    split: int = 1  # split-K runs (the grid holds them all)
    split_sum: bool = False  # the split-K launch that adds the runs' partial sums (merged into its pass)
    swap: bool = False  # the MMA computes the transposed tile (output channels as its rows)
    scatter: bool = False  # a strided top-down pass whose epilogue scatters pixel-major sub-pixel columns


@dataclass
class PassPrediction:
    name: str
    tile: str
    registers: int
    ctas_per_sm: int
    grid: int
    waves: float
    k_steps: int
    loop_instructions: int
    step_cycles: dict[str, float]
    bound: str
    padding_efficiency: float
    gflop: float
    megabytes: float
    floor_us: float
    predicted_us: float
    roofline_pct: float
    narrow_copies: float = 0.0  # the loop's copies into shared memory under 16 bytes a lane, per K-step
    narrow_epilogue: int = 0  # the epilogue's global loads and stores under 4 bytes a lane


def step_cycles(p: PassInput, resident: int, c: Constants = ASSUMED) -> tuple[float, dict[str, float]]:
    """Cycles of one K-step on an SM running ``resident`` CTAs, and each term of the bound."""
    per_smsp = p.warps / SCHEDULERS_PER_SM
    mix = p.mix
    per_clock = BF16_FLOP_PER_CLOCK_SM if p.dot == "bf16" else TF32_FLOP_PER_CLOCK_SM
    terms = {
        "issue": per_smsp * mix.instructions * c.issue_cpi,
        "alu": per_smsp * INT_CLOCKS_PER_WARP_INSTRUCTION * mix.counts["int_alu"],
        "tensor": p.warps * mix.mma_flops_per_warp / per_clock,
        "shared": p.warps * mix.shared_bytes_per_warp / c.shared_bytes_per_clock,
    }
    if c.copy4_cycles or c.copy8_cycles:
        widths = mix.loop_copy_widths
        per_warp = sum(n for w, n in widths.items() if w <= 4) * c.copy4_cycles + widths.get(8, 0) * c.copy8_cycles
        terms["l1"] = p.warps * per_warp
    throughput = {name: resident * value for name, value in terms.items()}
    if mix.counts["global_load"]:
        latency = c.latency + terms["issue"]
    else:
        latency = c.latency / max(1, p.stages - 1)
    if mix.waits_all_wgmma:
        latency += terms["tensor"]
    throughput["latency"] = latency
    bound = max(throughput, key=throughput.get)
    return throughput[bound], throughput


def narrow_copies(mix: sass.LoopMix) -> float:
    """The loop's copies into shared memory under 16 bytes a lane, per K-step."""
    return sum(n for width, n in mix.loop_copy_widths.items() if width < 16)


def narrow_epilogue(mix: sass.LoopMix) -> int:
    """The epilogue's global loads and stores under 4 bytes a lane."""
    return sum(n for width, n in mix.epilogue_access_widths.items() if width < 4)


def predict(p: PassInput, gpu: str = "H200", c: Constants = ASSUMED) -> PassPrediction:
    """The predicted time of one pass on ``gpu`` (see the module docstring for the model)."""
    spec = GPUS[gpu]
    sms = int(spec["sms"])
    occupancy = max(1, warps_per_sm("sm_90", p.registers, p.shared_bytes, p.warps) // p.warps)
    busiest = math.ceil(p.grid / sms)
    full, rest = divmod(busiest, occupancy)
    epilogue = (
        p.warps
        / SCHEDULERS_PER_SM
        * (
            p.mix.epilogue_instructions * c.epilogue_cpi
            + narrow_epilogue(p.mix) * (c.scatter_epilogue_cycles if p.scatter else c.narrow_epilogue_cycles)
        )
    )

    def round_cycles(resident: int) -> tuple[float, dict[str, float]]:
        step, terms = step_cycles(p, resident, c)
        return p.k_steps * step + resident * epilogue + c.latency, terms

    cycles, terms = 0.0, step_cycles(p, min(occupancy, busiest), c)[1]
    if full:
        cycles += full * round_cycles(occupancy)[0]
    if rest:
        cycles += round_cycles(rest)[0]
    compute_s = cycles / clock_hz(gpu) + c.launch_us * 1e-6
    memory_s = p.bytes / spec["hbm_bytes_per_s"]
    predicted = max(compute_s, (p.bytes + p.extra_bytes) / spec["hbm_bytes_per_s"])
    peak = spec["bf16_flops"] if (p.roofline_dot or p.dot) == "bf16" else spec["tf32_flops"]
    floor = max(p.useful_flops / peak, memory_s)
    executed = p.grid * p.k_steps * p.warps * p.mix.mma_flops_per_warp
    bound = "memory" if (p.bytes + p.extra_bytes) / spec["hbm_bytes_per_s"] >= compute_s else max(terms, key=terms.get)
    return PassPrediction(
        name=p.name, tile=f"{p.block_m}x{p.block_n}x{p.block_k} w{p.warps} s{p.stages}" + (" swap" if p.swap else "")
        + (f" split {p.split}" if p.split > 1 else ""), registers=p.registers,
        ctas_per_sm=occupancy, grid=p.grid, waves=p.grid / (sms * occupancy), k_steps=p.k_steps,
        loop_instructions=p.mix.instructions, step_cycles={k: round(v, 1) for k, v in terms.items()}, bound=bound,
        padding_efficiency=p.useful_flops / executed if executed else 0.0, gflop=p.useful_flops / 1e9,
        megabytes=p.bytes / 1e6, floor_us=floor * 1e6, predicted_us=predicted * 1e6,
        roofline_pct=100.0 * floor / predicted if predicted else 0.0,
        narrow_copies=narrow_copies(p.mix), narrow_epilogue=narrow_epilogue(p.mix),
    )  # fmt: skip


# ---- workloads: a chain step as the launchers issue it -------------------------------------------------------

WORKLOADS = {"texture@64": (1, 16, 64, 256), "object@100": (16, 256), "texture@224": (256,)}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
CHAIN_DOT = {"float32": "tf32", "bfloat16": "bf16"}


def record_step(preset: str, size: int, batch: int, dtype: torch.dtype) -> list[Any]:
    """The Triton launches of one Langevin step of ``preset`` at ``size`` px, batch ``batch``."""
    from genconv.bindings.triton_backend import TRITON_BACKEND
    from genconv.engine.langevin import langevin
    from genconv.engine.model import GenerativeConvNet
    from genconv.engine.presets import network_for
    from genconv.kernels.launch import recording_launches

    model = GenerativeConvNet(network_for(preset, 3, size), init_seed=0)
    x = torch.zeros(batch, 3, size, size, dtype=dtype)
    with recording_launches() as launches:
        langevin(model, x, steps=1, delta=0.1, seed=0, backend=TRITON_BACKEND, cuda_graph=False, check_finite=False)
    return list(launches)


def _jit_function(kernel: Any) -> Any:
    """The JITFunction under an Autotuner (or the kernel itself)."""
    return getattr(kernel, "fn", kernel)


def _named(launch: Any) -> dict[str, Any]:
    names = _jit_function(launch.kernel).arg_names
    return {**dict(zip(names, launch.args, strict=False)), **launch.kwargs}


def geometry(launch: Any) -> dict[str, Any]:
    """A conv launch's GEMM: kernel, rows, columns, per-image rows, SPAN, channels, taps, stride."""
    named = _named(launch)
    forward = _jit_function(launch.kernel).fn.__name__ == "_conv_forward_kernel"
    if forward:
        per_image, channels, kh, kw = named["out_h"] * named["out_w"], named["C_IN"], named["KH"], named["KW"]
    else:
        per_image, channels = named["nq_h"] * named["nq_w"], named["C"]
        kh, kw = named.get("TAPS_H", named["TAPS"]), named.get("TAPS_W", named["TAPS"])
    return {"forward": forward, "rows": named["n_rows"], "columns": named["n_columns"], "per_image": per_image,
            "span": bool(named["SPAN"]), "channels": channels, "kh": kh, "kw": kw, "named": named,
            "split": int(named.get("SPLIT", 1)), "phase": int(named.get("SPLIT_PHASE", 0))}  # fmt: skip


def k_steps(g: dict[str, Any], block_k: int) -> int:
    """Trip count of ``implicit_gemm.conv_tile``'s loop (of the longest run of a split-K launch; none
    in the launch that adds the runs)."""
    if g["phase"] == 2:
        return 0
    from genconv.kernels import implicit_gemm

    steps = implicit_gemm.k_steps(g["channels"], g["kh"], g["kw"], block_k, not g["forward"])
    return math.ceil(steps / g["split"]) if g["phase"] == 1 else steps


def grid_size(g: dict[str, Any], block_m: int, block_n: int) -> int:
    """``implicit_gemm.conv_grid``'s program count."""
    if g["span"]:
        rows = math.ceil(g["rows"] / block_m)
    else:
        rows = (g["rows"] // g["per_image"]) * math.ceil(g["per_image"] / block_m)
    return rows * math.ceil(g["columns"] / block_n) * (g["split"] if g["phase"] == 1 else 1)


def storage_sizes(launch: Any, skip: Any = None) -> dict[int, int]:
    """The bytes of each distinct storage a launch's tensors touch (the largest view of it), ``skip`` aside."""
    sizes: dict[int, int] = {}
    for arg in launch.args:
        if isinstance(arg, torch.Tensor) and arg.numel() and arg is not skip:
            storage = arg.untyped_storage().data_ptr()
            sizes[storage] = max(sizes.get(storage, 0), arg.nbytes)
    return sizes


def compulsory_bytes(launch: Any, scratch: frozenset[int] = frozenset()) -> int:
    """Every distinct tensor a launch touches, once (not a split-K workspace, ``workspace_bytes``, nor
    the storages in ``scratch``: a patch GEMM's patches, which only its fold reads)."""
    workspace = _named(launch)["ws_ptr"] if geometry(launch)["phase"] else None
    return sum(size for storage, size in storage_sizes(launch, workspace).items() if storage not in scratch)


def scratch_bytes(launch: Any, scratch: frozenset[int]) -> int:
    """The bytes of the launch's tensors that live in ``scratch`` storages."""
    return sum(size for storage, size in storage_sizes(launch).items() if storage in scratch)


def workspace_bytes(launch: Any) -> int:
    """The split-K workspace a launch writes (the runs) or reads (the sum): SPLIT x rows x columns float32."""
    return _named(launch)["ws_ptr"].nbytes if geometry(launch)["phase"] else 0


def real_channels(launch: Any) -> int:
    """The reduction's channels that carry weights: inputs padded with zero channels (the image layer's
    4-channel rows, the summed top's 16-byte mask rows) meet all-zero rows of the packed weights."""
    g = geometry(launch)
    packed = g["named"]["w_ptr"]
    if g["named"].get("W_K_MAJOR"):  # [N_pad, K_pad]: the reduction along rows, zero-padded
        packed = packed[:, : g["kh"] * g["kw"] * g["channels"]].t()
    rows = packed.reshape(g["kh"] * g["kw"], g["channels"], -1)
    return int((rows != 0).any(dim=2).any(dim=0).sum())


def useful_flops(launches: list[Any]) -> list[float]:
    """Each launch's convolution FLOPs (padding channels excluded); a top-down pass counts the bottom-up
    pass of its layer."""
    forward: dict[tuple, float] = {}
    result = []
    for launch in launches:
        g = geometry(launch)
        named = g["named"]
        channels = real_channels(launch)
        if g["forward"]:
            flops = 2.0 * g["rows"] * g["columns"] * channels * named["KH"] * named["KW"]
            forward[(g["columns"], channels, named["STRIDE"])] = flops
        else:
            flops = forward.get((channels, named["C_IN"], named["STRIDE"]))
            if flops is None:  # no matching bottom-up pass: count the sub-pixel GEMM's taps
                flops = 2.0 * g["rows"] * g["columns"] * g["kh"] * g["kw"] * g["channels"]
        result.append(flops)
    return result


_NAMES = {True: "BU", False: "TD"}


def pass_name(launch: Any, index: int, layers: int) -> str:
    g = geometry(launch)
    named = g["named"]
    if g["forward"]:
        label = f"BU{index + 1} conv{named['KH']}s{named['STRIDE']} {named['C_IN']}->{named['C_OUT']}"
        return label + (" mask" if not named["STORE_OUTPUT"] else "")
    layer = 2 * layers - index
    mode = {0: "", 1: " gated-load", 2: " unit"}[int(named["A_MODE"])]
    tail = " +Langevin" if named["FUSE_LANGEVIN"] else ""
    columns = named["STRIDE"] ** 2 * named["C_IN"]  # the layer's, not the phase-major padded width
    phases = f" {named['STRIDE'] ** 2} phases" if named.get("PHASE", -1) >= 0 else ""
    return f"TD{layer} s{named['STRIDE']} {named['C']}->{columns}{mode}{tail}{phases}"


class Compiler:
    """Compiles each distinct variant once (sm_90) and keeps its loop mix and resources."""

    def __init__(self) -> None:
        self.cache: dict[tuple, tuple[sass.LoopMix, int, int, str]] = {}
        self.spills: dict[tuple, int] = {}
        self.seconds = 0.0

    def variant(self, launch: Any, config: triton.Config) -> tuple[sass.LoopMix, int, int]:
        """The variant's loop mix, registers per thread and shared-memory bytes."""
        return self._compiled(launch, config)[1][:3]

    def spill_bytes(self, launch: Any, config: triton.Config) -> int:
        """The variant's spill stores and loads per thread, as ptxas reports them (not the stack frame,
        which calls into libdevice's math take without spilling)."""
        from bench.compile_tier import _ptxas_report

        key, (_, _, _, ptx) = self._compiled(launch, config)
        if key not in self.spills:
            _, stores, loads = _ptxas_report(ptx, "sm_90")
            self.spills[key] = stores + loads
        return self.spills[key]

    def _compiled(self, launch: Any, config: triton.Config) -> tuple[tuple, tuple[sass.LoopMix, int, int, str]]:
        from bench.compile_tier import TARGETS, Variant, _source, _variant_key

        dummy = Variant("", "", "", "", "sm_90", "", config.num_warps, config.num_stages, True, True)
        key = _variant_key(dummy, launch, config)
        if key not in self.cache:
            start = time.perf_counter()
            source, options = _source(launch, config, TARGETS["sm_90"])
            compiled = triton.compile(source, target=TARGETS["sm_90"], options=options)
            cubin = compiled.asm["cubin"]
            registers, _ = sass.resource_usage(cubin)
            self.cache[key] = (sass.loop_mix(cubin), registers, int(compiled.metadata.shared), compiled.asm["ptx"])
            self.seconds += time.perf_counter() - start
        return key, self.cache[key]


CONV_KERNELS = ("_conv_forward_kernel", "_conv_transpose_kernel")
FOLD_KERNEL = "_fold_langevin_kernel"  # the image layer's fold after its patch GEMM (``kernels.patch_fold``)
PASS_KERNELS = (*CONV_KERNELS, FOLD_KERNEL)


def kernel_name(launch: Any) -> str:
    return _jit_function(launch.kernel).fn.__name__


def conv_launches(launches: list[Any]) -> list[Any]:
    """The launches of a recorded step's layer passes, in launch order: the conv kernels' and the folds."""
    return [launch for launch in launches if kernel_name(launch) in PASS_KERNELS]


def merged(launch: Any) -> bool:
    """A launch whose time belongs to the pass before it: a split-K sum, a fold after its patch GEMM, or
    a sub-pixel phase's GEMM after the first phase's (``conv_transpose.phase_split_wanted``)."""
    if kernel_name(launch) == FOLD_KERNEL:
        return True
    g = geometry(launch)
    return g["phase"] == 2 or (not g["forward"] and g["named"].get("PHASE", -1) > 0)


def pass_labels(launches: list[Any]) -> list[tuple[str, bool]]:
    """Each launch's pass name, and whether it is merged into the pass before it (``merged``)."""
    primary = [launch for launch in launches if not merged(launch)]
    layers = sum(geometry(launch)["forward"] for launch in primary)
    labels = []
    index = -1
    for position, launch in enumerate(launches):
        if merged(launch):
            labels.append((labels[-1][0] if labels else kernel_name(launch), True))
            continue
        index += 1
        name = pass_name(launch, index, layers)
        rest = [after for after in launches[position + 1 :] if kernel_name(after) == FOLD_KERNEL or not merged(after)]
        if rest and kernel_name(rest[0]) == FOLD_KERNEL:  # the patch GEMM: named for the pass it and its fold make
            fold = _named(rest[0])
            name = f"TD1 patches {fold['C_IN']}x{fold['KERNEL']}^2 + fold s{fold['STRIDE']} +Langevin"
        labels.append((name, False))
    return labels


def scatters(g: dict[str, Any]) -> bool:
    """A strided top-down launch with channel-major columns (``implicit_gemm.scatters_channel_major``)."""
    from genconv.kernels.implicit_gemm import scatters_channel_major

    return not g["forward"] and scatters_channel_major(g["named"])


def launch_input(
    launch: Any,
    name: str,
    summing: bool,
    useful: float,
    config: triton.Config,
    compiler: Compiler,
    chain_dot: str,
    scratch: frozenset[int] = frozenset(),
) -> PassInput:
    """The model's input for ``launch`` run with ``config`` (the heuristic's, or a candidate's); tensors
    in ``scratch`` storages (patches) count in its time, not its roofline."""
    mix, registers, shared = compiler.variant(launch, config)
    g = geometry(launch)
    bm, bn, bk = (config.kwargs[k] for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
    # a body unrolled over several K-steps (or the whole loop) holds several tiles' MMAs
    mix = mix.per_step(round(mix.mma_flops_per_warp * config.num_warps / (2 * bm * bn * bk)))
    dot = "bf16" if str(g["named"]["DOT_DTYPE"]) in ("bf16", "bfloat16") else "tf32"
    return PassInput(
        name=name, dot=dot, block_m=bm, block_n=bn, block_k=bk,
        warps=config.num_warps, stages=config.num_stages, registers=registers, shared_bytes=shared,
        grid=grid_size(g, bm, bn), k_steps=k_steps(g, bk), useful_flops=useful,
        bytes=0 if summing else compulsory_bytes(launch, scratch), mix=mix, roofline_dot=chain_dot,
        extra_bytes=workspace_bytes(launch) + scratch_bytes(launch, scratch), split=g["split"], split_sum=summing,
        swap=bool(config.kwargs.get("SWAP", 0)), scatter=scatters(g),
    )  # fmt: skip


def patch_storages(launches: list[Any]) -> frozenset[int]:
    """The storages of the patches the step's folds read (scratch: not compulsory traffic of a layer)."""
    folds = [launch for launch in launches if kernel_name(launch) == FOLD_KERNEL]
    return frozenset(_named(launch)["p_ptr"].untyped_storage().data_ptr() for launch in folds)


def fold_input(
    launch: Any, name: str, config: triton.Config, compiler: Compiler, chain_dot: str, scratch: frozenset[int]
) -> PassInput:
    """A fold's input: no main loop (its code runs once per block of elements); the state, noise and
    result as compulsory bytes, the patches it reads as scratch."""
    mix, registers, shared = compiler.variant(launch, config)
    named = _named(launch)
    grid = named["x_ptr"].shape[0] * math.ceil(named["per_sample"] / config.kwargs["BLOCK"])  # images x blocks
    sizes = storage_sizes(launch)
    return PassInput(
        name=name, dot=chain_dot, block_m=config.kwargs["BLOCK"], block_n=1, block_k=1, warps=config.num_warps,
        stages=1, registers=registers, shared_bytes=shared, grid=grid, k_steps=0, useful_flops=0.0,
        bytes=sum(size for storage, size in sizes.items() if storage not in scratch), mix=mix,
        roofline_dot=chain_dot, extra_bytes=scratch_bytes(launch, scratch), split_sum=True,
    )  # fmt: skip


def workload_passes(launches: list[Any], compiler: Compiler, chain_dot: str) -> list[PassInput]:
    """One input per launch, with the heuristic's tile; a launch merged into the pass before it
    (``merged``: a split-K sum, a fold) follows that pass's first, with its name and no FLOPs; a split-K
    sum has no compulsory bytes (they are the runs'), the workspace as extra bytes."""
    primary = [launch for launch in launches if not merged(launch)]
    flops = dict(zip(map(id, primary), useful_flops(primary), strict=True))
    scratch = patch_storages(launches)
    passes = []
    for launch, (name, summing) in zip(launches, pass_labels(launches), strict=True):
        if kernel_name(launch) == FOLD_KERNEL:
            passes.append(fold_input(launch, name, launch.heuristic, compiler, chain_dot, scratch))
        else:
            useful = flops.get(id(launch), 0.0)
            passes.append(launch_input(launch, name, summing, useful, launch.heuristic, compiler, chain_dot, scratch))
    return passes


def merge_launches(
    passes: list[PassInput], predictions: list[PassPrediction], gpu: str = "H200"
) -> list[PassPrediction]:
    """Each pass as one row: a split-K sum's or a fold's time added to its pass's, and the floor that of
    the pass's FLOPs and compulsory bytes together."""
    rows: list[PassPrediction] = []
    spec = GPUS[gpu]
    for p, prediction in zip(passes, predictions, strict=True):
        if p.split_sum and rows:
            first = rows[-1]
            first.predicted_us += prediction.predicted_us
            first.megabytes += prediction.megabytes
            first.narrow_epilogue += prediction.narrow_epilogue  # the sum launch runs the pass's epilogue
            peak = spec["bf16_flops"] if (p.roofline_dot or p.dot) == "bf16" else spec["tf32_flops"]
            first.floor_us = 1e6 * max(first.gflop * 1e9 / peak, first.megabytes * 1e6 / spec["hbm_bytes_per_s"])
            first.roofline_pct = 100.0 * first.floor_us / first.predicted_us if first.predicted_us else 0.0
        else:
            rows.append(prediction)
    return rows


def summarise(predictions: list[PassPrediction]) -> dict[str, float]:
    floor = sum(p.floor_us for p in predictions)
    predicted = sum(p.predicted_us for p in predictions)
    return {"gflop": sum(p.gflop for p in predictions), "megabytes": sum(p.megabytes for p in predictions),
            "floor_us": floor, "predicted_us": predicted, "roofline_pct": 100.0 * floor / predicted}  # fmt: skip


def each_case(workloads: dict[str, tuple[int, ...]], dtypes: list[str]) -> Iterator[tuple[str, str, int, str, int]]:
    """(workload, preset, size, dtype, batch) for every workload, dtype and batch, in table order."""
    for workload, batches in workloads.items():
        preset, size = workload.split("@")
        for dtype in dtypes:
            for batch in batches:
                yield workload, preset, int(size), dtype, batch


def run(
    workloads: dict[str, tuple[int, ...]], dtypes: list[str], gpu: str, c: Constants = ASSUMED
) -> list[dict[str, Any]]:
    """Each workload's predicted step, its passes, and each launch's inputs (``launches``, for a calibration)."""
    compiler = Compiler()
    results = []
    for workload, preset, size, dtype, batch in each_case(workloads, dtypes):
        launches = conv_launches(record_step(preset, size, batch, DTYPES[dtype]))
        passes = workload_passes(launches, compiler, CHAIN_DOT[dtype])
        predictions = merge_launches(passes, [predict(p, gpu, c) for p in passes], gpu)
        step = summarise(predictions)
        rows, inputs = [asdict(p) for p in predictions], [asdict(p) for p in passes]
        results.append({"workload": workload, "batch": batch, "dtype": dtype, "gpu": gpu, "step": step,
                        "passes": rows, "launches": inputs})  # fmt: skip
        print(f"{workload} B={batch} {dtype}: {step['predicted_us']:.1f} us predicted, floor "
              f"{step['floor_us']:.1f} us, {step['roofline_pct']:.1f}% of roofline", flush=True)  # fmt: skip
    return results


def markdown(results: list[dict[str, Any]], passes: bool = True) -> str:
    """The step summary table, then (``passes``) one table of passes per workload."""
    lines = ["| workload | batch | dtype | GFLOP | MB | floor µs | predicted µs | % roofline | vs float32 |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    f32 = {(r["workload"], r["batch"]): r["step"]["predicted_us"] for r in results if r["dtype"] == "float32"}
    for r in results:
        s = r["step"]
        base = f32.get((r["workload"], r["batch"]))
        speed = f"{base / s['predicted_us']:.2f}x" if base and r["dtype"] != "float32" else ""
        cells = [
            r["workload"],
            r["batch"],
            r["dtype"],
            f"{s['gflop']:.2f}",
            f"{s['megabytes']:.1f}",
            f"{s['floor_us']:.1f}",
            f"{s['predicted_us']:.1f}",
            f"{s['roofline_pct']:.1f}",
            speed,
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    if not passes:
        return "\n".join(lines)
    for r in results:
        lines += ["", f"**{r['workload']} B={r['batch']} {r['dtype']}**", "",
                  "| pass | tile | regs | CTA/SM | grid | waves | K-steps | loop instr | cycles/K-step (bound) | "
                  "pad eff. | GFLOP | MB | floor µs | predicted µs | % roofline | narrow copies / epilogue |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for p in r["passes"]:
            cycles = max(p["step_cycles"].values())
            cells = [
                p["name"],
                p["tile"],
                p["registers"],
                p["ctas_per_sm"],
                p["grid"],
                f"{p['waves']:.2f}",
                p["k_steps"],
                p["loop_instructions"],
                f"{cycles:.0f} ({p['bound']})",
                f"{p['padding_efficiency']:.2f}",
                f"{p['gflop']:.2f}",
                f"{p['megabytes']:.1f}",
                f"{p['floor_us']:.1f}",
                f"{p['predicted_us']:.1f}",
                f"{p['roofline_pct']:.1f}",
                f"{p.get('narrow_copies', 0):g} / {p.get('narrow_epilogue', 0)}",
            ]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def compare(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> str:
    """Before/after per chain step and per pass (passes matched by position in the step)."""
    lines = ["| workload | batch | dtype | pass | before µs | after µs | before % roofline | after % roofline |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    earlier = {(r["workload"], r["batch"], r["dtype"]): r for r in before}
    for r in after:
        old = earlier.get((r["workload"], r["batch"], r["dtype"]))
        if old is None:
            continue
        rows = [("step", old["step"], r["step"])]
        rows += [(new["name"], was, new) for was, new in zip(old["passes"], r["passes"], strict=False)]
        for name, was, new in rows:
            cells = [
                r["workload"],
                r["batch"],
                r["dtype"],
                name,
                f"{was['predicted_us']:.1f}",
                f"{new['predicted_us']:.1f}",
                f"{was['roofline_pct']:.1f}",
                f"{new['roofline_pct']:.1f}",
            ]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def load_constants(path: Path) -> Constants:
    """The constants a calibration JSON (``bench.calibrate``) fitted."""
    fitted = json.loads(path.read_text())["constants"]
    return Constants(**{name: float(fitted[name]) for name in Constants.__dataclass_fields__})


def parse_workloads(text: str) -> dict[str, tuple[int, ...]]:
    """``texture@64:1,16;object@100:16`` -> {"texture@64": (1, 16), "object@100": (16,)}."""
    chosen = {}
    for part in filter(None, text.split(";")):
        name, _, batches = part.partition(":")
        if not batches or "@" not in name:
            raise ValueError(f"--workloads: expected preset@size:b1,b2;..., got {part!r}")
        chosen[name] = tuple(int(b) for b in batches.split(","))
    return chosen


def add_workload_arguments(parser: argparse.ArgumentParser) -> None:
    """--workloads, --dtypes and --calibration, as the model's tools take them."""
    parser.add_argument("--workloads", help="preset@size:b1,b2;... (default: the documented set)")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated, of float32, bfloat16")
    parser.add_argument(
        "--calibration", type=Path, help="constants fitted to a GPU's measured passes (JSON written by bench.calibrate)"
    )


def workload_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[dict[str, tuple[int, ...]], list[str], Constants]:
    """The workloads, dtypes and constants ``add_workload_arguments``'s flags ask for (one line per bad flag)."""
    try:
        workloads = parse_workloads(args.workloads) if args.workloads else WORKLOADS
    except ValueError as error:
        parser.error(str(error))
    dtypes = args.dtypes.split(",")
    if not set(dtypes) <= set(DTYPES):
        parser.error(f"--dtypes: expected a comma-separated list of float32, bfloat16, got {args.dtypes!r}")
    constants = ASSUMED
    if args.calibration:
        try:
            constants = load_constants(args.calibration)
        except (OSError, ValueError, KeyError, TypeError) as error:
            parser.error(f"--calibration: expected a JSON file written by bench.calibrate ({error})")
    return workloads, dtypes, constants


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cost_model", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="JSON to write (default bench/results/roofline-<date>.json)")
    parser.add_argument("--gpu", choices=sorted(GPUS), default="H200")
    parser.add_argument("--markdown", action="store_true", help="print the per-pass tables as markdown")
    parser.add_argument("--before", type=Path, help="an earlier table (JSON): print before/after per pass")
    add_workload_arguments(parser)
    args = parser.parse_args(argv)
    workloads, dtypes, constants = workload_arguments(parser, args)
    if args.before and not args.before.is_file():
        parser.error(f"--before: expected a JSON table written by bench.cost_model, got {args.before}")
    start = time.perf_counter()
    results = run(workloads, dtypes, args.gpu, constants)
    out = args.out or Path(__file__).resolve().parent / "results" / f"roofline-{date.today().isoformat()}.json"
    published = {"gpus": GPUS, "clock_hz": {g: clock_hz(g) for g in GPUS}, "sm_limits": SM_LIMITS["sm_90"]}
    revision = {key: report.environment(torch.device("cpu"))[key] for key in ("date", "git_sha", "git_dirty")}
    meta = {**revision, "triton": triton.__version__, "torch": torch.__version__,
            "seconds": time.perf_counter() - start,
            "tf32": os.environ.get("GENCONV_TF32", "1") != "0", "constants": {**published, **constants.to_dict()},
            "calibration": str(args.calibration) if args.calibration else None}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"schema": "genconv-roofline/1", "meta": meta, "results": results}, indent=1) + "\n")
    print(markdown(results, passes=args.markdown))
    if args.before:
        print("\n" + compare(json.loads(args.before.read_text())["results"], results))
    print(f"\njson: {out} ({meta['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
