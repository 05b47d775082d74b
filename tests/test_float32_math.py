"""The float32 vector log and pow of the numba kernels (``ptycho/_float32_math.py``).

Every binade of positive float32 (subnormals included) is sampled and
compared with NumPy's float64 log and power rounded to float32: at most
1 ulp apart for log, and the bound of each power for pow.
"""

import numpy as np
import pytest

pytest.importorskip("numba")
from numba import njit  # noqa: E402

from ptyloss_xp.ptycho._float32_math import log, pow  # noqa: A004, E402


@njit(error_model="numpy")
def _log_all(x, out):
    for k in range(x.shape[0]):
        out[k] = log(x[k])


@njit(error_model="numpy")
def _pow_all(x, p, out):
    for k in range(x.shape[0]):
        out[k] = pow(x[k], p)


def _every_binade(per_binade=2048, seed=0):
    rng = np.random.default_rng(seed)
    exponents = np.repeat(np.arange(255, dtype=np.int32), per_binade)
    mantissas = rng.integers(0, 1 << 23, exponents.size, dtype=np.int32)
    edges = np.array([1, 2, 0x007FFFFF, 0x00800000, 0x3F3504F3, 0x3F3504F4, 0x3F800000,
                      0x3F800001, 0x3F7FFFFF, 0x7F7FFFFF], dtype=np.int32)
    bits = np.concatenate([(exponents << 23) | mantissas, edges])
    return bits[bits > 0].view(np.float32)


def _ulps(a, b):
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))


def test_every_binade_within_one_ulp_of_the_correctly_rounded_log():
    x = _every_binade()
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


@pytest.mark.parametrize(("p", "max_ulp"), [(0.2, 1), (0.5, 1), (0.25, 1), (1.0, 1), (1.5, 2),
                                            (2.0, 2), (3.0, 2), (0.01, 1), (4.0, 3), (7.3, 5)])
def test_pow_within_its_ulps_of_the_correctly_rounded_power(p, max_ulp):
    x = _every_binade(seed=1)
    p = np.float32(p)
    got = np.empty_like(x)
    _pow_all(x, p, got)
    with np.errstate(over="ignore", under="ignore"):
        want = (x.astype(np.float64) ** np.float64(p)).astype(np.float32)
    assert _ulps(got, want).max() <= max_ulp


def test_pow_ieee_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -1.0, 1.0], dtype=np.float32)
    got = np.empty_like(x)
    _pow_all(x, np.float32(0.2), got)
    np.testing.assert_array_equal(got, [0.0, 0.0, np.inf, np.nan, np.nan, np.nan, 1.0])


def test_pow_float64_goes_to_libm():
    x = np.random.default_rng(2).uniform(0.0, 1e30, 1000)
    got = np.empty_like(x)
    _pow_all(x, 0.2, got)
    np.testing.assert_array_max_ulp(got, x**0.2, maxulp=1)
