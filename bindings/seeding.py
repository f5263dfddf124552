"""Seeds of genconv's counter-based random streams, shared by the engine and the public sampler.

Every random quantity is a pure function of a run seed, a stream tag and a counter, so a run can
be replayed, resumed or split across processes without carrying generator state around.
"""

import numbers

import torch

from genconv.bindings.errors import ConfigError

_MASK64 = (1 << 64) - 1
MAX_SEED = 2**63 - 1


def _splitmix64(value: int) -> int:
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def derive_seed(seed: int, *tags: int) -> int:
    """A seed in [0, 2**63) for the sub-stream ``tags`` of ``seed`` (splitmix64 chained).

    Example:
        >>> derive_seed(7, 1) != derive_seed(7, 2)
        True
    """
    value = seed & _MASK64
    for tag in tags:
        value = _splitmix64(value ^ _splitmix64(tag & _MASK64))
    return value & MAX_SEED


def seed_from(seed: int | None, generator: torch.Generator | None) -> int:
    """The integer seed of a run: ``seed`` itself, else one drawn from ``generator`` (or torch's RNG)."""
    if seed is not None:
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"seed must be an integer in [0, 2**63 - 1], got {seed!r}")
        return int(seed)
    device = generator.device if generator is not None else "cpu"
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=device).item())
