"""What a run leaves behind: the printed table, the JSON (runs appended), the PNG plot.

JSON layout: ``{"schema": "genconv-bench/1", "runs": [run, ...]}``; a run holds ``meta`` (device,
versions, date, git SHA), ``config`` (the options), ``ceilings`` (per dtype), ``checks`` and
``results`` (one per workload and provider). The plot draws every run of the file, the latest
result winning where two runs timed the same cell, so a matrix split over several invocations
(one lease of a GPU each) ends in one figure.
"""

import json
import math
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from bench.timing import CONTENDED_CORES
from genconv.bindings.backends import cpu_kernel_status

SCHEMA = "genconv-bench/1"
REPOSITORY = Path(__file__).resolve().parent.parent


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} cores)"


def device_slug(device: torch.device) -> str:
    """A file-name stem for the device: "cpu", or the GPU name in lower case with dashes."""
    if device.type != "cuda":
        return "cpu"
    name = torch.cuda.get_device_name(device).lower()
    return "-".join("".join(c if c.isalnum() else " " for c in name).split())


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPOSITORY, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:  # an optional package may fail to import in many ways
        return None


def _command() -> str:
    """The command line as typed: ``python -m bench ...`` or ``python bench/run.py ...``."""
    script = Path(sys.argv[0])
    head = ["python", "-m", "bench"] if script.name == "__main__.py" else ["python", sys.argv[0]]
    return " ".join(head + sys.argv[1:])


def environment(device: torch.device) -> dict[str, Any]:
    """Device, versions, date and git state of this run."""
    status = _git("status", "--porcelain")
    return {
        "device": device_name(device),
        "device_type": device.type,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "numpy": _version("numpy"),
        "torchebm": _version("torchebm"),
        "genconv_cpu_kernel": cpu_kernel_status(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git_sha": os.environ.get("GENCONV_GIT_SHA") or _git("rev-parse", "HEAD"),  # a copy without .git
        "git_dirty": None if status is None else bool(status),
        "command": _command(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def save_run(path: Path, run: dict[str, Any]) -> None:
    """Write ``run`` into the JSON at ``path``: appended, or replacing the run with the same start date."""
    runs: list[dict[str, Any]] = []
    if path.exists():
        try:
            runs = json.loads(path.read_text()).get("runs", [])
        except (json.JSONDecodeError, AttributeError):
            runs = []
    runs = [r for r in runs if r.get("meta", {}).get("date") != run["meta"]["date"]] + [run]
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps({"schema": SCHEMA, "runs": runs}, indent=1, default=_jsonable) + "\n")
    temporary.replace(path)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def _number(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if abs(value) >= 1e4:
        return f"{value:.3g}"
    return f"{value:.{digits}g}"


def table(results: list[dict[str, Any]]) -> str:
    """The results as a fixed-width text table (skipped cells with their reason).

    A throughput marked * was timed while other processes kept more than ``CONTENDED_CORES`` cores
    busy on average (CPU runs on a shared machine).
    """
    header = ("workload", "provider", "img-steps/s", "q10-q90", "ms/call", "setup s", "peak MiB",
              "x best 1-3", "time/floor", "% matrix")  # fmt: skip
    rows = [header]
    for r in results:
        if r["status"] != "ok":
            rows.append((r["label"], r["provider"], r["status"], r.get("note", "")[:60], "", "", "", "", "", ""))
            continue
        peak = r.get("peak_memory_bytes")
        contended = r["timing"].get("other_processes_cores", 0.0) > CONTENDED_CORES
        rows.append(
            (
                r["label"],
                r["provider"],
                _number(r["image_steps_per_s"], 4) + ("*" if contended else ""),
                f"{_number(r['image_steps_per_s_q10'])}-{_number(r['image_steps_per_s_q90'])}",
                _number(1e3 * r["timing"]["median_s"], 4),
                _number(r["setup_s"], 3),
                "n/a" if peak is None else _number(peak / 2**20, 4),
                _number(r.get("ratio_to_best_baseline"), 3),
                _number(r["time_over_floor"], 3),
                _number(100 * r["fraction_of_matrix_rate"], 3),
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    if any(r["status"] == "ok" and r["timing"].get("other_processes_cores", 0.0) > CONTENDED_CORES for r in results):
        lines.append(f"* timed while other processes kept more than {CONTENDED_CORES} cores busy: contended")
    return "\n".join(line.rstrip() for line in lines)


def plot(json_path: Path, png_path: Path) -> str:
    """Throughput against batch, one panel per workload group, the floor dashed; returns what it did."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return f"matplotlib is not installed: no plot (pip install matplotlib); every figure is in {json_path}"
    data = json.loads(json_path.read_text())
    cells: dict[tuple[str, str, int], dict[str, Any]] = {}
    for run in data["runs"]:
        for result in run["results"]:
            if result["status"] == "ok":
                cells[(result["group"], result["provider"], result["workload"]["batch"])] = result
    groups = sorted({group for group, _, _ in cells})
    if not groups:
        return "nothing to plot: no cell ran"
    columns = min(2, len(groups))
    rows = math.ceil(len(groups) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(6.5 * columns, 4.2 * rows), squeeze=False)
    device = data["runs"][-1]["meta"]["device"]
    colours = {name: f"C{index}" for index, name in enumerate(sorted({p for _, p, _ in cells}))}
    for axis, group in zip(axes.flat, groups, strict=False):
        providers = sorted({p for g, p, _ in cells if g == group})
        floors: dict[int, float] = {}
        for provider in providers:
            points = sorted((b, r) for (g, p, b), r in cells.items() if g == group and p == provider)
            batches = [b for b, _ in points]
            colour = colours[provider]
            axis.plot(batches, [r["image_steps_per_s"] for _, r in points], marker="o", color=colour, label=provider)
            low = [r["image_steps_per_s_q10"] for _, r in points]
            high = [r["image_steps_per_s_q90"] for _, r in points]
            axis.fill_between(batches, low, high, color=colour, alpha=0.2)
            for b, r in points:
                floors[b] = r["workload"]["batch"] * r["workload"]["steps"] / r["floor"]["floor_s"]
        if floors:
            batches = sorted(floors)
            axis.plot(batches, [floors[b] for b in batches], "k--", marker="_", markersize=14, label="floor (roofline)")
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_title(group, fontsize=10)
        axis.set_xlabel("batch (chains)")
        axis.set_ylabel("image-steps / s")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    for axis in list(axes.flat)[len(groups) :]:
        axis.set_visible(False)
    figure.suptitle(f"genconv Langevin chains: {device}", fontsize=11)
    figure.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png_path, dpi=110)
    plt.close(figure)
    return f"plot: {png_path}"
