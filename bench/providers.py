"""Who runs the chain: a registry of providers, each computing the same K-step Langevin chain.

    x <- x - (delta^2 / 2) dE/dx + delta z,   E(x) = ||x||^2 / (2 sigma^2) - f(x),   z ~ N(0, I)

- ``eager``: the loop research code writes: torch.autograd.grad of the energy per step, a separate
  torch.randn, the update with tensor ops, on a plain nn.Module with the model's weights.
- ``compiled``: the step written with torch.func.grad and torch.compile (fullgraph, static
  shapes, the noise drawn inside the compiled step); on CUDA channels_last and the whole K-step
  chain recorded in one CUDA graph. Compile time is reported separately (``setup_s``).
- ``torchebm``: TorchEBM's LangevinDynamics on the same energy (optional; skipped when not installed).
- ``genconv-torch`` / ``genconv-triton``: ``genconv.langevin`` with backend "torch" / "triton"
  (the fused kernels, the chain replayed from a CUDA graph; CUDA only).
- ``genconv-dropin`` / ``genconv-torchebm``: ``genconv.sample_langevin`` on the plain energy module,
  and ``genconv.TorchEBMSampler`` behind TorchEBM's interface.

- ``genconv-sample``: ``genconv.sample_langevin`` on the GenerativeConvNet itself (GCNStep), which
  hands the chain to the model's fused chain (GCN workloads only).

The energy workloads ("pcd": TorchEBM's x - eta dE/dx + noise_scale sqrt(2 eta) z on an MLP
energy; "conv": the same on ebmkit's ConvEnergy over 32x32 images) have their own builders
(``build_pcd``): eager (the hand loop), compiled (the hand loop's step under torch.compile),
torchebm, ebmkit (its LangevinDynamics), and genconv's drop-ins genconv-dropin, genconv-torchebm
and genconv-ebmkit, which run with ``compile=True`` (``--dropin-compile``) and note the first
call's compile time; the GCN-only providers are skipped there, and ebmkit's runs only there.

Adding a provider (for example a drop-in sampler API that takes any energy module) is one
``register(Provider(...))`` call at the end of this file: write ``build(setup) -> Sampler``, where
``setup.model`` is the genconv model and ``ConvEnergy.from_model(setup.model)`` the same energy as
a plain nn.Module; copy what you train. ``baseline=True`` counts a provider among the PyTorch
baselines whose best every ratio is taken against. The runner, the check, the table, the JSON
and the plot pick the new name up from the registry; nothing else changes.
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch._inductor.config as inductor_config

from bench.energy import ConvEnergy
from bench.workloads import ENERGY_KINDS, Setup
from genconv.bindings.compiled_chain import COMPILED_CHAINS
from genconv.bindings.graphs import CHAIN_GRAPHS
from genconv.bindings.sampler import sample_langevin
from genconv.bindings.update_rules import GCNStep, SGLDStep, TorchEBMStep
from genconv.engine.langevin import langevin

Chain = Callable[[torch.Tensor], torch.Tensor]
NoisyChain = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Sampler:
    """A provider's chain on one setup.

    chain(x): ``setup.steps`` steps from x with the provider's own noise (x is not modified).
    chain_with_noise(x, noise): the same steps with the given standard normals [steps, *x.shape]
        (zeros: the noise-free drift); used by the numerical check.
    score(x), parameters: f per image and the weights behind it, for learning iterations.
    notes: what the JSON should say about how this provider ran (compile mode, graphs, ...).
    close(): frees what outlives the sampler (captured graphs).
    """

    chain: Chain
    chain_with_noise: NoisyChain
    score: Callable[[torch.Tensor], torch.Tensor]
    parameters: list[torch.nn.Parameter]
    notes: dict[str, Any] = field(default_factory=dict)
    close: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class Provider:
    """A named implementation of the chain: how to build it, and why it cannot run somewhere."""

    name: str
    summary: str
    build: Callable[[Setup], Sampler] | None
    unavailable: Callable[[torch.device], str | None] = lambda device: None
    baseline: bool = False
    build_pcd: Callable[[Setup], Sampler] | None = None

    def builder(self, kind: str) -> Callable[[Setup], Sampler] | None:
        """The builder for a workload kind, None where this provider does not run it."""
        return self.build_pcd if kind in ENERGY_KINDS else self.build


PROVIDERS: dict[str, Provider] = {}

# ``compile`` of genconv's drop-ins on the energy workloads (pcd, conv); the runner's --dropin-compile
# overrides it (--quick: "auto", which a seconds-long run leaves eager).
_dropin: dict[str, bool | str] = {"compile": True}


def set_dropin_compile(choice: bool | str) -> None:
    """Run genconv's drop-ins on the energy workloads with ``compile=choice``."""
    _dropin["compile"] = choice


def _compile_notes(notes: dict[str, Any], before: int) -> None:
    """Record the first-call time of the chains the drop-in compiled since ``before`` records."""
    new = COMPILED_CHAINS.records[before:]
    if new:
        notes["compile_first_call_s"] = sum(record.seconds for record in new)
        notes["compiled_blocks"] = [f"{list(r.shape)} x{r.steps_per_block} steps" for r in new]


def _noting_compile(chain: Chain, notes: dict[str, Any]) -> Chain:
    """``chain`` whose first call notes what it compiled (the first call holds the compile time)."""
    notes["compile"] = _dropin["compile"]
    state = {"first": True}

    def run(x: torch.Tensor) -> torch.Tensor:
        if not state["first"]:
            return chain(x)
        state["first"] = False
        before = len(COMPILED_CHAINS.records)
        out = chain(x)
        _compile_notes(notes, before)
        return out

    return run


# torch.compile mode per device type; the runner's --compile-mode overrides it.
COMPILE_MODES = {"cuda": "max-autotune-no-cudagraphs", "cpu": "default"}
_compile_mode: dict[str, str] = dict(COMPILE_MODES)


def register(provider: Provider) -> Provider:
    """Add ``provider`` to the registry (the extension point); returns it."""
    PROVIDERS[provider.name] = provider
    return provider


def set_compile_mode(device_type: str, mode: str) -> None:
    """Use torch.compile ``mode`` for the compiled provider on ``device_type``."""
    _compile_mode[device_type] = mode


def _energy(setup: Setup) -> ConvEnergy:
    """A private copy of the setup's energy in the workload dtype."""
    return ConvEnergy.from_model(setup.model).to(setup.dtype)


def _drift_coefficient(setup: Setup) -> float:
    return setup.delta * setup.delta / 2.0


def _build_eager(setup: Setup) -> Sampler:
    energy = _energy(setup)
    coefficient, delta = _drift_coefficient(setup), setup.delta

    def run(x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        with torch.enable_grad():
            for step in range(setup.steps):
                x = x.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(energy(x).sum(), x)
                z = torch.randn_like(x) if noise is None else noise[step]
                x = x.detach() - coefficient * grad + delta * z
        return x.detach()

    return Sampler(lambda x: run(x, None), run, energy.f, list(energy.parameters()))


def _compiled_hand_loop(
    energy: Callable[[torch.Tensor], torch.Tensor], drift: float, noise_std: float, steps: int, mode: str
) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """The hand loop x <- x - drift dE/dx + noise_std z with its step under torch.compile
    (torch.func.grad, the noise drawn inside unless given), as a user would write it."""
    grad_energy = torch.func.grad(lambda x: energy(x).sum())

    def step(x: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        if z is None:
            z = torch.randn_like(x)
        return x - drift * grad_energy(x) + noise_std * z

    compiled = torch.compile(step, mode=mode, fullgraph=True, dynamic=False)

    def run(x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            for index in range(steps):
                x = compiled(x, None if noise is None else noise[index])
        return x

    return run


def _build_compiled(setup: Setup) -> Sampler:
    torch._dynamo.reset()  # a fresh cache per cell: static shapes, no recompile limit across the matrix
    mode = _compile_mode.get(setup.device.type, "default")
    on_cuda = setup.device.type == "cuda"
    energy = _energy(setup)
    if on_cuda:
        energy = energy.to(memory_format=torch.channels_last)
    run = _compiled_hand_loop(energy, _drift_coefficient(setup), setup.delta, setup.steps, mode)
    layout = torch.channels_last if on_cuda else torch.contiguous_format
    notes: dict[str, Any] = {
        "compile_mode": mode,
        "channels_last": on_cuda,
        "cuda_graph": False,
        "compile_caches": "off (cold compile)" if inductor_config.force_disable_caches else "on",
    }
    free_running: Chain = lambda x: run(x.contiguous(memory_format=layout), None)  # noqa: E731
    free_running(setup.x0)  # compiles (and autotunes) inside build, so setup_s holds the compile time
    if on_cuda:
        free_running, notes["cuda_graph"] = _capture_chain(free_running, setup.x0, layout)
    return Sampler(
        free_running,
        lambda x, noise: run(x.contiguous(memory_format=layout), noise),
        energy.f,
        list(energy.parameters()),
        notes,
    )


def _capture_chain(run: Chain, x0: torch.Tensor, layout: torch.memory_format) -> tuple[Chain, bool | str]:
    """Record ``run`` (the whole chain) in one CUDA graph; the chain that replays it, and whether it did.

    Static input and output buffers, as genconv's own chain graphs: a call copies x in, replays,
    and returns a copy of the output. Falls back to ``run`` if capture fails (the reason goes to
    the notes).
    """
    static = x0.detach().clone().contiguous(memory_format=layout)
    try:
        side = torch.cuda.Stream(device=x0.device)
        side.wait_stream(torch.cuda.current_stream(x0.device))
        with torch.cuda.stream(side):
            run(static)
        torch.cuda.current_stream(x0.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = run(static)
    except RuntimeError as error:
        torch.cuda.synchronize()
        return run, f"capture failed, ran without: {str(error).splitlines()[0]}"

    def replay(x: torch.Tensor) -> torch.Tensor:
        static.copy_(x)
        graph.replay()
        return output.clone()

    return replay, True


def _torchebm_missing(device: torch.device) -> str | None:
    try:
        import torchebm  # noqa: F401
    except ImportError as error:
        return f"torchebm is not importable ({error}); pip install torchebm"
    return None


def _torchebm_model(energy: torch.nn.Module, setup: Setup) -> torch.nn.Module:
    """``energy`` behind TorchEBM's model interface (its default autograd gradient)."""
    from torchebm.core import BaseModel

    class WrappedEnergy(BaseModel):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__(dtype=setup.dtype, device=setup.device)
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)

    return WrappedEnergy(energy)


def _build_torchebm(setup: Setup) -> Sampler:
    from torchebm.samplers import LangevinDynamics

    energy = _energy(setup)
    model = _torchebm_model(energy, setup)
    coefficient = _drift_coefficient(setup)
    # TorchEBM: x + eta (-dE/dx) + sqrt(2 eta) * noise_scale * z; eta = delta^2/2 gives delta z.
    sampler = LangevinDynamics(model, step_size=coefficient, noise_scale=1.0, dtype=setup.dtype, device=setup.device)

    def chain(x: torch.Tensor) -> torch.Tensor:
        return sampler.sample(x=x, n_steps=setup.steps)

    def chain_with_noise(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        drift = lambda y, t: -model.gradient(y)  # noqa: E731
        with torch.no_grad():
            for index in range(setup.steps):
                state = {"x": x}
                x = sampler.integrator.step(state, coefficient, drift=drift, noise=noise[index], noise_scale=1.0)["x"]
        return x

    import torchebm

    return Sampler(chain, chain_with_noise, energy.f, list(energy.parameters()), {"version": torchebm.__version__})


def _triton_missing(device: torch.device) -> str | None:
    if device.type != "cuda":
        return "needs a CUDA device (Triton's CPU interpreter is a test tool, not a benchmark)"
    try:
        import triton  # noqa: F401
    except ImportError as error:
        return f"triton is not importable ({error})"
    return None


def _genconv_builder(backend: str) -> Callable[[Setup], Sampler]:
    def build(setup: Setup) -> Sampler:
        model = copy.deepcopy(setup.model)
        counter = {"step": 0}

        def chain(x: torch.Tensor) -> torch.Tensor:
            out = langevin(model, x, steps=setup.steps, delta=setup.delta, seed=setup.seed,
                           start_step=counter["step"], backend=backend)  # fmt: skip
            counter["step"] = out.next_step
            return out.x

        def chain_with_noise(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
            return langevin(model, x, steps=setup.steps, delta=setup.delta, noise=noise, backend=backend).x

        notes: dict[str, Any] = {"weights": "float32"}
        close: Callable[[], None] = lambda: None  # noqa: E731
        if backend == "triton":
            from genconv.bindings.triton_backend import CHOOSER

            chain(setup.x0)  # compiles and autotunes the kernels, times each layer pass's two ways
            chain(setup.x0)  # records the chain's CUDA graph; later calls replay it
            notes["cuda_graph"] = True
            notes["layer_passes_won"] = CHOOSER.summary()  # fused kernel vs cuDNN + epilogue, so far
            close = CHAIN_GRAPHS.clear
        return Sampler(chain, chain_with_noise, model.f, list(model.parameters()), notes, close)

    return build


def _build_dropin(setup: Setup) -> Sampler:
    """genconv.sample_langevin on the plain energy module: autograd gradient, fused update op."""
    energy = _energy(setup)
    update = SGLDStep(step_size=_drift_coefficient(setup), noise_std=setup.delta)
    counter = {"step": 0}

    def chain(x: torch.Tensor) -> torch.Tensor:
        out = sample_langevin(energy, x, steps=setup.steps, update=update, seed=setup.seed, start_step=counter["step"])
        counter["step"] = out.next_step
        return out.x

    def chain_with_noise(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return sample_langevin(energy, x, steps=setup.steps, update=update, noise=noise).x

    notes = {"cuda_graph": setup.device.type == "cuda"}
    return Sampler(chain, chain_with_noise, energy.f, list(energy.parameters()), notes, CHAIN_GRAPHS.clear)


def _build_torchebm_adapter(setup: Setup) -> Sampler:
    """TorchEBM's interface with genconv's sampler behind it (genconv.TorchEBMSampler)."""
    from genconv.bindings.torchebm_adapter import TorchEBMSampler

    energy = _energy(setup)
    sampler = TorchEBMSampler(_torchebm_model(energy, setup), step_size=_drift_coefficient(setup), noise_scale=1.0,
                              dtype=setup.dtype, device=setup.device).configure(seed=setup.seed)  # fmt: skip
    update = SGLDStep(step_size=_drift_coefficient(setup), noise_std=setup.delta)

    def chain(x: torch.Tensor) -> torch.Tensor:
        return sampler.sample(x=x, n_steps=setup.steps)

    def chain_with_noise(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return sample_langevin(energy, x, steps=setup.steps, update=update, noise=noise).x

    return Sampler(chain, chain_with_noise, energy.f, list(energy.parameters()), {}, CHAIN_GRAPHS.clear)


# The small-energy (pcd) workload: TorchEBM's parameterisation on the MLP energy.


def _pcd_energy(setup: Setup) -> torch.nn.Module:
    assert setup.energy is not None
    return copy.deepcopy(setup.energy)


def _pcd_noise_std(setup: Setup) -> float:
    return setup.noise_scale * (2.0 * setup.step_size) ** 0.5


def _build_eager_pcd(setup: Setup) -> Sampler:
    """The hand-written loop: autograd, torch.randn_like, the update in tensor ops."""
    energy = _pcd_energy(setup)
    step_size, noise_std = setup.step_size, _pcd_noise_std(setup)

    def run(x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        with torch.enable_grad():
            for step in range(setup.steps):
                x = x.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(energy(x).sum(), x)
                z = torch.randn_like(x) if noise is None else noise[step]
                x = x.detach() - step_size * grad + noise_std * z
        return x.detach()

    return Sampler(lambda x: run(x, None), run, energy, list(energy.parameters()))


def _build_torchebm_pcd(setup: Setup) -> Sampler:
    from torchebm.samplers import LangevinDynamics

    energy = _pcd_energy(setup)
    model = _torchebm_model(energy, setup)
    sampler = LangevinDynamics(model, step_size=setup.step_size, noise_scale=setup.noise_scale, dtype=setup.dtype,
                               device=setup.device)  # fmt: skip

    def chain_with_noise(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        drift = lambda y, t: -model.gradient(y)  # noqa: E731
        with torch.no_grad():
            for index in range(setup.steps):
                step = sampler.integrator.step({"x": x}, setup.step_size, drift=drift, noise=noise[index],
                                               noise_scale=setup.noise_scale)  # fmt: skip
                x = step["x"]
        return x

    import torchebm

    return Sampler(lambda x: sampler.sample(x=x, n_steps=setup.steps), chain_with_noise, energy,
                   list(energy.parameters()), {"version": torchebm.__version__})  # fmt: skip


def _build_dropin_pcd(setup: Setup) -> Sampler:
    energy = _pcd_energy(setup)
    update = TorchEBMStep(setup.step_size, setup.noise_scale)
    counter = {"step": 0}

    def chain(x: torch.Tensor) -> torch.Tensor:
        out = sample_langevin(energy, x, steps=setup.steps, update=update, seed=setup.seed, start_step=counter["step"],
                              compile=_dropin["compile"])  # fmt: skip
        counter["step"] = out.next_step
        return out.x

    def chain_with_noise(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return sample_langevin(energy, x, steps=setup.steps, update=update, noise=noise).x

    notes: dict[str, Any] = {}
    return Sampler(_noting_compile(chain, notes), chain_with_noise, energy, list(energy.parameters()), notes,
                   CHAIN_GRAPHS.clear)  # fmt: skip


def _build_torchebm_adapter_pcd(setup: Setup) -> Sampler:
    from genconv.bindings.torchebm_adapter import TorchEBMSampler

    energy = _pcd_energy(setup)
    sampler = TorchEBMSampler(_torchebm_model(energy, setup), step_size=setup.step_size,
                              noise_scale=setup.noise_scale, dtype=setup.dtype,
                              device=setup.device).configure(seed=setup.seed, compile=_dropin["compile"])  # fmt: skip
    update = TorchEBMStep(setup.step_size, setup.noise_scale)

    def chain_with_noise(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return sample_langevin(energy, x, steps=setup.steps, update=update, noise=noise).x

    notes: dict[str, Any] = {}
    chain = _noting_compile(lambda x: sampler.sample(x=x, n_steps=setup.steps), notes)
    return Sampler(chain, chain_with_noise, energy, list(energy.parameters()), notes, CHAIN_GRAPHS.clear)


def _build_compiled_pcd(setup: Setup) -> Sampler:
    """The hand loop's step under torch.compile (torch.func.grad, the noise drawn inside), as a user
    would write it; compiled inside build, so setup_s holds the compile time."""
    torch._dynamo.reset()
    energy = _pcd_energy(setup)
    mode = _compile_mode.get(setup.device.type, "default")
    run = _compiled_hand_loop(energy, setup.step_size, _pcd_noise_std(setup), setup.steps, mode)
    run(setup.x0, None)
    return Sampler(lambda x: run(x, None), run, energy, list(energy.parameters()), {"compile_mode": mode})


def _ebmkit_missing(device: torch.device) -> str | None:
    try:
        import ebm  # noqa: F401
    except ImportError as error:
        return f"ebmkit is not importable ({error}); pip install ebmkit"
    return None


def _ebmkit_chain_with_noise(energy: torch.nn.Module, setup: Setup) -> NoisyChain:
    """ebmkit's LangevinDynamics step (its gradient, its update) with the given normals."""
    from ebm.samplers.base import Sampler as EbmkitSampler

    def run(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            for index in range(setup.steps):
                _, grad = EbmkitSampler._energy_grad(energy, x)
                x = x.detach() - setup.step_size * grad + _pcd_noise_std(setup) * noise[index]
        return x

    return run


def _build_ebmkit_pcd(setup: Setup) -> Sampler:
    import ebm

    energy = _pcd_energy(setup)
    sampler = ebm.LangevinDynamics(step_size=setup.step_size, steps=setup.steps, noise_scale=_pcd_noise_std(setup))
    return Sampler(lambda x: sampler.sample(energy, x), _ebmkit_chain_with_noise(energy, setup), energy,
                   list(energy.parameters()), {"version": ebm.__version__})  # fmt: skip


def _build_ebmkit_adapter_pcd(setup: Setup) -> Sampler:
    """ebmkit's interface with genconv's sampler behind it (genconv.EbmkitLangevin)."""
    from genconv.bindings.ebmkit_adapter import EbmkitLangevin

    energy = _pcd_energy(setup)
    sampler = EbmkitLangevin(step_size=setup.step_size, steps=setup.steps, noise_scale=_pcd_noise_std(setup))
    sampler.configure(seed=setup.seed, compile=_dropin["compile"])
    update = TorchEBMStep(setup.step_size, setup.noise_scale)

    def chain_with_noise(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return sample_langevin(energy, x, steps=setup.steps, update=update, noise=noise).x

    notes: dict[str, Any] = {}
    chain = _noting_compile(lambda x: sampler.sample(energy, x), notes)
    return Sampler(chain, chain_with_noise, energy, list(energy.parameters()), notes, CHAIN_GRAPHS.clear)


def _build_gcn_sample(setup: Setup) -> Sampler:
    """genconv.sample_langevin on the GenerativeConvNet itself (GCNStep): the model's fused chain."""
    model = copy.deepcopy(setup.model)
    counter = {"step": 0}

    def chain(x: torch.Tensor) -> torch.Tensor:
        out = sample_langevin(model, x, steps=setup.steps, update=GCNStep(setup.delta), seed=setup.seed,
                              start_step=counter["step"])  # fmt: skip
        counter["step"] = out.next_step
        return out.x

    def chain_with_noise(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return sample_langevin(model, x, steps=setup.steps, update=GCNStep(setup.delta), noise=noise).x

    return Sampler(
        chain, chain_with_noise, model.f, list(model.parameters()), {"weights": "float32"}, CHAIN_GRAPHS.clear
    )


register(Provider("eager", "autograd.grad per step, separate torch.randn, tensor-op update", _build_eager,
                  baseline=True, build_pcd=_build_eager_pcd))  # fmt: skip
register(Provider("compiled", "torch.func.grad step under torch.compile; CUDA: channels_last + whole-chain CUDA graph",
                  _build_compiled, baseline=True, build_pcd=_build_compiled_pcd))  # fmt: skip
register(Provider("torchebm", "TorchEBM LangevinDynamics on the same energy", _build_torchebm, _torchebm_missing,
                  baseline=True, build_pcd=_build_torchebm_pcd))  # fmt: skip
register(Provider("genconv-torch", "genconv.langevin, backend torch (explicit passes, Philox noise)",
                  _genconv_builder("torch")))  # fmt: skip
register(Provider("genconv-triton", "genconv.langevin, backend triton (fused kernels, CUDA-graph chain)",
                  _genconv_builder("triton"), _triton_missing))  # fmt: skip
register(Provider("genconv-dropin", "genconv.sample_langevin on the plain energy (autograd gradient, fused update)",
                  _build_dropin, build_pcd=_build_dropin_pcd))  # fmt: skip
register(Provider("genconv-torchebm", "genconv.TorchEBMSampler: TorchEBM's interface, genconv's sampler",
                  _build_torchebm_adapter, _torchebm_missing, build_pcd=_build_torchebm_adapter_pcd))  # fmt: skip
register(Provider("ebmkit", "ebmkit LangevinDynamics on the same energy", None, _ebmkit_missing,
                  baseline=True, build_pcd=_build_ebmkit_pcd))  # fmt: skip
register(Provider("genconv-ebmkit", "genconv.EbmkitLangevin: ebmkit's interface, genconv's sampler",
                  None, _ebmkit_missing, build_pcd=_build_ebmkit_adapter_pcd))  # fmt: skip
register(Provider("genconv-sample", "genconv.sample_langevin on the GenerativeConvNet (GCNStep: its fused chain)",
                  _build_gcn_sample))  # fmt: skip
