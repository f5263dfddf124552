"""First-call (compile) time of sample_langevin's compiled chain on the energy workloads.

    python bench/compile_time.py            # cold: torch.compile's caches off
    python bench/compile_time.py --warm     # with the on-disk caches of earlier runs

For each energy workload (pcd: the MLP energy, 256 chains; conv: ebmkit's ConvEnergy, 64 chains of
32x32 images) it runs a 30-step chain with compile=True and prints the first call's seconds (trace,
compile, run) and the block size; exit status 1 when one is over the bound of 60 s per shape.
"""

import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
import torch._inductor.config as inductor_config

from bench.workloads import CONV_CHAINS, CONV_ENERGY, CONV_SIZE, SMALL_ENERGY, Workload, build_setup
from genconv.bindings.compiled_chain import COMPILED_CHAINS
from genconv.bindings.sampler import sample_langevin
from genconv.bindings.update_rules import TorchEBMStep

STEPS = 30
BOUND_S = 60.0


def main(warm: bool) -> int:
    inductor_config.force_disable_caches = not warm
    workloads = [Workload("pcd", SMALL_ENERGY, 1, 2, 256, "float32", STEPS),
                 Workload("conv", CONV_ENERGY, CONV_SIZE, 3, CONV_CHAINS, "float32", STEPS)]  # fmt: skip
    status = 0
    for workload in workloads:
        setup = build_setup(workload, torch.device("cpu"))
        update = TorchEBMStep(setup.step_size, setup.noise_scale)
        start = time.perf_counter()
        sample_langevin(setup.energy, setup.x0, steps=STEPS, update=update, seed=0, compile=True)
        seconds = time.perf_counter() - start
        record = COMPILED_CHAINS.records[-1]
        print(f"{workload.kind:5s} {list(setup.x0.shape)}: first call {seconds:.1f} s, "
              f"{record.steps_per_block} step(s) per block, {'cold' if not warm else 'warm'} caches")  # fmt: skip
        status = max(status, int(seconds > BOUND_S))
    return status


if __name__ == "__main__":
    sys.exit(main("--warm" in sys.argv[1:]))
