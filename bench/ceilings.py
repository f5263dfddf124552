"""The device's measured ceilings, float32 (TF32 matrix units) and bfloat16, in one JSON file.

    python -m bench.ceilings --out DIR        # writes DIR/ceilings-<date>.json

A large matrix product and a large device-to-device copy on random data (``roofline.measure_ceilings``):
the rates the compile tier's predictions are read against when a GPU measures the kernels.
"""

import argparse
import datetime
import json
from pathlib import Path

import torch

from bench.roofline import measure_ceilings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="folder for the JSON file")
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run, not a measurement)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    record = {
        "schema": "genconv-ceilings/1",
        "date": datetime.datetime.now(datetime.UTC).date().isoformat(),  # the GPU check names files by UTC day
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "quick": args.quick,
        "ceilings": {
            name: measure_ceilings(device, dtype, args.quick).to_dict()
            for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16))
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"ceilings-{record['date']}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    for name, ceiling in record["ceilings"].items():
        print(f"{name}: {ceiling['matrix_flops_per_s'] / 1e12:.1f} TFLOP/s, "
              f"{ceiling['bandwidth_bytes_per_s'] / 1e12:.2f} TB/s")  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
