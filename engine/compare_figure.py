"""The figure of `genconv compare`: per model a grid of its samples above its energy curves, and
the patch SWD and energy-stability bars (mean and spread over the seeds) beside them.

Drawn with matplotlib (Agg); skipped where matplotlib is missing.
"""

from pathlib import Path
from typing import Any

import torch

from genconv.engine.images import grid_array

SAMPLES_SHOWN = 16


def save_compare_figure(
    curves: dict[str, list[list[dict[str, Any]]]], samples: dict[str, torch.Tensor], report: dict[str, Any],
    path: Path,
) -> Path | None:  # fmt: skip
    """``curves``: per model, the metric lines of each seed's run; ``samples``: per model, pixel
    images [N, C, H, W] in [0, 255] (the first seed's)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        return None
    kinds = list(curves)
    figure, axes = pyplot.subplots(2, len(kinds) + 1, figsize=(3.6 * (len(kinds) + 1), 6.6), squeeze=False)
    for column, kind in enumerate(kinds):
        _draw_samples(axes[0][column], samples[kind], kind)
        _draw_curves(axes[1][column], curves[kind], kind)
    _draw_bars(axes[0][-1], report, "swd_x1e3", "patch SWD x1e3 (lower is better)", "tab:purple")
    stability = "std of f(data) - f(syn) / mean |f|,\nsecond half (lower is steadier)"
    _draw_bars(axes[1][-1], report, "gap_rel_std", stability, "tab:gray")
    figure.suptitle(
        f"{report['data']}, {report['iterations']} iterations, seeds {', '.join(map(str, report['seeds']))}",
        fontsize=10,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=90)
    pyplot.close(figure)
    temporary.replace(path)
    return path


def _draw_samples(axis: Any, images: torch.Tensor, kind: str) -> None:
    shown = images[:SAMPLES_SHOWN].round().to(torch.uint8)
    grid = grid_array(shown, columns=4)
    axis.imshow(grid[:, :, 0] if grid.shape[2] == 1 else grid, cmap="gray", vmin=0, vmax=255,
                interpolation="nearest")  # fmt: skip
    axis.set_title(f"{kind}: samples (first seed)", fontsize=9)
    axis.axis("off")


def _draw_curves(axis: Any, runs: list[list[dict[str, Any]]], kind: str) -> None:
    for index, metrics in enumerate(runs):
        iterations = [entry["iteration"] for entry in metrics]
        first = index == 0
        axis.plot(iterations, [entry["f_data"] for entry in metrics], color="tab:blue", alpha=0.8, linewidth=1,
                  label="mean f(data)" if first else None)  # fmt: skip
        axis.plot(iterations, [entry["f_syn"] for entry in metrics], color="tab:orange", alpha=0.8, linewidth=1,
                  linestyle="--", label="mean f(syn)" if first else None)  # fmt: skip
    axis.set_title(f"{kind}: energy, {len(runs)} seeds", fontsize=9)
    axis.set_xlabel("iteration")
    axis.legend(fontsize=7)


def _draw_bars(axis: Any, report: dict[str, Any], name: str, title: str, color: str) -> None:
    kinds = list(report["models"])
    means = [report["models"][kind][name]["mean"] for kind in kinds]
    spreads = [report["models"][kind][name]["spread"] for kind in kinds]
    axis.bar(kinds, means, yerr=spreads, capsize=4, color=color)
    axis.set_title(title, fontsize=9)
