"""The compile tier: every Triton kernel, as genconv launches it on the presets' layers, compiled by
triton's own compiler and ptxas for Hopper (sm_90) and Ampere (sm_80), without a GPU.

Every config the autotuner can pick for a layer, and the one the shape heuristic picks, must
compile for sm_90 (for sm_80, a portability check, the heuristic's: the full table has every config),
spill nothing on sm_90 (a few bytes at most on sm_80), fit shared memory, (conv kernels
with at least 4 warps, on sm_90) use wgmma, and (conv kernels) run a main loop, read from the SASS,
that does whole tiles per K-step and never waits on a synchronous global load.
``python -m bench.compile_tier`` writes the full table; the suite compiles the quick set.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.compile


@pytest.fixture(scope="module")
def tier_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """The quick tier's table and what the run wrote to stderr."""
    out = tmp_path_factory.mktemp("compile") / "compile.json"
    environment = {key: value for key, value in os.environ.items() if key not in ("TRITON_INTERPRET", "PYTHONWARNINGS")}
    command = [sys.executable, "-m", "bench.compile_tier", "--quick", "--heuristic-only", "sm_80", "--out", str(out)]
    done = subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True, text=True, timeout=600)
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text()), done.stderr


@pytest.fixture(scope="module")
def table(tier_run: tuple[dict, str]) -> dict:
    return tier_run[0]


def test_kernels_compile_without_a_warning_from_triton(tier_run: tuple[dict, str]) -> None:
    # Triton 3.9 warns once when fused multiply-adds are left to its default (which 3.10 turns off);
    # genconv.kernels pins them on unless the user has set TRITON_DEFAULT_FP_FUSION
    assert "TRITON_DEFAULT_FP_FUSION" not in tier_run[1], tier_run[1][-3000:]


def test_every_variant_compiles(table: dict) -> None:
    rows = table["rows"]
    assert {row["target"] for row in rows} == {"sm_90", "sm_80"}
    kernels = {row["kernel"] for row in rows}
    assert {"_conv_forward_kernel", "_conv_transpose_kernel", "_langevin_update_kernel", "_standard_normal_kernel",
            "_bias_act_mask_kernel", "_masked_coefficients_kernel"} <= kernels  # fmt: skip
    failed = [(row["kernel"], row["layer"], row["config"], row["target"], row["error"]) for row in rows if row["error"]]
    assert not failed, failed[:5]


# sm_80 is compiled to keep the kernels portable; its ptxas, aiming the tiles at more CTAs per SM than
# their registers allow, spills a word or three in a few variants, and which ones changes from one
# Triton release to the next. Beyond this many bytes per thread a spill is a regression there too.
AMPERE_SPILL_BYTES = 16


def test_no_spill_on_sm90_and_a_few_bytes_at_most_on_sm80(table: dict) -> None:
    """No variant spills on sm_90; none spills more than AMPERE_SPILL_BYTES on sm_80."""
    limit = {"sm_90": 0, "sm_80": AMPERE_SPILL_BYTES}
    spilling = [(r["kernel"], r["case"], r["layer"], r["dtype"], r["target"], r["config"], r["spill_stores"])
                for r in table["rows"]
                if max(r["spill_stores"] or 0, r["spill_loads"] or 0) > limit[r["target"]]]  # fmt: skip
    assert not spilling, spilling[:5]


def test_shared_memory_fits_and_conv_kernels_use_wgmma_on_hopper(table: dict) -> None:
    limits = {"sm_90": 227 * 1024, "sm_80": 163 * 1024}
    for row in table["rows"]:
        assert row["shared_bytes"] <= limits[row["target"]], row
        assert row["warps_per_sm"] >= row["num_warps"], row  # at least one block is resident
        if row["is_conv"] and row["num_warps"] >= 4 and row["target"] == "sm_90":
            assert row["uses_wgmma"], row


def test_each_launch_is_compiled_with_its_heuristic_config(table: dict) -> None:
    launches = {(r["kernel"], r["case"], r["layer"], r["dtype"]) for r in table["rows"] if r["is_conv"]}
    with_heuristic = {(r["kernel"], r["case"], r["layer"], r["dtype"]) for r in table["rows"] if r["heuristic"]}
    assert launches <= with_heuristic


def test_no_conv_main_loop_waits_on_a_synchronous_global_load(table: dict) -> None:
    """Every conv kernel's main loop on sm_90 (found in its SASS) feeds its MMAs from asynchronous copies
    only: a synchronous global load (LDG) stalls the warp each K-step, which the software pipeline
    cannot hide. (sm_80's mma.sync variants, compiled as a portability check, are not held to it.)"""
    conv = [row for row in table["rows"] if row["is_conv"] and not row["error"] and row["target"] == "sm_90"]
    assert conv
    missing = [(r["case"], r["layer"], r["dtype"], r["target"], r["config"]) for r in conv if not r["loop"]["found"]]
    assert not missing, missing[:5]
    synchronous = [(r["case"], r["layer"], r["dtype"], r["target"], r["config"], r["loop"]["counts"]["global_load"])
                   for r in conv if r["loop"]["counts"]["global_load"]]  # fmt: skip
    assert not synchronous, (len(synchronous), synchronous[:8])


def test_each_conv_loop_step_does_its_tile(table: dict) -> None:
    """The MMA FLOPs of a main loop's body over all warps are whole K-steps of the tile, 2 BM BN BK each
    (the SASS reader found the right loop and counts MMA shapes right)."""
    for row in table["rows"]:
        if not row["is_conv"] or row["error"]:
            continue
        tiles = dict(part.split("=") for part in row["config"].split(" ")[0].split(","))
        tile = 2 * int(tiles["BLOCK_M"]) * int(tiles["BLOCK_N"]) * int(tiles["BLOCK_K"])
        done = row["loop"]["mma_flops_per_warp"] * row["num_warps"]
        assert done >= tile and done % tile == 0, (row["case"], row["layer"], row["target"], row["config"], done)
