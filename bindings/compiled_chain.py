"""Whole Langevin chains of any energy, captured once with torch.compile and replayed.

A sampling step on a small energy is mostly overhead: a few dozen tiny ops, each dispatched from
Python, for a state of a few kilobytes. ``sample_langevin(..., compile=...)`` traces a block of
steps (the energy's gradient by ``torch.func.grad``, the gradient clipping, the update, its
counter-based Philox noise written in torch ops, the clamp) once with ``torch.compile``, which
fuses it into a few loops; on CUDA the compiled block is also recorded in a CUDA graph (mode
"reduce-overhead"). The noise is the same stream as the eager chain's: element e of step t draws
Philox counter (start_step + t) * x.numel() + e with the run seed, so a compiled chain equals the
eager one to float rounding (log and cos of the inductor's vector code against the C++ kernel's).

A chain of ``steps`` steps runs as blocks of ``block_size(steps, x.numel())`` steps (the largest
divisor of ``steps`` up to ``MAX_BLOCK``; one step for states of ``LARGE_STATE`` elements or more,
where the step's compute outweighs its overhead): one compiled function per (energy, shape, dtype, device,
block size, clamp, clipping), whatever the step sizes (they enter as tensors, so a schedule or a
new step size does not recompile). Compiled chains are kept for ``CAPACITY`` energies, least
recently used dropped. When capture fails the chain runs eagerly, with one warning, and that key
is not tried again.

``compile="auto"`` compiles a chain once chains with the same key have run ``AUTO_STEPS`` steps
eagerly in this process (compiling costs seconds, and a step saves a fraction of a millisecond:
repeated chains, as in training, pay it back; a one-off chain or a test does not).
``GENCONV_COMPILE=0`` turns compilation off whatever is asked.
"""

import math
import os
import time
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import torch

from genconv.kernels.reference import (  # the kernels' own Philox-4x32-10 and Box-Muller constants
    _MASK32,
    _PHILOX_KEY_A,
    _PHILOX_KEY_B,
    _PHILOX_ROUND_A,
    _PHILOX_ROUND_B,
    _PHILOX_ROUNDS,
    _TWO_PI,
    _UINT_TO_UNIFORM_SCALE,
    accumulation_dtype,
)

COMPILE_ENV = "GENCONV_COMPILE"
COMPILE_CHOICES: tuple[object, ...] = ("auto", True, False)
AUTO_STEPS = 20_000
MAX_BLOCK = 5
LARGE_STATE = 65_536
CAPACITY = 8

_SMALLEST_UNIFORM = 1.0e-7

Energy = Callable[[torch.Tensor], torch.Tensor]


def compile_enabled() -> bool:
    return os.environ.get(COMPILE_ENV, "1") != "0"


def block_size(steps: int, numel: int = 1) -> int:
    """Steps per compiled block: the largest divisor of ``steps`` up to MAX_BLOCK (one compile per
    chain length); one step for states of LARGE_STATE elements or more, whose steps are compute, not
    overhead, and whose unrolled blocks would multiply the compile time."""
    if numel >= LARGE_STATE:
        return 1
    return max(d for d in range(1, min(steps, MAX_BLOCK) + 1) if steps % d == 0)


def traced_normal(seed: torch.Tensor, first: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Standard normals at Philox counters first + e (row-major e), from int64 0-d tensors.

    ``reference.philox_normal`` in functional torch ops that torch.compile fuses into one loop: the
    same Philox-4x32-10 words and Box-Muller, so the same numbers up to the last bits of log/cos.
    uint32 words live in int64; a product of two words wraps modulo 2**64 and the arithmetic shift
    followed by the mask still reads its high word exactly.
    """
    offsets = torch.arange(math.prod(shape), dtype=torch.int64, device=seed.device) + first
    c0, c1 = offsets & _MASK32, offsets >> 32
    c2, c3 = torch.zeros_like(c0), torch.zeros_like(c0)
    k0, k1 = seed & _MASK32, (seed >> 32) & _MASK32
    for round_index in range(_PHILOX_ROUNDS):
        if round_index:
            k0, k1 = (k0 + _PHILOX_KEY_A) & _MASK32, (k1 + _PHILOX_KEY_B) & _MASK32
        product_a, product_b = c0 * _PHILOX_ROUND_A, c2 * _PHILOX_ROUND_B
        c0, c1, c2, c3 = (
            ((product_b >> 32) & _MASK32) ^ c1 ^ k0,
            product_b & _MASK32,
            ((product_a >> 32) & _MASK32) ^ c3 ^ k1,
            product_a & _MASK32,
        )
    u1 = _uniform(c0).clamp_min(_SMALLEST_UNIFORM)
    theta = _TWO_PI * _uniform(c1)
    return (torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(theta)).reshape(shape)


def _uniform(words: torch.Tensor) -> torch.Tensor:
    folded = ((words >> 31) * _MASK32) ^ words
    return folded.to(torch.float32) * _UINT_TO_UNIFORM_SCALE


@dataclass(frozen=True)
class ChainSpec:
    """What a compiled block bakes in besides the energy and the state's shape."""

    steps_per_block: int
    clamp: tuple[float, float] | None
    max_grad_norm: float | None
    clip_value: float | None


def make_block(energy: Callable[[torch.Tensor], torch.Tensor], spec: ChainSpec) -> Callable[..., torch.Tensor]:
    """The function torch.compile traces: ``spec.steps_per_block`` steps from ``states``.

    block(states, counter, first_step, rows): counter int64 [seed, base]; first_step int64 0-d,
    the chain's step of the block's first step; rows [3, S] float64 holding each step's (drift,
    decay, noise_std). Step j of the block draws counters base + (first_step + j) * numel + e.
    """

    def total_energy(states: torch.Tensor) -> torch.Tensor:
        return energy(states).sum()

    def total_energy_channels_last(states: torch.Tensor) -> torch.Tensor:
        return _with_channels_last_weights(energy)(states).sum()

    gradient = torch.func.grad(total_energy)
    gradient_channels_last = torch.func.grad(total_energy_channels_last)

    def block(states: torch.Tensor, counter: torch.Tensor, first_step: torch.Tensor, rows: torch.Tensor):
        numel, size = states.numel(), spec.steps_per_block
        acc = accumulation_dtype(states.dtype)
        step_gradient = gradient
        if states.dim() == 4 and states.device.type == "cpu":
            # oneDNN's convolutions run fastest on channels-last images and weights
            states = states.contiguous(memory_format=torch.channels_last)
            step_gradient = gradient_channels_last
        for j in range(size):
            grad = step_gradient(states).to(acc)
            if spec.clip_value is not None:
                grad = grad.clamp(-spec.clip_value, spec.clip_value)
            if spec.max_grad_norm is not None:
                norms = grad.flatten(1).norm(dim=1)
                factor = (spec.max_grad_norm / norms.clamp_min(torch.finfo(torch.float32).tiny)).clamp(max=1.0)
                grad = grad * factor.view(-1, *([1] * (grad.dim() - 1)))
            first = counter[1] + (first_step + j) * numel
            noise = traced_normal(counter[0], first, states.shape)
            x = states.to(acc)
            drift, decay, noise_std = rows[0, j].to(acc), rows[1, j].to(acc), rows[2, j].to(acc)
            new = x - drift * grad - decay * x + noise_std * noise
            if spec.clamp is not None:
                new = new.clamp(spec.clamp[0], spec.clamp[1])
            states = new.to(states.dtype)
        return states

    return block


def _with_channels_last_weights(energy: Energy) -> Energy:
    """``energy`` reading channels-last copies of its 4-D parameters (made inside the traced block,
    so the module's own parameters keep their layout and in-place updates are seen); other energies
    unchanged."""
    if not isinstance(energy, torch.nn.Module) or not any(p.dim() == 4 for p in energy.parameters()):
        return energy

    def call(states: torch.Tensor) -> torch.Tensor:
        tensors = {
            name: p.contiguous(memory_format=torch.channels_last) if p.dim() == 4 else p
            for name, p in energy.named_parameters()
        }
        tensors.update(energy.named_buffers())
        return torch.func.functional_call(energy, tensors, (states,))

    return call


@dataclass
class _Entry:
    energy: Any
    function: Callable[..., torch.Tensor] | None
    compile_seconds: float | None = None


@dataclass
class CompileRecord:
    """One capture: what was compiled and how long its first call took (trace, compile, run)."""

    shape: tuple[int, ...]
    dtype: str
    device: str
    steps_per_block: int
    seconds: float


@dataclass
class CompiledChains:
    """Compiled blocks by key (least recently used dropped beyond ``capacity``), eager step counts
    for "auto", keys whose capture failed, and the first-call time of every capture."""

    capacity: int = CAPACITY
    records: list[CompileRecord] = field(default_factory=list)
    _entries: OrderedDict = field(default_factory=OrderedDict)
    _eager_steps: OrderedDict = field(default_factory=OrderedDict)
    _failed: set = field(default_factory=set)
    _warned: bool = False

    def clear(self) -> None:
        """Forget every compiled chain, count and failure (the compiled code stays in torch's caches)."""
        self._entries.clear()
        self._eager_steps.clear()
        self._failed.clear()
        self.records.clear()

    def wants(self, key: Hashable, energy: object, steps: int, choice: object) -> bool:
        """Whether this chain should run compiled: ``choice`` True, or "auto" past AUTO_STEPS for the key."""
        if choice is False or not compile_enabled() or key in self._failed:
            return False
        if choice is True or key in self._entries:
            return True
        seen = self._eager_steps.get(key)
        alive = seen is not None and seen[0]() is energy
        total = (seen[1] if alive else 0) + steps
        if total - steps >= AUTO_STEPS:
            return True
        self._eager_steps[key] = (_reference_to(energy), total)
        self._eager_steps.move_to_end(key)
        while len(self._eager_steps) > 4 * self.capacity:
            self._eager_steps.popitem(last=False)
        return False

    def run(
        self,
        key: Hashable,
        energy: Callable[[torch.Tensor], torch.Tensor],
        spec: ChainSpec,
        x: torch.Tensor,
        counter: torch.Tensor,
        table: list[torch.Tensor],
    ) -> torch.Tensor | None:
        """The chain's final states, or None (after one warning) when capture failed.

        ``table`` holds each block's [3, S] (drift, decay, noise_std) rows. The blocks run under
        no_grad (torch.func.grad still differentiates the energy in x): the chain is sampled, not
        differentiated, and an inference graph compiles faster than a training one.
        """
        entry = self._entries.get(key)
        if entry is not None and entry.energy is not energy:
            entry = None
        first_call = entry is None
        if first_call:
            mode = "reduce-overhead" if x.is_cuda else None
            entry = _Entry(energy, torch.compile(make_block(energy, spec), dynamic=False, mode=mode))
        states = x
        start = time.perf_counter()
        try:
            with torch.no_grad():
                for index, rows in enumerate(table):
                    first_step = torch.tensor(index * spec.steps_per_block, dtype=torch.int64, device=x.device)
                    states = entry.function(states, counter, first_step, rows)
                    if x.is_cuda:
                        states = states.clone()  # a CUDA-graph replay overwrites its output
            if x.is_contiguous() and not states.is_contiguous():
                states = states.contiguous()  # the caller's layout back (blocks run channels-last on the CPU)
        except Exception as error:  # noqa: BLE001 - any capture failure falls back to the eager chain
            self._entries.pop(key, None)
            self._failed.add(key)
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"genconv: torch.compile could not capture the chain ({type(error).__name__}: "
                    f"{str(error).splitlines()[0] if str(error) else ''}); it runs eagerly",
                    RuntimeWarning,
                    stacklevel=4,
                )
            return None
        if first_call:
            seconds = time.perf_counter() - start
            entry.compile_seconds = seconds
            record = CompileRecord(tuple(x.shape), str(x.dtype), str(x.device), spec.steps_per_block, seconds)
            self.records.append(record)
            self._entries[key] = entry
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        self._entries.move_to_end(key)
        return states


def _reference_to(energy: object) -> Callable[[], object]:
    try:
        return weakref.ref(energy)
    except TypeError:
        return lambda: energy


COMPILED_CHAINS = CompiledChains()
