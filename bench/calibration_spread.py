"""How certain the calibrated model's predictions are: the constants refitted to bootstrap resamples of
the measured workloads, and a comparison of two kernel revisions' chain steps under each refit.

    python -m bench.calibration_spread --inputs bench/results/roofline-2026-12-04.json \\
        --measured bench/results/measured-nvidia-h200-2026-12-04.json \\
        --before bench/results/roofline-2026-12-04-calibrated-subpixel.json \\
        --after bench/results/roofline-2026-12-04-calibrated.json --fits 20

Each refit draws the measured workloads (preset, size, batch, dtype) with replacement and fits the
constants as ``bench.calibrate`` does. ``--before`` and ``--after`` are cost-model tables that record
their launches (any revision, any constants: only the launches are read); for each workload in both,
the table gives the step's predicted µs after / before under the full fit and the 10 %, 50 % and
90 % quantiles over the refits. A change whose whole interval sits on one side of 1 is predicted to
help (or hurt) whatever the resample; one whose interval straddles 1 is not decided by the data.
"""
# ruff: noqa: E402

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import random
import statistics
from collections import Counter
from typing import Any

from bench.calibrate import Workload, fit, load_inputs, load_measured, predicted_passes
from bench.cost_model import Constants, PassInput


def refits(
    inputs: dict[Workload, list[PassInput]], measured: dict[Workload, Any], count: int, seed: int = 0
) -> list[Constants]:
    """Constants fitted to ``count`` bootstrap resamples of the measured workloads."""
    rng = random.Random(seed)
    workloads = sorted(measured)
    return [fit(inputs, measured, weights=Counter(rng.choices(workloads, k=len(workloads)))) for _ in range(count)]


def step_us(launches: list[PassInput], c: Constants, gpu: str = "H200") -> float:
    """A workload's chain step (its conv passes), predicted with ``c``."""
    return sum(us for _, us in predicted_passes(launches, c, gpu))


def compare(
    before: dict[Workload, list[PassInput]], after: dict[Workload, list[PassInput]], full: Constants,
    fits: list[Constants],
) -> list[dict[str, Any]]:  # fmt: skip
    """Per workload in both tables: after / before under the full fit and its quantiles over ``fits``."""
    rows = []
    for workload in [w for w in before if w in after]:
        ratios = sorted(step_us(after[workload], c) / step_us(before[workload], c) for c in fits)
        deciles = statistics.quantiles(ratios, n=10) if len(ratios) > 1 else ratios * 9
        rows.append({"workload": f"{workload[0]} B={workload[1]} {workload[2]}",
                     "before_us": step_us(before[workload], full), "after_us": step_us(after[workload], full),
                     "ratio": step_us(after[workload], full) / step_us(before[workload], full),
                     "q10": deciles[0], "median": statistics.median(ratios), "q90": deciles[-1]})  # fmt: skip
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| workload | before µs | after µs | after / before | bootstrap 10 % | 50 % | 90 % |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['workload']} | {r['before_us']:.1f} | {r['after_us']:.1f} | {r['ratio']:.3f} | "
                     f"{r['q10']:.3f} | {r['median']:.3f} | {r['q90']:.3f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.calibration_spread", description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", type=Path, required=True, help="bench.cost_model's table of the measured kernels")
    parser.add_argument("--measured", type=Path, required=True, help="bench.measured_passes's JSON")
    parser.add_argument("--before", type=Path, required=True, help="a cost-model table with launches")
    parser.add_argument("--after", type=Path, required=True, help="another, of the revision to compare")
    parser.add_argument("--fits", type=int, default=20, help="bootstrap refits (default 20, about 10 s each)")
    parser.add_argument("--out", type=Path, help="JSON to write")
    args = parser.parse_args(argv)
    for flag in ("inputs", "measured", "before", "after"):
        if not getattr(args, flag).is_file():
            parser.error(f"--{flag}: expected a JSON file, got {getattr(args, flag)}")
    if args.fits < 2:
        parser.error(f"--fits: expected at least 2 refits, got {args.fits}")
    try:
        inputs, measured = load_inputs(args.inputs), load_measured(args.measured)
        before, after = load_inputs(args.before), load_inputs(args.after)
    except (ValueError, KeyError) as error:
        parser.error(f"--inputs/--measured/--before/--after: {error}")
    rows = compare(before, after, fit(inputs, measured), refits(inputs, measured, args.fits))
    print(markdown(rows))
    if args.out:
        meta = {key: str(getattr(args, key)) for key in ("inputs", "measured", "before", "after")}
        args.out.write_text(json.dumps({"schema": "genconv-calibration-spread/1", **meta, "fits": args.fits,
                                        "rows": rows}, indent=1) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
