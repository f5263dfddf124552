"""Run TorchEBM's own tests of ``LangevinDynamics`` against genconv's drop-in.

    python bench/torchebm_suite/run.py PATH/TO/torchebm-checkout

Copies the checkout's sampler and contrastive-divergence test files next to this folder's
conftest.py (which swaps ``torchebm.samplers.LangevinDynamics`` for ``genconv.TorchEBMSampler``
when SWAP=genconv) and runs them twice, with TorchEBM's sampler and with genconv's, printing
pytest's summary line of each. Needs the torchebm package installed (``genconv[torchebm]``).
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TEST_FILES = (
    "tests/conftest.py",
    "tests/samplers/test_langevin_dynamics.py",
    "tests/samplers/test_api_contract.py",
    "tests/losses/test_contrastive_divergence.py",
)
HARNESS = Path(__file__).with_name("conftest.py")


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


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python bench/torchebm_suite/run.py PATH/TO/torchebm-checkout", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
