"""Counter-based standard normals: element e of the result is ``normal_at(seed, offset + e)``.

``normal_at`` is Triton's ``tl.randn`` (Philox-4x32-10, words 0 and 1 through Box-Muller) with one
change: the cosine of the angle 2 pi u, u in [0, 1), is reduced exactly to within an eighth of a
turn and evaluated by Cephes' single-precision polynomials. libdevice's ``cosf`` carries, inline
for every element, a large-argument reduction (Payne-Hanek: about 55 instructions and a 32-byte
stack table) that an angle below 2 pi never takes; the SASS cost model counted it as run.
``normal_at`` draws its Philox words with ``philox_pair``: ``tl.randint4x``'s words, with one wide
multiply a product where Triton's takes two. ``tile_normal`` keeps ``tl.randn`` itself for conv
tiles of more than STRAIGHT_NOISE_ELEMENTS elements: there a thread draws 16-32 normals, and
without the cold path's branches ptxas runs them side by side (on sm_90 a 64 x 32 tile of 4 warps
went from 168 registers to 177, 256 x 16 ones spilled); the wide products' register pairs spill
the 256 x 16 tile of 4 warps too (56-60 bytes at 255 registers, sm_80 and sm_90, Triton 3.6).

Also the counter conventions every noise-drawing kernel shares: the seed and a base counter live
in an int64 device tensor [seed, base] (a captured CUDA graph replays with new values), and a
launch's own offset travels as two int32 halves, so a long chain never crosses from an i32 to an
i64 specialisation (and a recompile) when its counters pass 2^31.
"""

import math

import torch
import triton
import triton.language as tl

from genconv.kernels import reference
from genconv.kernels.launch import check_device, launch

_HALF = 31

# The counter offset moves every chain step. Triton would specialise these integer arguments on
# ==1 and %16, compiling the kernel again (seconds, and a lost CUDA graph) whenever a step's
# offset falls into another class; every kernel that takes them opts out.
COUNTER_ARGUMENTS = ["offset_low", "offset_high"]


def counter_tensor(seed: int | torch.Tensor | None, device: torch.device, needed: bool = True) -> torch.Tensor:
    """The int64 [seed, base] tensor a kernel reads: ``seed`` itself when it is one, else [seed, 0]."""
    if isinstance(seed, torch.Tensor):
        if seed.shape != (2,) or seed.dtype != torch.int64:
            raise ValueError(f"a counter must be an int64 tensor [seed, base], got {seed.dtype} {list(seed.shape)}")
        return seed
    if seed is None:
        if needed:
            raise ValueError("counter-based noise needs a seed")
        return torch.zeros(2, dtype=torch.int64, device=device)
    if not 0 <= int(seed) < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2**63), got {seed}")
    return torch.tensor([int(seed), 0], dtype=torch.int64, device=device)


def split_offset(offset: int) -> tuple[int, int]:
    """``offset`` as (low 31 bits, the rest): both fit int32 for offsets below 2^62."""
    if not 0 <= offset < 2**62:
        raise ValueError(f"offset must be in [0, 2**62), got {offset}")
    return offset & ((1 << _HALF) - 1), offset >> _HALF


# Cephes sinf/cosf on [-pi/4, pi/4] (peak relative error about 3e-8 in single precision)
_COS_C2, _COS_C1, _COS_C0 = map(tl.constexpr, (2.443315711809948e-05, -1.388731625493765e-03, 4.166664568298827e-02))
_SIN_C2, _SIN_C1, _SIN_C0 = map(tl.constexpr, (-1.9515295891e-04, 8.3321608736e-03, -1.6666654611e-01))
_TWO_PI = tl.constexpr(6.283185307179586)


@triton.jit
def cos_turns(t):
    """cos(2 pi t) for t in [0, 1]: t less the nearest quarter turn (exact) is within 1/8 turn, where
    Cephes' polynomials hold; the quarter picks the sine's or the cosine's coefficients for one Horner
    chain (as libdevice does: fewer registers than two chains and a choice) and the sign."""
    quarter = tl.floor(4.0 * t + 0.5)
    angle = (t - 0.25 * quarter) * _TWO_PI
    square = angle * angle
    turn = quarter.to(tl.int32)
    sine = (turn & 1) != 0
    # cos a = 1 + z (-1/2 + z (C0 + z (C1 + z C2))), sin a = a (1 + z (S0 + z (S1 + z S2))), z = a^2
    series = tl.where(sine, 0.0, _COS_C2)
    series = series * square + tl.where(sine, _SIN_C2, _COS_C1)
    series = series * square + tl.where(sine, _SIN_C1, _COS_C0)
    series = series * square + tl.where(sine, _SIN_C0, -0.5)
    series = series * square + 1.0
    value = tl.where(sine, angle * series, series)
    return tl.where(((turn + 1) & 2) != 0, -value, value)  # quarters 1 and 2: -sin a, -cos a


# the reference's Philox constants, as compile-time values
_PHILOX_KEY_A = tl.constexpr(reference._PHILOX_KEY_A)
_PHILOX_KEY_B = tl.constexpr(reference._PHILOX_KEY_B)
_PHILOX_ROUND_A = tl.constexpr(reference._PHILOX_ROUND_A)
_PHILOX_ROUND_B = tl.constexpr(reference._PHILOX_ROUND_B)
_PHILOX_ROUNDS = tl.constexpr(reference._PHILOX_ROUNDS)


@triton.jit
def philox_pair(seed, counter):
    """Words 0 and 1 of Philox-4x32-10 at the integer ``counter`` with key ``seed``: ``tl.randint4x``'s,
    bit for bit. Each round's products are one 32 x 32 -> 64-bit multiply (``IMAD.WIDE.U32``) whose
    halves are the high and low words, where ``tl.randint4x`` takes them as a ``umulhi`` and a
    separate low multiply: half the multiplies."""
    key = seed.to(tl.uint64)
    k0 = (key & 0xFFFFFFFF).to(tl.uint32)
    k1 = ((key >> 32) & 0xFFFFFFFF).to(tl.uint32)
    c0 = counter.to(tl.uint32)
    if tl.constexpr(counter.dtype.primitive_bitwidth > 32):
        c1 = (counter >> 32).to(tl.uint32)
    else:
        c1 = c0 * 0
    # the first round, where c2 = c3 = 0
    product_a = c0.to(tl.uint64) * _PHILOX_ROUND_A
    c0, c1 = c1 ^ k0, c1 * 0
    c2, c3 = (product_a >> 32).to(tl.uint32) ^ k1, product_a.to(tl.uint32)
    for _ in tl.static_range(_PHILOX_ROUNDS - 1):
        k0 = tl.add(k0, _PHILOX_KEY_A, sanitize_overflow=False)
        k1 = tl.add(k1, _PHILOX_KEY_B, sanitize_overflow=False)
        product_b = c2.to(tl.uint64) * _PHILOX_ROUND_B
        product_a = c0.to(tl.uint64) * _PHILOX_ROUND_A
        c0 = (product_b >> 32).to(tl.uint32) ^ c1 ^ k0
        c2 = (product_a >> 32).to(tl.uint32) ^ c3 ^ k1
        c1 = product_b.to(tl.uint32)
        c3 = product_a.to(tl.uint32)
    return c0, c1


@triton.jit
def normal_at(seed, counter):
    """The standard normal at ``counter``: ``tl.randn(seed, counter)`` up to the last bits of the cosine
    (``cos_turns``), the numbers ``reference.philox_normal`` draws."""
    word0, word1 = philox_pair(seed, counter)
    radius = tl.sqrt(-2.0 * tl.log(tl.maximum(tl.uint_to_uniform_float(word0), 1.0e-7)))
    return radius * cos_turns(tl.uint_to_uniform_float(word1))


# The largest tile whose epilogue draws straight-line normals: 8 a thread of 4 warps (``tile_normal``)
STRAIGHT_NOISE_ELEMENTS = tl.constexpr(1024)


@triton.jit
def tile_normal(seed, counter, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """A [BLOCK_M, BLOCK_N] tile's normals: ``normal_at`` on tiles of at most STRAIGHT_NOISE_ELEMENTS,
    ``tl.randn`` (the same numbers up to the last bits) on larger ones, whose draws its branches space out."""
    if BLOCK_M * BLOCK_N <= STRAIGHT_NOISE_ELEMENTS:
        z = normal_at(seed, counter)
    else:
        z = tl.randn(seed, counter)
    return z


def _configs() -> list[triton.Config]:
    return [triton.Config({"BLOCK": 1024}, num_warps=4), triton.Config({"BLOCK": 4096}, num_warps=8)]


@triton.autotune(configs=_configs(), key=["numel"])
@triton.jit(do_not_specialize=COUNTER_ARGUMENTS)
def _standard_normal_kernel(out_ptr, counter_ptr, numel, offset_low, offset_high, BLOCK: tl.constexpr):
    start = tl.program_id(0).to(tl.int64) * BLOCK
    offs = start + tl.arange(0, BLOCK)
    base = tl.load(counter_ptr + 1) + (offset_high.to(tl.int64) << 31) + offset_low
    tl.store(out_ptr + offs, normal_at(tl.load(counter_ptr), base + offs), mask=offs < numel)


def standard_normal(
    seed: int, offset: int, shape: tuple[int, ...] | torch.Size, device: torch.device | str = "cuda"
) -> torch.Tensor:
    """float32 N(0, 1) numbers of ``shape`` drawn at counters offset + e; see ``reference.philox_normal``."""
    if not 0 <= seed < 2**63 or offset < 0:
        raise ValueError(f"seed must be in [0, 2**63) and offset >= 0, got {seed}, {offset}")
    out = torch.empty(tuple(shape), dtype=torch.float32, device=device)
    check_device(out)
    numel = math.prod(out.shape)
    if numel:
        counter = counter_tensor(seed, out.device)
        low, high = split_offset(int(offset))
        launch(_standard_normal_kernel, lambda meta: (triton.cdiv(numel, meta["BLOCK"]),), _configs(), _configs()[0],
               out, counter, numel, low, high)  # fmt: skip
    return out
