"""NumPy fast paths of :mod:`._filters`: SciPy's compiled ``correlate1d``,
and cache-sized blocks of image planes.

One compiled pass per axis instead of one NumPy operation per tap and axis
(each a full pass over memory). ``correlate1d`` computes a 'same'-size
output; the 'valid' part is its centre, and the adjoint is a 'same'
correlation of the zero-padded input with the reversed window. SciPy
accumulates in float64 and writes the input's dtype. Windows have an odd
number of taps here (centred origin).
"""

from __future__ import annotations

import numpy as np

__all__ = ["filter_valid", "filter_valid_adjoint", "by_plane_blocks"]

# Bytes of one block of input planes: its five filtered images and the
# temporaries of the SSIM map (about twenty blocks in all) then stay within
# a few MiB of cache.
_BLOCK_BYTES = 1 << 18


def filter_valid(x, w):
    from scipy import ndimage

    w = np.asarray(w, dtype=np.float64)
    r = len(w) // 2
    rows = ndimage.correlate1d(x, w, axis=-1, mode="constant")[..., r:x.shape[-1] - r]
    return ndimage.correlate1d(rows, w, axis=-2, mode="constant")[..., r:x.shape[-2] - r, :]


def filter_valid_adjoint(g, w):
    from scipy import ndimage

    w = np.asarray(w, dtype=np.float64)[::-1]
    r = len(w) // 2
    padded = np.pad(g, [(0, 0)] * (g.ndim - 2) + [(r, r)] * 2)
    # Outside the padded array 'constant' mode reads zeros as well, so the
    # same-size correlation is the full one; the second pass writes into the
    # padding buffer, which is no longer needed.
    rows = ndimage.correlate1d(padded, w, axis=-1, mode="constant")
    return ndimage.correlate1d(rows, w, axis=-2, mode="constant", output=padded)


def by_plane_blocks(planes, x, y):
    """Run ``planes(np, xb, yb)`` over blocks of the (H, W) planes of ``x``
    and ``y`` (shaped (N, C, H, W)) small enough that a block's filtered
    images and temporaries stay in the cache, and assemble its results.

    ``planes`` returns ``(sums, grads)``: per-plane sums shaped like the
    block's leading axes, and a tuple of gradients shaped like the block
    (or ``None``). Returns the same for the whole arrays. Only the returned
    gradients are full-size allocations.
    """
    n, c, h, w = x.shape
    x3, y3 = x.reshape(n * c, h, w), y.reshape(n * c, h, w)
    step = max(1, _BLOCK_BYTES // (h * w * x.dtype.itemsize))
    sums = np.empty(n * c, dtype=x.dtype)
    grads = None
    for start in range(0, n * c, step):
        block = slice(start, start + step)
        s, g = planes(np, x3[block], y3[block])
        sums[block] = s
        if g is not None:
            if grads is None:
                grads = tuple(np.empty((n * c, h, w), dtype=x.dtype) for _ in g)
            for out, part in zip(grads, g):
                out[block] = part
    return sums.reshape(n, c), (None if grads is None else
                                tuple(out.reshape(n, c, h, w) for out in grads))
