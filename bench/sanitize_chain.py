"""A small fused Langevin chain for compute-sanitizer (memcheck, racecheck, initcheck).

    compute-sanitizer --tool memcheck python bench/sanitize_chain.py

Runs a few steps of the texture and object networks through every kernel (float32 and bfloat16,
counter and given noise, clamped) and checks the result against the reference.
"""

import torch

from genconv.engine.langevin import init_chains, langevin
from genconv.engine.model import GenerativeConvNet
from genconv.engine.presets import network_for


def main() -> None:
    device = torch.device("cuda")
    for preset, size in (("texture", 40), ("object", 33)):
        model = GenerativeConvNet(network_for(preset, 3, size), init_seed=0).to(device)
        for dtype in (torch.float32, torch.bfloat16):
            x = init_chains("noise", 3, (3, size, size), sigma=20.0, seed=1, device=device, dtype=dtype)
            fused = langevin(model, x, steps=3, delta=0.3, seed=2, backend="triton", cuda_graph=False).x
            expected = langevin(model, x, steps=3, delta=0.3, seed=2, backend="torch").x
            noise = torch.randn((2, *x.shape), device=device, dtype=dtype)
            langevin(model, x, steps=2, delta=0.3, noise=noise, clamp=(-50.0, 50.0), backend="triton")
            error = float((fused.float() - expected.float()).abs().max() / expected.float().abs().max())
            print(f"{preset} {size}px {dtype}: max relative deviation from the reference {error:.2e}")
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
