"""The performance instrument: the main loop read from SASS (``bench/sass.py``) and the cost model that
turns its instruction mix into a predicted time and % of roofline (``bench/cost_model.py``), checked by hand."""

import math

import pytest
import torch

from bench import sass
from bench.cost_model import CONV_KERNELS, PassInput, clock_hz, grid_size, k_steps, kernel_name, predict

# A loop as nvdisasm prints it (sm_90): a label, the body, the backward branch; the epilogue; the
# trailing self-branch every kernel ends with (no tensor-core instruction: not the main loop).
SASS = """
        /*0000*/                   MOV R1, c[0x0][0x28] ;
.L_x_0:
        /*0010*/                   UIADD3 UR4, UR4, 0x1, URZ ;
        /*0020*/                   DEPBAR.LE SB0, 0x1 ;
        /*0030*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;
        /*0040*/                   WARPGROUP.ARRIVE ;
        /*0050*/                   HGMMA.64x64x8.F32.TF32 R24, gdesc[UR8], R24 ;
        /*0060*/                   HGMMA.64x64x8.F32.TF32 R24, gdesc[UR8], R24, gsb0 ;
        /*0070*/                   ISETP.GE.AND P0, PT, R2, 0x1, PT ;
        /*0080*/                   IMAD R3, R2, 0x4, R5 ;
        /*0090*/               @P0 LDGSTS.E.BYPASS.128 [R4], desc[UR6][R6.64] ;
        /*00a0*/                   LDG.E R8, desc[UR6][R10.64] ;
        /*00b0*/                   STS [R9], R8 ;
        /*00c0*/                   LDGDEPBAR ;
        /*00d0*/                   WARPGROUP.DEPBAR.LE gsb0, 0x0 ;
        /*00e0*/              @!PT LDS RZ, [RZ] ;
        /*00f0*/               @P1 BRA `(.L_x_0) ;
        /*0100*/                   FADD R2, R3, R4 ;
        /*0110*/                   STG.E desc[UR6][R2.64], R3 ;
        /*0120*/                   EXIT ;
.L_x_1:
        /*0130*/                   BRA `(.L_x_1);
"""


def test_the_main_loop_is_counted_by_class() -> None:
    """The body from .L_x_0 to its branch holds 14 issued instructions (the ``@!PT`` load never issues):
    uniform 1 (UIADD3); wait 5 (DEPBAR, BAR, WARPGROUP.ARRIVE, LDGDEPBAR, WARPGROUP.DEPBAR); mma 2;
    int/ALU 2 (ISETP, IMAD); one cp.async (LDGSTS), one synchronous load (LDG), one STS, the BRA.
    A warp's share of one HGMMA.64x64x8 is 2 x 64 x 64 x 8 / 4 = 16384 FLOPs, so 32768 per K-step.
    Shared memory, a warp's share: each TF32 HGMMA reads A (64 x 8 x 4 B) and B (8 x 64 x 4 B) = 4096 B
    per warpgroup, 1024 a warp, 2048 for both; the 16-byte cp.async 32 x 16 = 512; the STS 32 x 4 = 128;
    2688 in all.
    The wgmma wait is to 0 (nothing in flight across steps); the copy wait keeps one group.
    After the branch: FADD, STG, EXIT = 3 epilogue instructions."""
    mix = sass.main_loop(SASS)
    assert mix.found and mix.instructions == 14
    expected = dict.fromkeys(sass.CLASSES, 0)
    expected.update(uniform=1, wait=5, mma=2, int_alu=2, async_copy=1, global_load=1, shared_store=1, other=1)
    assert mix.counts == expected
    assert mix.mma_flops_per_warp == 32768
    assert mix.shared_bytes_per_warp == 2688
    assert mix.waits_all_wgmma and not mix.waits_all_copies
    assert mix.epilogue_instructions == 3
    assert mix.loop_copy_widths == {16: 1} and mix.epilogue_access_widths == {4: 1}


def test_narrow_copies_and_epilogue_accesses_are_listed_by_width() -> None:
    """A 4-byte copy in the loop and a 2-byte epilogue store (what the H200 found binding) are counted as
    narrow; the pass's prediction carries both counts."""
    narrow = SASS.replace("LDGSTS.E.BYPASS.128", "LDGSTS.E").replace("STG.E desc", "STG.E.U16 desc")
    mix = sass.main_loop(narrow)
    assert mix.loop_copy_widths == {4: 1} and mix.epilogue_access_widths == {2: 1}
    assert [sass.access_width(op) for op in ("LDG.E.U8", "STG.E.64", "LDG.E", "LDGSTS.E.BYPASS.128")] == [1, 8, 4, 16]
    prediction = predict(PassInput("p", "tf32", 64, 64, 32, 4, 3, 128, 48 * 1024, 132, 1, 1e6, 1e6, mix))
    assert prediction.narrow_copies == 1 and prediction.narrow_epilogue == 1


def test_no_loop_without_tensor_core_instructions() -> None:
    """A kernel without MMAs (a split-K sum) has no main loop; all its code up to the last EXIT (18
    instructions) runs once per tile, as an epilogue."""
    mix = sass.main_loop(SASS.replace("HGMMA", "FFMA"))
    assert not mix.found and mix.epilogue_instructions == 18


def test_the_cost_model_by_hand() -> None:
    """A TF32 pass on an H200: 64x64x32 tiles, 4 warps, 3 stages, 128 registers, 48 KB shared memory.
    Its loop (per warp per K-step): 100 instructions, 40 int/ALU, 4 HGMMA.64x64x8 (65536 FLOPs a warp),
    8192 bytes of shared-memory traffic a warp.

    Occupancy: 128 x 32 = 4096 registers a warp, 16384 a CTA -> 65536 / 16384 = 4 CTAs; shared memory
    232448 // 49152 = 4; warps 64 / 4 = 16 -> 4 CTAs per SM.
    One CTA's K-step, per scheduler (1 warp each): issue 100; ALU 2 x 40 = 80; tensor 4 x 65536 / 2048
    = 128; shared 4 x 8192 / 128 = 256; with 4 CTAs
    resident: 400, 320, 512, 1024 -> shared-bound at 1024; latency 600 / (3 - 1) = 300 is below it.
    Grid 1056 = 132 x 8: the busiest SM runs 8 CTAs, 2 rounds of 4. A round: 10 K-steps x 1024 + 4 CTAs
    x 200 epilogue instructions x 1.5 + 600 (fill) = 12040 cycles; 2 rounds = 24080 cycles at
    989.4e12 / (132 x 4096) = 1.83 GHz -> 13.159 us. Memory: 10 MB / 4.8 TB/s = 2.083 us.
    Executed MMA FLOPs 1056 x 10 x 4 x 65536 = 2.768e9; useful 3/4 of that = 2.076e9 -> 4.197 us at
    494.7 TFLOP/s, the floor; 4.197 / 13.159 = 31.9 % of roofline."""
    mix = sass.LoopMix(instructions=100, mma_flops_per_warp=65536, shared_bytes_per_warp=8192,
                       epilogue_instructions=200, found=True)  # fmt: skip
    mix.counts.update(mma=4, int_alu=40, async_copy=6, uniform=30, wait=6, other=14)
    executed = 1056 * 10 * 4 * 65536
    p = PassInput("hand", "tf32", 64, 64, 32, 4, 3, 128, 49152, 1056, 10, 0.75 * executed, 10e6, mix)
    r = predict(p, "H200")
    assert clock_hz("H200") == pytest.approx(1.83e9, rel=1e-3)
    assert r.ctas_per_sm == 4 and r.waves == 2.0
    assert r.step_cycles == {"issue": 400, "alu": 320, "tensor": 512, "shared": 1024, "latency": 300}
    assert r.bound == "shared"
    assert r.predicted_us == pytest.approx(24080 / clock_hz("H200") * 1e6) == pytest.approx(13.159, abs=1e-3)
    assert r.floor_us == pytest.approx(4.197, abs=1e-3)
    assert r.roofline_pct == pytest.approx(31.9, abs=0.05)
    assert r.padding_efficiency == pytest.approx(0.75)


def test_a_synchronous_load_exposes_a_round_trip() -> None:
    """One LDG in the loop: a K-step waits 600 cycles + its own issue (100) = 700 even when alone on
    its SM, instead of 600 / 2 with 3 stages; a full wgmma wait adds the step's tensor time (128)."""
    mix = sass.LoopMix(instructions=100, mma_flops_per_warp=65536, found=True)
    mix.counts.update(mma=4, int_alu=40, global_load=1)
    p = PassInput("sync", "tf32", 64, 64, 32, 4, 3, 128, 49152, 132, 10, 1.0, 1.0, mix)
    assert predict(p).step_cycles["latency"] == 700
    mix.waits_all_wgmma = True
    assert predict(p).step_cycles["latency"] == 828


def test_the_unrolled_loop_is_the_span_of_its_mmas() -> None:
    """Without a backward branch around the MMAs (a short K loop the compiler unrolled), the span from
    the first to the last MMA stands for the loop; here 2 HGMMAs, so 2 K-steps of one MMA each."""
    unrolled = SASS.replace("@P1 BRA `(.L_x_0)", "NOP")
    mix = sass.main_loop(unrolled)
    assert mix.found and mix.unrolled
    assert mix.instructions == 2 and mix.counts["mma"] == 2
    step = mix.per_step(2)
    assert step.counts["mma"] == 1 and step.mma_flops_per_warp == 16384


def test_the_model_grid_and_k_steps_are_the_launchers() -> None:
    """The model's grid and K-steps for recorded launches (the texture net at 64 px, batch 3: flat-K
    image layer and 5x5 layer, channel blocks, sub-pixel top-down) are ``implicit_gemm.conv_grid``'s
    programs and ``conv_tile``'s loop trip count (flat where the launch passes FLAT)."""
    from bench.cost_model import geometry, record_step
    from genconv.kernels.implicit_gemm import conv_grid

    recorded = record_step("texture", 64, 3, torch.float32)
    launches = [launch for launch in recorded if kernel_name(launch) in CONV_KERNELS]  # not the image layer's fold
    assert len([launch for launch in launches if geometry(launch)["phase"] != 2]) == 6
    for launch in launches:
        config = launch.heuristic
        bm, bn, bk = (config.kwargs[k] for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
        g = geometry(launch)
        grid = conv_grid(g["rows"] // g["per_image"], g["per_image"], g["columns"], g["span"])(config.kwargs)
        runs = g["split"] if g["phase"] == 1 else 1  # split-K: one program per run of K-steps
        assert grid_size(g, bm, bn) == math.prod(grid) * runs
        if launch.kwargs["FLAT"]:
            steps = g["kh"] * math.ceil(g["kw"] * g["channels"] / bk)
        else:
            steps = g["kh"] * g["kw"] * math.ceil(g["channels"] / bk)
        assert k_steps(g, bk) == (0 if g["phase"] == 2 else math.ceil(steps / runs))


def test_a_small_batch_splits_k_to_fill_the_gpu(monkeypatch) -> None:
    """Passes that launch fewer programs than half the 132 SMs cut their K loop into runs of at least 8
    K-steps, at most 16 runs, about 132 programs in all (the B=1 texture net's 5x5 layer: 8 programs
    of 100 K-steps -> 12 runs of at most 9); a split pass is recorded as its runs then the launch that
    adds them, and the model's grid and K-steps are the runs'."""
    from bench.cost_model import geometry, record_step
    from genconv.kernels import implicit_gemm

    assert implicit_gemm.split_count(8, 100) == 12
    assert implicit_gemm.split_count(8, 20) == 2 and implicit_gemm.split_count(8, 15) == 1
    assert implicit_gemm.split_count(66, 100) == 2 and implicit_gemm.split_count(67, 100) == 1
    monkeypatch.setattr(implicit_gemm, "INTERPRETER_SPLIT", 3)  # what the launchers use in the interpreter
    recorded = record_step("texture", 64, 1, torch.float32)
    launches = [launch for launch in recorded if kernel_name(launch) in CONV_KERNELS]  # not the image layer's fold
    phases = [geometry(launch)["phase"] for launch in launches]
    assert phases == [1, 2] * 6
    for launch in launches[::2]:
        g = geometry(launch)
        config = launch.heuristic
        bm, bn, bk = (config.kwargs[k] for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
        whole = dict(g, phase=0)
        assert grid_size(g, bm, bn) == 3 * grid_size(whole, bm, bn)
        assert k_steps(g, bk) == math.ceil(k_steps(whole, bk) / 3)
