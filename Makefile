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

.PHONY: setup demo test test-fast test-cluster lint compile images constraints clean cluster

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

## The whole test suite, end-to-end and cluster tests included (what CI runs); it ends with the
## 15 slowest tests. Every test has a limit (pyproject.toml, `timeout`); the test cluster is
## built (or reused) before the first test, with its own bound.
test: setup
	$(BIN)/python -m pytest -q --durations=15

## The edit loop: no end-to-end and no cluster tests.
test-fast: setup
	$(BIN)/python -m pytest -q --durations=15 -m "not e2e and not cluster"

## Only the tests on the real test cluster.
test-cluster: setup
	$(BIN)/python -m pytest -q --durations=15 -m cluster

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

compile: setup
	$(BIN)/mlworkloads compile --out compiled
	$(BIN)/mlworkloads catalog

## The tests' cluster for a person: builds (or reuses) its binaries from their pinned Go modules,
## starts it, prints `kubeconfig: <path>` (cluster-admin) and stays up until Ctrl-C.
cluster: setup
	PYTHONPATH=tests $(BIN)/python -m support.cluster.cluster

## Build the images named in mlworkloads/images.py (needs a Docker engine).
images: setup
	$(BIN)/mlworkloads images --build

constraints: setup
	$(BIN)/python -m pip freeze --exclude-editable | grep -v -E '^(mlworkloads|torch)==' > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf runs .pytest_cache
