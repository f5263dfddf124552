# genconv: `make demo` trains a GCN on a bundled texture on the CPU; `make test` runs the suite.
# Both create the virtual environment first. The constraints pin the CPU build of torch.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS := requirements/constraints.txt
PIP_OPTIONS ?=
DEMO_DIR ?= runs/demo
DEMO_ITERATIONS ?= 300
BENCH_ARGS ?=

.PHONY: setup demo test test-gpu gpu-check compile-table predicted-roofline docs-images bench bench-pytest lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python setup.py pyproject.toml $(CONSTRAINTS)
	$(BIN)/python -m pip install -q $(PIP_OPTIONS) -c $(CONSTRAINTS) -e ".[dev]"
	$(BIN)/python -c "from genconv.kernels import cpu_kernel; print('C++ CPU kernel:', cpu_kernel.status())"
	touch $@

setup: $(VENV)/.installed

demo: setup
	rm -rf $(DEMO_DIR)
	$(BIN)/genconv train --preset texture --data texture:brick --image-size 64 \
		--iterations $(DEMO_ITERATIONS) --out $(DEMO_DIR)
	$(BIN)/genconv sample --checkpoint $(DEMO_DIR)/checkpoint.pt --num 4 --out $(DEMO_DIR)/samples.png
	@echo "demo images: $(DEMO_DIR)/latest.png (observed | synthesized) and $(DEMO_DIR)/samples.png"

# Every picture of README.md and docs/, made by the commands the text gives (about 30 CPU minutes).
COMPARE_DIR ?= runs/compare
OBJECT_DIR ?= runs/object
docs-images: demo
	cp $(DEMO_DIR)/latest.png docs/demo.png
	cp $(DEMO_DIR)/samples.png docs/demo_samples.png
	rm -rf $(OBJECT_DIR)
	$(BIN)/genconv train --preset object --image-size 64 --iterations 700 --max-images 36 --holdout 20 \
		--no-progress --out $(OBJECT_DIR)
	cp $(OBJECT_DIR)/latest.png docs/object.png
	$(BIN)/genconv compare --preset faces --holdout 20 --out $(COMPARE_DIR)
	cp $(COMPARE_DIR)/compare.png docs/compare.png
	cp $(COMPARE_DIR)/compare.json docs/compare.json

test: setup
	$(BIN)/python -m pytest

test-gpu: setup
	$(BIN)/python -m pytest -m gpu

# On a machine with an H100/H200 and torch + triton installed (no virtual environment): the GPU
# tests, compute-sanitizer, each kernel against cuDNN and the chain benchmark, in under 8 minutes;
# logs and JSON into OUT.
OUT ?= bench/results
gpu-check:
	bash bench/gpu_check.sh $(OUT)

# The compile tier's table for every kernel and config (sm_90, sm_80): bench/results/compile-<date>.json
compile-table: setup
	$(BIN)/python -m bench.compile_tier

# Predicted time and % of roofline per chain pass on an H200, from the SASS (no GPU), with the constants
# fitted to the H200's measured passes: bench/results/roofline-<date>.json
CALIBRATION ?= bench/results/calibration-nvidia-h200-2026-12-04.json
predicted-roofline: setup
	$(BIN)/python -m bench.cost_model --markdown --calibration $(CALIBRATION)

# The benchmark matrix for this device (CUDA: texture and object, paper size and 64 px, batches 1-1024,
# float32 and bfloat16; CPU: 64 px, batches 1 and 16, float32); writes bench/results/<device>-<date>.json/.png.
bench: setup
	$(BIN)/python -m bench --check $(BENCH_ARGS)

bench-pytest: setup
	$(BIN)/python -m pytest bench --benchmark-only

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .benchmarks
