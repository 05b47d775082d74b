"""The one dispatch to the fast kernels of the PtyRAD terms.

:func:`kernels` returns the module of fused kernels for the given arrays, or
``None`` where the generic array API kernels of :mod:`.terms` run (the
reference). Today that is :mod:`._kernels_numba` for NumPy float32/float64
arrays when numba imports; the environment variable ``PTYLOSS_XP_NUMBA=0``
switches it off (to compare, or where numba misbehaves).
:func:`chunk_kernels` answers the same for Dask arrays whose chunks are such
NumPy arrays: :mod:`.shards` then runs the kernels on each chunk.
"""

from __future__ import annotations

import math

import numpy as np

from .._numba import load
from .._validate import _is_dask

__all__ = ["kernels", "chunk_kernels", "out_for"]

_NUMBA = load(f"{__package__}._kernels_numba")


def kernels(arrays):
    """The fast-kernel module for ``arrays`` (the bound dict of a call), or ``None``.

    Every array given must be a NumPy float32 or float64 array.
    """
    if _NUMBA is None:
        return None
    given = [x for x in arrays.values() if x is not None]
    if not given or not all(type(x) is np.ndarray and x.dtype in (np.float32, np.float64)
                            for x in given):
        return None
    return _NUMBA


def chunk_kernels(arrays):
    """The fast-kernel module for the chunks of ``arrays``, or ``None``.

    Every array given must be a Dask array with NumPy float32/float64
    chunks of known sizes.
    """
    if _NUMBA is None:
        return None
    given = [x for x in arrays.values() if x is not None]
    if not given or not all(_is_dask(x) and type(x._meta) is np.ndarray
                            and x.dtype in (np.float32, np.float64)
                            and not any(math.isnan(c) for axis in x.chunks for c in axis)
                            for x in given):
        return None
    return _NUMBA


def out_for(like, out):
    """``(array the kernel writes, whether it adds)`` for a gradient shaped like ``like``.

    ``out`` is ``None`` or ``(array, add)`` from ``Loss.value_and_grad``'s
    ``out=``. A non-contiguous ``out`` gets a fresh array here; the caller's
    base class copies it over.
    """
    if out is not None and out[0].flags.c_contiguous:
        return out
    return np.empty(like.shape, dtype=like.dtype), False
