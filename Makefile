# One-command entry points. `make demo` and `make test` are the README's quick start.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned: the CPU wheel from /opt/wheels where one lies on disk, else PyPI's (CUDA) build,
# which runs on the CPU too; pip's cache keeps the download between installs.
TORCH := torch==2.13.0
WHEELS := $(wildcard /opt/wheels)
PIP_FLAGS := $(if $(WHEELS),--find-links $(WHEELS),)
EXTRAS := dev,s3

.PHONY: setup demo test test-fast lint compile images constraints clean cluster

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(PIP_FLAGS) $(TORCH)
	$(BIN)/python -m pip install --quiet $(PIP_FLAGS) -c constraints.txt -e '.[$(EXTRAS)]'
	touch $@

## The main job: the full pipeline locally on the flights table, then a served prediction.
demo: setup
	$(BIN)/mlworkloads demo

## The whole test suite, end-to-end tests included (what CI runs).
test: setup
	$(BIN)/python -m pytest -q

## Unit tests only (skips the long end-to-end and the cluster ones): for the edit loop.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not e2e and not cluster"

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

compile: setup
	$(BIN)/mlworkloads compile --out compiled

## Build the images named in mlworkloads/images.py (needs a Docker engine).
## Build (or reuse) the test cluster's binaries from their pinned Go modules (tests do it on first use).
cluster:
	$(PYTHON) tests/support/cluster/build.py

images: setup
	$(BIN)/mlworkloads images --build

constraints: setup
	$(BIN)/python -m pip freeze --exclude-editable | grep -v -E '^(mlworkloads|torch)==' > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf runs .pytest_cache
