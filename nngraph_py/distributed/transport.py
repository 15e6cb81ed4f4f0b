"""How arrays of each backend travel between processes.

* NumPy arrays, and the strict test arrays (NumPy underneath), go to MPI as buffers.
* CuPy arrays go, in this order of preference (decided by the root, the same on every process):
  NCCL (``cupy.cuda.nccl``), a CUDA-aware MPI (the buffer's device pointer handed to MPI, for
  MPIs whose ``MPIX_Query_cuda_support()`` says yes), or a copy through host memory.
  ``NNGRAPH_DIST_GPU=nccl|mpi|host`` forces one.

The CuPy paths are written for machines with GPUs; this repository's CI has none, so they run
only where a GPU is lent (see tests/distributed/test_distributed.py's GPU test).
"""
from __future__ import annotations

import ctypes
import os
from typing import Any

from nngraph_py import backend

__all__ = ["allreduce_", "broadcast_", "gpu_transport", "cuda_aware_mpi", "mpi_cuda_support",
           "select_gpu"]

Array = Any

_GPU_CHOICES = ("nccl", "mpi", "host")


def _host_buffer(array: Array) -> Any:
    """A NumPy array sharing ``array``'s memory (NumPy or strict), or None for a device array."""
    if backend.device_of(array) in ("cpu", "strict"):
        return backend.to_numpy(array)  # the strict array's own NumPy array: no copy
    return None


def _contiguous_do(world: "Any", array: Array, op: Any) -> None:
    """Run ``op(buffer)`` on ``array`` itself when contiguous, else on a contiguous copy."""
    host = _host_buffer(array)
    if host is not None:
        if host.flags.c_contiguous:
            op(host)
        else:
            import numpy

            tmp = numpy.ascontiguousarray(host)
            op(tmp)
            host[...] = tmp
        return
    _gpu_do(world, array, op)


def allreduce_(world: Any, array: Array) -> None:
    """Sum ``array`` over ``world`` in place (called by :meth:`World.allreduce_`)."""
    from mpi4py import MPI

    if backend.device_of(array) == "cuda" and gpu_transport(world) == "nccl":
        _nccl_allreduce_(world, array)
        return
    _contiguous_do(world, array, lambda buf: world.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM))


def broadcast_(world: Any, array: Array, root: int) -> None:
    """Overwrite ``array`` with the root's in place (called by :meth:`World.broadcast_`)."""
    if backend.device_of(array) == "cuda" and gpu_transport(world) == "nccl":
        _nccl_broadcast_(world, array, root)
        return
    _contiguous_do(world, array, lambda buf: world.comm.Bcast(buf, root=root))


# ------------------------------------------------------------------------------------------------
# GPUs
# ------------------------------------------------------------------------------------------------
def select_gpu(world: Any) -> int:
    """Make this process use the GPU numbered by its rank on its machine; returns that number.

    One process per GPU is the usual layout (``mpiexec -n 4`` on a machine with 4 GPUs): call it
    right after :func:`~nngraph_py.distributed.init`, before moving the model to ``"cuda"``.
    """
    cp = backend.array_module("cuda")
    count = cp.cuda.runtime.getDeviceCount()
    device = world.local_rank % count
    cp.cuda.Device(device).use()
    return device


def mpi_cuda_support() -> bool | None:
    """What ``MPIX_Query_cuda_support()`` of the MPI library loaded by mpi4py answers: True for a
    CUDA-aware MPI, False for one without CUDA, None when the library has no such function.

    MPICH (4 and later) and Open MPI export it; it is looked up in the ``libmpi`` this process
    has loaded (``/proc/self/maps``), else by the usual sonames.
    """
    from mpi4py import MPI  # noqa: F401 - loads libmpi

    paths = set()
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if "libmpi" in os.path.basename(path):
                    paths.add(path)
    except OSError:
        pass
    for path in sorted(paths) or ["libmpi.so.12", "libmpi.so.40"]:
        try:
            query = getattr(ctypes.CDLL(path), "MPIX_Query_cuda_support")
        except (OSError, AttributeError):
            continue
        query.restype = ctypes.c_int
        return bool(query())
    return None


def cuda_aware_mpi() -> bool:
    """Whether the MPI library loaded by mpi4py accepts device pointers (CUDA-aware)."""
    return bool(mpi_cuda_support())


def _nccl_module() -> Any:
    try:
        from cupy.cuda import nccl  # type: ignore

        nccl.get_version()
        return nccl
    except Exception:  # ImportError, or CuPy built without NCCL
        return None


def gpu_transport(world: Any) -> str:
    """The way CuPy arrays travel: ``"nccl"``, ``"mpi"`` (CUDA-aware) or ``"host"``.

    Chosen once per world by the root and broadcast, so every process takes the same path (a
    process calling NCCL while another calls MPI would hang).
    """
    if world._gpu is not None:
        return world._gpu
    forced = os.environ.get("NNGRAPH_DIST_GPU", "").lower()
    if forced and forced not in _GPU_CHOICES:
        raise ValueError(f"NNGRAPH_DIST_GPU must be one of {_GPU_CHOICES}, got {forced!r}")
    if forced:
        choice = forced
    elif _nccl_module() is not None:
        choice = "nccl"
    elif cuda_aware_mpi():
        choice = "mpi"
    else:
        choice = "host"
    choice = world.comm.bcast(choice, root=0)
    if choice == "nccl":
        nccl = _nccl_module()
        if nccl is None:
            raise RuntimeError(f"rank {world.rank}: the root chose NCCL for CuPy arrays but "
                               f"cupy.cuda.nccl is not usable here; set NNGRAPH_DIST_GPU=mpi "
                               f"or host on every process")
        uid = world.comm.bcast(nccl.get_unique_id() if world.rank == 0 else None, root=0)
        world._nccl = nccl.NcclCommunicator(world.size, uid, world.rank)
    world._gpu = choice
    return choice


def _gpu_do(world: Any, array: Array, op: Any) -> None:
    """``op(buffer)`` for a CuPy array over MPI: the device buffer itself or a host copy."""
    cp = backend.get_array_module(array)
    work = array if array.flags.c_contiguous else cp.ascontiguousarray(array)
    if gpu_transport(world) == "mpi":
        cp.cuda.get_current_stream().synchronize()  # MPI reads the memory outside the stream
        op(work)  # mpi4py takes __cuda_array_interface__ / DLPack buffers
    else:
        host = cp.asnumpy(work)
        op(host)
        work.set(host)
    if work is not array:
        array[...] = work


_NCCL_TYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
               "int32": "NCCL_INT32", "int64": "NCCL_INT64", "uint8": "NCCL_UINT8",
               "int8": "NCCL_INT8"}


def _nccl_type(nccl: Any, array: Array) -> int:
    name = _NCCL_TYPES.get(str(array.dtype))
    if name is None:
        raise TypeError(f"NCCL cannot carry {array.dtype} arrays")
    return getattr(nccl, name)


def _nccl_allreduce_(world: Any, array: Array) -> None:
    nccl, cp = _nccl_module(), backend.get_array_module(array)
    work = array if array.flags.c_contiguous else cp.ascontiguousarray(array)
    stream = cp.cuda.get_current_stream()
    world._nccl.allReduce(work.data.ptr, work.data.ptr, int(work.size), _nccl_type(nccl, work),
                          nccl.NCCL_SUM, stream.ptr)
    stream.synchronize()
    if work is not array:
        array[...] = work


def _nccl_broadcast_(world: Any, array: Array, root: int) -> None:
    nccl, cp = _nccl_module(), backend.get_array_module(array)
    work = array if array.flags.c_contiguous else cp.ascontiguousarray(array)
    stream = cp.cuda.get_current_stream()
    world._nccl.bcast(work.data.ptr, int(work.size), _nccl_type(nccl, work), root, stream.ptr)
    stream.synchronize()
    if work is not array:
        array[...] = work
