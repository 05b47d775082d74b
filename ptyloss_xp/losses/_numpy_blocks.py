"""NumPy fast path of the SSIM loss: the planes in cache-sized blocks.

The generic kernel runs every operation (each of the filters' shifted
slices, each term of the SSIM map and its partials) over the whole batch at
once: some forty full-size temporaries, each a pass through main memory.
Run over a few (H, W) planes at a time (the statistics of one plane depend
on that plane alone), the same operations find their operands in the cache,
and the only full-size allocations are the returned gradients. The numbers
are the generic kernel's, summed per plane in the same order.
"""

from __future__ import annotations

import numpy as np

__all__ = ["by_plane_blocks"]

# Bytes of one block of input planes: its five filtered images and the
# temporaries of the SSIM map (about twenty blocks in all) then stay within
# a few MiB of cache. A 256 x 256 float32 plane is one block.
_BLOCK_BYTES = 1 << 18


def by_plane_blocks(planes, x, y):
    """Run ``planes(np, xb, yb)`` over blocks of the (H, W) planes of ``x``
    and ``y`` (shaped (N, C, H, W)) and assemble its results.

    ``planes`` returns ``(sums, grads)``: per-plane sums shaped like the
    block's leading axes, and a tuple of gradients shaped like the block
    (or ``None``). Returns the same for the whole arrays.
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
