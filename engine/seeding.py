"""Seeds for genconv's counter-based random streams.

Every random quantity is a pure function of a run seed, a stream tag and a counter, so a run
can be replayed, resumed or split across processes without carrying generator state around.
"""

_MASK64 = (1 << 64) - 1
MAX_SEED = 2**63 - 1


def _splitmix64(value: int) -> int:
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def derive_seed(seed: int, *tags: int) -> int:
    """A seed in [0, 2**63) for the sub-stream ``tags`` of ``seed`` (splitmix64 chained)."""
    value = seed & _MASK64
    for tag in tags:
        value = _splitmix64(value ^ _splitmix64(tag & _MASK64))
    return value & MAX_SEED


# Stream tags of a training run.
LANGEVIN_STREAM = 1
CHAIN_INIT_STREAM = 2
DATA_ORDER_STREAM = 3
MODEL_INIT_STREAM = 4
LATENT_STREAM = 5
HIDDEN_STREAM = 6
MIXING_STREAM = 7
GENERATOR_INIT_STREAM = 8
