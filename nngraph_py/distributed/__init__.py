"""Data-parallel training over MPI (mpi4py), as Horovod and ChainerMN do it.

Each process holds the whole model and takes its shard of every batch; the gradients are summed
with an allreduce over the flat gradient buffer of ``get_parameters`` before the optimizer
steps, so every process applies the same update::

    from nngraph_py import distributed, optim
    world = distributed.init()                  # World(rank, size, is_root); size 1 alone
    model = build_model()
    opt = distributed.DistributedOptimizer(optim.Adam(model, lr=1e-3))
    distributed.broadcast_parameters(model)     # every process starts from the root's weights
    for index in global_batch_indices:
        part = index[distributed.shard(len(index), world)]
        opt.zero_grad()
        loss = criterion.forward(model.forward(x[part]), y[part])
        model.backward(x[part], criterion.backward(model.output, y[part]))
        opt.step()                              # gradient of the loss over the global batch

Run it with ``mpiexec -n 4 python train.py`` (see the README's "Training on several machines");
without ``mpiexec`` the same script trains in one process. Installed with
``pip install 'nngraph_py[distributed]'`` (mpi4py and MPICH from PyPI).
"""
from nngraph_py.distributed.optimizer import DistributedOptimizer
from nngraph_py.distributed.parameters import (broadcast_optimizer_state, broadcast_parameters,
                                               named_buffers)
from nngraph_py.distributed.sampler import EpochSampler, shard, shard_bounds
from nngraph_py.distributed.training import batch_length, shard_batch, sync_step
from nngraph_py.distributed.transport import select_gpu
from nngraph_py.distributed.world import (DEFAULT_TIMEOUT, DistributedError, World, init,
                                          launched_size)

__all__ = [
    "init", "World", "DistributedError", "broadcast_parameters", "broadcast_optimizer_state",
    "named_buffers", "DistributedOptimizer", "shard", "shard_bounds", "EpochSampler",
    "shard_batch", "sync_step", "batch_length", "select_gpu", "launched_size",
    "DEFAULT_TIMEOUT",
]
