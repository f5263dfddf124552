"""A replay buffer of persistent chains, as JEM / IGEBM training loops keep one.

Each training step samples a batch of chain states from the buffer (each one replaced, with
probability ``reinit_prob``, by a fresh state from the init function), runs a few Langevin steps
on it, and writes the results back to the same slots. The buffer is an ``nn.Module``: its states
live on its device and move with ``.to()``; ``state_dict`` holds them and, as extra state, the
seed and the number of draws (host integers, so sampling never waits on the device). Every random
draw is a pure function of (seed, draw number), so a buffer restored from a state dict continues
exactly as the original would have.
"""

import math
import numbers
from collections.abc import Callable, Sequence

import torch
from torch import nn

from genconv.bindings.errors import ConfigError, InputTypeError
from genconv.bindings.seeding import MAX_SEED, derive_seed

InitFn = Callable[[int, torch.Generator], torch.Tensor]
INIT_KINDS: tuple[str, ...] = ("uniform", "normal")
_FILL_STREAM = 0
_SAMPLE_STREAM = 1


class ReplayBuffer(nn.Module):
    """A fixed number of persistent chain states, sampled with replacement and re-initialised at random.

    Args:
        capacity: number of stored states, >= 1.
        shape: the shape of one state, e.g. (3, 32, 32).
        reinit_prob: probability in [0, 1] that a sampled slot starts from a fresh state (JEM: 0.05).
        init: "uniform" (U[-1, 1], JEM/IGEBM images), "normal" (N(0, 1)), or a function
            (num, generator) -> [num, *shape] drawing its randomness from ``generator``.
        seed: integer seed of every draw (initial fill, slots, re-initialisation).
        device, dtype: where and how the states are stored.

    Example:
        >>> buffer = ReplayBuffer(1000, (1, 28, 28), seed=0)
        >>> x0, slots = buffer.sample(64)
        >>> buffer.update(slots, x0)  # after running Langevin steps on x0
    """

    def __init__(
        self,
        capacity: int,
        shape: Sequence[int],
        *,
        reinit_prob: float = 0.05,
        init: str | InitFn = "uniform",
        seed: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ConfigError(f"capacity must be an integer >= 1, got {capacity!r}")
        sizes_ok = isinstance(shape, Sequence) and not isinstance(shape, str) and len(shape) >= 1
        if not (sizes_ok and all(_is_integer(size) and size >= 1 for size in shape)):
            raise ConfigError(f"shape must be a sequence of integers >= 1 (one state's shape), got {shape!r}")
        probability = isinstance(reinit_prob, numbers.Real) and not isinstance(reinit_prob, bool)
        if not (probability and math.isfinite(reinit_prob) and 0.0 <= reinit_prob <= 1.0):
            raise ConfigError(f"reinit_prob must be a probability in [0, 1], got {reinit_prob!r}")
        if not (callable(init) or init in INIT_KINDS):
            raise ConfigError(
                f"init must be 'uniform', 'normal' or a function (num, generator) -> states, got {init!r}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"seed must be an integer in [0, 2**63 - 1], got {seed!r}")
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise InputTypeError(f"dtype must be a floating-point torch.dtype (states are real numbers), got {dtype!r}")
        try:
            device = None if device is None else torch.device(device)
        except (RuntimeError, TypeError, ValueError):
            raise ConfigError(f"device must be a torch.device or a name such as 'cpu', got {device!r}") from None
        self.shape = tuple(int(size) for size in shape)
        self.reinit_prob = float(reinit_prob)
        self.init = init
        self.seed = seed
        self.draws = 0
        self.register_buffer("states", torch.empty((capacity, *self.shape), dtype=dtype, device=device))
        self.states.copy_(self.fresh(capacity, self._generator(_FILL_STREAM)))

    @property
    def capacity(self) -> int:
        return self.states.shape[0]

    def __len__(self) -> int:
        return self.capacity

    def get_extra_state(self) -> dict[str, int]:
        return {"seed": self.seed, "draws": self.draws}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.seed, self.draws = int(state["seed"]), int(state["draws"])

    def _generator(self, *tags: int) -> torch.Generator:
        """A generator seeded from (seed, tags): draws depend on nothing but the buffer's state."""
        generator = torch.Generator(device=self.states.device)
        return generator.manual_seed(derive_seed(self.seed, *tags))

    def fresh(self, num: int, generator: torch.Generator) -> torch.Tensor:
        """``num`` new states [num, *shape] from the init function, on the buffer's device and dtype."""
        device, dtype = self.states.device, self.states.dtype
        if self.init == "uniform":
            return torch.rand((num, *self.shape), generator=generator, device=device, dtype=dtype) * 2 - 1
        if self.init == "normal":
            return torch.randn((num, *self.shape), generator=generator, device=device, dtype=dtype)
        states = self.init(num, generator)
        if not isinstance(states, torch.Tensor) or tuple(states.shape) != (num, *self.shape):
            raise ConfigError(f"init(num, generator) must return a tensor [{num}, {', '.join(map(str, self.shape))}]")
        return states.to(device=device, dtype=dtype)

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of chain starts: stored states at random slots, some re-initialised.

        Args:
            batch: number of states, >= 1 (slots are drawn with replacement).
        Returns:
            (states [batch, *shape], a copy; slots int64 [batch], to pass to ``update``).
        """
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ConfigError(f"batch must be an integer >= 1, got {batch!r}")
        self.draws += 1
        generator = self._generator(_SAMPLE_STREAM, self.draws)
        slots = torch.randint(0, self.capacity, (batch,), generator=generator, device=self.states.device)
        restart = torch.rand((batch,), generator=generator, device=self.states.device) < self.reinit_prob
        fresh = self.fresh(batch, generator)
        restart = restart.view(-1, *([1] * len(self.shape)))
        return torch.where(restart, fresh, self.states[slots]), slots

    @torch.no_grad()
    def update(self, slots: torch.Tensor, states: torch.Tensor) -> None:
        """Write chain states back to their slots (for a slot drawn twice the last write wins).

        Args:
            slots: int64 [batch] from ``sample``; states: [batch, *shape].
        """
        if not isinstance(slots, torch.Tensor) or slots.dtype.is_floating_point or slots.dtype.is_complex \
                or slots.dtype == torch.bool:  # fmt: skip
            raise InputTypeError(f"slots must be the integer tensor sample() returned, got {_describe(slots)}")
        if not isinstance(states, torch.Tensor) or not states.is_floating_point():
            raise InputTypeError(f"states must be a floating-point tensor, got {_describe(states)}")
        if slots.dim() != 1 or tuple(states.shape) != (slots.shape[0], *self.shape):
            raise ConfigError(
                f"update needs slots [batch] and states [batch, {', '.join(map(str, self.shape))}]; got "
                f"{list(slots.shape)} and {list(states.shape)}"
            )
        if slots.numel() and (int(slots.min()) < 0 or int(slots.max()) >= self.capacity):
            raise ConfigError(
                f"slots must lie in [0, {self.capacity - 1}] (the buffer's capacity is {self.capacity}); got "
                f"{int(slots.min())} to {int(slots.max())}"
            )
        self.states[slots.to(self.states.device)] = states.detach().to(self.states.device, self.states.dtype)


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {list(value.shape)}"
    return f"{type(value).__module__}.{type(value).__name__}"
