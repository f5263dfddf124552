"""Which kernel arguments make Triton compile a chain's kernels again from one step to the next.

Triton specialises an integer argument on ``== 1`` and ``% 16 == 0``: a value that moves every
step lands in another class now and then, and the kernel is compiled again (seconds) and, inside
a CUDA graph capture, the graph is lost. A chain's only such value is the counter offset of its
noise; the conv kernels' batch bucket (an autotuning key only) must not split compilations either.
This check records the launches of a short chain, a bottom-up pass and the noise on the Triton
backend (CPU tensors, nothing runs), asks Triton's own binder how it would specialise each launch
for a sm_90 target with the counter offset at 1, 16, 17 and 2**30 and the batch bucket at 1, 2,
16 and 256, and lists the kernels whose specialisation changes with either.

    python -m bench.specialisation      # exit status 1 and the kernels named when one does
"""

import os
import sys
from collections.abc import Iterable

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    raise SystemExit("the specialisation check binds kernels for a GPU: run it without TRITON_INTERPRET")

from triton.backends.compiler import GPUTarget
from triton.compiler import make_backend
from triton.runtime.jit import create_function_from_signature

from bench.compile_cases import compile_cases
from genconv.kernels.launch import BATCH_BUCKET, Launch, recording_launches

TARGET = GPUTarget("cuda", 90, 32)
# Arguments whose value must not change a kernel's compilation, and the values tried.
UNSPECIALISED = {"offset_low": (1, 16, 17, 2**30), BATCH_BUCKET: (1, 2, 16, 256)}


def _specialisation(launch: Launch, overrides: dict[str, int]) -> tuple:
    """Triton's specialisation of ``launch`` (under its heuristic config) with some arguments replaced."""
    jit = getattr(launch.kernel, "fn", launch.kernel)
    names = [parameter.name for parameter in jit.params]
    args = list(launch.args)
    kwargs = {**launch.kwargs, **launch.heuristic.kwargs}
    for name, value in overrides.items():
        index = names.index(name)
        if index < len(args):
            args[index] = value
        else:
            kwargs[name] = value
    kwargs.update(num_warps=launch.heuristic.num_warps, num_stages=launch.heuristic.num_stages)
    binder = create_function_from_signature(jit.signature, jit.params, make_backend(TARGET))
    _, specialization, _ = binder(*args, **kwargs)
    return tuple(map(repr, specialization))


def recorded_launches() -> Iterable[Launch]:
    """Every launch of the compile tier's quick cases."""
    for case in compile_cases(quick=True):
        with recording_launches() as launches:
            case.run()
        yield from launches


def respecialising_kernels() -> list[str]:
    """'kernel (argument)' for each kernel whose specialisation changes with an argument of
    ``UNSPECIALISED`` (empty: none)."""
    found = set()
    for launch in recorded_launches():
        jit = getattr(launch.kernel, "fn", launch.kernel)
        names = {parameter.name for parameter in jit.params}
        for argument in names.intersection(UNSPECIALISED):
            seen = {_specialisation(launch, {argument: value}) for value in UNSPECIALISED[argument]}
            if len(seen) > 1:
                found.add(f"{jit.__name__} ({argument})")
    return sorted(found)


def main() -> int:
    kernels = respecialising_kernels()
    if kernels:
        print(f"specialised on an argument that must not split compilations: {', '.join(kernels)}")
        return 1
    print("no kernel is specialised on the counter offset or the batch bucket")
    return 0


if __name__ == "__main__":
    sys.exit(main())
