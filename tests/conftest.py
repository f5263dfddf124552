"""Test configuration.

Without a CUDA device the Triton kernels run in Triton's CPU interpreter: TRITON_INTERPRET must be
set before any kernel module is imported, so it is set here, at the top of the suite. Tests marked
``gpu`` are skipped without a CUDA device.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
    os.environ.setdefault("GENCONV_AUTOTUNE", "0")

import pytest  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="module")
def one_intra_op_thread():
    """Run a module's tests on one intra-op thread: tiny tensors gain nothing from more, and on a
    shared CPU spinning threads slow them about tenfold. The previous count is restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
