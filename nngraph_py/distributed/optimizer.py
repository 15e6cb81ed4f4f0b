"""Data-parallel steps: average the gradients of all processes, then step (Horovod's
``DistributedOptimizer``; Lua: torch-distlearn's ``AllReduceSGD``, torchmpi's
``mpinn.synchronizeGradients``)."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from nngraph_py import backend
from nngraph_py.distributed.parameters import (_optimizer_signature, broadcast_optimizer_state,
                                               check_same)
from nngraph_py.distributed.world import DistributedError, World, init
from nngraph_py.errors import InputError

__all__ = ["DistributedOptimizer"]


class DistributedOptimizer:
    """Wrap an optimizer of :mod:`nngraph_py.optim` so that each step uses the gradient of the
    loss over the global batch, the union of every process's shard.

    :meth:`step` weights this process's flat gradient buffer by its share of the global batch,
    sums the buffers of all processes with one allreduce (in place) and runs the wrapped
    optimizer's step. Every process then applies the same update to the same parameters, so the
    parameters and the optimizer's state stay identical everywhere (start them equal with
    :func:`broadcast_parameters`).

    The share of this process is, in this order: ``step(batch_size=n)`` (its sample count; the
    counts are summed over the processes), else the share of the last :func:`shard` call on the
    world since the previous step (``len(slice) / n``), else ``1 / size`` (even shards: the mean
    of the processes' gradients). With each process's loss averaged over its own shard this
    makes the gradient of the loss averaged over the global batch, as one process taking the
    whole batch computes it.

    To change the gradient between the average and the update (clipping its norm), call
    :meth:`synchronize` first: ``step`` then does not average again.

    Args:
        optimizer: the optimizer to wrap (``SGD``, ``Adam``, ``RMSProp``...), built on the model.
        world: the world (default: :func:`init`'s).

    Raises:
        DistributedError: the processes' optimizers have different numbers of parameters, dtypes
            or devices (raised on every process, at construction).

    Example:
        >>> from nngraph_py import nn, optim, distributed
        >>> world = distributed.init()
        >>> model = nn.Linear(4, 2)
        >>> opt = distributed.DistributedOptimizer(optim.SGD(model, lr=0.1))
        >>> _ = distributed.broadcast_parameters(model)
        >>> opt.zero_grad(); opt.step()                     # average, then update
    """

    def __init__(self, optimizer: Any, world: World | None = None):
        if isinstance(optimizer, DistributedOptimizer):
            raise InputError("DistributedOptimizer: the optimizer is already distributed")
        for attr in ("params", "grads", "step", "zero_grad"):
            if not hasattr(optimizer, attr):
                raise InputError(f"DistributedOptimizer: expected an optimizer of "
                                 f"nngraph_py.optim (with params, grads, step and zero_grad), "
                                 f"got {type(optimizer).__name__} without {attr!r}")
        self.optimizer = optimizer
        self.world = init() if world is None else world
        self._synchronized = False
        if self.world.size > 1:
            check_same(self.world, _optimizer_signature(optimizer), "DistributedOptimizer")

    # ---- the wrapped optimizer's surface ------------------------------------------------------
    @property
    def params(self) -> Any:
        """The flat parameter buffer (the wrapped optimizer's)."""
        return self.optimizer.params

    @property
    def grads(self) -> Any:
        """The flat gradient buffer (the wrapped optimizer's): local before :meth:`synchronize`,
        the global batch's after it."""
        return self.optimizer.grads

    @property
    def config(self) -> dict[str, Any]:
        return self.optimizer.config

    @property
    def state(self) -> dict[str, Any]:
        return self.optimizer.state

    @property
    def lr(self) -> float:
        """The learning rate of the wrapped optimizer (settable, for schedules)."""
        return self.optimizer.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.optimizer.lr = value

    def state_dict(self) -> dict[str, Any]:
        """The wrapped optimizer's :meth:`~nngraph_py.optim.Optimizer.state_dict` (the same on
        every process)."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` (load the same one on every process, or
        load it on the root and call :meth:`broadcast_state`)."""
        self.optimizer.load_state_dict(state_dict)

    def broadcast_state(self, root: int = 0) -> "DistributedOptimizer":
        """Copy the root's optimizer state to every process (after a resume on the root)."""
        broadcast_optimizer_state(self.optimizer, root, self.world)
        return self

    def verify(self) -> None:
        """Check that every process holds the same parameters and optimizer state, bit for bit.

        Each process hashes its flat parameters and state buffers (SHA-256 of the bytes, on the
        host) and the digests are compared; a debugging aid for a run that drifts, e.g. an MPI
        whose allreduce rounds differently on different processes.

        Raises:
            DistributedError: on every process, naming the ranks that differ from rank 0.
        """
        import hashlib

        digest = hashlib.sha256()
        state = self.optimizer.state_dict()
        for key, value in [("params", self.params)] + sorted(state.items()):
            digest.update(key.encode())
            if backend.is_array(value):
                digest.update(backend.to_numpy(value).tobytes())
            else:
                digest.update(repr(value).encode())
        digests = self.world.allgather(digest.hexdigest())
        differ = [rank for rank, d in enumerate(digests) if d != digests[0]]
        if differ:
            raise DistributedError(f"DistributedOptimizer.verify: the parameters or optimizer "
                                   f"state of rank(s) {differ} differ from rank 0's")

    # ---- the step -----------------------------------------------------------------------------
    def zero_grad(self) -> None:
        """Set the flat gradient buffer to zero, as the wrapped optimizer's ``zero_grad``."""
        self.optimizer.zero_grad()
        self._synchronized = False

    def synchronize(self, batch_size: int | None = None) -> Any:
        """Replace this process's gradient by the global batch's, on every process.

        One allreduce of the whole flat buffer (see benchmarks/RESULTS.md for why not buckets).
        A second call before the next :meth:`step` or :meth:`zero_grad` does nothing.

        Args:
            batch_size: this process's number of samples in the step (see the class docstring
                for the default).

        Returns:
            The flat gradient buffer.
        """
        if self._synchronized:
            return self.grads
        world = self.world
        share = world._take_share()
        if batch_size is not None:
            if batch_size < 0:
                raise InputError(f"DistributedOptimizer: batch_size must be >= 0, "
                                 f"got {batch_size}")
            return self.average(batch_size / self._total(world.sum(int(batch_size))))
        if share is not None:
            count, total = share
            return self.average(count / total if total else 0.0)
        return self.average(1.0 / world.size)

    @staticmethod
    def _total(total: float) -> float:
        if total <= 0:
            raise DistributedError("DistributedOptimizer: the processes' batch sizes sum to 0: "
                                   "there is no sample to average over")
        return total

    def average(self, weight: float) -> Any:
        """Sum ``weight`` times each process's gradient over the processes, in place (the
        allreduce behind :meth:`synchronize`, for callers that know this process's weight: the
        weights of all processes must sum to 1).

        Returns:
            The flat gradient buffer.
        """
        grads = self.grads
        if weight != 1.0:
            backend.get_array_module(grads).multiply(grads, weight, out=grads)
        self.world.allreduce_(grads)
        self._synchronized = True
        return grads

    def step(self, closure: Callable[[], Any] | None = None,
             batch_size: int | None = None) -> Any:
        """Average the gradients over the processes (unless :meth:`synchronize` did), then step.

        Args:
            closure: optional; called first to recompute the loss and fill the gradient buffer.
            batch_size: this process's number of samples (see the class docstring).

        Returns:
            The closure's loss on this process, or None without a closure.
        """
        loss = None
        if closure is not None:
            self._synchronized = False
            loss = closure()
        self.synchronize(batch_size)
        self.optimizer.step()
        self._synchronized = False
        return loss

    def __repr__(self) -> str:
        return f"DistributedOptimizer({self.optimizer!r}, {self.world!r})"
