"""Each kernel of one texture Langevin step, timed alone against the same work done by cuDNN.

    python bench/kernels_vs_cudnn.py --out DIR                  # CUDA: (B=256, 224 px), (B=16, 64 px)
    TRITON_INTERPRET=1 python bench/kernels_vs_cudnn.py --smoke --out DIR   # CPU: tiny, checks only

For every layer pass of the texture net (bottom-up layers 1-2, the summed top's mask, top-down
layers 3 (unit gradient) and 2, the image layer's top-down with the Langevin update) and for the
update and the normal generator, three ways are timed with ``triton.testing.do_bench`` (median):

- ``triton``: genconv's fused kernel;
- ``cudnn+epilogue``: cuDNN's convolution and genconv's one-pass Triton epilogue (the backend's
  other candidate);
- ``pytorch``: what eager PyTorch runs for the same result: cuDNN's convolution (the transposed
  one for top-down passes) and separate elementwise ops.

Each row also checks the fused kernel's result against PyTorch's (max relative deviation) and
records which candidate the backend's chooser keeps. One JSON file is written.
"""
# ruff: noqa: E402

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import torch
import torch.nn.functional as F

from bench import report
from genconv.bindings import triton_backend
from genconv.engine.model import GenerativeConvNet
from genconv.engine.presets import network_for
from genconv.kernels import conv_forward, conv_transpose, cudnn_candidate, reference
from genconv.kernels.langevin_update import langevin_update
from genconv.kernels.normal import standard_normal
from genconv.kernels.packing import PACKED

SHAPES = [(256, 224), (16, 64)]
SMOKE_SHAPES = [(2, 24)]


def _timer(device: torch.device, smoke: bool) -> Callable[[Callable[[], Any]], float | None]:
    if smoke:
        return lambda fn: None
    import triton.testing

    return lambda fn: float(triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median"))


def _relative(found: torch.Tensor, expected: torch.Tensor) -> float:
    found, expected = found.float(), expected.float()
    return float((found - expected).abs().max() / expected.abs().max().clamp_min(1e-30))


def passes(batch: int, size: int, dtype: torch.dtype, device: torch.device) -> list[dict[str, Any]]:
    """The step's kernels on realistic inputs: (name, triton, cudnn+epilogue, pytorch) callables."""
    model = GenerativeConvNet(network_for("texture", 3, size), init_seed=0).to(device)
    with torch.no_grad():
        for conv in model.convs:  # weights large enough to switch units on and off
            conv.weight.mul_(20.0)
    x = (20.0 * torch.randn(batch, 3, size, size, device=device)).to(dtype)
    (w1, w2, w3), (b1, b2, b3) = [c.weight for c in model.convs], [c.bias for c in model.convs]
    (l1, l2, l3) = model.spec.layers
    h1, m1 = conv_forward.conv_act_forward(x, w1, b1, l1.stride, l1.pad, 0.0)
    h2, m2 = conv_forward.conv_act_forward(h1, w2, b2, l2.stride, l2.pad, 0.0)
    _, m3 = conv_forward.conv_act_forward_sum(h2, w3, b3, l3.stride, l3.pad, 0.0, score=False)
    g3 = conv_transpose.masked_conv_transpose(None, m3, w3, l3.stride, l3.pad, 0.0, tuple(h2.shape[-2:]))
    g2 = conv_transpose.masked_conv_transpose(g3, m2, w2, l2.stride, l2.pad, 0.0, tuple(h1.shape[-2:]))
    state = x.float()
    counter = torch.tensor([7, 0], dtype=torch.int64, device=device)
    delta, sigma = 0.3, 1.0
    out_pad = tuple(reference.transposed_output_padding(size, m1.shape[-1], l1.kernel, l1.stride, l1.pad)
                    for _ in range(2))  # fmt: skip

    def torch_update(grad: torch.Tensor) -> torch.Tensor:
        return state + (delta**2 / 2) * (grad.float() - state / sigma**2) + delta * torch.randn_like(state)

    xw = [x, h1, h2]
    return [
        {"name": "bottom-up layer 1", "triton": lambda: conv_forward.conv_act_forward(x, w1, b1, 3, 7, 0.0),
         "cudnn": lambda: cudnn_candidate.conv_act_forward(x, w1, b1, 3, 7, 0.0),
         "pytorch": lambda: F.relu(F.conv2d(xw[0], w1.to(dtype), b1.to(dtype), 3, 7)), "result": 0},
        {"name": "bottom-up layer 2", "triton": lambda: conv_forward.conv_act_forward(h1, w2, b2, 1, 2, 0.0),
         "cudnn": lambda: cudnn_candidate.conv_act_forward(h1, w2, b2, 1, 2, 0.0),
         "pytorch": lambda: F.relu(F.conv2d(xw[1], w2.to(dtype), b2.to(dtype), 1, 2)), "result": 0},
        {"name": "summed top (mask only)",
         "triton": lambda: conv_forward.conv_act_forward_sum(h2, w3, b3, 1, 1, 0.0, score=False),
         "cudnn": lambda: cudnn_candidate.conv_act_forward_sum(h2, w3, b3, 1, 1, 0.0, score=False),
         "pytorch": lambda: F.conv2d(xw[2], w3.to(dtype), b3.to(dtype), 1, 1) > 0, "result": 1},
        {"name": "top-down layer 3 (unit gradient)",
         "triton": lambda: conv_transpose.masked_conv_transpose(None, m3, w3, 1, 1, 0.0, tuple(h2.shape[-2:])),
         "cudnn": lambda: cudnn_candidate.masked_conv_transpose(None, m3, w3, 1, 1, 0.0, tuple(h2.shape[-2:])),
         "pytorch": lambda: F.conv_transpose2d(m3.to(w3.dtype), w3, None, 1, 1), "result": None},
        {"name": "top-down layer 2",
         "triton": lambda: conv_transpose.masked_conv_transpose(g3, m2, w2, 1, 2, 0.0, tuple(h1.shape[-2:])),
         "cudnn": lambda: cudnn_candidate.masked_conv_transpose(g3, m2, w2, 1, 2, 0.0, tuple(h1.shape[-2:])),
         "pytorch": lambda: F.conv_transpose2d(g3 * m2, w2.to(g3.dtype), None, 1, 2), "result": None},
        {"name": "top-down layer 1 + Langevin update",
         "triton": lambda: conv_transpose.masked_conv_transpose_langevin(
             g2, m1, w1, 3, 7, 0.0, state, delta, sigma, seed=counter, offset=0),
         "cudnn": lambda: cudnn_candidate.masked_conv_transpose_langevin(
             g2, m1, w1, 3, 7, 0.0, state, delta, sigma, seed=counter, offset=0),
         "pytorch": lambda: torch_update(F.conv_transpose2d(g2 * m1, w1.to(g2.dtype), None, 3, 7, out_pad)),
         "result": "noise"},
        {"name": "Langevin update", "triton": lambda: langevin_update(state, state, delta, sigma, seed=counter),
         "cudnn": None, "pytorch": lambda: torch_update(state), "result": "noise"},
        {"name": "standard normal", "triton": lambda: standard_normal(7, 0, tuple(state.shape), device),
         "cudnn": None, "pytorch": lambda: torch.randn_like(state), "result": "noise"},
    ]  # fmt: skip


@torch.no_grad()
def run(shapes: list[tuple[int, int]], dtypes: list[torch.dtype], device: torch.device, smoke: bool) -> list[dict]:
    timer = _timer(device, smoke)
    rows = []
    for batch, size in shapes:
        for dtype in dtypes:
            with PACKED.scope():
                for entry in passes(batch, size, dtype, device):
                    row = {"pass": entry["name"], "batch": batch, "image_size": size, "dtype": str(dtype)[6:]}
                    for way in ("triton", "cudnn", "pytorch"):
                        if entry[way] is not None:
                            row[f"{way}_ms"] = timer(entry[way])
                    if entry["result"] != "noise":
                        found, expected = entry["triton"](), entry["pytorch"]()
                        index = entry["result"]
                        found = found if index is None else found[index]
                        row["max_relative_deviation"] = _relative(found, expected)
                    if row.get("cudnn_ms") is not None:
                        row["faster"] = "triton" if row["triton_ms"] <= row["cudnn_ms"] else "cudnn+epilogue"
                        row["triton_over_pytorch"] = row["pytorch_ms"] / row["triton_ms"]
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/kernels_vs_cudnn.py", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--dtypes", default="float32", help="float32 and/or bfloat16 (comma-separated)")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, no timing (CPU under TRITON_INTERPRET)")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:
        print("kernels_vs_cudnn: timing needs a CUDA device (use --smoke with TRITON_INTERPRET=1 on the CPU)",
              file=sys.stderr)  # fmt: skip
        return 1
    dtypes = [{"float32": torch.float32, "bfloat16": torch.bfloat16}[name] for name in args.dtypes.split(",")]
    start = time.perf_counter()
    rows = run(SMOKE_SHAPES if args.smoke else SHAPES, dtypes, device, args.smoke)
    meta = report.environment(device)
    meta["seconds"] = time.perf_counter() - start
    meta["chooser"] = {str(key): name for key, name in triton_backend.CHOOSER.choices.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"kernels-{report.device_slug(device)}-{date.today().isoformat()}.json"
    path.write_text(json.dumps({"schema": "genconv-kernels/1", "meta": meta, "rows": rows}, indent=1) + "\n")
    print(f"json: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
