"""Every tile the autotuner may try for each pass of a chain step, ranked by the (calibrated) cost model.

    python -m bench.tile_search --calibration bench/results/calibration-nvidia-h200-2026-12-04.json
    python -m bench.tile_search --workloads "object@100:256" --dtypes bfloat16

For each pass of each workload, every config ``prune_configs`` leaves for the launch is compiled for
sm_90 (``bench.cost_model.Compiler``), variants that spill registers are dropped (the model has no
term for local memory), and each is predicted with the constants of ``--calibration`` (the assumed ones
without it). The table gives the heuristic's tile and time and the best tile and time per pass, and
the step as the heuristic runs it against every pass on its best tile: what a model-driven choice of
tiles could gain before any kernel changes. Each candidate runs with the split-K the launcher would
give it (``implicit_gemm.split_count`` of its own programs and K-steps: a tile with fewer programs
may split where the heuristic's does not, and the other way round), its sum launch priced with it;
a sub-pixel phase after the first and a fold keep the heuristic's tile.
"""
# ruff: noqa: E402

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
from dataclasses import replace
from typing import Any

import torch
import triton

from bench.cost_model import (
    CHAIN_DOT,
    DTYPES,
    FOLD_KERNEL,
    Compiler,
    Constants,
    _jit_function,
    add_workload_arguments,
    conv_launches,
    each_case,
    geometry,
    grid_size,
    kernel_name,
    launch_input,
    patch_storages,
    predict,
    record_step,
    workload_arguments,
    workload_passes,
)
from genconv.kernels.implicit_gemm import SUM_TILE, k_steps, split_count


def tile_label(config: triton.Config) -> str:
    k = config.kwargs
    return f"{k['BLOCK_M']}x{k['BLOCK_N']}x{k['BLOCK_K']} w{config.num_warps} s{config.num_stages}" + (
        " swap" if k.get("SWAP") else ""
    )


def with_split(launch: Any, split: int, summing: bool = False) -> Any:
    """``launch`` as its launcher issues it with ``split`` runs: unsplit (``split`` 1), the runs (a
    workspace of ``split`` x rows x columns float32), or with ``summing`` the launch that adds them."""
    g = geometry(launch)
    if split > 1:
        workspace = torch.empty((split, g["rows"], g["columns"]), dtype=torch.float32)
    else:  # the launchers pass a tensor the kernel already takes
        workspace = g["named"]["partial_ptr" if g["forward"] else "counter_ptr"]
    args = list(launch.args)
    args[_jit_function(launch.kernel).arg_names.index("ws_ptr")] = workspace
    phase = 2 if summing else 1 if split > 1 else 0
    tiles = {"configs": [SUM_TILE], "heuristic": SUM_TILE} if summing else {}
    return replace(launch, args=tuple(args), kwargs={**launch.kwargs, "SPLIT": split, "SPLIT_PHASE": phase}, **tiles)


def own_split(launch: Any, config: triton.Config) -> int:
    """The split-K the launcher gives ``launch`` (a conv pass, unsplit or the runs) run with ``config``."""
    g = geometry(with_split(launch, 1))
    programs = grid_size(g, config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"])
    return split_count(programs, k_steps(g["channels"], g["kh"], g["kw"], config.kwargs["BLOCK_K"], not g["forward"]))


def price(
    launch: Any, name: str, useful: float, config: triton.Config, compiler: Compiler, chain_dot: str,
    scratch: frozenset[int], c: Constants, spilling: bool = True,
) -> tuple[float, int] | None:  # fmt: skip
    """µs of a conv pass run with ``config`` and its own split (the runs and their sum), and the split;
    None where the sm_90 variant spills registers (ptxas's spill stores or loads) and ``spilling`` is
    False (the model has no term for local memory)."""
    split = own_split(launch, config)
    runs = with_split(launch, split)
    if not spilling and compiler.spill_bytes(runs, config) > 0:
        return None
    us = predict(launch_input(runs, name, False, useful, config, compiler, chain_dot, scratch), c=c).predicted_us
    if split > 1:
        total = with_split(launch, split, summing=True)
        us += predict(launch_input(total, name, True, 0.0, SUM_TILE, compiler, chain_dot, scratch), c=c).predicted_us
    return us, split


def search_step(preset: str, size: int, batch: int, dtype: str, compiler: Compiler, c: Constants) -> list[dict]:
    """Per pass: the heuristic's tile and µs (its split-K sum included), every candidate's, and the best."""
    launches = conv_launches(record_step(preset, size, batch, DTYPES[dtype]))
    chain_dot = CHAIN_DOT[dtype]
    scratch = patch_storages(launches)
    rows: list[dict] = []
    searched = False  # whether the launch before was a pass the search priced (its candidates hold their sums)
    for launch, p in zip(launches, workload_passes(launches, compiler, chain_dot), strict=True):
        heuristic = predict(p, c=c).predicted_us
        if p.split_sum and rows:  # a fold, a later sub-pixel phase, or a split-K sum: part of its pass
            if not (searched and kernel_name(launch) != FOLD_KERNEL and geometry(launch)["phase"] == 2):
                last = rows[-1]
                last["candidates"] = {tile: us + heuristic for tile, us in last["candidates"].items()}
                last["best_us"] += heuristic
            rows[-1]["heuristic_us"] += heuristic
            searched = False
            continue
        searched = True
        label = tile_label(launch.heuristic)
        candidates, splits = {}, {}
        for config in [launch.heuristic, *launch.configs]:
            tile = tile_label(config)
            if tile in candidates:
                continue
            priced = price(launch, p.name, p.useful_flops, config, compiler, chain_dot, scratch, c,
                           spilling=config is launch.heuristic)  # fmt: skip
            if priced is not None:
                candidates[tile], splits[tile] = priced
        best = min(candidates, key=candidates.get)
        rows.append({"pass": p.name, "heuristic": label, "heuristic_us": heuristic, "best": best,
                     "best_us": candidates[best], "candidates": candidates, "splits": splits})  # fmt: skip
    return rows


def with_split_label(p: dict[str, Any], tile: str) -> str:
    """``tile`` with its split-K where it has one (``split 2``)."""
    split = p.get("splits", {}).get(tile, 1)
    return f"{tile} split {split}" if split > 1 else tile


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| workload | batch | dtype | pass | heuristic tile | µs | best tile | µs | gain |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        for p in [*r["passes"], {"pass": "step", "heuristic": "", "best": "", **r["step"]}]:
            lines.append(f"| {r['workload']} | {r['batch']} | {r['dtype']} | {p['pass']} | "
                         f"{with_split_label(p, p['heuristic'])} | {p['heuristic_us']:.1f} | "
                         f"{with_split_label(p, p['best'])} | {p['best_us']:.1f} | "
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
