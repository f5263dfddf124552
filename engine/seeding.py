"""Seeds for genconv's counter-based random streams.

Every random quantity is a pure function of a run seed, a stream tag and a counter, so a run
can be replayed, resumed or split across processes without carrying generator state around.
"""

from genconv.bindings.seeding import MAX_SEED, derive_seed

__all__ = ["MAX_SEED", "derive_seed"]

# Stream tags of a training run.
LANGEVIN_STREAM = 1
CHAIN_INIT_STREAM = 2
DATA_ORDER_STREAM = 3
MODEL_INIT_STREAM = 4
LATENT_STREAM = 5
HIDDEN_STREAM = 6
MIXING_STREAM = 7
GENERATOR_INIT_STREAM = 8
