"""Each layer pass of a Langevin chain step timed on the GPU, beside the cost model's prediction.

    python -m bench.measured_passes --predicted bench/results/roofline-2026-12-04.json --out DIR
    python -m bench.measured_passes --table bench/results/measured-nvidia-h200-2026-12-04.json

For every workload of the predicted table (preset, size, batch, dtype), a chain runs on the CUDA
device on genconv's kernels for every pass (``GENCONV_CONV=triton``: the backend's chooser would run
cuDNN for some) with the tiles the shape heuristic picks (``GENCONV_AUTOTUNE=0``), which is what the
cost model describes. After a warm-up step, ``--steps`` steps run under ``torch.profiler``; each conv kernel's
device time (CUPTI, from the profiler's trace) is matched in launch order to the step's recorded
launches and named as the cost model names them (a split-K pass's summing launch added to its
pass). Every kernel of the step is counted too, so the figure beside the conv passes says what the
rest (the fc top, pooling, the update's torch ops) costs. Kernels are compiled first in parallel
worker processes (``--jobs``; Triton's disk cache then serves the timed process).

``--ab NAME=VALUE`` (repeatable) times every workload again with that environment variable set, in
the same run, once every workload has been measured (so a spent ``--budget-seconds`` loses switched
columns, not workloads): ``GENCONV_K_MAJOR=0``, ``GENCONV_PHASE_MAJOR=0`` and ``GENCONV_PATCH_FOLD=0`` bring back the
weight layout, the column order and the image layer's top-down form the kernels had before the H200
measurements, so one GPU run says what each change did (``GENCONV_PHASE_SPLIT=0`` one launch over all sub-pixel phases,
``GENCONV_HOPPER_TILES=0`` the tiles GPUs before Hopper take, ``GENCONV_FLAT_K=0`` taps x
channel blocks for the 5x5 layers over 100 channels). A switch may change the
launches (the patch form's fold, the phases' launches): each run is matched to its own, and per pass
only where the passes line up.

Writes ``measured-<gpu>-<date>.json`` after every workload (a time limit loses none that finished):
per pass the median measured µs (and the 10 % / 90 % quantiles over the steps), the predicted µs,
measured / predicted, and the measured % of roofline (the predicted floor over the measured time).
"""
# ruff: noqa: E402

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from typing import Any
from unittest import mock

import torch

from bench import report
from bench.cost_model import DTYPES, PASS_KERNELS, conv_launches, pass_labels, record_step

Workload = tuple[str, int, int, str]  # preset, image size, batch, dtype


def chain_for(workload: Workload, device: torch.device) -> tuple[Any, torch.Tensor]:
    """The workload's model (initial weights) and chains drawn from N(0, 20^2) at its dtype."""
    from genconv.engine.langevin import init_chains
    from genconv.engine.model import GenerativeConvNet
    from genconv.engine.presets import network_for

    preset, size, batch, dtype = workload
    model = GenerativeConvNet(network_for(preset, 3, size), init_seed=0).to(device)
    x = init_chains("noise", batch, (3, size, size), sigma=20.0, seed=1, device=device, dtype=DTYPES[dtype])
    return model, x


def run_steps(model: Any, x: torch.Tensor, steps: int) -> None:
    """``steps`` Langevin steps on the kernels, eagerly (no CUDA graph: the profiler sees each launch)."""
    from genconv.bindings.triton_backend import TRITON_BACKEND
    from genconv.engine.langevin import langevin

    langevin(model, x, steps=steps, delta=0.1, seed=0, backend=TRITON_BACKEND, cuda_graph=False, check_finite=False)


def warm(workloads: list[Workload], switches: tuple[str, ...] = ()) -> float:
    """Compile the kernels of ``workloads`` into Triton's cache, one step each as they are and under
    each A/B switch (``NAME=VALUE``); seconds taken."""
    start = time.perf_counter()
    device = torch.device("cuda")
    for workload in workloads:
        model, x = chain_for(workload, device)
        run_steps(model, x, 1)
        for switch in switches:
            with _switched(switch):
                run_steps(model, x, 1)
    torch.cuda.synchronize()
    return time.perf_counter() - start


def _switched(switch: str) -> Any:
    """The environment variable of an A/B switch ``NAME=VALUE`` set for a ``with`` block."""
    name, _, value = switch.partition("=")
    return mock.patch.dict(os.environ, {name: value})


def kernel_times(model: Any, x: torch.Tensor, steps: int) -> list[dict[str, Any]]:
    """The device kernels of ``steps`` chain steps in launch order: name and µs (the profiler's trace)."""
    from torch.profiler import ProfilerActivity, profile

    run_steps(model, x, 1)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        run_steps(model, x, steps)
        torch.cuda.synchronize()
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "trace.json"
        profiler.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    kernels = [e for e in events if e.get("cat") == "kernel"]
    kernels.sort(key=lambda e: e["ts"])
    return [{"name": e["name"], "us": float(e["dur"])} for e in kernels]


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_us": statistics.median(ordered), "q10_us": ordered[len(ordered) // 10],
            "q90_us": ordered[(9 * len(ordered)) // 10]}  # fmt: skip


def per_pass_times(
    kernels: list[dict[str, Any]], labels: list[tuple[str, bool]], steps: int
) -> tuple[list[str], list[list[float]]] | str:
    """Each pass's µs per step (a split-K pass's two launches added), or why the kernels do not fit."""
    convs = [k for k in kernels if any(name in k["name"] for name in PASS_KERNELS)]
    if len(convs) != steps * len(labels):
        return f"{len(convs)} conv kernels in {steps} steps, expected {len(labels)} per step"
    per_pass: list[list[float]] = []
    names: list[str] = []
    for index, (name, summing) in enumerate(labels):
        times = [convs[step * len(labels) + index]["us"] for step in range(steps)]
        if summing and per_pass:
            per_pass[-1] = [a + b for a, b in zip(per_pass[-1], times, strict=True)]
        else:
            per_pass.append(times)
            names.append(name)
    return names, per_pass


def measure(
    workload: Workload, predicted: dict[str, Any], steps: int, switches: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One workload's passes, measured, beside the prediction; under each A/B switch (``NAME=VALUE``,
    e.g. ``GENCONV_K_MAJOR=0``) again: ``ab_median_us`` per pass and for the step."""
    preset, size, batch, dtype = workload
    labels = pass_labels(conv_launches(record_step(preset, size, batch, DTYPES[dtype])))
    model, x = chain_for(workload, torch.device("cuda"))
    kernels = kernel_times(model, x, steps)
    row: dict[str, Any] = {"workload": f"{preset}@{size}", "batch": batch, "dtype": dtype, "steps": steps}
    timed = per_pass_times(kernels, labels, steps)
    if isinstance(timed, str):
        row["error"] = timed
        return row
    names, per_pass = timed
    expected = predicted["passes"]
    rows = []
    for name, times, prediction in zip(names, per_pass, expected, strict=False):
        measured = _summary(times)
        rows.append({"name": name, "predicted_name": prediction["name"], "tile": prediction["tile"],
                     "predicted_us": prediction["predicted_us"], "floor_us": prediction["floor_us"],
                     "predicted_roofline_pct": prediction["roofline_pct"], **measured,
                     "measured_over_predicted": measured["median_us"] / prediction["predicted_us"],
                     "measured_roofline_pct": 100.0 * prediction["floor_us"] / measured["median_us"]})  # fmt: skip
    conv_step = [sum(times[step] for times in per_pass) for step in range(steps)]
    all_step = sum(k["us"] for k in kernels) / steps
    floor = predicted["step"]["floor_us"]
    row.update({
        "names_match": [r["name"] for r in rows] == [p["name"] for p in expected],
        "step": {"predicted_us": predicted["step"]["predicted_us"], "floor_us": floor,
                 "predicted_roofline_pct": predicted["step"]["roofline_pct"], **_summary(conv_step),
                 "measured_roofline_pct": 100.0 * floor / statistics.median(conv_step),
                 "all_kernels_us": all_step, "kernels_per_step": len(kernels) / steps},
        "passes": rows,
    })  # fmt: skip
    time_switches(row, workload, steps, switches, (model, x))
    return row


def time_switches(
    row: dict[str, Any], workload: Workload, steps: int, switches: tuple[str, ...], chain: tuple[Any, Any] | None = None
) -> None:
    """Time a measured workload (``row``, from ``measure``) again under each A/B switch: ``ab_median_us`` per
    pass and for the step, or ``ab_errors``. ``chain``: the (model, x) it was measured on, else built again."""
    preset, size, batch, dtype = workload
    if "error" in row or not switches:
        return
    model, x = chain if chain is not None else chain_for(workload, torch.device("cuda"))
    for switch in switches:
        with _switched(switch):  # the switch may change the launches (GENCONV_PATCH_FOLD=0: no fold)
            switched = pass_labels(conv_launches(record_step(preset, size, batch, DTYPES[dtype])))
            other = per_pass_times(kernel_times(model, x, steps), switched, steps)
        if isinstance(other, str):
            row.setdefault("ab_errors", {})[switch] = other
            continue
        if len(other[1]) == len(row["passes"]):  # the same passes (by position): each pass's time switched
            for entry, times in zip(row["passes"], other[1], strict=True):
                entry.setdefault("ab_median_us", {})[switch] = statistics.median(times)
        step_times = [sum(times[step] for times in other[1]) for step in range(steps)]
        row["step"].setdefault("ab_median_us", {})[switch] = statistics.median(step_times)


def table(rows: list[dict[str, Any]]) -> str:
    """Per workload, the step's conv passes and each pass: predicted and measured µs and % of roofline
    (and each A/B switch's µs where it ran)."""
    switches = sorted({switch for r in rows for switch in r.get("step", {}).get("ab_median_us", {})})
    head = ["workload", "batch", "dtype", "pass", "predicted µs", "measured µs", "measured / predicted",
            "% roofline predicted", "% roofline measured"] + [f"µs with {switch}" for switch in switches]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        start = [r["workload"], str(r["batch"]), r["dtype"]]
        if "error" in r:
            lines.append("| " + " | ".join(start + [r["error"]] + [""] * (len(head) - 4)) + " |")
            continue
        for p in [{"name": "step (conv passes)", **r["step"]}, *r["passes"]]:
            cells = start + [p["name"], f"{p['predicted_us']:.1f}", f"{p['median_us']:.1f}",
                             f"{p['median_us'] / p['predicted_us']:.2f}", f"{p['predicted_roofline_pct']:.1f}",
                             f"{p['measured_roofline_pct']:.1f}"]  # fmt: skip
            ab = p.get("ab_median_us", {})
            cells += [f"{ab[switch]:.1f}" if switch in ab else "" for switch in switches]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.measured_passes", description=__doc__.split("\n")[0])
    parser.add_argument("--predicted", type=Path, help="a table written by bench.cost_model")
    parser.add_argument("--table", type=Path, help="print the markdown table of a measured JSON and stop")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--steps", type=int, default=20, help="profiled chain steps per workload")
    parser.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1), help="compiling processes")
    parser.add_argument("--budget-seconds", type=float, help="start no workload, or its switched runs, after this long")
    parser.add_argument("--ab", action="append", default=[], metavar="NAME=VALUE",
                        help="time every workload again with this environment variable set (repeatable), "
                             "e.g. GENCONV_K_MAJOR=0")  # fmt: skip
    args = parser.parse_args(argv)
    if args.table is not None:
        if not args.table.is_file():
            parser.error(f"--table: expected a JSON file written by bench.measured_passes, got {args.table}")
        print(table(json.loads(args.table.read_text())["results"]))
        return 0
    if args.predicted is None or not args.predicted.is_file():
        parser.error(f"--predicted: expected a JSON table written by bench.cost_model, got {args.predicted}")
    for switch in args.ab:
        name, equals, _ = switch.partition("=")
        if not (equals and name.startswith("GENCONV_")):
            parser.error(f"--ab: expected NAME=VALUE with a GENCONV_ variable, got {switch!r}")
    if args.steps < 2:
        parser.error(f"--steps: expected an integer >= 2, got {args.steps}")
    if not torch.cuda.is_available():
        print("measured_passes: timing needs a CUDA device (--table reads a measured JSON anywhere)", file=sys.stderr)
        return 1
    os.environ["GENCONV_AUTOTUNE"] = "0"
    os.environ["GENCONV_CONV"] = "triton"  # every pass on genconv's kernels, which the model predicts
    start = time.perf_counter()
    table_json = json.loads(args.predicted.read_text())
    predicted = table_json["results"]
    workloads = [(r["workload"].split("@")[0], int(r["workload"].split("@")[1]), r["batch"], r["dtype"])
                 for r in predicted]  # fmt: skip
    shares = [workloads[i :: args.jobs] for i in range(args.jobs)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
        jobs = [share for share in shares if share]
        compile_seconds = list(pool.map(warm, jobs, [tuple(args.ab)] * len(jobs)))
    device = torch.device("cuda")
    meta = {**report.environment(device), "predicted_table": args.predicted.name,
            "predicted_triton": table_json["meta"]["triton"],
            "compile_seconds_per_job": compile_seconds, "autotune": "off (heuristic tiles)", "conv": "triton (forced)",
            "tf32": os.environ.get("GENCONV_TF32", "1") != "0"}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"measured-{report.device_slug(device)}-{date.today().isoformat()}.json"
    rows: list[dict[str, Any]] = []

    def spent() -> bool:
        if args.budget_seconds is not None and time.perf_counter() - start > args.budget_seconds:
            meta["stopped"] = f"time budget of {args.budget_seconds:.0f} s spent"
            return True
        return False

    def write() -> None:
        meta["seconds"] = time.perf_counter() - start
        path.write_text(json.dumps({"schema": "genconv-measured-passes/1", "meta": meta, "results": rows}, indent=1))

    # every workload first, then the switches while the budget lasts: a short budget loses A/B columns,
    # not workloads
    for workload, prediction in zip(workloads, predicted, strict=True):
        if spent():
            break
        rows.append(measure(workload, prediction, args.steps))
        write()
        step = rows[-1].get("step")
        print(f"{workload}: " + (f"conv passes {step['median_us']:.1f} us measured, {step['predicted_us']:.1f} "
              f"predicted" if step else rows[-1]["error"]), flush=True)  # fmt: skip
    for workload, row in zip(workloads, rows, strict=False):
        if args.ab and not spent():
            time_switches(row, workload, args.steps, tuple(args.ab))
            write()
    print(table(rows))
    print(f"json: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
