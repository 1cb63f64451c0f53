# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install
# the package with its dev extras on first use (offline-safe afterwards).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench

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
	$(BIN)/python -m pytest -q -n auto

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/env_throughput.py
	$(BIN)/python benchmarks/train_throughput.py
