"""One Langevin chain step of a workload on genconv's kernels, for a profiler (Nsight Compute).

    python -m bench.profile_step texture@64:256 --dtype float32 [--warm-only]
    ncu --clock-control none --kernel-name regex:_conv_ --launch-skip 6 --launch-count 6 \\
        python -m bench.profile_step texture@64:256 --dtype float32

A warm-up step compiles the kernels (and is what ``--launch-skip`` passes over), then one step runs.
Every pass runs genconv's Triton kernel with the tile the shape heuristic picks (``GENCONV_CONV=triton``,
``GENCONV_AUTOTUNE=0``), as ``bench.cost_model`` and ``bench.measured_passes`` describe it.
"""
# ruff: noqa: E402

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import os

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_step", description=__doc__.split("\n")[0])
    parser.add_argument("workload", help="preset@size:batch, e.g. texture@64:256")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--warm-only", action="store_true", help="compile the kernels (one step) and stop")
    args = parser.parse_args(argv)
    try:
        name, batch = args.workload.split(":")
        preset, size = name.split("@")
        workload = (preset, int(size), int(batch), args.dtype)
    except ValueError:
        parser.error(f"workload: expected preset@size:batch, got {args.workload!r}")
    if not torch.cuda.is_available():
        print("profile_step: needs a CUDA device", file=sys.stderr)
        return 1
    os.environ["GENCONV_AUTOTUNE"] = "0"
    os.environ["GENCONV_CONV"] = "triton"
    from bench.measured_passes import chain_for, run_steps

    model, x = chain_for(workload, torch.device("cuda"))
    run_steps(model, x, 1)
    if not args.warm_only:
        run_steps(model, x, 1)
    torch.cuda.synchronize()
    return 0


if __name__ == "__main__":
    sys.exit(main())
