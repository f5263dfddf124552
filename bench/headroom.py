"""Where a chain step's predicted time goes: the cost model re-run with its costs taken away one at a time.

    python -m bench.headroom bench/results/roofline-2026-12-05-flat.json     # -> headroom-<date>.json
    python -m bench.headroom TABLE --calibration bench/results/calibration-nvidia-h200-2026-12-04.json

Reads a table written by ``bench.cost_model`` (each launch's compiled loop mix, tile, grid and bytes;
nothing is compiled again) and prices every launch on a ladder of idealised kernels, each rung keeping
the one before's idealisations:

1. ``predicted``: the model as it is (assumed constants, or ``--calibration``'s);
2. ``no loop instructions``: the K-step's issue, integer and L1 terms at zero (the gather's addresses
   and masks, the loop's bookkeeping and the copies' instructions cost nothing);
3. ``no epilogue``: the code after the loop costs nothing (bias, activation, masks, the Langevin
   update and its noise, the stores);
4. ``no latency``: no round trip to fill each round's pipeline, no latency bound on a K-step, no
   launch time;
5. ``free shared memory``: the K-step takes only its tensor time (no operand reads or copy writes);
6. ``whole waves``: the executed MMA FLOPs spread evenly over the SMs at the dense peak (no partial
   last wave), or the launch's bytes at HBM bandwidth if longer;
7. ``no scratch traffic``: the same without the bytes beyond the compulsory ones (the patch form's
   patches, a split-K workspace).

What is left between rung 7 and the roofline is the tile padding (executed against useful FLOPs:
channels rounded up to the tile, zero taps, the image's fourth channel). Each rung's time, its
% of the roofline and the microseconds each idealisation removes are written per chain step; rung
1 equals the table's own prediction. A rung is a bound on what kernel work of that kind can buy
under the model, not a prediction of a kernel that exists.
"""
# ruff: noqa: E402

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import math
from dataclasses import replace
from datetime import date
from typing import Any

from bench.calibrate import pass_input
from bench.cost_model import (
    ASSUMED,
    BF16_FLOP_PER_CLOCK_SM,
    GPUS,
    TF32_FLOP_PER_CLOCK_SM,
    Constants,
    PassInput,
    clock_hz,
    load_constants,
    predict,
)

RUNGS = (
    "predicted",
    "no loop instructions",
    "no epilogue",
    "no latency",
    "free shared memory",
    "whole waves",
    "no scratch traffic",
)


def without_loop_instructions(p: PassInput) -> PassInput:
    """The pass with a K-step that issues nothing but its MMAs: no issue, integer or L1 terms."""
    mix = replace(p.mix, instructions=0, counts={**p.mix.counts, "int_alu": 0}, loop_copy_widths={})
    return replace(p, mix=mix)


def without_epilogue(c: Constants) -> Constants:
    """Constants under which the code after the loop costs nothing."""
    return replace(c, epilogue_cpi=0.0, narrow_epilogue_cycles=0.0, scatter_epilogue_cycles=0.0)


def without_latency(c: Constants) -> Constants:
    """Constants with no pipeline fill, latency bound or launch time."""
    return replace(c, latency=0.0, launch_us=0.0)


def whole_waves_us(p: PassInput, gpu: str, scratch: bool = True) -> float:
    """The executed MMA FLOPs at the dense peak over every SM, or the bytes (with the scratch bytes, or
    without) at HBM bandwidth if longer, in µs."""
    spec = GPUS[gpu]
    per_clock = BF16_FLOP_PER_CLOCK_SM if p.dot == "bf16" else TF32_FLOP_PER_CLOCK_SM
    executed = p.grid * p.k_steps * p.warps * p.mix.mma_flops_per_warp
    compute = executed / (per_clock * spec["sms"] * clock_hz(gpu))
    return 1e6 * max(compute, (p.bytes + (p.extra_bytes if scratch else 0.0)) / spec["hbm_bytes_per_s"])


def ladder_us(p: PassInput, gpu: str = "H200", c: Constants = ASSUMED) -> dict[str, float]:
    """One launch's predicted µs on every rung (``RUNGS``)."""
    bare = without_loop_instructions(p)
    quiet = without_epilogue(c)
    prompt = without_latency(quiet)
    unwaited = replace(bare, mix=replace(bare.mix, waits_all_wgmma=False))  # a full wgmma wait is latency
    return {
        "predicted": predict(p, gpu, c).predicted_us,
        "no loop instructions": predict(bare, gpu, c).predicted_us,
        "no epilogue": predict(bare, gpu, quiet).predicted_us,
        "no latency": predict(unwaited, gpu, prompt).predicted_us,
        "free shared memory": predict(unwaited, gpu, replace(prompt, shared_bytes_per_clock=math.inf)).predicted_us,
        "whole waves": whole_waves_us(p, gpu),
        "no scratch traffic": whole_waves_us(p, gpu, scratch=False),
    }


def step_ladder(result: dict[str, Any], c: Constants = ASSUMED) -> dict[str, Any]:
    """A table row's chain step on every rung: µs, % of its roofline, and what each rung removed."""
    totals = dict.fromkeys(RUNGS, 0.0)
    for row in result["launches"]:
        for rung, us in ladder_us(pass_input(row), result["gpu"], c).items():
            totals[rung] += us
    floor = result["step"]["floor_us"]
    removed = {later: totals[earlier] - totals[later] for earlier, later in zip(RUNGS, RUNGS[1:], strict=False)}
    return {"workload": result["workload"], "batch": result["batch"], "dtype": result["dtype"], "floor_us": floor,
            "us": totals, "roofline_pct": {rung: 100.0 * floor / us for rung, us in totals.items()},
            "removed_us": {**removed, "padding": totals["no scratch traffic"] - floor}}  # fmt: skip


def markdown(rows: list[dict[str, Any]]) -> str:
    """% of the roofline on every rung, then the µs each idealisation removes."""
    head = "| workload | batch | dtype | " + " | ".join(f"% {rung}" for rung in RUNGS) + " |"
    lines = [head, "|" + "---|" * (3 + len(RUNGS))]
    for r in rows:
        cells = [r["workload"], r["batch"], r["dtype"], *(f"{r['roofline_pct'][rung]:.1f}" for rung in RUNGS)]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    parts = [*RUNGS[1:], "padding"]
    lines += ["", "| workload | batch | dtype | predicted µs | " + " | ".join(f"-{p} µs" for p in parts)
              + " | floor µs |", "|" + "---|" * (5 + len(parts))]  # fmt: skip
    for r in rows:
        cells = [r["workload"], r["batch"], r["dtype"], f"{r['us']['predicted']:.1f}",
                 *(f"{r['removed_us'][p]:.1f}" for p in parts), f"{r['floor_us']:.1f}"]  # fmt: skip
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.headroom", description=__doc__.split("\n")[0])
    parser.add_argument("table", type=Path, help="a table written by bench.cost_model (its launches' inputs)")
    parser.add_argument("--calibration", type=Path, help="constants fitted by bench.calibrate (default: assumed)")
    parser.add_argument("--out", type=Path, help="JSON to write (default bench/results/headroom-<date>.json)")
    args = parser.parse_args(argv)
    for name, path in (("table", args.table), ("--calibration", args.calibration)):
        if path is not None and not path.is_file():
            parser.error(f"{name}: expected a JSON file, got {path}")
    try:
        results = json.loads(args.table.read_text())["results"]
        launches = [r["launches"] for r in results]
    except (ValueError, KeyError, TypeError):
        parser.error(f"table: expected a table written by bench.cost_model, got {args.table}")
    if not all(launches):
        parser.error(f"table: {args.table} has no launch inputs (written before bench.cost_model recorded them)")
    constants = load_constants(args.calibration) if args.calibration else ASSUMED
    rows = [step_ladder(r, constants) for r in results]
    out = args.out or Path(__file__).resolve().parent / "results" / f"headroom-{date.today().isoformat()}.json"
    meta = {"table": str(args.table), "calibration": str(args.calibration) if args.calibration else None,
            "rungs": list(RUNGS), "constants": constants.to_dict()}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"schema": "genconv-headroom/1", "meta": meta, "steps": rows}, indent=1) + "\n")
    print(markdown(rows))
    print(f"\njson: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
