"""Speed and memory of the recipe LSTM against its peers (PyTorch, Chainer).

Run ``python -m benchmarks.lstm --help``; the results, the machine and the commands that produced
them are in ``benchmarks/RESULTS.md`` (raw samples in ``benchmarks/results/``).

Layout:
    ``lstm.py``        the command line: runs every peer on every workload, prints the tables.
    ``workloads.py``   the two training tasks (MNIST rows, char LM) and their synthetic data.
    ``peers/``         one file per framework; every peer trains the same model the same way.
    ``worker.py``      the child process that measures one peer (threads set before any import).
    ``childenv.py``    the child's environment (threads, OpenBLAS, malloc), memory and BLAS readings.
    ``guard.py``       checks, before timing, that the fast path computes the same model.
    ``breakdown.py``   where the time of a step goes (phases, array ops, cProfile).
    ``gemm.py``        the matrix products of a step timed alone, NumPy's BLAS against PyTorch's.
    ``compiler.py``    the graph compiler (issue 16) against PyTorch, every peer in one process.
    ``cells.py``       the user cells written from ``nn`` primitives (GRU, peephole LSTM).
    ``cuda_check.py``  the device check of the generated CUDA region kernels (needs a GPU).
    ``cells.py``       the cells a user writes from primitives (GRU, peephole LSTM) it runs.
"""
