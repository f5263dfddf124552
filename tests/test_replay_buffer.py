"""ReplayBuffer: seeded draws, re-initialisation at the asked rate, write-back, state_dict round trips."""

import io
import math

import pytest
import torch

from genconv import ReplayBuffer, SGLDStep, sample_langevin
from genconv.bindings.errors import ConfigError

SHAPE = (2, 3, 3)


pytestmark = pytest.mark.usefixtures("one_intra_op_thread")


def _used(buffer: ReplayBuffer, rounds: int = 3) -> ReplayBuffer:
    """A buffer after a few JEM-style rounds: sample, move the states, write them back."""
    for step in range(rounds):
        x0, slots = buffer.sample(8)
        buffer.update(slots, x0 + 0.1 * (step + 1))
    return buffer


def test_the_same_seed_gives_the_same_buffer_and_draws() -> None:
    first, second, other = (ReplayBuffer(50, SHAPE, seed=seed) for seed in (3, 3, 4))
    assert torch.equal(first.states, second.states) and not torch.equal(first.states, other.states)
    for _ in range(3):
        (x_a, slots_a), (x_b, slots_b) = first.sample(16), second.sample(16)
        assert torch.equal(x_a, x_b) and torch.equal(slots_a, slots_b)
    assert not torch.equal(first.sample(16)[1], other.sample(16)[1])


def test_state_dict_round_trip_continues_exactly() -> None:
    original = _used(ReplayBuffer(40, SHAPE, reinit_prob=0.2, seed=11))
    saved = io.BytesIO()
    torch.save(original.state_dict(), saved)
    saved.seek(0)
    restored = ReplayBuffer(40, SHAPE, reinit_prob=0.2, seed=999)
    restored.load_state_dict(torch.load(saved))
    assert torch.equal(restored.states, original.states)
    assert (restored.seed, restored.draws) == (original.seed, original.draws) == (11, 3)
    (x_a, slots_a), (x_b, slots_b) = original.sample(12), restored.sample(12)
    assert torch.equal(x_a, x_b) and torch.equal(slots_a, slots_b)


def test_update_writes_states_back_to_their_slots() -> None:
    buffer = ReplayBuffer(30, SHAPE, reinit_prob=0.0, seed=1)
    x0, slots = buffer.sample(10)
    assert torch.equal(x0, buffer.states[slots])
    x0.add_(100.0)  # the sample is a copy: editing it leaves the buffer alone
    assert float(buffer.states.abs().max()) <= 1.0
    moved = torch.full((10, *SHAPE), 7.0)
    buffer.update(slots, moved)
    assert bool((buffer.states[slots] == 7.0).all())
    assert int((buffer.states == 7.0).flatten(1).all(1).sum()) == len(set(slots.tolist()))


@pytest.mark.parametrize("reinit_prob", [0.0, 0.3, 1.0])
def test_reinitialisation_happens_at_the_asked_rate(reinit_prob: float) -> None:
    """Stored states are set to 5 (outside U[-1, 1]); a sampled state below 5 is a fresh one."""
    buffer = ReplayBuffer(100, SHAPE, reinit_prob=reinit_prob, seed=2)
    buffer.update(torch.arange(100), torch.full((100, *SHAPE), 5.0))
    batch = 4000
    x0, _ = buffer.sample(batch)
    fresh = (x0 != 5.0).flatten(1).all(1).float()
    assert bool(((x0 == 5.0).flatten(1).all(1) | (x0.abs() <= 1.0).flatten(1).all(1)).all())
    standard_error = math.sqrt(reinit_prob * (1 - reinit_prob) / batch)
    assert abs(float(fresh.mean()) - reinit_prob) <= 5 * standard_error + 1e-12


def test_init_functions() -> None:
    uniform = ReplayBuffer(2000, SHAPE, init="uniform", seed=0).states
    normal = ReplayBuffer(2000, SHAPE, init="normal", seed=0).states
    assert float(uniform.min()) >= -1.0 and float(uniform.max()) <= 1.0
    assert abs(float(uniform.var()) - 1 / 3) < 0.01 and abs(float(normal.std()) - 1.0) < 0.02
    calls = []

    def from_data(num: int, generator: torch.Generator) -> torch.Tensor:
        calls.append(num)
        return 0.5 + 0.01 * torch.randn((num, *SHAPE), generator=generator)

    custom = ReplayBuffer(20, SHAPE, init=from_data, reinit_prob=1.0, seed=0)
    x0, _ = custom.sample(6)
    assert calls == [20, 6] and abs(float(x0.mean()) - 0.5) < 0.05
    with pytest.raises(ConfigError, match=r"init\(num, generator\) must return a tensor \[4, 2, 3, 3\]"):
        ReplayBuffer(4, SHAPE, init=lambda num, generator: torch.zeros(num, 3))


def test_a_persistent_chain_loop_is_reproducible() -> None:
    """Buffer + sampler, JEM style: the same seeds give the same buffer after a few rounds."""

    def run() -> torch.Tensor:
        buffer = ReplayBuffer(32, (4,), seed=5)
        for round_index in range(3):
            x0, slots = buffer.sample(8)
            out = sample_langevin(lambda x: 0.5 * x.pow(2).sum(1), x0, steps=5, update=SGLDStep(0.1, 0.05),
                                  seed=round_index)  # fmt: skip
            buffer.update(slots, out.x)
        return buffer.states

    first, second = run(), run()
    assert torch.equal(first, second) and not torch.equal(first, ReplayBuffer(32, (4,), seed=5).states)


BAD_ARGUMENTS = [
    ({"capacity": 0}, r"capacity must be an integer >= 1"),
    ({"shape": (3, 0)}, r"shape must be a sequence of integers >= 1"),
    ({"reinit_prob": 1.5}, r"reinit_prob must be a probability in \[0, 1\]"),
    ({"init": "zeros"}, r"init must be 'uniform', 'normal' or a function"),
    ({"seed": -1}, r"seed must be an integer in \[0, 2\*\*63 - 1\]"),
]


@pytest.mark.parametrize("change, message", BAD_ARGUMENTS, ids=[next(iter(change)) for change, _ in BAD_ARGUMENTS])
def test_bad_arguments_raise_config_errors_naming_them(change, message) -> None:
    arguments = {"capacity": 10, "shape": SHAPE, **change}
    with pytest.raises(ConfigError, match=message):
        ReplayBuffer(arguments.pop("capacity"), arguments.pop("shape"), **arguments)


def test_bad_sample_and_update_arguments() -> None:
    buffer = ReplayBuffer(10, SHAPE)
    with pytest.raises(ConfigError, match=r"batch must be an integer >= 1"):
        buffer.sample(0)
    with pytest.raises(ConfigError, match=r"update needs slots \[batch\] and states \[batch, 2, 3, 3\]"):
        buffer.update(torch.arange(3), torch.zeros(3, 2, 3))
