"""The CPU path's chain now against the same chain with ``kernels/torch_path.py`` of an earlier revision.

    python -m bench.cpu_revision_ab --revision 0c912a1 --cases object@100:1,16 object@64:1,16 texture@64:1,16

On a shared machine, separate benchmark runs drift by more than a CPU change gains; here both
versions run in one process, interleaved round by round on the same model and inputs (the
revision's file is loaded as a module beside the current one and swapped into the torch backend),
so the ratio of their medians is the measurement. Each call is a ``--steps``-step Langevin chain
(the preset's network, sigma and delta, channels as the bundled data has them). Prints one line
per case and writes the rounds' times to ``--out`` (JSON).
"""
# ruff: noqa: E402

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python bench/cpu_revision_ab.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import dataclasses
import importlib.util
import json
import statistics
import subprocess
import tempfile
import time
from datetime import date
from types import ModuleType

import torch

from bench import report
from genconv.bindings.backends import TORCH_BACKEND, Backend
from genconv.engine.langevin import langevin
from genconv.engine.model import GenerativeConvNet
from genconv.engine.presets import get_preset, network_for

CHANNELS = {"texture": 3, "object": 1, "faces": 1}


def module_at(revision: str) -> ModuleType:
    """``kernels/torch_path.py`` as it was at ``revision``, imported under another name."""
    source = subprocess.run(["git", "show", f"{revision}:kernels/torch_path.py"], cwd=report.REPOSITORY,
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "torch_path_then.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("torch_path_then", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def backend_with(module: ModuleType) -> Backend:
    """The torch backend with ``module``'s top-down ops (the bottom-up ops and the update are shared)."""
    return dataclasses.replace(TORCH_BACKEND, masked_conv_transpose=module.masked_conv_transpose,
                               masked_conv_transpose_langevin=module.masked_conv_transpose_langevin)  # fmt: skip


def parse_cases(texts: list[str]) -> list[tuple[str, int, int]]:
    """``preset@size:b1,b2`` -> (preset, size, batch) triples."""
    cases = []
    for text in texts:
        head, batches = text.split(":")
        preset, size = head.split("@")
        cases += [(preset, int(size), int(batch)) for batch in batches.split(",")]
    return cases


def time_case(preset: str, size: int, batch: int, backends: dict[str, Backend], steps: int, rounds: int) -> dict:
    """Seconds per chain call of each backend over ``rounds`` interleaved rounds (after one warm-up each)."""
    settings = get_preset(preset)
    channels = CHANNELS.get(preset, 3)
    model = GenerativeConvNet(network_for(preset, channels, size), sigma=settings.sigma, init_seed=0)
    x = settings.sigma * torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(1))

    def chain(backend: Backend) -> torch.Tensor:
        return langevin(model, x, steps=steps, delta=settings.delta, seed=0, backend=backend).x

    seconds: dict[str, list[float]] = {name: [] for name in backends}
    finals = {name: chain(backend) for name, backend in backends.items()}  # also the warm-up
    for _ in range(rounds):
        for name, backend in backends.items():
            start = time.perf_counter()
            chain(backend)
            seconds[name].append(time.perf_counter() - start)
    then, now = finals["then"], finals["now"]
    return {"preset": preset, "size": size, "batch": batch, "steps": steps, "seconds": seconds,
            "max_relative_difference": float((now - then).abs().max() / then.abs().max())}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_revision_ab", description=__doc__.split("\n")[0])
    parser.add_argument("--revision", required=True, help="the git revision whose kernels/torch_path.py is 'then'")
    parser.add_argument("--cases", nargs="+", default=["object@100:1,16", "object@64:1,16", "texture@64:1,16"],
                        help="preset@size:batches")  # fmt: skip
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, help="JSON (default bench/results/cpu-ab-<date>.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from genconv.kernels import torch_path

    backends = {"then": backend_with(module_at(args.revision)), "now": backend_with(torch_path)}
    results = []
    for preset, size, batch in parse_cases(args.cases):
        result = time_case(preset, size, batch, backends, args.steps, args.rounds)
        then, now = (statistics.median(result["seconds"][name]) for name in ("then", "now"))
        result["speedup"] = then / now
        results.append(result)
        print(f"{preset}@{size} B={batch}: {args.revision} {then * 1e3:.0f} ms, now {now * 1e3:.0f} ms per "
              f"{args.steps}-step chain (medians of {args.rounds}): {then / now:.2f}x; max relative difference "
              f"{result['max_relative_difference']:.1e}", flush=True)  # fmt: skip
    out = args.out or report.REPOSITORY / "bench" / "results" / f"cpu-ab-{date.today().isoformat()}.json"
    meta = {**report.environment(torch.device("cpu")), "revision": args.revision}
    out.write_text(json.dumps({"schema": "genconv-cpu-ab/1", "meta": meta, "results": results}, indent=1) + "\n")
    print(f"json: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
