# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install
# the package with its dev extras on first use (offline-safe afterwards).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench gpu-wheels

# MuJoCo 4 split into mujoco-core and mujoco-studio, which a move back to the 3.17 pin (that of
# mujoco-mjx) would leave behind over the same files: the install removes them first.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip uninstall -q -y mujoco-core mujoco-studio 2>/dev/null || true
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/iwbc demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/env_throughput.py
	$(BIN)/python benchmarks/train_throughput.py

# What the GPU machine lacks (it has jax, flax, optax, numpy, scipy, h5py, pytest, typer, etils,
# absl-py...; see the device tool's KINDS.md): mujoco and mujoco-mjx at the pinned release, the
# Gymnasium / Minari stack, and their runtime dependencies missing there. Wheels for its Python
# 3.12 on manylinux x86_64, one version each, into the git-ignored .whl/ that the device
# command carries (README, "GPU"); the device tool carries at most 64 MiB in all.
GPU_WHEELS := mujoco==3.17.* mujoco-mjx==3.17.* gymnasium==1.4.* minari==0.5.* \
	farama-notifications glfw pyopengl trimesh websockets
GPU_WHEEL_FLAGS := --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
	--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64
GPU_WHEELS_MAX_BYTES := 67108864

gpu-wheels:
	rm -rf .whl && mkdir -p .whl
	$(PYTHON) -m pip download -q $(GPU_WHEEL_FLAGS) -d .whl $(GPU_WHEELS)
	@ls -1 .whl
	@total=$$(cat .whl/*.whl | wc -c); \
	echo ".whl/: $$(ls .whl/*.whl | wc -l) wheels, $$total bytes ($$((total / 1048576)) MiB; limit 64 MiB)"; \
	test $$total -le $(GPU_WHEELS_MAX_BYTES) || { echo "gpu-wheels: over 64 MiB" >&2; exit 1; }
