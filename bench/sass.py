"""The main loop of a compiled kernel, read from its SASS: instructions per K-step by class.

    python -m bench.sass kernel.cubin          # the loop's mix and the instructions of the loop

Triton's wheel bundles ``nvdisasm`` and ``cuobjdump`` beside ptxas; ``triton.knobs`` finds them the
way Triton finds ptxas (``TRITON_NVDISASM_PATH`` / ``TRITON_CUOBJDUMP_PATH`` override). The main loop
is the body of the backward branch (a ``BRA`` to an earlier label) that holds the most tensor-core
instructions; its instructions run once per warp per K-step. Where the compiler unrolled a short
K loop (no backward branch holds an MMA), the span from the first to the last MMA stands for it.
Classes:

- ``mma``: tensor-core instructions (HGMMA: sm_90 wgmma; HMMA: sm_80 mma.sync);
- ``async_copy``: global -> shared copies that do not stall the warp (LDGSTS: cp.async; UTMALDG: TMA);
- ``global_load``: synchronous global loads (LDG, LD): the warp waits for them before using the data,
  which the software pipeline cannot hide;
- ``shared_load`` (LDS, LDSM), ``shared_store`` (STS, STSM), ``global_store`` (STG, RED, ATOM);
- ``wait``: barriers and waits (BAR, DEPBAR, WARPGROUP.DEPBAR/ARRIVE, LDGDEPBAR, WARPSYNC, SYNCS);
- ``uniform``: uniform-datapath ops (U*: scalar address and descriptor arithmetic);
- ``int_alu``: integer and logic ops on vector registers (IADD3, IMAD, ISETP, LOP3, SEL, LEA, SHF, ...),
  issued at 16 lanes per clock per scheduler on Hopper, i.e. 2 clocks per warp instruction;
- ``float``: FP32 arithmetic (FADD, FFMA, FSETP, MUFU, conversions); ``other``: branches, moves, NOPs.

The loop's copies into shared memory and the epilogue's global loads and stores are also counted by
access width (bytes per lane): narrow ones touch many memory sectors per useful byte.
"""
# ruff: noqa: E402

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python bench/sass.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field

CLASSES = ("mma", "async_copy", "global_load", "shared_load", "shared_store", "global_store", "wait", "uniform",
           "int_alu", "float", "other")  # fmt: skip

_MMA = ("HGMMA", "HMMA", "BGMMA", "IGMMA", "QGMMA", "IMMA")
_ASYNC = ("LDGSTS", "UTMALDG", "UBLKCP", "UTMAPF")
_WAIT = ("BAR", "DEPBAR", "WARPGROUP", "LDGDEPBAR", "WARPSYNC", "SYNCS", "MEMBAR", "ARRIVES", "ERRBAR", "CCTL")
_INT = ("IADD3", "IMAD", "ISETP", "LOP3", "LOP", "SEL", "LEA", "SHF", "PRMT", "PLOP3", "VIADD", "VIMNMX", "IMNMX",
        "IABS", "FSEL", "BMSK", "SGXT", "ISCADD", "IDP", "POPC", "FLO", "BREV", "P2R", "R2P", "IMUL", "SHL", "SHR",
        "ICMP", "VIADDMNMX", "MOV")  # fmt: skip
_FLOAT = ("FADD", "FMUL", "FFMA", "FSETP", "FMNMX", "MUFU", "F2F", "F2I", "I2F", "FRND", "FCHK", "HADD2", "HMUL2",
          "HFMA2", "FSWZADD", "F2FP", "I2FP", "F2IP", "DADD", "DMUL", "DFMA")  # fmt: skip

_LINE = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(?:(@!?U?P[0-9T]+)\s+)?([A-Z][A-Za-z0-9_.]*)\s*(.*?)\s*;")
_LABEL = re.compile(r"^(\.L_x_\d+):")
_TARGET = re.compile(r"`\((\.L_x_\d+)\)")
_MMA_SHAPE = re.compile(r"\.(\d+)x(\d+)x(\d+)\.")


@dataclass(frozen=True)
class Instruction:
    address: int
    predicate: str
    opcode: str
    operands: str


def classify(opcode: str) -> str:
    """The class of one SASS opcode (``HGMMA.64x64x8.F32.TF32`` -> "mma")."""
    base = opcode.split(".")[0]
    if base in _MMA:
        return "mma"
    if base in _ASYNC:
        return "async_copy"
    if base in ("LDG", "LD"):
        return "global_load"
    if base in ("LDS", "LDSM"):
        return "shared_load"
    if base in ("STS", "STSM"):
        return "shared_store"
    if base in ("STG", "ST", "RED", "ATOM", "ATOMG", "REDG"):
        return "global_store"
    if base in _WAIT:
        return "wait"
    if base.startswith("U") or base in ("S2UR", "R2UR"):
        return "uniform"
    if base in _INT:
        return "int_alu"
    if base in _FLOAT:
        return "float"
    return "other"


def mma_flops(opcode: str, warps_per_group: int = 4) -> int:
    """Floating-point operations one warp's copy of a tensor-core instruction contributes.

    A wgmma (HGMMA.MxNxK) is one MxNxK product for its warpgroup, which all 4 warps issue, so a
    warp's share is 2 M N K / 4; an mma.sync (HMMA.16816: m16 n8 k16) is a warp's own product.
    """
    shape = _MMA_SHAPE.search(opcode + ".")
    if opcode.startswith("HGMMA") and shape:
        m, n, k = (int(v) for v in shape.groups())
        return 2 * m * n * k // warps_per_group
    sync = re.search(r"\.(\d{2})(\d)(\d+)\.", opcode)  # HMMA.16816, HMMA.1688
    if sync:
        m, n, k = (int(v) for v in sync.groups())
        return 2 * m * n * k
    return 0


_ELEMENT_BYTES = {"TF32": 4, "F32": 4, "BF16": 2, "F16": 2, "E4M3": 1, "E5M2": 1, "S8": 1, "U8": 1}


def shared_bytes(opcode: str, operands: str) -> float:
    """Bytes one warp's copy of an instruction moves through shared memory.

    HGMMA: its warpgroup reads B (K x N) and, unless A comes from registers, A (64 x K) from shared
    memory, so a warp's share is a quarter; LDS/STS/LDGSTS: 32 lanes x the access width; LDSM: 128
    bytes per 8x8 matrix.
    """
    base = opcode.split(".")[0]
    if base == "HGMMA":
        shape = _MMA_SHAPE.search(opcode + ".")
        if not shape:
            return 0.0
        m, n, k = (int(v) for v in shape.groups())
        element = _ELEMENT_BYTES.get(opcode.split(".")[-1], 2)
        a_shared = operands.replace(" ", "").split(",")[1].startswith("gdesc")
        return ((m * k if a_shared else 0) + k * n) * element / 4
    if base == "LDSM":
        return 128.0 * (4 if ".x4" in opcode.lower() else 2 if ".x2" in opcode.lower() else 1)
    if base in ("LDS", "STS", "LDGSTS"):
        parts = opcode.split(".")
        width = 4
        for part, size in (("U8", 1), ("S8", 1), ("U16", 2), ("S16", 2), ("64", 8), ("128", 16)):
            if part in parts:
                width = size
        return 32.0 * width
    return 0.0


def access_width(opcode: str) -> int:
    """Bytes per lane of a global load, store or copy (LDG.E.U8 -> 1, STG.E.64 -> 8, LDGSTS.E.BYPASS.128 -> 16)."""
    parts = opcode.split(".")
    for part, size in (("U8", 1), ("S8", 1), ("U16", 2), ("S16", 2), ("64", 8), ("128", 16)):
        if part in parts:
            return size
    return 4


def parse(sass: str) -> tuple[list[Instruction], dict[str, int]]:
    """Instructions in address order and labels -> the index of the instruction after them."""
    instructions: list[Instruction] = []
    labels: dict[str, int] = {}
    for line in sass.splitlines():
        label = _LABEL.match(line)
        if label:
            labels[label.group(1)] = len(instructions)
            continue
        match = _LINE.match(line)
        if match:
            address, predicate, opcode, operands = match.groups()
            if predicate != "@!PT":  # never executed: scoreboard padding
                instructions.append(Instruction(int(address, 16), predicate or "", opcode, operands))
    return instructions, labels


@dataclass
class LoopMix:
    """A kernel's main loop: instructions per warp per K-step by class, and what surrounds it."""

    instructions: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    mma_flops_per_warp: int = 0
    shared_bytes_per_warp: float = 0.0  # read by the wgmmas + moved by LDS/STS/LDSM/LDGSTS, a warp's share
    waits_all_wgmma: bool = False  # WARPGROUP.DEPBAR.LE gsb0, 0x0 inside the loop: no wgmma overlap
    waits_all_copies: bool = False  # DEPBAR.LE SB0, 0x0 inside the loop: no copy in flight across steps
    kernel_instructions: int = 0
    epilogue_instructions: int = 0  # after the loop, to the last EXIT (straight-line code, once per tile)
    # access width in bytes per lane -> instructions: the loop's copies into shared memory, and the global
    # loads and stores after the loop (narrow ones touch many sectors per byte: the model does not time them)
    loop_copy_widths: dict[int, int] = field(default_factory=dict)
    epilogue_access_widths: dict[int, int] = field(default_factory=dict)
    found: bool = False
    unrolled: bool = False  # no backward branch: the counts cover every K-step (see ``per_step``)

    def to_dict(self) -> dict:
        return asdict(self)

    def per_step(self, steps: int) -> "LoopMix":
        """The mix of one K-step of a body that holds ``steps`` of them (an unrolled loop)."""
        if steps <= 1:
            return self
        counts = {name: count / steps for name, count in self.counts.items()}
        return LoopMix(
            instructions=self.instructions / steps, counts=counts, mma_flops_per_warp=self.mma_flops_per_warp / steps,
            shared_bytes_per_warp=self.shared_bytes_per_warp / steps,
            waits_all_wgmma=self.waits_all_wgmma, waits_all_copies=self.waits_all_copies,
            kernel_instructions=self.kernel_instructions, epilogue_instructions=self.epilogue_instructions,
            found=self.found, unrolled=self.unrolled,
            loop_copy_widths={width: count / steps for width, count in self.loop_copy_widths.items()},
            epilogue_access_widths=self.epilogue_access_widths,
        )  # fmt: skip


def main_loop(sass: str) -> LoopMix:
    """The loop (backward branch) with the most tensor-core instructions, or an empty mix."""
    instructions, labels = parse(sass)
    best: tuple[int, int, int] | None = None  # (mma count, start, end)
    for index, instruction in enumerate(instructions):
        if not instruction.opcode.startswith("BRA"):
            continue
        target = _TARGET.search(instruction.operands)
        start = labels.get(target.group(1)) if target else None
        if start is None or start > index:
            continue
        mma = sum(classify(i.opcode) == "mma" for i in instructions[start : index + 1])
        if mma and (best is None or mma > best[0]):
            best = (mma, start, index)
    mix = LoopMix(kernel_instructions=len(instructions))
    if best is None:
        # no loop holds the MMAs: the compiler unrolled a short K loop; its K-steps are the span from
        # the first to the last MMA (``mma_flops_per_warp`` then covers every step: divide by the tile's)
        mma = [i for i, instruction in enumerate(instructions) if classify(instruction.opcode) == "mma"]
        if not mma:
            # no main loop (a split-K sum): the code up to the last EXIT runs once per tile, like an epilogue
            exits = [i for i, instruction in enumerate(instructions) if instruction.opcode == "EXIT"]
            mix.epilogue_instructions = max(exits, default=len(instructions) - 1) + 1
            _count_accesses(mix, instructions[: mix.epilogue_instructions])
            return mix
        best = (len(mma), mma[0], mma[-1])
        mix.unrolled = True
    _, start, end = best
    body = instructions[start : end + 1]
    mix.found = True
    mix.instructions = len(body)
    for instruction in body:
        mix.counts[classify(instruction.opcode)] += 1
        mix.mma_flops_per_warp += mma_flops(instruction.opcode)
        mix.shared_bytes_per_warp += shared_bytes(instruction.opcode, instruction.operands)
        operands = instruction.operands.replace(" ", "")
        if instruction.opcode.startswith("WARPGROUP.DEPBAR") and operands.endswith(",0x0"):
            mix.waits_all_wgmma = True
        if instruction.opcode.startswith("DEPBAR") and operands.endswith(",0x0"):
            mix.waits_all_copies = True
        if instruction.opcode.startswith("LDGSTS"):
            width = access_width(instruction.opcode)
            mix.loop_copy_widths[width] = mix.loop_copy_widths.get(width, 0) + 1
    exits = [i for i, instruction in enumerate(instructions) if instruction.opcode == "EXIT"]
    last = max((i for i in exits if i > end), default=len(instructions) - 1)
    mix.epilogue_instructions = max(0, last - end)
    _count_accesses(mix, instructions[end + 1 : last])
    return mix


def _count_accesses(mix: LoopMix, epilogue: list[Instruction]) -> None:
    """The epilogue's global loads and stores by access width."""
    for instruction in epilogue:
        if classify(instruction.opcode) in ("global_load", "global_store"):
            width = access_width(instruction.opcode)
            mix.epilogue_access_widths[width] = mix.epilogue_access_widths.get(width, 0) + 1


def _tools() -> tuple[str, str]:
    from triton import knobs

    return knobs.nvidia.nvdisasm.path, knobs.nvidia.cuobjdump.path


def disassemble(cubin: bytes) -> str:
    """The SASS of a cubin (Triton's bundled nvdisasm)."""
    nvdisasm, _ = _tools()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "kernel.cubin"
        path.write_bytes(cubin)
        return subprocess.run([nvdisasm, "-c", str(path)], capture_output=True, text=True, check=True).stdout


def resource_usage(cubin: bytes) -> tuple[int, int]:
    """(registers per thread, stack bytes per thread) from ``cuobjdump -res-usage``."""
    _, cuobjdump = _tools()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "kernel.cubin"
        path.write_bytes(cubin)
        text = subprocess.run([cuobjdump, "-res-usage", str(path)], capture_output=True, text=True, check=True).stdout
    registers = re.search(r"REG:(\d+)", text)
    stack = re.search(r"STACK:(\d+)", text)
    return int(registers.group(1)) if registers else 0, int(stack.group(1)) if stack else 0


# Per SM (Hopper / Ampere whitepapers): registers, shared memory a block may use, resident warps, resident blocks.
SM_LIMITS = {"sm_90": (65536, 227 * 1024, 64, 32), "sm_80": (65536, 163 * 1024, 64, 32)}


def warps_per_sm(target: str, registers: int, shared: int, warps: int) -> int:
    """Resident warps per SM: registers allocated per warp in units of 256, blocks limited by the
    register file, shared memory, the warp limit and the block limit."""
    register_file, shared_limit, max_warps, max_blocks = SM_LIMITS[target]
    per_warp = -(-(registers * 32) // 256) * 256
    blocks = min(register_file // (per_warp * warps), max_warps // warps, max_blocks)
    if shared:
        blocks = min(blocks, shared_limit // shared)
    return blocks * warps


def loop_mix(cubin: bytes) -> LoopMix:
    """The main loop's instruction mix of a compiled kernel."""
    return main_loop(disassemble(cubin))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.sass", description=__doc__.split("\n")[0])
    parser.add_argument("cubin", type=Path, help="a compiled kernel (Triton's compiled.asm['cubin'])")
    args = parser.parse_args(argv)
    if not args.cubin.is_file():
        parser.error(f"cubin: expected a cubin file, got {args.cubin}")
    mix = loop_mix(args.cubin.read_bytes())
    registers, stack = resource_usage(args.cubin.read_bytes())
    print(f"registers {registers}, stack {stack} B; main loop found: {mix.found}, {mix.instructions} instructions")
    for name in CLASSES:
        print(f"  {name:<13} {mix.counts[name]:>4}")
    print(f"  tensor FLOPs per warp per K-step {mix.mma_flops_per_warp}; shared-memory bytes per warp "
          f"{mix.shared_bytes_per_warp:.0f}; epilogue {mix.epilogue_instructions}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
