"""Training curves as a PNG (matplotlib, Agg); skipped with a warning where matplotlib is missing."""

import warnings
from pathlib import Path
from typing import Any

_warned = False


def save_curves(metrics: list[dict[str, Any]], path: Path, title: str = "") -> Path | None:
    """Mean f on the data and on synthesized images, and the transport cost, against the iteration."""
    global _warned
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        if not _warned:
            _warned = True
            warnings.warn("genconv: matplotlib is not installed; no curves.png", RuntimeWarning, stacklevel=2)
        return None
    if not metrics:
        return None
    iterations = [entry["iteration"] for entry in metrics]
    figure, (energies, transport) = pyplot.subplots(1, 2, figsize=(9, 3.2))
    energies.plot(iterations, [entry["f_data"] for entry in metrics], label="mean f(data)")
    energies.plot(iterations, [entry["f_syn"] for entry in metrics], label="mean f(synthesized)")
    energies.set_xlabel("iteration")
    energies.set_title(f"{title} energy".strip())
    energies.legend()
    if any("transport" in entry for entry in metrics):
        transport.plot(iterations, [entry.get("transport", float("nan")) for entry in metrics], color="tab:green")
    transport.set_xlabel("iteration")
    transport.set_title("transport cost (mean squared step)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=80)
    pyplot.close(figure)
    temporary.replace(path)
    return path
