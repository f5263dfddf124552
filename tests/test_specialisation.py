"""No chain kernel is compiled again as the noise counter moves from step to step, and the conv
kernels tune per batch bucket without compiling per bucket."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.compile


def test_no_kernel_is_specialised_on_the_counter_offset() -> None:
    environment = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    command = [sys.executable, "-m", "bench.specialisation"]
    done = subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "no kernel is specialised" in done.stdout


def test_conv_kernels_tune_per_batch_bucket() -> None:
    from genconv.kernels.conv_forward import _conv_forward_kernel
    from genconv.kernels.conv_transpose import _conv_transpose_kernel
    from genconv.kernels.launch import BATCH_BUCKET, batch_bucket

    for kernel in (_conv_forward_kernel, _conv_transpose_kernel):
        assert BATCH_BUCKET in kernel.keys
    assert [batch_bucket(b) for b in (0, 1, 2, 3, 64, 65, 256)] == [1, 1, 2, 4, 64, 128, 256]
