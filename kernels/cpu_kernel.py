"""The C++ CPU kernel: the Langevin update with its Philox noise and clamp in one vectorised pass.

``csrc/langevin_cpu.cpp`` is compiled on first use with ``torch.utils.cpp_extension`` (ninja, the
machine's C++ compiler; AVX2 where the CPU has it) into the torch cache folder and registered as
``torch.ops.genconv_cpu``. It draws the numbers ``reference.philox_normal`` and the Triton kernels
draw (the same Philox words; log and cos to a few ulp) about ten times faster than the int64
tensor ops of the twin. Where it cannot be built (no compiler, no ninja) or ``GENCONV_CPU_KERNEL=0``
turns it off, every function here runs the pure-PyTorch twin instead, with the same results up to
float rounding; ``status()`` says which.
"""

import contextlib
import functools
import hashlib
import os
import platform
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from genconv.kernels import reference

ENV_SWITCH = "GENCONV_CPU_KERNEL"
SOURCE = Path(__file__).resolve().parent / "csrc" / "langevin_cpu.cpp"
_NAMESPACE = "genconv_cpu"


def _compile_flags() -> list[str]:
    flags = ["-O3", "-std=c++17", "-ffp-contract=off"]
    if platform.machine().lower() in ("x86_64", "amd64") and torch.backends.cpu.get_cpu_capability() in (
        "AVX2",
        "AVX512",
    ):
        flags += ["-mavx2", "-mfma"]
    if torch.backends.openmp.is_available():
        flags.append("-fopenmp")  # at::parallel_for is OpenMP in torch's CPU builds
    return flags


def _build_name(flags: list[str]) -> str:
    """A name unique to the source, the flags and the torch build, so a stale build is never loaded."""
    digest = hashlib.sha256(SOURCE.read_bytes())
    digest.update(" ".join([*flags, torch.__version__, sys.version]).encode())
    return f"genconv_cpu_{digest.hexdigest()[:12]}"


def _build_location() -> tuple[str, Path, list[str]]:
    """(library name, build folder, compiler flags) of this machine's build."""
    from torch.utils import cpp_extension

    flags = _compile_flags()
    name = _build_name(flags)
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()  # as torch does
    return name, Path(root) / name, flags


# torch's build lock file older than this is taken for one a killed build left behind: building
# this one-file kernel takes 10-40 s, loading a built one well under a second.
STALE_LOCK_SECONDS = 90.0


@contextlib.contextmanager
def _build_lock(build_directory: Path) -> Iterator[None]:
    """Hold genconv's lock on ``build_directory``; remove the lock file a killed build left behind.

    torch's ``cpp_extension`` guards each build or load with a plain ``lock`` file that a killed
    process never removes, and every later load then waits on it forever. genconv first takes an
    advisory lock of its own (the system releases it when its holder dies), so no other genconv
    process is building here; a ``lock`` file still there after ``STALE_LOCK_SECONDS`` (an older
    genconv, which does not take the advisory lock, may hold a fresh one) is stale and removed.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; torch's lock file alone guards the build
        yield
        return
    torch_lock = build_directory / "lock"
    with open(build_directory / "genconv-build.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            while True:
                try:
                    age = time.time() - torch_lock.stat().st_mtime
                except FileNotFoundError:
                    break
                if age > STALE_LOCK_SECONDS:
                    torch_lock.unlink(missing_ok=True)
                    break
                time.sleep(0.5)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@functools.cache
def _load() -> str | None:
    """Build (once per machine) and load the kernel; None when loaded, else why it is not."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return f"off ({ENV_SWITCH}=0)"
    try:
        from torch.utils import cpp_extension

        name, build_directory, flags = _build_location()
        build_directory.mkdir(parents=True, exist_ok=True)
        if not (build_directory / f"{name}.so").exists():
            print("genconv: building the C++ CPU kernel (once per machine, about 10 s)", file=sys.stderr, flush=True)
        with _build_lock(build_directory):
            cpp_extension.load(
                name=name,
                sources=[str(SOURCE)],
                extra_cflags=flags,
                extra_ldflags=["-fopenmp"] if "-fopenmp" in flags else [],
                build_directory=str(build_directory),
                with_cuda=False,
                is_python_module=False,
                verbose=False,
            )
    except Exception as error:  # no compiler, no ninja, a failed build: the twin serves
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        warnings.warn(
            f"genconv: the C++ CPU kernel could not be built ({reason[:200]}); the slower PyTorch noise runs "
            f"instead (set {ENV_SWITCH}=0 to skip the attempt)",
            RuntimeWarning,
            stacklevel=3,
        )
        return f"unavailable ({reason[:200]})"
    return None


def available() -> bool:
    """True when the C++ kernel is built and loaded (builds it on the first call)."""
    return _load() is None


def status(build: bool = True) -> str:
    """'built' or why the PyTorch twin runs instead (for ``genconv --version`` and the bench JSON).

    ``build=False`` answers without building: from the loaded kernel or the build folder.
    """
    if build or _load.cache_info().currsize:
        reason = _load()
        return "built" if reason is None else reason
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return f"off ({ENV_SWITCH}=0)"
    name, build_directory, _ = _build_location()
    if (build_directory / f"{name}.so").exists():
        return "built"
    return "not built yet (built on first use with the machine's C++ compiler and ninja)"


def _runs_here(*tensors: torch.Tensor | None) -> bool:
    present = [t for t in tensors if t is not None]
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in present) and available()


def philox_normal(
    seed: int, offset: int, shape: tuple[int, ...] | torch.Size, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``reference.philox_normal`` on the C++ kernel for CPU results; the twin elsewhere."""
    if torch.device(device).type != "cpu" or not available():
        return reference.philox_normal(seed, offset, shape, device)
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed}")
    if offset < 0:
        raise ValueError(f"offset must be non-negative, got {offset}")
    return torch.ops.genconv_cpu.normal(int(seed), int(offset), list(shape))


def langevin_update(
    x: torch.Tensor,
    grad_f: torch.Tensor,
    delta: float,
    sigma: float,
    *,
    seed: int | torch.Tensor | None = None,
    offset: int = 0,
    noise: torch.Tensor | None = None,
    clamp: tuple[float, float] | None = None,
) -> torch.Tensor:
    """``reference.langevin_update`` in one C++ pass for float32 CPU tensors; the twin elsewhere.

    ``grad_f`` may be any 4-D view (a cropped or channels-last gradient is read in place).
    """
    if not _runs_here(x, grad_f, noise) or (grad_f.dim() != 4 and not grad_f.is_contiguous()):
        return reference.langevin_update(x, grad_f, delta, sigma, seed=seed, offset=offset, noise=noise, clamp=clamp)
    draws = noise is None and delta != 0
    if draws and seed is None:
        raise ValueError("langevin_update needs either noise or a seed")
    if not draws:
        seed, offset = 0, 0
    elif isinstance(seed, torch.Tensor):
        seed, base = (int(value) for value in seed.tolist())
        offset += base
    return torch.ops.genconv_cpu.langevin_update(
        x.contiguous(),
        grad_f,
        float(delta),
        float(sigma),
        0 if seed is None else int(seed),
        int(offset),
        None if noise is None else noise.contiguous(),
        None if clamp is None else float(clamp[0]),
        None if clamp is None else float(clamp[1]),
    )
