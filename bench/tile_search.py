"""Every tile the autotuner may try for each pass of a chain step, ranked by the (calibrated) cost model.

    python -m bench.tile_search --calibration bench/results/calibration-nvidia-h200-2026-12-04.json
    python -m bench.tile_search --workloads "object@100:256" --dtypes bfloat16

For each pass of each workload, every config ``prune_configs`` leaves for the launch is compiled for
sm_90 (``bench.cost_model.Compiler``), variants that spill registers are dropped (the model has no
term for local memory), and each is predicted with the constants of ``--calibration`` (the assumed ones
without it). The table gives the heuristic's tile and time and the best tile and time per pass, and
the step as the heuristic runs it against every pass on its best tile: what a model-driven choice of
tiles could gain before any kernel changes. Split-K passes (small batches) are left at the
heuristic's tile, whose split they were recorded with.
"""
# ruff: noqa: E402

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
from typing import Any

import triton

from bench.cost_model import (
    CHAIN_DOT,
    DTYPES,
    Compiler,
    Constants,
    add_workload_arguments,
    conv_launches,
    each_case,
    launch_input,
    patch_storages,
    predict,
    record_step,
    workload_arguments,
    workload_passes,
)


def tile_label(config: triton.Config) -> str:
    k = config.kwargs
    return f"{k['BLOCK_M']}x{k['BLOCK_N']}x{k['BLOCK_K']} w{config.num_warps} s{config.num_stages}" + (
        " swap" if k.get("SWAP") else ""
    )


def spills(compiler: Compiler, launch: Any, config: triton.Config) -> bool:
    """Whether the sm_90 variant spills registers (ptxas's spill stores or loads)."""
    return compiler.spill_bytes(launch, config) > 0


def search_step(preset: str, size: int, batch: int, dtype: str, compiler: Compiler, c: Constants) -> list[dict]:
    """Per pass: the heuristic's tile and µs, every candidate's, and the best."""
    launches = conv_launches(record_step(preset, size, batch, DTYPES[dtype]))
    chain_dot = CHAIN_DOT[dtype]
    scratch = patch_storages(launches)
    rows: list[dict] = []
    for launch, p in zip(launches, workload_passes(launches, compiler, chain_dot), strict=True):
        heuristic = predict(p, c=c).predicted_us
        if p.split_sum and rows:  # a split-K sum or a fold: part of its pass, whichever tile the pass takes
            last = rows[-1]
            last["candidates"] = {tile: us + heuristic for tile, us in last["candidates"].items()}
            last["heuristic_us"] += heuristic
            last["best_us"] += heuristic
            continue
        candidates = {tile_label(launch.heuristic): heuristic}
        if p.split == 1:
            for config in launch.configs:
                if tile_label(config) not in candidates and not spills(compiler, launch, config):
                    tiled = launch_input(launch, p.name, False, p.useful_flops, config, compiler, chain_dot, scratch)
                    candidates[tile_label(config)] = predict(tiled, c=c).predicted_us
        best = min(candidates, key=candidates.get)
        rows.append({"pass": p.name, "heuristic": tile_label(launch.heuristic), "heuristic_us": heuristic,
                     "best": best, "best_us": candidates[best], "candidates": candidates})  # fmt: skip
    return rows


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| workload | batch | dtype | pass | heuristic tile | µs | best tile | µs | gain |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        for p in [*r["passes"], {"pass": "step", "heuristic": "", "best": "", **r["step"]}]:
            lines.append(f"| {r['workload']} | {r['batch']} | {r['dtype']} | {p['pass']} | {p['heuristic']} | "
                         f"{p['heuristic_us']:.1f} | {p['best']} | {p['best_us']:.1f} | "
                         f"{p['heuristic_us'] / p['best_us']:.2f}x |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tile_search", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="JSON to write")
    add_workload_arguments(parser)
    args = parser.parse_args(argv)
    workloads, dtypes, constants = workload_arguments(parser, args)
    compiler = Compiler()
    results = []
    for workload, preset, size, dtype, batch in each_case(workloads, dtypes):
        passes = search_step(preset, size, batch, dtype, compiler, constants)
        step = {key: sum(p[key] for p in passes) for key in ("heuristic_us", "best_us")}
        results.append({"workload": workload, "batch": batch, "dtype": dtype, "passes": passes, "step": step})
        print(f"{workload} B={batch} {dtype}: heuristic {step['heuristic_us']:.1f} us, best tiles "
              f"{step['best_us']:.1f} us", flush=True)  # fmt: skip
    print(markdown(results))
    if args.out:
        meta = {"calibration": str(args.calibration) if args.calibration else None, "constants": constants.to_dict(),
                "triton": triton.__version__}  # fmt: skip
        args.out.write_text(json.dumps({"schema": "genconv-tile-search/1", "meta": meta, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
