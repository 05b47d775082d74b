"""NumPy fast path of :mod:`._filters`: SciPy's compiled ``correlate1d``.

One compiled pass per axis instead of one NumPy operation per tap and axis
(each a full pass over memory). ``correlate1d`` computes a 'same'-size
output; the 'valid' part is its centre, and the adjoint is a 'same'
correlation of the zero-padded input with the reversed window. SciPy
accumulates in float64 and writes the input's dtype. Windows have an odd
number of taps here (centred origin).
"""

from __future__ import annotations

import numpy as np

__all__ = ["filter_valid", "filter_valid_adjoint"]


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
