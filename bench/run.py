"""The benchmark matrix: every workload x provider, timed, against the measured roofline.

    python -m bench                    # the matrix for this device (CUDA: the full one)
    python bench/run.py --quick --check --out /tmp/bench   # a seconds-long smoke with the numerical check
    python -m bench --presets texture --sizes 64 --batches 16 --dtypes float32 --providers eager,genconv-torch

Prints a table, writes ``<out>/<device>-<date>.json`` (appending to a file of the same name) and
``.png``. Figures: image-steps/s (batch x steps / median seconds of a call), their 10-90%
quantiles, one-off setup seconds (compile, autotune, graph capture), peak memory (CUDA), the
ratio to the best of eager / compiled / torchebm, time over the roofline floor and the fraction
of the measured matrix rate.
"""
# ruff: noqa: E402

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import gc
import json
import time
from datetime import date
from typing import Any

import torch
import torch._inductor.config as inductor_config

from bench import report
from bench.check import check_providers, check_setup, check_setup_pcd
from bench.providers import PROVIDERS, Provider, Sampler, set_compile_mode, set_dropin_compile
from bench.roofline import Ceilings, floor, measure_ceilings, workload_cost
from bench.timing import allocated, measure, peak_memory, synchronize
from bench.workloads import (
    DTYPES,
    ENERGY_KINDS,
    KINDS,
    Setup,
    Workload,
    build_setup,
    learning_iteration,
    matrix,
    resolve_size,
    setup_missing,
)

DEFAULTS = {
    "cuda": {"sizes": "paper,64", "batches": "1,16,64,256,1024", "dtypes": "float32,bfloat16",
             "train_batches": "16,256", "repeats": 10},
    "cpu": {"sizes": "64", "batches": "1,16", "dtypes": "float32", "train_batches": "16", "repeats": 5},
    "quick": {"sizes": "32", "batches": "2", "dtypes": "float32", "train_batches": "2", "repeats": 2,
              "steps": 2, "train_steps": 2},
}  # fmt: skip
# Steps of the numerical check per device type. On CUDA, float32 convolutions run TF32, whose rounding
# switches ReLU units that sit near 0 differently in each implementation, and each switch moves the next
# step's gradient by O(1) locally: on an H200, 3 steps put eager PyTorch 2 % away from genconv's torch
# path. One step still tests the gradient and the noise (bfloat16: ``check.check_providers``).
CHECK_STEPS = {"cpu": 3, "cuda": 1}
CHECK_MAX_SIZE = 48


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    names = ",".join(PROVIDERS)
    parser.add_argument("--presets", default="texture,object", help="comma-separated presets (default texture,object)")
    parser.add_argument("--sizes", help="image sizes in px, or 'paper' (texture 224, object 100); "
                        "default CUDA paper,64, CPU 64")  # fmt: skip
    parser.add_argument("--batches", help="chains per batch; default CUDA 1,16,64,256,1024, CPU 1,16")
    parser.add_argument("--dtypes", help="float32,bfloat16 (default CUDA both, CPU float32)")
    parser.add_argument("--steps", type=int, help="Langevin steps K per chain (default 30)")
    parser.add_argument("--channels", type=int, default=3, help="image channels (default 3)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="chain (K-step chains), train (one learning "
                        "iteration, float32) and pcd (TorchEBM-style sampling of a small MLP energy on 2-D "
                        "points: the per-step overhead); default all three")  # fmt: skip
    parser.add_argument("--pcd-chains", type=int, default=256, help="chains of the pcd workload (default 256)")
    parser.add_argument("--train-batches", help="batches of the learning iteration; default CUDA 16,256, CPU 16")
    parser.add_argument("--train-steps", type=int, help="steps per learning iteration (default: the preset's)")
    parser.add_argument("--providers", default=names, help=f"comma-separated, of {names} (default all)")
    parser.add_argument("--repeats", type=int, help="timed calls per cell (default CUDA 10, CPU 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per cell, the first included (default 1)")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke: 32 px, batch 2, 2 steps")
    parser.add_argument("--check", action="store_true", help="first check that every provider computes "
                        "genconv-torch's chain; exit 1 if one does not")  # fmt: skip
    parser.add_argument("--check-only", action="store_true", help="run the check and stop")
    parser.add_argument("--device", help="cuda or cpu (default cuda when available)")
    parser.add_argument("--compile-mode", help="torch.compile mode of 'compiled' (default CUDA "
                        "max-autotune-no-cudagraphs + a whole-chain CUDA graph, CPU default)")  # fmt: skip
    parser.add_argument(
        "--dropin-compile",
        choices=("true", "false", "auto"),
        help="compile of genconv's "
        "drop-ins on the pcd and conv workloads (default true; --quick: auto, which stays eager)",
    )
    parser.add_argument("--cold-compile", action="store_true",
                        help="disable torch.compile's caches: setup_s of 'compiled' is then a cold compile "
                        "(default: caches on, as in a user's second run)")  # fmt: skip
    parser.add_argument("--budget-seconds", type=float, help="stop starting new cells after this long "
                        "(they are recorded as skipped)")  # fmt: skip
    parser.add_argument("--max-call-seconds", type=float, default=20.0, help="skip a provider's larger "
                        "batches in a panel once one call took longer (default 20)")  # fmt: skip
    parser.add_argument("--contended-retries", type=int, default=2, help="CPU: time a cell (or a ceiling) "
                        "again, up to this often, while other processes keep cores busy; the least contended "
                        "timing is kept (default 2)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results",
                        help="output folder (default bench/results)")  # fmt: skip
    parser.add_argument("--name", help="file stem (default <device>-<date>)")
    parser.add_argument("--no-plot", action="store_true", help="write no PNG")
    parser.add_argument("--replot", type=Path, metavar="JSON", help="only redraw the PNG beside JSON (every "
                        "run in it) and print its last run's table")  # fmt: skip
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    defaults = dict(DEFAULTS["cuda" if device.type == "cuda" else "cpu"])
    if args.quick:
        defaults.update(DEFAULTS["quick"])
    for key in ("sizes", "batches", "dtypes", "train_batches", "repeats", "steps", "train_steps"):
        if getattr(args, key) is None:
            setattr(args, key, defaults.get(key, 30 if key == "steps" else None))
    args.device = device
    args.presets, args.sizes = _split(args.presets), _split(args.sizes)
    args.batches = [int(b) for b in _split(args.batches)]
    args.train_batches = [int(b) for b in _split(args.train_batches)]
    args.dtypes, args.kinds, args.providers = _split(args.dtypes), _split(args.kinds), _split(args.providers)
    for name in args.providers:
        if name not in PROVIDERS:
            parser.error(f"unknown provider {name!r}; known: {names}")
    for dtype in args.dtypes:
        if dtype not in DTYPES:
            parser.error(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
    for kind in args.kinds:
        if kind not in KINDS:
            parser.error(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
    return args


def _split(text: str) -> list[str]:
    return [item.strip() for item in str(text).split(",") if item.strip()]


def timed_call(setup: Setup, sampler: Sampler) -> Any:
    """What one timed call runs: the chain from x0 (pcd: the sampler's steps), or one learning iteration."""
    if setup.workload.kind in ("chain", *ENERGY_KINDS):
        return lambda: sampler.chain(setup.x0)
    assert setup.observed is not None
    return learning_iteration(sampler.chain, sampler.score, sampler.parameters, setup.x0, setup.observed)


def run_cell(provider: Provider, setup: Setup, args: argparse.Namespace) -> dict[str, Any]:
    """Build, warm up and time one provider on one setup; the figures that do not need the others."""
    device = setup.device
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    base = allocated(device)
    synchronize(device)
    start = time.perf_counter()
    build = provider.builder(setup.workload.kind)
    assert build is not None
    sampler = build(setup)
    synchronize(device)
    setup_s = time.perf_counter() - start
    try:
        call = timed_call(setup, sampler)
        start = time.perf_counter()
        call()
        synchronize(device)
        first_call_s = time.perf_counter() - start
        timing = measure(call, device, max(args.warmup - 1, 0), args.repeats, args.contended_retries)
        peak = peak_memory(call, device, base)
    finally:
        sampler.close()
    return {"timing": timing.to_dict(), "setup_s": setup_s, "first_call_s": first_call_s,
            "peak_memory_bytes": peak, "provider_notes": sampler.notes}  # fmt: skip


def figures(record: dict[str, Any], workload: Workload, ceilings: Ceilings) -> None:
    """Throughput, roofline fractions and time over floor, added to ``record``."""
    cost = workload_cost(workload)
    timing = record["timing"]
    bounds = floor(cost, ceilings)
    record.update(
        image_steps_per_s=workload.image_steps / timing["median_s"],
        image_steps_per_s_q10=workload.image_steps / timing["q90_s"],
        image_steps_per_s_q90=workload.image_steps / timing["q10_s"],
        cost=cost.to_dict(),
        achieved_flops_per_s=cost.flops / timing["median_s"],
        fraction_of_matrix_rate=cost.flops / timing["median_s"] / ceilings.matrix_flops_per_s,
        achieved_bytes_per_s=cost.bytes / timing["median_s"],
        floor=bounds,
        time_over_floor=timing["median_s"] / bounds["floor_s"],
    )


def add_ratios(records: list[dict[str, Any]]) -> None:
    """Each ok record's throughput over the best of the baseline providers (eager, compiled, torchebm)."""
    baselines = [r for r in records if r["status"] == "ok" and PROVIDERS[r["provider"]].baseline]
    if not baselines:
        return
    best = max(baselines, key=lambda r: r["image_steps_per_s"])
    for record in records:
        if record["status"] == "ok":
            record["best_baseline"] = best["provider"]
            record["ratio_to_best_baseline"] = record["image_steps_per_s"] / best["image_steps_per_s"]


def run_checks(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The numerical check on each preset and dtype at a small size (and on the small energy when the
    pcd kind runs); prints one line per provider."""
    setups: list[tuple[str, Setup]] = []
    if {"chain", "train"} & set(args.kinds):
        for preset in args.presets:
            size = min(min(resolve_size(preset, s) for s in args.sizes), CHECK_MAX_SIZE)
            for dtype in args.dtypes:
                setup = check_setup(preset, size, args.channels, dtype, args.device, CHECK_STEPS[args.device.type])
                setups.append((f"{preset} {size}px {dtype}", setup))
    if "pcd" in args.kinds:
        setups.append(("pcd", check_setup_pcd(args.device, CHECK_STEPS[args.device.type])))
    records = []
    for label, setup in setups:
        for result in check_providers(args.providers, setup):
            records.append(result.to_dict())
            verdict = "ok" if result.passed else "FAILED"
            print(f"check {label} {result.provider}: drift {result.drift_error:.1e} (tolerance "
                  f"{result.tolerance:.0e}), given noise {result.given_noise_error:.1e} (tolerance "
                  f"{result.given_noise_tolerance:.0e}), noise scale x{result.noise_scale_ratio:.3f}, against the "
                  f"{result.against}: {verdict}", flush=True)  # fmt: skip
    return records


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.replot is not None:
        print(report.table(json.loads(args.replot.read_text())["runs"][-1]["results"]))
        print(report.plot(args.replot, args.replot.with_suffix(".png")))
        return 0
    device = args.device
    if args.compile_mode:
        set_compile_mode(device.type, args.compile_mode)
    if args.cold_compile:
        inductor_config.force_disable_caches = True
    choice = args.dropin_compile or ("auto" if args.quick else "true")
    set_dropin_compile({"true": True, "false": False}.get(choice, "auto"))
    stem = args.name or f"{report.device_slug(device)}-{date.today().isoformat()}"
    json_path, png_path = args.out / f"{stem}.json", args.out / f"{stem}.png"
    config = {key: str(value) if isinstance(value, Path | torch.device) else value for key, value in vars(args).items()}
    run: dict[str, Any] = {"meta": report.environment(device), "config": config, "ceilings": {}, "checks": [],
                           "results": []}  # fmt: skip
    print(f"genconv bench on {run['meta']['device']} (torch {torch.__version__}); writing {json_path}", flush=True)
    if args.check or args.check_only:
        run["checks"] = run_checks(args)
        report.save_run(json_path, run)
        if not all(check["passed"] for check in run["checks"]):
            print("the numerical check failed: no timing", file=sys.stderr)
            return 1
        if args.check_only:
            return 0
    started = time.perf_counter()
    workloads = list(matrix(args.kinds, args.presets, args.sizes, args.batches, args.dtypes, args.steps,
                            args.channels, args.train_batches, args.train_steps, args.pcd_chains))  # fmt: skip
    ceilings: dict[str, Ceilings] = {}
    for dtype in sorted({w.dtype for w in workloads}):
        ceilings[dtype] = measure_ceilings(device, DTYPES[dtype], args.quick, args.contended_retries)
        run["ceilings"][dtype] = ceilings[dtype].to_dict()
        found = ceilings[dtype]
        print(f"ceilings {dtype}: {found.matrix_flops_per_s / 1e9:.1f} GFLOP/s ({found.matrix}), "
              f"{found.bandwidth_bytes_per_s / 1e9:.1f} GB/s ({found.copy})"
              + ("" if found.other_processes_cores is None else
                 f"; other processes kept {found.other_processes_cores:.2f} cores busy"), flush=True)  # fmt: skip
    too_slow: dict[tuple[str, str], str] = {}
    for workload in workloads:
        missing = setup_missing(workload)
        setup = None if missing else build_setup(workload, device)
        records = []
        for name in args.providers:
            record: dict[str, Any] = {"workload": workload.to_dict(), "label": workload.label, "group": workload.group,
                                      "provider": name, "status": "ok"}  # fmt: skip
            reason = missing or PROVIDERS[name].unavailable(device)
            if reason is None and PROVIDERS[name].builder(workload.kind) is None:
                only = "energy (pcd, conv)" if PROVIDERS[name].build is None else "GCN"
                reason = f"runs {only} workloads only, not {workload.kind}"
            if reason is None:
                reason = too_slow.get((workload.group, name))
            budget = args.budget_seconds
            if reason is None and budget is not None and time.perf_counter() - started > budget:
                reason = f"time budget of {budget:.0f} s spent"
            if reason is not None:
                record.update(status="skipped", note=reason)
            else:
                try:
                    record.update(run_cell(PROVIDERS[name], setup, args))
                    figures(record, workload, ceilings[workload.dtype])
                    if record["timing"]["median_s"] > args.max_call_seconds:
                        too_slow[(workload.group, name)] = (
                            f"batch {workload.batch} took {record['timing']['median_s']:.1f} s per call "
                            f"(> --max-call-seconds {args.max_call_seconds:g})"
                        )
                except torch.cuda.OutOfMemoryError as error:
                    record.update(status="oom", note=str(error).splitlines()[0])
                    too_slow[(workload.group, name)] = f"out of memory at batch {workload.batch}"
                except Exception as error:  # one broken cell must not lose the rest of a lease
                    record.update(status="failed", note=f"{type(error).__name__}: {str(error).splitlines()[0]}")
            _print_cell(record)
            records.append(record)
            run["results"].append(record)
            report.save_run(json_path, run)
        add_ratios(records)
        report.save_run(json_path, run)
        del setup
    run["meta"]["seconds"] = time.perf_counter() - started
    report.save_run(json_path, run)
    print()
    print(report.table(run["results"]))
    print(f"\njson: {json_path}")
    if not args.no_plot:
        print(report.plot(json_path, png_path))
    return 0


def _print_cell(record: dict[str, Any]) -> None:
    if record["status"] != "ok":
        note = record.get("note", "")
        print(f"{record['label']:<44} {record['provider']:<15} {record['status']}: {note}", flush=True)
        return
    print(f"{record['label']:<44} {record['provider']:<15} {record['image_steps_per_s']:>11.4g} img-steps/s  "
          f"setup {record['setup_s']:.2f} s  time/floor {record['time_over_floor']:.3g}", flush=True)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
