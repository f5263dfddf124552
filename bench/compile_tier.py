"""The compile tier: every Triton kernel, as the launchers launch it, compiled for Hopper and Ampere.

    python -m bench.compile_tier                       # the table -> bench/results/compile-<date>.json
    python -m bench.compile_tier --out /tmp/c.json --quick
    python -m bench.compile_tier --out /tmp/c.json --quick --heuristic-only sm_80   # what the suite compiles

No GPU is needed: each launcher runs on CPU tensors of representative preset shapes under
``kernels.launch.recording_launches()``, which records the launch instead of running it; every
config the autotuner could pick (and the one the shape heuristic picks with autotuning off) is then
compiled with the installed Triton's own compiler for ``GPUTarget("cuda", 90, 32)`` and
``GPUTarget("cuda", 80, 32)``, and the ptxas Triton runs for that target reports registers and spills. The argument
types and specialisations (16-byte alignment, divisibility, ints equal to 1) are Triton's own, via
the JIT's binder, so the compiled variant is the one a launch on a GPU would compile.

Columns: kernel, case (preset or op), layer (its compile-time geometry), dtype, target, config
(tile, warps, stages), registers per thread, spill stores and loads (bytes per thread), shared
memory (bytes), whether the PTX uses wgmma (sm_90), how many asynchronous copies (cp.async: the
software pipeline's loads) it issues, and resident warps per SM (the tighter of the register
file, shared memory and the hardware limits), and for conv kernels the main loop's instructions per
K-step by class, read from the SASS (``bench.sass``). ``tests/test_compile.py`` runs this and
asserts: every variant compiles, spills nothing on sm_90 (at most a few bytes on sm_80), fits shared
memory, conv kernels with >= 4 warps use wgmma on sm_90, and no conv main loop waits on a
synchronous global load.
"""
# ruff: noqa: E402

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python bench/compile_tier.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import concurrent.futures
import itertools
import json
import multiprocessing
import os
import re
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    raise SystemExit("the compile tier compiles for GPUs: run it without TRITON_INTERPRET")

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, make_backend
from triton.runtime.jit import create_function_from_signature

from bench import report, sass
from bench.compile_cases import CONV_KERNELS, CompileCase, compile_cases
from bench.sass import warps_per_sm
from genconv.kernels.launch import Launch, recording_launches, targeting

TARGETS = {"sm_90": GPUTarget("cuda", 90, 32), "sm_80": GPUTarget("cuda", 80, 32)}


def ptxas_path(arch: str) -> str:
    """The ptxas Triton itself runs for ``arch`` ("sm_90"): newer Triton releases pick a newer ptxas
    (``ptxas-blackwell``) for sm_90 than for sm_80, and honour ``TRITON_PTXAS_PATH``; the tool that
    compiled the PTX must be the one that reads it, or it rejects the PTX version."""
    from triton.backends.nvidia.compiler import get_ptxas

    return str(get_ptxas(int(arch.removeprefix("sm_"))).path)


@dataclass(frozen=True)
class Variant:
    """One compilation: a kernel's specialised signature under one config for one target."""

    kernel: str
    case: str
    layer: str
    dtype: str
    target: str
    config: str
    num_warps: int
    num_stages: int
    heuristic: bool
    is_conv: bool


@dataclass
class Row:
    """What the compiler reported for one variant."""

    variant: Variant
    registers: int | None = None
    spill_stores: int | None = None
    spill_loads: int | None = None
    shared_bytes: int | None = None
    uses_wgmma: bool | None = None
    async_copies: int | None = None
    warps_per_sm: int | None = None
    loop: dict[str, Any] | None = None  # conv kernels: the main loop's instruction mix (bench.sass)
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self.variant), **{k: v for k, v in asdict(self).items() if k != "variant"}}


def _jit_function(kernel: Any) -> Any:
    """The JITFunction under an Autotuner (or the kernel itself)."""
    return getattr(kernel, "fn", kernel)


def _config_label(config: triton.Config) -> str:
    tiles = ",".join(f"{key}={value}" for key, value in sorted(config.kwargs.items()))
    return f"{tiles} w{config.num_warps} s{config.num_stages}"


def _layer_label(launch: Launch) -> str:
    """The compile-time geometry of a launch (channels, kernel, stride, padding, flags), e.g. C_IN=3 KH=15."""
    skip = {"DOT_DTYPE", "PRECISION"}
    return " ".join(f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in launch.kwargs.items()
                    if k.isupper() and k not in skip)  # fmt: skip


def _source(launch: Launch, config: triton.Config, target: GPUTarget) -> tuple[ASTSource, dict[str, Any]]:
    """The ASTSource and options a launch under ``config`` compiles to on ``target`` (Triton's binder)."""
    jit = _jit_function(launch.kernel)
    backend = make_backend(target)
    kwargs = {**launch.kwargs, **config.kwargs, "num_warps": config.num_warps, "num_stages": config.num_stages}
    binder = create_function_from_signature(jit.signature, jit.params, backend)
    bound_args, specialization, options = binder(*launch.args, **kwargs)
    options, signature, constexprs, attrs = jit._pack_args(backend, kwargs, bound_args, specialization, options)
    return ASTSource(jit, signature, constexprs, attrs), options.__dict__


def _ptxas_report(ptx: str, arch: str) -> tuple[int, int, int]:
    """(registers, spill store bytes, spill load bytes) from ``ptxas -v`` on the PTX."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "kernel.ptx"
        source.write_text(ptx)
        gpu = "sm_90a" if arch == "sm_90" else arch
        command = [ptxas_path(arch), "-v", f"--gpu-name={gpu}", str(source), "-o", str(Path(folder) / "k.o")]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    text = done.stderr
    registers = int(re.search(r"Used (\d+) registers", text).group(1))
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    return registers, int(spills.group(1)), int(spills.group(2))


def _tool_version(path: str) -> str:
    """The last line of ``<tool> --version`` (the CUDA build it comes from)."""
    return subprocess.run([path, "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1]


def compile_variant(job: tuple[Variant, Launch, triton.Config]) -> Row:
    """Compile one variant and read its resources (runs in a worker process)."""
    variant, launch, config = job
    row = Row(variant)
    start = time.perf_counter()
    try:
        source, options = _source(launch, config, TARGETS[variant.target])
        compiled = triton.compile(source, target=TARGETS[variant.target], options=options)
        ptx = compiled.asm["ptx"]
        row.registers, row.spill_stores, row.spill_loads = _ptxas_report(ptx, variant.target)
        row.shared_bytes = int(compiled.metadata.shared)
        row.uses_wgmma = "wgmma" in ptx
        row.async_copies = ptx.count("cp.async.ca") + ptx.count("cp.async.cg") + ptx.count("cp.async.bulk")
        row.warps_per_sm = warps_per_sm(variant.target, row.registers, row.shared_bytes, variant.num_warps)
        if variant.is_conv:
            row.loop = sass.loop_mix(compiled.asm["cubin"]).to_dict()
    except Exception as error:  # a failure is a row of the table, and the tier's test fails on it
        row.error = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"
    row.seconds = time.perf_counter() - start
    return row


def _variant_key(variant: Variant, launch: Launch, config: triton.Config) -> tuple:
    """Identical compilations (same kernel, config, target, argument types and constants) compile once."""
    jit = _jit_function(launch.kernel)
    shapes = tuple(
        (str(arg.dtype), arg.data_ptr() % 16 == 0) if isinstance(arg, torch.Tensor) else
        (type(arg).__name__, arg if isinstance(arg, bool) else (arg == 1, arg % 16 == 0) if isinstance(arg, int) else 0)
        for arg in launch.args
    )  # fmt: skip
    constants = tuple(sorted((k, str(v)) for k, v in launch.kwargs.items()))
    return (jit.fn.__name__, _config_label(config), variant.target, shapes, constants)


def collect_jobs(
    cases: list[CompileCase], targets: list[str], heuristic_only: tuple[str, ...] = ()
) -> list[tuple[Variant, Launch, triton.Config]]:
    """Record every case's launches for each target (its tiles: ``launch.targeting``) and expand them into
    (variant, launch, config) jobs, deduplicated; on the targets in ``heuristic_only`` only the shape
    heuristic's config of each launch."""
    jobs, seen = [], set()
    for target, case in itertools.product(targets, cases):
        with targeting(TARGETS[target].arch), recording_launches() as launches:
            case.run()
        for launch in launches:
            name = _jit_function(launch.kernel).fn.__name__
            configs = list(launch.configs)
            if all(_config_label(c) != _config_label(launch.heuristic) for c in configs):
                configs.append(launch.heuristic)
            for config in configs:
                if target in heuristic_only and _config_label(config) != _config_label(launch.heuristic):
                    continue
                variant = Variant(
                    kernel=name, case=case.name, layer=_layer_label(launch), dtype=case.dtype, target=target,
                    config=_config_label(config), num_warps=config.num_warps, num_stages=config.num_stages,
                    heuristic=_config_label(launch.heuristic) == _config_label(config),
                    # a split-K sum launch adds partial sums: a conv kernel with no main loop
                    is_conv=name in CONV_KERNELS and launch.kwargs.get("SPLIT_PHASE", 0) != 2,
                )  # fmt: skip
                key = _variant_key(variant, launch, config)
                if key in seen:
                    continue
                seen.add(key)
                jobs.append((variant, launch, config))
    return jobs


_JOBS: list[tuple[Variant, Launch, triton.Config]] = []


def _compile_job(index: int) -> Row:
    """Worker entry: jobs hold kernels and tensors, which do not pickle, so forked workers get indices."""
    return compile_variant(_JOBS[index])


def run(quick: bool, workers: int, targets: list[str], heuristic_only: tuple[str, ...] = ()) -> list[Row]:
    _JOBS[:] = collect_jobs(compile_cases(quick), targets, heuristic_only)
    if workers <= 1:
        return [compile_variant(job) for job in _JOBS]
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(_compile_job, range(len(_JOBS)), chunksize=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compile_tier", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="JSON to write (default bench/results/compile-<date>.json)")
    parser.add_argument("--quick", action="store_true", help="fewer cases (what the test suite compiles)")
    parser.add_argument("--heuristic-only", default="", help="comma-separated targets compiled with the shape "
                        "heuristic's tile of each launch only (the suite: sm_80, a portability check)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="compile processes (default: cores)")
    parser.add_argument("--targets", default="sm_90,sm_80", help="comma-separated, of sm_90, sm_80")
    args = parser.parse_args(argv)
    out = args.out or Path(__file__).resolve().parent / "results" / f"compile-{date.today().isoformat()}.json"
    start = time.perf_counter()
    rows = run(args.quick, args.workers, args.targets.split(","), tuple(filter(None, args.heuristic_only.split(","))))
    meta = report.environment(torch.device("cpu"))
    ptxas = {target: _tool_version(ptxas_path(target)) for target in args.targets.split(",")}
    meta.update(seconds=time.perf_counter() - start, triton=triton.__version__, ptxas=ptxas)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"schema": "genconv-compile/1", "meta": meta, "rows": [r.to_dict() for r in rows]},
                              indent=1) + "\n")  # fmt: skip
    print(table(rows))
    print(f"\n{len(rows)} variants in {meta['seconds']:.0f} s; json: {out}")
    return 0 if all(row.error is None for row in rows) else 1


def _loop_cells(loop: dict[str, Any] | None) -> str:
    """The main loop's instructions per K-step and its synchronous global loads ("-" without a loop)."""
    if not loop or not loop["found"]:
        return "-"
    return f"{loop['instructions']:>4} {loop['counts']['global_load']:>3}"


def table(rows: list[Row]) -> str:
    head = (f"{'kernel':<30} {'case':<14} {'layer':<44} {'dtype':<8} {'target':<6} {'config':<40} "
            "regs spill smem   wgmma async warps/SM loop sync-loads")  # fmt: skip
    lines = [head, "-" * len(head)]
    for row in rows:
        v = row.variant
        if row.error:
            lines.append(f"{v.kernel:<30} {v.case:<14} {v.layer:<44} {v.dtype:<8} {v.target:<6} {v.config:<40} "
                         f"ERROR {row.error}")  # fmt: skip
            continue
        mark = "*" if v.heuristic else " "
        lines.append(f"{v.kernel:<30} {v.case:<14} {v.layer:<44} {v.dtype:<8} {v.target:<6} {v.config + mark:<40} "
                     f"{row.registers:>4} {row.spill_stores:>5} {row.shared_bytes:>6} {str(row.uses_wgmma):<5} "
                     f"{row.async_copies:>5} {row.warps_per_sm:>3} {_loop_cells(row.loop)}")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
