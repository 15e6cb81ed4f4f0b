"""The processes of a data-parallel run: who am I, how many are we, and the collectives.

Lua Torch had no standard answer here (torch-distlearn and torch-mpi were separate packages);
this follows Horovod and ChainerMN: the job is started by ``mpiexec``, every process calls
:func:`init` and gets the same :class:`World` back each time. Started without ``mpiexec`` (or
without mpi4py installed) a script gets a world of one process, whose collectives do nothing, so
the same script trains alone or on many machines.

Two safety nets keep a broken run from hanging forever:

* an uncaught exception on any process prints its traceback and calls ``MPI_Abort``, which stops
  every process of the job (the exception hook installed by :func:`init`);
* every collective runs under a watchdog: a process that waits longer than ``timeout`` seconds
  for the others (one exited early or follows another code path) says so and aborts the job.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, NoReturn, Sequence

from nngraph_py.errors import NNGraphError

__all__ = ["World", "init", "DistributedError", "launched_size", "DEFAULT_TIMEOUT"]

#: Seconds a collective may wait for the other processes before the job is aborted. It must
#: cover the longest time one process can run ahead of the others: an evaluation or checkpoint
#: done by the root alone, the slowest step. ``NNGRAPH_DIST_TIMEOUT`` overrides it (0: no limit).
DEFAULT_TIMEOUT = 600.0

#: Environment variables through which launchers announce the number of processes: MPICH's and
#: Intel MPI's Hydra and Slurm's PMI-2 (``PMI_SIZE``), Open MPI, MVAPICH2.
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
#: Variables that say "started by an MPI launcher" without giving the size (PMIx under srun).
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
_LOCAL_RANK_VARIABLES = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK",
                         "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID")


class DistributedError(NNGraphError, RuntimeError):
    """The processes of a distributed run disagree (different models, optimizers, arguments) or
    the run cannot start as asked (mpiexec without mpi4py)."""


def launched_size() -> int | None:
    """How many processes the launcher started, read from its environment variables.

    Returns:
        The number of processes; ``0`` when a launcher is present but does not say how many; None
        when the process was not started by an MPI launcher.
    """
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    if any(name in os.environ for name in _RANK_VARIABLES):
        return 0
    return None


def _local_rank_from_environment() -> int | None:
    for name in _LOCAL_RANK_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return None


class _Watchdog:
    """A daemon thread that aborts the job when one collective waits longer than ``timeout``.

    mpi4py releases the GIL inside blocking MPI calls, so the thread runs while the main thread
    waits; MPI is initialised with ``MPI_THREAD_MULTIPLE``, so it may call ``MPI_Abort``.
    """

    def __init__(self, world: "World", timeout: float):
        self.world = world
        self.timeout = timeout
        self._current: tuple[str, float] | None = None  # (what, since): one atomic assignment
        self._thread = threading.Thread(target=self._run, name="nngraph-dist-watchdog",
                                        daemon=True)
        self._thread.start()

    @contextmanager
    def watch(self, what: str) -> Iterator[None]:
        self._current = (what, time.monotonic())
        try:
            yield
        finally:
            self._current = None

    def _run(self) -> None:
        period = min(1.0, self.timeout / 4)
        while True:
            time.sleep(period)
            current = self._current
            if current is None:
                continue
            what, since = current
            waited = time.monotonic() - since
            if waited > self.timeout:
                w = self.world
                w.abort(f"rank {w.rank} of {w.size} waited {waited:.0f} s in {what} for the "
                        f"other processes: one of them has stopped (it died, exited early or "
                        f"took another code path). Aborting all {w.size} processes; raise the "
                        f"limit with init(timeout=...) or NNGRAPH_DIST_TIMEOUT if a process "
                        f"legitimately works alone that long.")


class World:
    """The processes of a run and their collectives (Horovod's ``hvd``, ChainerMN's communicator).

    Get it from :func:`init`. A ``World(rank, size)`` built by hand has no communicator: it is
    enough for :func:`~nngraph_py.distributed.shard`, and for ``size == 1`` its collectives do
    nothing.

    Args:
        rank: this process's number, ``0 <= rank < size``.
        size: the number of processes.
        comm: the mpi4py communicator (None for a world of one process or a hand-made world).
        timeout: seconds a collective may wait before the job is aborted (0: no limit).
        local_rank: this process's number among those on its machine (to pick a GPU).

    Attributes:
        rank, size, local_rank, comm, timeout: as given.
        is_root: whether this is process 0, the one that prints, writes and saves.

    Example:
        >>> from nngraph_py import distributed
        >>> world = distributed.init()      # without mpiexec: one process
        >>> (world.rank, world.size, world.is_root)
        (0, 1, True)
    """

    def __init__(self, rank: int = 0, size: int = 1, comm: Any = None, timeout: float = 0.0,
                 local_rank: int | None = None):
        if not isinstance(size, int) or size < 1:
            raise DistributedError(f"World: size must be a positive int, got {size!r}")
        if not isinstance(rank, int) or not 0 <= rank < size:
            raise DistributedError(f"World: rank must be an int in [0, {size}), got {rank!r}")
        self.rank = rank
        self.size = size
        self.comm = comm
        self.timeout = float(timeout)
        self.local_rank = rank if local_rank is None else int(local_rank)
        self._watchdog: _Watchdog | None = None
        self._share: tuple[int, int] | None = None  # (this process's count, global count)
        self._gpu: Any = None  # the GPU transport, chosen on the first CuPy array
        self._nccl: Any = None  # the NCCL communicator when that transport is chosen

    @property
    def is_root(self) -> bool:
        """Whether this is process 0 (the root: it alone prints, writes metrics and saves)."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """Whether there are other processes to talk to."""
        return self.size > 1

    def __repr__(self) -> str:
        kind = "MPI" if self.comm is not None else "local"
        return f"World(rank={self.rank}, size={self.size}, {kind})"

    # ---- plumbing --------------------------------------------------------------------------
    def _need_comm(self, what: str) -> Any:
        if self.comm is None:
            raise DistributedError(
                f"{what}: this World(rank={self.rank}, size={self.size}) has no communicator; "
                f"get the world from nngraph_py.distributed.init() under mpiexec")
        return self.comm

    @contextmanager
    def _collective(self, what: str) -> Iterator[Any]:
        """Run one collective under the watchdog; yields the communicator."""
        comm = self._need_comm(what)
        if self.timeout > 0 and self._watchdog is None:
            self._watchdog = _Watchdog(self, self.timeout)
        if self._watchdog is None:
            yield comm
        else:
            with self._watchdog.watch(what):
                yield comm

    def abort(self, message: str, code: int = 1) -> NoReturn:
        """Print ``message`` and stop every process of the job (``MPI_Abort``).

        In a world without a communicator it raises :class:`DistributedError` instead.
        """
        text = f"nngraph_py.distributed: {message}"
        if self.comm is None:
            raise DistributedError(text)
        try:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        finally:
            self.comm.Abort(code)
        raise SystemExit(code)  # not reached: MPI_Abort does not return

    # ---- collectives on arrays (in place) ----------------------------------------------------
    def allreduce_(self, array: Any) -> Any:
        """Sum ``array`` over all processes, in place on every process (``MPI_Allreduce``).

        NumPy and strict arrays go to MPI directly; CuPy arrays through NCCL or a CUDA-aware MPI
        (see :mod:`nngraph_py.distributed.transport`).

        Returns:
            ``array``, now holding the sum.
        """
        if self.size == 1:
            return array
        from nngraph_py.distributed import transport

        with self._collective(f"allreduce of {int(array.size):,} {array.dtype} values"):
            transport.allreduce_(self, array)
        return array

    def broadcast_(self, array: Any, root: int = 0) -> Any:
        """Overwrite ``array`` on every process with the root's (``MPI_Bcast``), in place.

        Returns:
            ``array``.
        """
        self._check_root(root, "broadcast_")
        if self.size == 1:
            return array
        from nngraph_py.distributed import transport

        with self._collective(f"broadcast of {int(array.size):,} {array.dtype} values "
                              f"from rank {root}"):
            transport.broadcast_(self, array, root)
        return array

    # ---- collectives on small Python values ----------------------------------------------------
    def allgather(self, value: Any) -> list[Any]:
        """Every process's ``value`` (picklable, small), in rank order, on every process."""
        if self.size == 1:
            return [value]
        with self._collective("allgather") as comm:
            return comm.allgather(value)

    def broadcast_object(self, value: Any, root: int = 0) -> Any:
        """The root's ``value`` (picklable, small) on every process."""
        self._check_root(root, "broadcast_object")
        if self.size == 1:
            return value
        with self._collective(f"broadcast from rank {root}") as comm:
            return comm.bcast(value, root=root)

    def sum(self, value: float | Sequence[float]) -> Any:
        """The sum over all processes of a number (or a list of numbers, element by element,
        as a list), added in rank order: the same result on every process."""
        if self.size == 1:
            return list(value) if isinstance(value, (list, tuple)) else value
        values = self.allgather(value)
        if isinstance(value, (list, tuple)):
            return [sum(column) for column in zip(*values)]
        return sum(values)

    def average(self, value: float, weight: float = 1.0) -> float:
        """The mean over all processes of ``value`` weighted by ``weight`` (e.g. a batch's loss
        weighted by its size: the loss of the global batch)."""
        if self.size == 1:
            return float(value)
        total, weights = self.sum([float(value) * weight, float(weight)])
        return total / weights if weights else 0.0

    def barrier(self) -> None:
        """Wait until every process gets here (``MPI_Barrier``)."""
        if self.size == 1:
            return
        with self._collective("barrier") as comm:
            comm.Barrier()

    def _check_root(self, root: Any, what: str) -> None:
        if not isinstance(root, int) or not 0 <= root < self.size:
            raise DistributedError(f"{what}: root must be a rank in [0, {self.size}), "
                                   f"got {root!r}")

    # ---- sharding ------------------------------------------------------------------------------
    def _record_share(self, count: int, total: int) -> None:
        self._share = (count, total)

    def _take_share(self) -> tuple[int, int] | None:
        """The share recorded by the last :func:`shard` call, forgotten once read."""
        share, self._share = self._share, None
        return share


_world: World | None = None
_world_lock = threading.Lock()


def _timeout_from(timeout: float | None) -> float:
    if timeout is not None:
        return float(timeout)
    text = os.environ.get("NNGRAPH_DIST_TIMEOUT", "")
    if text:
        try:
            return float(text)
        except ValueError:
            raise DistributedError(f"NNGRAPH_DIST_TIMEOUT must be a number of seconds, got "
                                   f"{text!r}") from None
    return DEFAULT_TIMEOUT


def _install_abort_hook(world: World) -> None:
    """Make an uncaught exception on this process stop the whole job, not leave it hanging."""
    previous = sys.excepthook

    def abort_on_exception(exc_type: type, exc: BaseException, tb: Any) -> None:
        try:
            previous(exc_type, exc, tb)
        finally:
            world.abort(f"rank {world.rank} of {world.size} stopped on an uncaught "
                        f"{exc_type.__name__}: {exc}; aborting all {world.size} processes "
                        f"(the traceback above is the cause)")

    sys.excepthook = abort_on_exception


def init(timeout: float | None = None) -> World:
    """The world of this run: every process of an ``mpiexec`` job, or this process alone.

    The first call starts MPI when the process was started by an MPI launcher (``mpiexec``,
    ``srun``) and mpi4py is installed; it installs an exception hook that aborts the whole job
    when one process raises. Without a launcher it returns a world of one process and imports
    nothing. Later calls return the same world. ``NNGRAPH_DISTRIBUTED=0`` forces a world of one.

    Args:
        timeout: seconds a collective may wait for the other processes before the job is aborted
            with a message (default: ``NNGRAPH_DIST_TIMEOUT`` or :data:`DEFAULT_TIMEOUT`; 0 waits
            forever). Used by the first call only.

    Returns:
        The :class:`World`.

    Raises:
        DistributedError: started by ``mpiexec`` as one of several processes while mpi4py is not
            installed (each process would otherwise train alone, silently).
    """
    global _world
    with _world_lock:
        if _world is None:
            _world = _make_world(_timeout_from(timeout))
        return _world


def _make_world(timeout: float) -> World:
    if os.environ.get("NNGRAPH_DISTRIBUTED", "").lower() in ("0", "off", "no", "false"):
        return World(0, 1)
    size = launched_size()
    if size is None:
        return World(0, 1)
    try:
        from mpi4py import MPI  # noqa: F401 - initialises MPI
    except ImportError as exc:
        if size == 1:
            return World(0, 1)
        raise DistributedError(
            f"this process was started by an MPI launcher as one of "
            f"{size or 'several'} processes, but mpi4py cannot be imported ({exc}): install it "
            f"with pip install 'nngraph_py[distributed]' (mpi4py and mpich), or run without "
            f"mpiexec") from exc
    comm = MPI.COMM_WORLD.Dup()  # our own context: user messages on COMM_WORLD cannot mix in
    local = _local_rank_from_environment()
    if local is None:
        local = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()
    world = World(comm.Get_rank(), comm.Get_size(), comm, timeout=timeout, local_rank=local)
    if world.size > 1:
        _install_abort_hook(world)
    return world
