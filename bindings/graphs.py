"""CUDA-graph capture of whole Langevin chains.

A K-step chain on the fused kernels launches a fixed sequence of kernels when the shapes repeat
(as in training, where every iteration runs the same chain). The second time a chain of a given
shape runs, genconv records it once in a CUDA graph and from then on replays it: one launch per
chain instead of several per step, no Python in the loop. The kernels read the seed and the
counter base from device memory, so a replay draws fresh noise. ``GENCONV_CUDA_GRAPHS=0`` turns
capture off. The cache serves the engine's GCN chains (keyed by ``ChainKey``) and the generic
sampler's chains of any ``nn.Module`` energy (keyed by a tuple of what they bake in) alike.
"""

import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

GRAPHS_ENV = "GENCONV_CUDA_GRAPHS"
CAPACITY = 8

ChainRunner = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def graphs_enabled() -> bool:
    return os.environ.get(GRAPHS_ENV, "1") != "0"


@dataclass(frozen=True)
class ChainKey:
    """Everything a captured chain bakes in; parameters enter by address (updated in place is fine)."""

    model: int
    spec: object
    parameters: tuple[tuple[int, tuple[int, ...]], ...]
    shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device
    steps: int
    delta: float
    sigma: float
    stride: int
    clamp: tuple[float, float] | None
    backend: str


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    states: torch.Tensor
    counter: torch.Tensor
    output: torch.Tensor


class ChainGraphs:
    """Captured chains by key, least recently used dropped beyond ``capacity``."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._seen: set[Hashable] = set()
        self._captured: OrderedDict[Hashable, _Captured] = OrderedDict()
        self._failed = False

    def run(self, key: Hashable, x: torch.Tensor, seed: int, base: int, runner: ChainRunner) -> torch.Tensor | None:
        """The chain's final states by graph replay, or None when the caller should run it eagerly.

        Args:
            key: the chain's identity; x: initial states; seed, base: the noise stream and the
                counter of its first step; runner(states, counter) runs the chain with the kernels
                reading [seed, base] from ``counter``.
        """
        if self._failed or not graphs_enabled():
            return None
        captured = self._captured.get(key)
        if captured is None:
            if key not in self._seen:
                self._seen.add(key)
                return None
            captured = self._capture(x, runner)
            if captured is None:
                return None
            self._captured[key] = captured
            while len(self._captured) > self.capacity:
                self._captured.popitem(last=False)
        self._captured.move_to_end(key)
        captured.states.copy_(x)
        captured.counter.copy_(torch.tensor([seed, base], dtype=torch.int64), non_blocking=True)
        captured.graph.replay()
        return captured.output.clone()

    def clear(self) -> None:
        """Drop every captured chain and its memory pool (a sweep over batch sizes needs this)."""
        self._captured.clear()
        self._seen.clear()

    def _capture(self, x: torch.Tensor, runner: ChainRunner) -> _Captured | None:
        states = x.detach().clone()
        counter = torch.zeros(2, dtype=torch.int64, device=x.device)
        try:
            side = torch.cuda.Stream(device=x.device)
            side.wait_stream(torch.cuda.current_stream(x.device))
            with torch.cuda.stream(side):
                runner(states, counter)  # compiles every kernel variant the capture will launch
            torch.cuda.current_stream(x.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                output = runner(states, counter)
        except RuntimeError as error:
            self._failed = True
            warnings.warn(f"genconv: CUDA graph capture failed, chains run eagerly from now on: {error}",
                          RuntimeWarning, stacklevel=3)  # fmt: skip
            return None
        return _Captured(graph, states, counter, output)


CHAIN_GRAPHS = ChainGraphs()
