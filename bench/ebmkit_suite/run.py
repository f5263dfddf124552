"""Run ebmkit's own sampler, loss, training and JEM tests against genconv's drop-ins.

    pip download ebmkit==0.16.0 --no-binary :all: --no-deps -d /tmp/ebmkit
    tar xzf /tmp/ebmkit/ebmkit-0.16.0.tar.gz -C /tmp/ebmkit
    python bench/ebmkit_suite/run.py /tmp/ebmkit/ebmkit-0.16.0

The wheel ships no tests; the source distribution (or a GitHub checkout) does. The runner copies
its test files next to this folder's conftest.py (which swaps ``ebm.LangevinDynamics`` and
``ebm.MALA`` for ``genconv.EbmkitLangevin`` and ``genconv.EbmkitMALA`` when SWAP=genconv) and runs
them twice, with ebmkit's samplers and with genconv's, printing pytest's summary line of each, the
failures, and the tests that pass with ebmkit's samplers but not with genconv's (exit status 1
when there are any). Needs the ebmkit package installed (``genconv[ebmkit]``).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TEST_FILES = (
    "tests/conftest.py",
    "tests/test_samplers.py",
    "tests/test_losses.py",
    "tests/test_training.py",
    "tests/test_jem.py",
)
HARNESS = Path(__file__).with_name("conftest.py")
OUTCOME = re.compile(r"^(tests/\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED)")


def run_once(root: Path, swap: str) -> tuple[str, dict[str, str]]:
    """pytest's summary line and each test's outcome, with SWAP=swap."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-rA", "-v", *TEST_FILES[1:]], cwd=root,
                            capture_output=True, text=True, env={**os.environ, "SWAP": swap})  # fmt: skip
    lines = result.stdout.strip().splitlines()
    summary = lines[-1] if lines else result.stderr.strip()
    in_use = next((line for line in lines if line.startswith("ebmkit samplers in use")), "")
    summary = f"{summary}\n         {in_use}" if in_use else summary
    outcomes = {}
    for line in lines:
        found = OUTCOME.match(line)
        if found:
            outcomes[found.group(1)] = found.group(2)
    return summary, outcomes


def main(source: Path) -> int:
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        for name in TEST_FILES:
            if not (source / name).exists():
                print(f"ebmkit_suite: {source / name} not found; pass the root of ebmkit's sdist or checkout",
                      file=sys.stderr)  # fmt: skip
                return 1
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source / name, root / name)
        (root / "tests" / "__init__.py").touch()
        shutil.copy(HARNESS, root / "conftest.py")
        (root / "pytest.ini").write_text("[pytest]\npythonpath = .\naddopts = -p no:cacheprovider\n")
        results = {swap: run_once(root, swap) for swap in ("ebmkit", "genconv")}
    for swap, (summary, outcomes) in results.items():
        print(f"{swap:8s} {summary}")
        for test, outcome in sorted(outcomes.items()):
            if outcome in ("FAILED", "ERROR"):
                print(f"         {outcome} {test}")
    theirs, ours = results["ebmkit"][1], results["genconv"][1]
    lost = sorted(test for test, outcome in theirs.items() if outcome == "PASSED" and ours.get(test) != "PASSED")
    print(f"pass with ebmkit's samplers but not with genconv's: {len(lost)}")
    for test in lost:
        print(f"         {test}")
    return 1 if lost or not theirs else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python bench/ebmkit_suite/run.py PATH/TO/ebmkit-source", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
