"""Array backends for the benchmarks: timing, copy bandwidth and peak memory.

NumPy always; CuPy where it imports and a GPU answers. Each backend times a
call the way its device needs (SciPy's ``XPBenchmark`` practice: the GPU is
synchronised inside the timed region) and measures the extra memory a call
allocates beyond what existed before it.
"""

from __future__ import annotations

import importlib
import statistics
import time
import tracemalloc

import numpy as np

from ptyloss_xp._backend import BackendError, backend_namespace

# Size of each buffer of the bandwidth copy: far beyond any cache, so the
# copy runs at main-memory (or HBM) speed.
COPY_BYTES = 256 * 2**20


class NumpyBackend:
    """Host arrays; wall-clock timing; ``tracemalloc`` for memory."""

    name = "numpy"
    xp = np

    def asarray(self, host):
        return host

    def timed(self, fn, warmup, repeats):
        """Median seconds of ``repeats`` calls of ``fn`` after ``warmup`` calls."""
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    def copy_bandwidth(self, repeats):
        """Bytes per second of a large copy (bytes read plus bytes written)."""
        src = np.ones(COPY_BYTES // 4, dtype=np.float32)
        dst = np.empty_like(src)
        t = self.timed(lambda: np.copyto(dst, src), 2, repeats)
        return 2 * src.nbytes / t

    def peak_extra(self, fn):
        """``(result, bytes)``: peak NumPy allocation during ``fn()``.

        NumPy reports its data buffers to ``tracemalloc``; the peak includes
        the returned arrays, which the caller subtracts.
        """
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            result = fn()
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        return result, peak

    def torch_ok(self, torch):
        """Whether PyTorch can run on this backend's device."""
        return True

    def to_torch(self, torch, x):
        return torch.from_numpy(x)

    def torch_sync(self, torch):
        """Nothing to wait for on the CPU."""


class CupyBackend:
    """Device arrays; CUDA-event timing; the CuPy memory pool for memory."""

    name = "cupy"

    def __init__(self, cp):
        self.cp = cp
        self.xp = cp

    def asarray(self, host):
        return self.cp.asarray(host)

    def timed(self, fn, warmup, repeats):
        """Median seconds between CUDA events around each call.

        Events on the current stream measure device time; synchronising on
        the end event makes the host wait for the work the call queued.
        """
        cp = self.cp
        for _ in range(warmup):
            fn()
        cp.cuda.Device().synchronize()
        start, end = cp.cuda.Event(), cp.cuda.Event()
        times = []
        for _ in range(repeats):
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
        return statistics.median(times)

    def copy_bandwidth(self, repeats):
        cp = self.cp
        src = cp.ones(COPY_BYTES // 4, dtype=cp.float32)
        dst = cp.empty_like(src)
        t = self.timed(lambda: cp.copyto(dst, src), 2, repeats)
        return 2 * src.nbytes / t

    def peak_extra(self, fn):
        """``(result, bytes)``: growth of the memory pool during ``fn()``.

        The pool keeps freed blocks and grows only when no cached block
        fits, so after emptying its cache the bytes it holds at the end bound
        the peak from above (fragmentation can only add to them).
        """
        cp = self.cp
        pool = cp.get_default_memory_pool()
        cp.cuda.Device().synchronize()
        pool.free_all_blocks()
        base = pool.total_bytes()
        result = fn()
        cp.cuda.Device().synchronize()
        return result, pool.total_bytes() - base

    def torch_ok(self, torch):
        return torch.cuda.is_available()

    def to_torch(self, torch, x):
        return torch.from_dlpack(x)

    def torch_sync(self, torch):
        torch.cuda.synchronize()


def available():
    """The backends present: NumPy, then CuPy if a device answers."""
    found = [NumpyBackend()]
    try:
        backend_namespace("cupy")
    except BackendError:
        return found
    found.append(CupyBackend(importlib.import_module("cupy")))
    return found
