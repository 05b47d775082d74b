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
sums, and, for Dask arrays, reading the inputs a second time in phase 3 (see
:func:`reread`).
"""

from __future__ import annotations

from .._validate import _is_dask

__all__ = ["combine_sums", "reread"]


def combine_sums(partials) -> dict:
    """Add partial sums (dicts of arrays and numbers with the same keys) key by key.

    Adding is all that combining needs, so an MPI solver may equally
    all-reduce each entry with ``MPI.SUM`` in the dict's order.
    """
    partials = list(partials)
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
    (a sequence of dicts of partial sums).

    Phase 3 reads each chunk of the inputs a second time instead of keeping
    phase 1's chunks (or their elementwise intermediates) in memory until
    the global sums are known: without this, Dask holds every chunk of the
    inputs while the last partial sum is computed. The price is one more
    read (or recomputation) of each input chunk; inputs that are already
    persisted are not recomputed (their clones point at the same data).
    Non-Dask arrays, and everything when no sum is a Dask array (nothing
    to wait for), come back unchanged.
    """
    parents = [v for s in sums for v in s.values() if _is_dask(v)]
    lazy = {k: v for k, v in arrays.items() if _is_dask(v)}
    if not parents or not lazy:
        return arrays
    from dask.graph_manipulation import bind

    # One bind for all arrays: a graph they share is cloned once.
    return {**arrays, **bind(lazy, parents)}
