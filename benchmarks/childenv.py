"""The measuring child's environment: threads, OpenBLAS's kernel choice, memory, BLAS readings.

Every measurement runs in a fresh child process (``python -m benchmarks.worker``) started with
the environment :func:`child_env` builds, so that

* the thread count is fixed *before* NumPy, PyTorch or Chainer load their BLAS (OpenBLAS, MKL and
  OpenMP read ``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``OMP_NUM_THREADS`` when they
  load); inside the child, :func:`limit_threads` then also applies ``threadpoolctl`` (when
  installed) and ``torch.set_num_threads``. The parent process never computes, so it is never
  re-executed;
* ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` are removed (both together), unless asked to
  keep them: some machines set them for old OpenBLAS builds, and they pin a current OpenBLAS to
  older, slower kernels. :func:`blas_info` reports the kernel that actually runs;
* one peer's imports and buffers never weigh on another's memory figures.

Memory is read from ``/proc/self/status``: ``VmRSS`` (now) and ``VmHWM`` (the peak resident set
of this process image). ``ru_maxrss`` is not used on Linux because ``exec`` carries the parent's
peak over into it.
"""
from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["OPENBLAS_PINS", "THREAD_VARS", "MALLOC_REUSE", "child_env", "page_faults", "limit_threads", "memory", "blas_info"]

#: Variables that pin OpenBLAS's kernel and cache model; removed together for the children.
OPENBLAS_PINS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
#: glibc malloc settings of ``--malloc-reuse``: blocks up to 32 MiB come from the heap, and freed
#: memory is kept instead of being returned to the system, so a buffer freed and allocated again
#: every step costs no page faults. With glibc's defaults, large blocks are ``mmap``-ed and
#: ``munmap``-ed on every allocation, and each new page is faulted in on first touch: slow on a
#: VM. (Each setting disables glibc's dynamic threshold, so all three are set.)
MALLOC_REUSE = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(4 << 30),
                "MALLOC_TOP_PAD_": str(64 << 20)}
#: Variables that fix the thread pools of the BLAS and OpenMP runtimes at load time.
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def child_env(threads: int, keep_openblas_pins: bool = False, root: str | None = None,
              malloc_reuse: bool = False) -> dict[str, str]:
    """The environment of a measuring child.

    Args:
        threads: threads for every BLAS / OpenMP pool.
        keep_openblas_pins: keep ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` as inherited.
        root: the repository root, put first on ``PYTHONPATH`` so the child finds the packages.
        malloc_reuse: set :data:`MALLOC_REUSE` (otherwise glibc's defaults, as inherited).
    """
    env = dict(os.environ)
    for name in THREAD_VARS:
        env[name] = str(threads)
    if not keep_openblas_pins:
        for name in OPENBLAS_PINS:
            env.pop(name, None)
    if malloc_reuse:
        env.update(MALLOC_REUSE)
    if root:
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


_limiter: Any = None


def limit_threads(threads: int) -> list[str]:
    """Limit the thread pools already loaded in this process; returns what was applied."""
    global _limiter
    applied = []
    try:
        from threadpoolctl import threadpool_limits

        _limiter = threadpool_limits(limits=threads)  # kept alive: the limit holds until exit
        applied.append("threadpoolctl")
    except ImportError:
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
        applied.append("torch.set_num_threads")
    return applied


def page_faults() -> int:
    """Minor page faults of this process so far (first touches of new pages)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def memory() -> dict[str, float]:
    """``{"rss_mb": now, "peak_mb": peak}`` of this process, in MiB."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss_mb"] = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    out["peak_mb"] = int(line.split()[1]) / 1024
    except OSError:  # not Linux: ru_maxrss (KiB on Linux, bytes on macOS) stands for both
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_mb = peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
        out = {"rss_mb": peak_mb, "peak_mb": peak_mb}
    return out


def blas_info() -> list[dict[str, Any]]:
    """The BLAS / OpenMP libraries loaded in this process, with the kernel they chose.

    Uses ``threadpoolctl`` when installed; otherwise NumPy's build configuration (which names the
    library, not the kernel chosen at run time). PyTorch's own BLAS (statically linked MKL on x86
    wheels) is invisible to both and is reported from ``torch.__config__``.
    """
    out: list[dict[str, Any]] = []
    try:
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            out.append({
                "api": lib.get("internal_api"),
                "version": lib.get("version"),
                "kernel": lib.get("architecture"),
                "threads": lib.get("num_threads"),
                "library": os.path.basename(lib.get("filepath", "")),
            })
    except ImportError:
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            try:
                cfg = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]
                out.append({"api": cfg.get("name"), "version": cfg.get("version"),
                            "kernel": "(unknown: pip install threadpoolctl)"})
            except Exception:  # noqa: BLE001 - old NumPy: report nothing rather than fail
                pass
    torch = sys.modules.get("torch")
    if torch is not None:
        import re

        blas = re.findall(r"BLAS_INFO=(\w+)", torch.__config__.show())
        try:
            capability = torch.backends.cpu.get_cpu_capability()
        except AttributeError:
            capability = None
        out.append({"api": "torch", "version": torch.__version__,
                    "kernel": f"{blas[0] if blas else '?'} / {capability or '?'}",
                    "threads": torch.get_num_threads(), "library": "torch (internal)"})
    return out
