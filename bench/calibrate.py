"""The cost model's unpublished constants fitted to a GPU's measured passes.

    python -m bench.calibrate --inputs bench/results/roofline-2026-12-04.json \\
        --measured bench/results/measured-nvidia-h200-2026-12-04.json \\
        --out bench/results/calibration-nvidia-h200-2026-12-04.json
    python -m bench.cost_model --calibration bench/results/calibration-nvidia-h200-2026-12-04.json

``--inputs`` is a table written by ``bench.cost_model`` for the kernels that were measured (each
launch's compiled loop mix, tile, grid and bytes); ``--measured`` the same workloads timed per pass by
``bench.measured_passes``. The fit keeps the model's form and its published figures (tensor and
HBM peaks, SM limits) and searches the constants no datasheet gives (``cost_model.Constants``):
shared-memory bytes per clock, the global round trip, cycles per loop instruction and per epilogue
instruction, the L1 cost of a narrow loop copy (4 and 8 bytes a lane) and of a narrow epilogue access
(dense, or in a strided pass's sub-pixel scatter), and a fixed time per launch. It minimises the mean
squared log of measured / predicted over every pass, by coordinate search on log grids within
physical bounds from several starting points. Cross-validation (fit without one workload, or without
one preset, and predict what was left out) says how far the fitted model can be trusted on kernels
it was not fitted to: its held-out error, not the in-sample one, is the figure to quote. The
constants are not each identified by the data (different starts reach the same loss with different
values); the predictions are what the errors validate.
"""
# ruff: noqa: E402

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import math
import random
import statistics
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any

from bench import sass
from bench.cost_model import ASSUMED, Constants, PassInput, merge_launches, predict

# The searched constants and their physical bounds.
BOUNDS: dict[str, tuple[float, float]] = {
    "shared_bytes_per_clock": (16.0, 256.0),  # the H100 whitepaper's 128 B/clk per SM at most twice over
    "latency": (200.0, 4000.0),  # cycles: an L2 hit to an HBM miss under load
    "issue_cpi": (1.0, 8.0),  # cycles per loop instruction per warp on an SMSP: 1 = no stalls
    "epilogue_cpi": (0.5, 40.0),
    "copy4_cycles": (0.01, 64.0),  # a 32-lane copy of 4 B a lane: 1 to 32 sectors
    "copy8_cycles": (0.01, 64.0),
    "narrow_epilogue_cycles": (0.01, 2000.0),  # an uncoalesced access, up to a global round trip
    "scatter_epilogue_cycles": (0.01, 2000.0),
    "launch_us": (0.01, 10.0),
}
Workload = tuple[str, int, str]  # workload, batch, dtype


def pass_input(row: dict[str, Any]) -> PassInput:
    """A launch's input as ``bench.cost_model`` wrote it (JSON's string keys back to widths)."""
    mix = dict(row["mix"])
    for widths in ("loop_copy_widths", "epilogue_access_widths"):
        mix[widths] = {int(width): count for width, count in mix[widths].items()}
    return PassInput(**{**row, "mix": sass.LoopMix(**mix)})


def load_inputs(path: Path) -> dict[Workload, list[PassInput]]:
    results = json.loads(path.read_text())["results"]
    if not all("launches" in r for r in results):
        raise ValueError(f"{path} has no launch inputs: write it with a bench.cost_model that records them")
    return {(r["workload"], r["batch"], r["dtype"]): [pass_input(p) for p in r["launches"]] for r in results}


def load_measured(path: Path) -> dict[Workload, list[tuple[str, float]]]:
    """Each workload's passes: name and median measured µs."""
    results = json.loads(path.read_text())["results"]
    return {(r["workload"], r["batch"], r["dtype"]): [(p["name"], p["median_us"]) for p in r["passes"]]
            for r in results}  # fmt: skip


def predicted_passes(launches: list[PassInput], c: Constants, gpu: str) -> list[tuple[str, float]]:
    return [(p.name, p.predicted_us) for p in merge_launches(launches, [predict(p, gpu, c) for p in launches], gpu)]


def pairs(
    inputs: dict[Workload, list[PassInput]], measured: dict[Workload, list[tuple[str, float]]], c: Constants, gpu: str
) -> list[tuple[Workload, str, float, float]]:
    """(workload, pass, measured µs, predicted µs) for every measured pass the inputs describe."""
    rows = []
    for workload, passes in measured.items():
        if workload not in inputs:
            continue
        predicted = predicted_passes(inputs[workload], c, gpu)
        if [name for name, _ in predicted] != [name for name, _ in passes]:
            raise ValueError(f"{workload}: the measured passes are not the passes the inputs describe")
        rows += [(workload, name, us, guess) for (name, us), (_, guess) in zip(passes, predicted, strict=True)]
    return rows


def loss(rows: list[tuple[Workload, str, float, float]], weights: dict[Workload, int] | None = None) -> float:
    """Mean squared log of measured / predicted (each workload's passes counted ``weights[workload]``
    times: a bootstrap resample)."""
    if weights is None:
        return statistics.fmean(math.log(measured / predicted) ** 2 for _, _, measured, predicted in rows)
    total = sum(weights[w] * math.log(measured / predicted) ** 2 for w, _, measured, predicted in rows)
    return total / sum(weights[w] for w, _, _, _ in rows)


def fit(
    inputs: dict[Workload, list[PassInput]],
    measured: dict[Workload, list[tuple[str, float]]],
    gpu: str = "H200",
    starts: int = 6,
    sweeps: int = 8,
    seed: int = 0,
    weights: dict[Workload, int] | None = None,
) -> Constants:
    """The constants within ``BOUNDS`` that minimise ``loss``: coordinate search from the assumed
    constants and from ``starts`` - 1 points drawn log-uniformly within the bounds (the loss is a sum of
    maxima, so a search from one point can stall), the best of them kept. ``weights``: how many times
    each workload counts (a bootstrap resample; workloads absent from it are left out)."""
    if weights is not None:
        measured = {w: passes for w, passes in measured.items() if weights.get(w, 0)}

    def objective(c: Constants) -> float:
        return loss(pairs(inputs, measured, c, gpu), weights)

    rng = random.Random(seed)
    first = replace(ASSUMED, **{name: min(max(getattr(ASSUMED, name), lo), hi) for name, (lo, hi) in BOUNDS.items()})
    points = [first] + [
        replace(ASSUMED, **{name: lo * (hi / lo) ** rng.random() for name, (lo, hi) in BOUNDS.items()})
        for _ in range(starts - 1)
    ]
    return min((coordinate_search(objective, point, sweeps) for point in points), key=lambda fit: fit[1])[0]


def coordinate_search(
    objective: Callable[[Constants], float], start: Constants, sweeps: int
) -> tuple[Constants, float]:
    """One constant at a time: two sweeps over each bound's whole range on a log grid (17 points), then
    around the best with a step that halves (in log) each sweep."""
    best, best_loss = start, objective(start)
    for sweep in range(sweeps):
        for name, (lo, hi) in BOUNDS.items():
            if sweep < 2:
                grid = [lo * (hi / lo) ** (i / 16) for i in range(17)]
            else:
                here, factor = getattr(best, name), 2.0 ** (0.5 ** (sweep - 2))
                grid = [min(max(here * factor**k, lo), hi) for k in (-2, -1, 1, 2)]
            for value in grid:
                candidate = replace(best, **{name: value})
                value_loss = objective(candidate)
                if value_loss < best_loss:
                    best, best_loss = candidate, value_loss
    return best, best_loss


def errors(rows: list[tuple[Workload, str, float, float]]) -> dict[str, float]:
    """measured / predicted over the passes: median, 10 % / 90 % quantiles, extremes, and the median
    factor either way (|log|)."""
    ratios = sorted(measured / predicted for _, _, measured, predicted in rows)
    deciles = statistics.quantiles(ratios, n=10)
    off = [math.exp(abs(math.log(r))) for r in ratios]
    return {"passes": len(ratios), "median": statistics.median(ratios), "q10": deciles[0], "q90": deciles[-1],
            "min": ratios[0], "max": ratios[-1], "median_factor": statistics.median(off), "max_factor": max(off),
            "within_25pct": sum(f <= 1.25 for f in off) / len(off)}  # fmt: skip


def steps(rows: list[tuple[Workload, str, float, float]]) -> list[tuple[Workload, str, float, float]]:
    """The rows summed per workload: its chain step's conv passes."""
    totals: dict[Workload, list[float]] = {}
    for workload, _, measured, predicted in rows:
        total = totals.setdefault(workload, [0.0, 0.0])
        total[0] += measured
        total[1] += predicted
    return [(workload, "step", measured, predicted) for workload, (measured, predicted) in totals.items()]


def cross_validate(
    inputs: dict[Workload, list[PassInput]],
    measured: dict[Workload, list[tuple[str, float]]],
    gpu: str,
    group: Callable[[Workload], Any],
) -> list[tuple[Workload, str, float, float]]:
    """Each group's passes predicted by constants fitted to the other groups' (``group`` maps a
    workload to its group: itself, or its preset and size)."""
    rows = []
    for held_out in sorted({group(w) for w in measured}, key=str):
        others = {w: passes for w, passes in measured.items() if group(w) != held_out}
        c = fit(inputs, others, gpu)
        rows += pairs(inputs, {w: passes for w, passes in measured.items() if group(w) == held_out}, c, gpu)
    return rows


def calibrate(inputs_path: Path, measured_path: Path, gpu: str = "H200", folds: bool = True) -> dict[str, Any]:
    """The fitted constants, the errors of the assumed and fitted models (per pass and per step) and,
    with ``folds``, of held-out fits: leaving out one workload (preset, size, batch, dtype) at a time,
    and one preset (all its batches and dtypes) at a time."""
    inputs, measured = load_inputs(inputs_path), load_measured(measured_path)
    fitted = fit(inputs, measured, gpu)
    assumed_rows, fitted_rows = pairs(inputs, measured, ASSUMED, gpu), pairs(inputs, measured, fitted, gpu)
    report: dict[str, Any] = {
        "constants": fitted.to_dict(),
        "assumed": ASSUMED.to_dict(),
        "bounds": BOUNDS,
        "errors": {"assumed": errors(assumed_rows), "fitted": errors(fitted_rows)},
        "step_errors": {"assumed": errors(steps(assumed_rows)), "fitted": errors(steps(fitted_rows))},
        "passes": [{"workload": f"{w[0]} B={w[1]} {w[2]}", "pass": name, "measured_us": us,
                    "assumed_us": before, "fitted_us": after}
                   for (w, name, us, before), (_, _, _, after) in zip(assumed_rows, fitted_rows, strict=True)],
    }  # fmt: skip
    if folds:
        for label, group in (("held_out_workload", lambda w: w), ("held_out_preset", lambda w: w[0])):
            rows = cross_validate(inputs, measured, gpu, group)
            report["errors"][label], report["step_errors"][label] = errors(rows), errors(steps(rows))
    return report


def summary(report: dict[str, Any]) -> str:
    lines = ["| constant | assumed | fitted |", "|---|---|---|"]
    for name, value in report["constants"].items():
        lines.append(f"| {name} | {report['assumed'][name]:g} | {value:.3g} |")
    for key, title in (("errors", "per pass"), ("step_errors", "per chain step")):
        lines += ["", f"| measured / predicted, {title} | n | median | 10-90 % | range | median factor off | "
                  "within 25 % |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for label, e in report[key].items():
            lines.append(f"| {label.replace('_', ' ')} | {e['passes']} | {e['median']:.2f} | {e['q10']:.2f}-"
                         f"{e['q90']:.2f} | {e['min']:.2f}-{e['max']:.2f} | {e['median_factor']:.2f} | "
                         f"{100 * e['within_25pct']:.0f} % |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.calibrate", description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", type=Path, required=True, help="bench.cost_model's table of the measured kernels")
    parser.add_argument("--measured", type=Path, required=True, help="bench.measured_passes's JSON")
    parser.add_argument("--out", type=Path, help="JSON to write (default bench/results/calibration-<date>.json)")
    parser.add_argument("--no-cross-validation", action="store_true", help="skip the leave-one-workload-out fits")
    args = parser.parse_args(argv)
    for flag, path in (("--inputs", args.inputs), ("--measured", args.measured)):
        if not path.is_file():
            parser.error(f"{flag}: expected a JSON file, got {path}")
    try:
        report = calibrate(args.inputs, args.measured, folds=not args.no_cross_validation)
    except (ValueError, KeyError) as error:
        parser.error(f"--inputs/--measured: {error}")
    meta = json.loads(args.measured.read_text())["meta"]
    report = {"schema": "genconv-calibration/1", "inputs": str(args.inputs), "measured": str(args.measured),
              "device": meta.get("device"), "measured_git_sha": meta.get("git_sha"), **report}  # fmt: skip
    out = args.out or Path(__file__).resolve().parent / "results" / f"calibration-{date.today().isoformat()}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(summary(report))
    print(f"\njson: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
