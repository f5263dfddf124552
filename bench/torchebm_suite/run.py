"""Run TorchEBM's own tests and examples of ``LangevinDynamics`` against genconv's drop-in.

    python bench/torchebm_suite/run.py PATH/TO/torchebm-checkout
    python bench/torchebm_suite/run.py --examples PATH/TO/torchebm-checkout

Tests: copies the checkout's sampler and contrastive-divergence test files next to this folder's
conftest.py (which swaps ``torchebm.samplers.LangevinDynamics`` for ``genconv.TorchEBMSampler``
when SWAP=genconv) and runs them twice, with TorchEBM's sampler and with genconv's, printing
pytest's summary line of each. Examples: runs every ``examples/**/main.py`` that uses
``LangevinDynamics`` and has a smoke mode, with TORCHEBM_SMOKE=1, once with each sampler, in a
scratch copy of its folder. Needs the torchebm package installed (``genconv[torchebm]``).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEST_FILES = (
    "tests/conftest.py",
    "tests/samplers/test_langevin_dynamics.py",
    "tests/samplers/test_api_contract.py",
    "tests/losses/test_contrastive_divergence.py",
)
HARNESS = Path(__file__).with_name("conftest.py")
EXAMPLE_TIMEOUT_S = 600
# Runs one example as __main__ with LangevinDynamics swapped for genconv's sampler when SWAP=genconv.
EXAMPLE_SHIM = """
import os, runpy, sys
if os.environ["SWAP"] == "genconv":
    import genconv, torchebm.samplers, torchebm.samplers.langevin_dynamics as module
    torchebm.samplers.LangevinDynamics = module.LangevinDynamics = genconv.TorchEBMSampler
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def main(checkout: Path) -> int:
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        for name in TEST_FILES:
            source = checkout / name
            if not source.exists():
                print(f"torchebm_suite: {source} not found; pass the root of a TorchEBM checkout", file=sys.stderr)
                return 1
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / name)
        for package in ("tests", "tests/samplers", "tests/losses"):
            (root / package / "__init__.py").touch()
        shutil.copy(HARNESS, root / "conftest.py")
        (root / "pytest.ini").write_text("[pytest]\npythonpath = .\naddopts = -p no:cacheprovider -q\n")
        status = 0
        for swap in ("torchebm", "genconv"):
            result = subprocess.run([sys.executable, "-m", "pytest", *TEST_FILES[1:]], cwd=root, capture_output=True,
                                    text=True, env={**os.environ, "SWAP": swap})  # fmt: skip
            summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr.strip()
            failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
            print(f"{swap:9s} {summary}")
            for line in failed:
                print(f"          {line}")
            status = max(status, result.returncode)
        return status


def smoke_examples(checkout: Path) -> list[Path]:
    """The checkout's example scripts that use LangevinDynamics and have a smoke mode."""
    found = []
    for script in sorted((checkout / "examples").rglob("main.py")):
        text = script.read_text()
        if "LangevinDynamics" in text and "TORCHEBM_SMOKE" in text:
            found.append(script)
    return found


def run_examples(checkout: Path) -> int:
    scripts = smoke_examples(checkout)
    if not scripts:
        print(f"torchebm_suite: no smoke-mode examples under {checkout / 'examples'}", file=sys.stderr)
        return 1
    status = 0
    for script in scripts:
        outcomes = []
        for swap in ("torchebm", "genconv"):
            with tempfile.TemporaryDirectory() as work:
                folder = Path(work) / script.parent.name
                shutil.copytree(script.parent, folder)
                environment = {**os.environ, "SWAP": swap, "TORCHEBM_SMOKE": "1", "MPLBACKEND": "Agg"}
                started = time.perf_counter()
                try:
                    result = subprocess.run([sys.executable, "-c", EXAMPLE_SHIM, "main.py"], cwd=folder,
                                            env=environment, capture_output=True, text=True,
                                            timeout=EXAMPLE_TIMEOUT_S)  # fmt: skip
                    failure = "" if result.returncode == 0 else (result.stderr.strip().splitlines() or ["?"])[-1]
                except subprocess.TimeoutExpired:
                    failure = f"timed out after {EXAMPLE_TIMEOUT_S} s"
                seconds = time.perf_counter() - started
            outcomes.append(
                f"{swap} {'ok' if not failure else 'FAILED'} {seconds:.1f} s" + (f" ({failure})" if failure else "")
            )
            status = max(status, int(bool(failure)))
        print(f"{script.parent.relative_to(checkout / 'examples')}: " + "; ".join(outcomes))
    return status


if __name__ == "__main__":
    arguments = sys.argv[1:]
    examples = arguments[:1] == ["--examples"]
    if len(arguments) != 1 + examples:
        print("usage: python bench/torchebm_suite/run.py [--examples] PATH/TO/torchebm-checkout", file=sys.stderr)
        sys.exit(2)
    checkout = Path(arguments[-1])
    sys.exit(run_examples(checkout) if examples else main(checkout))
