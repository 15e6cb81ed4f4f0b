"""Which samples each process takes: :func:`shard` of one batch, :class:`EpochSampler` of an epoch.

The indices are plain host integers (NumPy), not model arrays: they select rows of the dataset
before the batch is moved to the device.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy

from nngraph_py.distributed.world import DistributedError, World, init

__all__ = ["shard", "shard_bounds", "EpochSampler"]


def shard_bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    """``(start, stop)`` of process ``rank``'s contiguous part of ``range(n)`` among ``size``.

    The first ``n % size`` processes take one more element than the others.
    """
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def shard(n: int, world: Any) -> slice:
    """The part of ``range(n)`` this process takes: contiguous, in rank order, sizes differing
    by at most one, all processes together covering ``range(n)`` once (Lua: torch-dataset's
    ``partition`` / ``partitions`` options split a dataset between nodes).

    The share ``len(slice) / n`` is remembered by the world: the next
    :meth:`DistributedOptimizer.step` weights this process's gradient by it, so uneven shards
    still give the gradient of the loss averaged over the whole batch.

    Args:
        n: the number of samples (e.g. the global batch size).
        world: the :class:`World` (anything with ``rank`` and ``size``).

    Returns:
        A ``slice(start, stop)``, e.g. ``x[shard(len(x), world)]``.

    Example:
        >>> from nngraph_py.distributed import World, shard
        >>> [shard(10, World(rank, 3)) for rank in range(3)]
        [slice(0, 4, None), slice(4, 7, None), slice(7, 10, None)]
    """
    if isinstance(n, bool) or not isinstance(n, (int, numpy.integer)) or n < 0:
        raise DistributedError(f"shard: n must be a non-negative int, got {n!r}")
    size, rank = getattr(world, "size", None), getattr(world, "rank", None)
    if not isinstance(size, (int, numpy.integer)) or size < 1 or \
            not isinstance(rank, (int, numpy.integer)) or not 0 <= rank < size:
        raise DistributedError(f"shard: expected a World with 0 <= rank < size, got "
                               f"rank={rank!r}, size={size!r}")
    start, stop = shard_bounds(int(n), int(rank), int(size))
    if isinstance(world, World):
        world._record_share(stop - start, int(n))
    return slice(start, stop)


class EpochSampler:
    """Shuffled batches of an epoch, each split between the processes by :func:`shard`.

    Every process draws the same permutation from ``(seed, epoch)``, cuts it into global batches
    of ``batch_size`` and keeps its shard of each; so the processes together see exactly the
    batches one process would see with the same seed (the permutation is that of
    ``numpy.random.default_rng([seed, epoch])``), and an epoch can be replayed.

    Args:
        n: the number of samples in the dataset.
        batch_size: the global batch size (all processes together).
        world: the world (default: :func:`init`'s).
        seed: the seed of the shuffling.
        shuffle: False keeps the dataset's order.
        drop_last: drop a last global batch smaller than ``batch_size``.

    Example:
        >>> from nngraph_py.distributed import EpochSampler, World
        >>> sampler = EpochSampler(10, batch_size=4, world=World(1, 2), shuffle=False)
        >>> [b.tolist() for b in sampler.batches(0)]
        [[2, 3], [6, 7], [9]]
    """

    def __init__(self, n: int, batch_size: int, world: World | None = None, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = False):
        if n < 0 or batch_size < 1:
            raise DistributedError(f"EpochSampler: need n >= 0 and batch_size >= 1, got n={n}, "
                                   f"batch_size={batch_size}")
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.world = init() if world is None else world
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.epoch = 0

    def __len__(self) -> int:
        """The number of steps in an epoch (the same on every process)."""
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)

    def global_batches(self, epoch: int) -> list[numpy.ndarray]:
        """The global batches of ``epoch`` (what one process alone would train on)."""
        if self.shuffle:
            order = numpy.random.default_rng([self.seed, epoch]).permutation(self.n)
        else:
            order = numpy.arange(self.n)
        return [order[i:i + self.batch_size] for i in range(0, len(self) * self.batch_size,
                                                              self.batch_size)]

    def batches(self, epoch: int) -> list[numpy.ndarray]:
        """This process's part of each global batch of ``epoch``.

        Pass ``batch_size=len(batch)`` to :meth:`DistributedOptimizer.step` when the parts can be
        uneven (iterating the sampler instead records each share as it goes).
        """
        w = self.world
        return [b[slice(*shard_bounds(len(b), w.rank, w.size))] for b in
                self.global_batches(epoch)]

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch that iterating the sampler walks through."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[numpy.ndarray]:
        """This process's part of each global batch of the current epoch, its share recorded by
        :func:`shard` as each batch is handed out."""
        for b in self.global_batches(self.epoch):
            yield b[shard(len(b), self.world)]
