"""Pieces a training loop needs to run data-parallel (used by :func:`nngraph_py.train.fit` and
``examples/mnist_lstm.py --distributed``).

A loop that trains one process on global batches becomes data-parallel with three changes: cut
each batch to this process's shard (:func:`shard_batch`), after backward average the gradients
and agree on the batch's loss and on stopping (:func:`sync_step`), and let the root alone print
and write files (``world.is_root``).
"""
from __future__ import annotations

from typing import Any

from nngraph_py import backend
from nngraph_py.distributed.sampler import shard
from nngraph_py.distributed.world import World
from nngraph_py.errors import InputError

__all__ = ["shard_batch", "sync_step", "batch_length"]


def batch_length(batch: Any) -> int | None:
    """The length of axis 0 of the first array in a (nested) batch, or None without arrays."""
    if backend.is_array(batch) or hasattr(batch, "shape"):
        return int(batch.shape[0]) if len(batch.shape) else None
    if isinstance(batch, (list, tuple)):
        for item in batch:
            n = batch_length(item)
            if n is not None:
                return n
    return None


def shard_batch(batch: Any, world: World) -> Any:
    """This process's part of a batch: every array of the (nested) tuple or list cut to
    :func:`shard` of its first axis; other values kept.

    Args:
        batch: ``(input, target)``, arrays or lists of arrays with the batch on axis 0.
        world: the world.

    Returns:
        The batch's structure with the arrays sliced (views, no copy).

    Raises:
        InputError: the arrays do not share one batch length.
    """
    n = batch_length(batch)
    if n is None or world.size == 1:
        return batch
    part = shard(n, world)

    def cut(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return type(value)(cut(v) for v in value)
        if backend.is_array(value) or hasattr(value, "shape"):
            if not len(value.shape):
                return value
            if int(value.shape[0]) != n:
                raise InputError(f"shard_batch: the batch's arrays differ in length along axis "
                                 f"0: {n} and {int(value.shape[0])}; every array of a batch "
                                 f"must hold the same samples")
            return value[part]
        return value

    return cut(batch)


def sync_step(optimizer: Any, loss: float, samples: int,
              stop: bool = False) -> tuple[float, int, bool]:
    """After backward: average the gradients, and agree on the loss and on stopping.

    One small collective carries this process's loss sum, sample count and stop request; then
    one allreduce averages the gradients weighted by each process's samples (the optimizer is
    marked synchronized: clip the gradient now, ``step()`` will not average again).

    Args:
        optimizer: a :class:`DistributedOptimizer`.
        loss: this process's loss, averaged over its ``samples``.
        samples: the samples this process took in the step (may be 0).
        stop: whether this process was asked to stop (Ctrl-C): any request stops all.

    Returns:
        ``(loss, samples, stop)`` of the global batch: the loss averaged over all samples (NaN
        on every process when it is NaN on one), the total samples, and whether any process
        asked to stop.
    """
    world = getattr(optimizer, "world", None)
    if world is None or not hasattr(optimizer, "average"):
        raise InputError(f"sync_step: expected a DistributedOptimizer, got "
                         f"{type(optimizer).__name__}; wrap it: "
                         f"distributed.DistributedOptimizer(optimizer)")
    world._take_share()  # the weights come from the counts below, not from shard()
    if world.size == 1:
        optimizer.average(1.0)
        return float(loss), int(samples), bool(stop)
    loss_sum, total, stops = world.sum([float(loss) * samples if samples else 0.0,
                                        int(samples), int(bool(stop))])
    optimizer.average(samples / optimizer._total(total))
    return loss_sum / total, int(total), stops > 0
