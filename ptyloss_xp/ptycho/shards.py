"""The two phases of a loss over scan positions split into shards.

Every PtyRAD term is a few global sums over scan positions (the sum of
squared residuals, ``sum(D^p)``, the element count, ...) followed by
elementwise work that needs those sums: the value is a function of the sums
alone, and the gradient of one scan position needs only its own patterns and
the sums. A solver that splits scan positions over MPI ranks, GPUs or Dask
workers (as PtyPy and tike do with MPI and PtyRAD with DDP) therefore runs:

1. ``partial_sums`` on each shard;
2. ``combine`` of every shard's partial sums (an all-reduce by addition);
3. ``finish`` on each shard: the global value and the shard's gradient.

This module holds what the terms and the combiner share: adding partial
sums; for Dask arrays, reading the inputs a second time in phase 3 (see
:func:`reread`); and, for Dask arrays whose chunks are NumPy float arrays,
the three phases as one task per chunk that runs the fused kernels
(:func:`chunked_sums`, :func:`chunked_finish`).
"""

from __future__ import annotations

import operator
import sys

import array_api_compat
import numpy as np

from .._validate import _is_dask, check_values, value_checks_enabled
from . import _fast

__all__ = ["combine_sums", "reread", "chunked_sums", "chunked_finish"]

# Partial sums added per combine task: a tree, so that no task gathers
# thousands of chunks' sums.
_FAN_IN = 8


def combine_sums(partials) -> dict:
    """Add partial sums (dicts of arrays and numbers with the same keys) key by key.

    Adding is all that combining needs, so an MPI solver may equally
    all-reduce each entry with ``MPI.SUM`` in the dict's order. Partial sums
    of :func:`chunked_sums` (Dask ``Delayed`` dicts) give a ``Delayed`` dict.
    """
    partials = list(partials)
    if any(_is_delayed(p) for p in partials):
        from dask import delayed

        return delayed(combine_sums)(partials)
    if not partials:
        msg = "combine: needs the partial sums of at least one shard"
        raise TypeError(msg)
    keys = list(partials[0])
    for p in partials[1:]:
        if list(p) != keys:
            msg = f"combine: partial sums of different losses, keys {keys} and {list(p)}"
            raise ValueError(msg)
    out = {}
    for k in keys:
        total = partials[0][k]
        for p in partials[1:]:
            total = total + p[k]
        out[k] = total
    return out


def reread(arrays: dict, sums) -> dict:
    """Dask arrays of ``arrays`` as fresh graph nodes that run after ``sums``
    (a sequence of dicts of partial sums, or of ``Delayed`` dicts).

    Phase 3 reads each chunk of the inputs a second time instead of keeping
    phase 1's chunks (or their elementwise intermediates) in memory until
    the global sums are known: without this, Dask holds every chunk of the
    inputs while the last partial sum is computed. The price is one more
    read (or recomputation) of each input chunk; inputs that are already
    persisted are not recomputed (their clones point at the same data).
    Non-Dask arrays, and everything when no sum is a Dask array or
    ``Delayed`` (nothing to wait for), come back unchanged.
    """
    parents = [v for s in sums for v in ((s,) if _is_delayed(s) else s.values())
               if _is_dask(v) or _is_delayed(v)]
    lazy = {k: v for k, v in arrays.items() if _is_dask(v)}
    if not parents or not lazy:
        return arrays
    from dask.graph_manipulation import bind

    # One bind for all arrays: a graph they share is cloned once.
    return {**arrays, **bind(lazy, parents)}


def _is_delayed(x) -> bool:
    module = sys.modules.get("dask.delayed")
    return module is not None and isinstance(x, module.Delayed)


def chunked_sums(loss, a):
    """Phases 1 and 2 of ``loss`` on the Dask arrays ``a`` (bound by name) with
    NumPy chunks (:func:`._fast.chunk_kernels`): a ``Delayed`` dict of the
    combined sums.

    One task per chunk of scan positions runs ``loss.partial_sums`` on it,
    the fused kernels with the value checks counted in their pass, and the
    chunks' sums are added in a tree of ``combine`` tasks.
    """
    from dask import delayed

    checks = value_checks_enabled()
    # pure: keys from the arguments, so that the same call twice is one graph.
    parts = [delayed(_on_chunk, pure=True)(loss.partial_sums, (), chunk, checks, where)
             for chunk, where in _chunks(loss, a)]
    while len(parts) > 1:
        parts = [delayed(combine_sums, pure=True)(parts[i:i + _FAN_IN])
                 for i in range(0, len(parts), _FAN_IN)]
    return parts[0]


def chunked_finish(loss, a, sums, need_grad):
    """Phase 3 of ``loss`` on the Dask arrays ``a`` with NumPy chunks:
    ``(value, grads)`` from the combined ``sums`` (a dict or a ``Delayed``
    dict), as Dask arrays: the value 0-d, each gradient chunked like its
    input; ``grads`` is ``None`` without ``need_grad``.

    The value is a task of its own that reads no chunk; each chunk's task
    runs ``loss.finish`` on it.
    """
    import dask.array as da
    from dask import delayed

    checks = value_checks_enabled()
    per = _per_position(loss, a)
    dtype = a[per[0]].dtype
    # The value needs the sums and the small arrays; the large ones only
    # for their dtype and trailing shape, so zero rows stand in for them.
    shapes = {n: np.empty((0,) + tuple(a[n].shape[1:]), dtype=a[n].dtype) for n in per}
    value = delayed(_on_chunk, pure=True)(_value, (loss, sums), {**a, **shapes}, checks, "")
    value = da.from_delayed(value, shape=(), dtype=dtype, meta=np.empty((), dtype=dtype))
    if not need_grad:
        return value, None
    tasks = [delayed(_on_chunk, pure=True)(_grads, (loss, sums), chunk, checks, where)
             for chunk, where in _chunks(loss, a)]
    rows = _rows(loss, a)
    grads = []
    for j, name in enumerate(loss.wrt):
        x = a[name]
        meta = np.empty((0,) * x.ndim, dtype=x.dtype)
        g = da.concatenate([
            da.from_delayed(delayed(operator.getitem, pure=True)(t, j),
                            shape=(r,) + tuple(x.shape[1:]), dtype=x.dtype, meta=meta)
            for t, r in zip(tasks, rows)], axis=0)
        # The tasks' rows are the first per-position array's, whole along
        # the other axes; the gradient gets its input's chunks back.
        grads.append(g.rechunk(x.chunks))
    return value, tuple(grads)


def _per_position(loss, a):
    """Names of the given arguments indexed by scan position (axis N)."""
    return [arg.name for arg in loss.args if arg.shape[:1] == ("N",) and a.get(arg.name) is not None]


def _rows(loss, a):
    """Scan positions per task: the first per-position array's chunks, less
    any of zero rows (no term takes an empty shard)."""
    return tuple(r for r in a[_per_position(loss, a)[0]].chunks[0] if r > 0)


def _chunks(loss, a):
    """``[(arrays of one chunk of scan positions, where)]``: every per-position
    array as ``Delayed`` blocks of the same rows (rechunked to them, whole
    along the other axes); the other arrays whole (computed by each task
    that takes them)."""
    rows = _rows(loss, a)
    per = _per_position(loss, a)
    blocks = {}
    for n in per:
        x = a[n].rechunk({0: rows, **{axis: -1 for axis in range(1, a[n].ndim)}})
        blocks[n] = x.to_delayed(optimize_graph=False).ravel()
    whole = {k: v for k, v in a.items() if k not in per}
    ends = np.cumsum(rows)
    return [({**{n: b[i] for n, b in blocks.items()}, **whole},
             f", by the task of scan positions {end - r} to {end - 1}")
            for i, (r, end) in enumerate(zip(rows, ends))]


def _on_chunk(fn, args, arrays, checks, where):
    """``fn(*args, **arrays)`` with the value checks as when the graph was
    built; a ``ValueError`` says that it was raised at compute time, and
    where."""
    try:
        with check_values(checks):
            return fn(*args, **arrays)
    except ValueError as e:
        msg = f"{e} (checked when the Dask result was computed{where})"
        raise ValueError(msg) from None


def _value(loss, sums, **arrays):
    xp = array_api_compat.array_namespace(*(x for x in arrays.values() if x is not None))
    value, _ = loss._fused_finish(_fast.kernels(arrays), xp, arrays, sums, False, None)
    return np.asarray(value)


def _grads(loss, sums, **arrays):
    _, g = loss.finish(sums, **arrays)
    return g if isinstance(g, tuple) else (g,)
