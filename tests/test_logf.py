"""The float32 vector log of the numba kernels (``ptycho/_logf.py``).

Every binade of positive float32 (subnormals included) is sampled and
compared with NumPy's float64 log rounded to float32: at most 1 ulp apart.
"""

import numpy as np
import pytest

pytest.importorskip("numba")
from numba import njit  # noqa: E402

from ptyloss_xp.ptycho._logf import log  # noqa: E402


@njit(error_model="numpy")
def _log_all(x, out):
    for k in range(x.shape[0]):
        out[k] = log(x[k])


def _ulps(a, b):
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))


def test_every_binade_within_one_ulp_of_the_correctly_rounded_log():
    rng = np.random.default_rng(0)
    exponents = np.repeat(np.arange(255, dtype=np.int32), 2048)
    mantissas = rng.integers(0, 1 << 23, exponents.size, dtype=np.int32)
    edges = np.array([1, 2, 0x007FFFFF, 0x00800000, 0x3F3504F3, 0x3F3504F4, 0x3F800000,
                      0x3F800001, 0x3F7FFFFF, 0x7F7FFFFF], dtype=np.int32)
    bits = np.concatenate([(exponents << 23) | mantissas, edges])
    x = bits[bits > 0].view(np.float32)
    got = np.empty_like(x)
    _log_all(x, got)
    want = np.log(x.astype(np.float64)).astype(np.float32)
    assert _ulps(got, want).max() <= 1
    assert np.mean(got == want) > 0.99


def test_ieee_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, 1.0], dtype=np.float32)
    got = np.empty_like(x)
    _log_all(x, got)
    np.testing.assert_array_equal(got, [-np.inf, -np.inf, np.inf, np.nan, np.nan, np.nan, 0.0])


def test_float64_goes_to_libm():
    x = np.random.default_rng(1).uniform(1e-300, 1e300, 1000)
    got = np.empty_like(x)
    _log_all(x, got)
    # libm and NumPy's own float64 log may differ in the last bit.
    np.testing.assert_array_max_ulp(got, np.log(x), maxulp=1)
