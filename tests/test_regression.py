"""Regression and regularization losses: what the generic contract tests
cannot see. Values against independent float64 formulas and known numbers,
the limits and identities between losses, stability at extreme residuals,
and the error messages. (Gradients, dtypes, namespaces and domain edges are
covered for every loss by tests/test_contract.py.)
"""

import math

import numpy as np
import pytest
from scipy import special

import ptyloss_xp as pl

RNG = np.random.default_rng(20240611)
X = RNG.normal(size=(4, 5)) * 2.0
Y = RNG.normal(size=(4, 5)) * 2.0
COUNTS = RNG.poisson(3.0, size=(4, 5)).astype(float)
POSITIVE = RNG.gamma(2.0, 1.5, size=(4, 5))


def _tweedie_deviance(y, mu, p):
    """scikit-learn's mean_tweedie_deviance, elementwise, identity link."""
    if p == 0:
        return (y - mu) ** 2
    if p == 1:
        return 2 * (special.xlogy(y, y / mu) - y + mu)
    if p == 2:
        return 2 * (np.log(mu / y) + y / mu - 1)
    return 2 * (np.maximum(y, 0) ** (2 - p) / ((1 - p) * (2 - p))
                - y * mu ** (1 - p) / (1 - p) + mu ** (2 - p) / (2 - p))


def _stirling(y):
    return np.where(y > 1, special.xlogy(y, y) - y + 0.5 * np.log(2 * np.pi * np.maximum(y, 1)), 0)


# (name, params, input, target, elementwise reference)
REFERENCES = [
    ("mse", {}, X, Y, lambda x, y: (x - y) ** 2),
    ("mae", {}, X, Y, lambda x, y: np.abs(x - y)),
    ("huber", {}, X, Y, lambda x, y: special.huber(1.0, x - y)),
    ("huber", {"delta": 0.3}, X, Y, lambda x, y: special.huber(0.3, x - y)),
    ("smooth_l1", {"beta": 1.5}, X, Y, lambda x, y: special.huber(1.5, x - y) / 1.5),
    ("smooth_l1", {"beta": 0.0}, X, Y, lambda x, y: np.abs(x - y)),
    ("log_cosh", {}, X, Y, lambda x, y: np.log(np.cosh(x - y))),
    ("quantile", {"tau": 0.2}, X, Y,
     lambda x, y: 0.2 * np.maximum(y - x, 0) + 0.8 * np.maximum(x - y, 0)),
    ("poisson_nll", {}, X, COUNTS, lambda x, y: np.exp(x) - y * x),
    ("poisson_nll", {"full": True}, X, COUNTS, lambda x, y: np.exp(x) - y * x + _stirling(y)),
    ("poisson_nll", {"log_input": False, "eps": 1e-3}, POSITIVE, COUNTS,
     lambda x, y: x - y * np.log(x + 1e-3)),
    ("poisson_nll", {"log_input": False, "full": True}, POSITIVE, COUNTS,
     lambda x, y: x - y * np.log(x + 1e-8) + _stirling(y)),
    *[("tweedie", {"power": p}, X / 2, y, lambda f, y, p=p: _tweedie_deviance(y, np.exp(f), p))
      for p, y in [(0.0, Y), (1.0, COUNTS), (1.5, COUNTS), (2.0, POSITIVE), (3.0, POSITIVE)]],
    ("l1", {"lambda1": 0.3}, X, None, lambda w, _: 0.3 * np.abs(w)),
    ("l2", {"lambda2": 0.3}, X, None, lambda w, _: 0.3 * w**2),
    ("elastic_net", {"lambda1": 0.2, "lambda2": 0.7}, X, None,
     lambda w, _: 0.2 * np.abs(w) + 0.7 * w**2),
]


@pytest.mark.parametrize(("name", "params", "x", "y", "ref"), REFERENCES,
                         ids=[f"{r[0]}-{r[1]}" for r in REFERENCES])
def test_value_matches_independent_formula(name, params, x, y, ref):
    arrays = (x,) if y is None else (x, y)
    expected = ref(x, y)
    loss = pl.get(name, **params)
    if "reduction" not in loss.params:  # the penalties: always a sum
        np.testing.assert_allclose(loss.value(*arrays), expected.sum(), rtol=1e-13)
        return
    for reduction, want in (("none", expected), ("sum", expected.sum()),
                            ("mean", expected.mean())):
        got = pl.get(name, **params, reduction=reduction).value(*arrays)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=reduction)


def test_rmse_is_root_of_mse_and_zero_gradient_at_a_perfect_fit():
    rmse = pl.get("rmse")
    np.testing.assert_allclose(rmse.value(X, Y), np.sqrt(np.mean((X - Y) ** 2)), rtol=1e-14)
    v, g = rmse.value_and_grad(X, X.copy())
    assert float(v) == 0.0
    np.testing.assert_array_equal(g, np.zeros_like(X))
    with pytest.raises(TypeError, match="reduction"):
        pl.get("rmse", reduction="sum")


def test_known_numbers():
    # Poisson NLL at the rate equal to the count 3: exp(log 3) - 3 log 3 plus
    # Stirling's 3 log 3 - 3 + log(6 pi) / 2 leaves log(6 pi) / 2.
    v = pl.get("poisson_nll", full=True).value(np.log([3.0]), np.array([3.0]))
    assert float(v) == pytest.approx(0.5 * math.log(6 * math.pi), rel=1e-14)
    # Stirling's term is the torch approximation of log(y!), within 1/(12 y).
    y = np.arange(2.0, 30.0)
    assert np.all(np.abs(_stirling(y) - special.gammaln(y + 1)) < 1 / (12 * y))
    # Gamma deviance of a prediction twice the target: 2 (log 2 - 1/2).
    v = pl.get("tweedie", power=2).value(np.log([4.0]), np.array([2.0]))
    assert float(v) == pytest.approx(2 * (math.log(2) - 0.5), rel=1e-14)
    # Pinball loss: every prediction 1 above its target costs 1 - tau.
    v = pl.get("quantile", tau=0.1).value(np.array([2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0]))
    assert float(v) == pytest.approx(0.9, rel=1e-14)


@pytest.mark.parametrize(("limit", "p"), [(1.0, 1.0 + 1e-5), (2.0, 2.0 - 1e-5), (2.0, 2.0 + 1e-5)])
def test_tweedie_general_power_tends_to_the_special_cases(limit, p):
    # (0 < p < 1 is no Tweedie power: 1 is approached from above only.)
    f, y = X / 4, POSITIVE
    exact = pl.get("tweedie", power=limit, reduction="none").value(f, y)
    near = pl.get("tweedie", power=p, reduction="none").value(f, y)
    np.testing.assert_allclose(near, exact, rtol=1e-4, atol=1e-9)
    # ... and away from the limit they differ, so the comparison has teeth.
    far = pl.get("tweedie", power=limit + 0.1, reduction="none").value(f, y)
    assert np.max(np.abs(far - exact)) > 1e-3


def test_tweedie_power_zero_is_mse_of_the_mean():
    f = X / 4
    tw = pl.get("tweedie", power=0)
    mse = pl.get("mse")
    np.testing.assert_allclose(tw.value(f, Y), mse.value(np.exp(f), Y), rtol=1e-14)
    # Log link: the chain rule brings in mu = exp(f).
    np.testing.assert_allclose(tw.grad(f, Y), mse.grad(np.exp(f), Y) * np.exp(f), rtol=1e-13)


@pytest.mark.parametrize("power", [1.0, 1.5, 2.0, 3.0])
def test_tweedie_gradient_hessian_is_twice_lightgbms(power):
    # LightGBM's tweedie objective (regression_objective.hpp), raw score f:
    # grad = -y e^{(1-p) f} + e^{(2-p) f}, hess = -y (1-p) e^{(1-p) f} + (2-p) e^{(2-p) f}.
    f, y = X / 4, POSITIVE
    g, h = pl.get("tweedie", power=power, reduction="sum").gradient_hessian(f, y)
    a, b = np.exp((1 - power) * f), np.exp((2 - power) * f)
    np.testing.assert_allclose(g, 2 * (-y * a + b), rtol=1e-13)
    np.testing.assert_allclose(h, 2 * (-y * (1 - power) * a + (2 - power) * b), rtol=1e-13)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_smooth_l1_with_beta_zero_is_mae(reduction):
    x = np.concatenate([X.ravel(), Y.ravel()[:3]])
    y = np.concatenate([Y.ravel(), Y.ravel()[:3]])  # three perfect fits: the kink
    s = pl.get("smooth_l1", beta=0.0, reduction=reduction)
    m = pl.get("mae", reduction=reduction)
    for a, b in zip(s.value_and_grad(x, y), m.value_and_grad(x, y)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(s.gradient_hessian(x, y), m.gradient_hessian(x, y)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("delta", [0.25, 1.0, 3.0])
def test_huber_is_delta_times_smooth_l1(delta):
    h = pl.get("huber", delta=delta, reduction="none")
    s = pl.get("smooth_l1", beta=delta, reduction="none")
    np.testing.assert_allclose(h.value(X, Y), delta * s.value(X, Y), rtol=1e-14)
    for a, b in zip(h.gradient_hessian(X, Y), s.gradient_hessian(X, Y)):
        np.testing.assert_allclose(a, delta * b, rtol=1e-14)


def test_subgradients_at_the_kinks():
    zero = np.zeros(3)
    r = np.array([-2.0, 0.0, 2.0])  # residuals at -delta, 0, +delta
    np.testing.assert_array_equal(pl.get("mae", reduction="sum").grad(zero, zero), zero)
    np.testing.assert_array_equal(pl.get("l1").grad(zero), zero)
    q = pl.get("quantile", tau=0.8, reduction="sum").grad(r, zero)
    np.testing.assert_allclose(q, [-0.8, 0.5 - 0.8, 0.2], rtol=1e-15)
    g, h = pl.get("huber", delta=2.0, reduction="sum").gradient_hessian(r, zero)
    np.testing.assert_array_equal(g, r)
    np.testing.assert_array_equal(h, [0.0, 1.0, 0.0])


@pytest.mark.parametrize("r", [1e4, -1e4, 800.0])
def test_log_cosh_is_stable_for_huge_residuals(r):
    loss = pl.get("log_cosh", reduction="none")
    x = np.array([r])
    v, g = loss.value_and_grad(x, np.zeros(1))
    _, h = loss.gradient_hessian(x, np.zeros(1))
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(g)) and np.all(np.isfinite(h))
    np.testing.assert_allclose(v, abs(r) - math.log(2), rtol=1e-15)
    np.testing.assert_array_equal(g, np.sign(x))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_cosh_keeps_digits_for_tiny_residuals(dtype):
    # log cosh r = r**2/2 - r**4/12 + r**6/45 - ...; the softplus form alone
    # would give 0 or rounding noise here.
    r = np.array([1e-3, 1e-6, -3e-5], dtype=dtype)
    v = pl.get("log_cosh", reduction="none").value(r, np.zeros_like(r))
    assert v.dtype == dtype
    rd = r.astype(float)
    series = rd**2 / 2 - rd**4 / 12 + rd**6 / 45
    np.testing.assert_allclose(v, series, rtol=4 * np.finfo(dtype).eps)


def test_elastic_net_is_l1_plus_l2_and_weight_decay_convention():
    en = pl.get("elastic_net", lambda1=0.3, lambda2=0.05)
    l1, l2 = pl.get("l1", lambda1=0.3), pl.get("l2", lambda2=0.05)
    np.testing.assert_allclose(en.value(X), l1.value(X) + l2.value(X), rtol=1e-14)
    np.testing.assert_allclose(en.grad(X), l1.grad(X) + l2.grad(X), rtol=1e-14)
    # Optimiser weight decay wd adds wd * w to the gradient: lambda2 = wd / 2.
    np.testing.assert_allclose(pl.get("l2", lambda2=0.1 / 2).grad(X), 0.1 * X, rtol=1e-15)
    assert pl.get("l1").lambda1 == 0.01 and pl.get("l2").lambda2 == 0.01  # Keras's defaults


# --- errors -----------------------------------------------------------------

def test_shape_mismatch_names_the_argument():
    with pytest.raises(ValueError, match=r"mse: argument 'target' must have shape"):
        pl.get("mse").value(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"rmse: argument 'target'"):
        pl.get("rmse").grad(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize(("name", "params", "x", "y", "pattern"), [
    ("poisson_nll", {}, np.zeros(2), np.array([1.0, -1.0]),
     r"poisson_nll: argument 'target' must be finite and >= 0"),
    ("poisson_nll", {}, np.array([0.0, 81.0]), np.ones(2),
     r"poisson_nll: argument 'input' must be finite and <= 80"),
    ("poisson_nll", {"log_input": False}, np.array([-0.5, 1.0]), np.ones(2),
     r"poisson_nll: argument 'input' must be finite and >= 0"),
    ("tweedie", {"power": 2.0}, np.zeros(2), np.array([1.0, 0.0]),
     r"tweedie: argument 'target' must be finite and > 0"),
    ("tweedie", {"power": 1.5}, np.array([0.0, 200.0]), np.ones(2),
     r"tweedie: argument 'input' must be finite and >= -160 and <= 160"),
    ("tweedie", {"power": 1.0}, np.zeros(2), np.array([1.0, -1.0]),
     r"tweedie: argument 'target' must be finite and >= 0"),
    ("mse", {}, np.array([0.0, np.nan]), np.zeros(2), r"mse: argument 'input' must be finite"),
])
def test_out_of_domain_input_is_refused_by_name(name, params, x, y, pattern):
    loss = pl.get(name, **params)
    with pytest.raises(ValueError, match=pattern):
        loss.value(x, y)
    # The checks are the only thing refusing it (NaN may follow).
    with pl.check_values(False), np.errstate(invalid="ignore"):
        loss.value(x, y)


@pytest.mark.parametrize(("name", "params", "exc", "pattern"), [
    ("huber", {"delta": 0.0}, ValueError,
     r"huber: parameter 'delta' must be a real number > 0, got 0.0"),
    ("smooth_l1", {"beta": -1.0}, ValueError,
     r"smooth_l1: parameter 'beta' must be .* >= 0, got -1.0"),
    ("quantile", {"tau": 1.0}, ValueError,
     r"quantile: parameter 'tau' must be .* > 0 and < 1, got 1.0"),
    ("poisson_nll", {"eps": 0.0}, ValueError, r"poisson_nll: parameter 'eps' must be .* > 0"),
    ("poisson_nll", {"log_input": 1}, TypeError,
     r"poisson_nll: parameter 'log_input' must be a bool"),
    ("tweedie", {"power": 0.5}, ValueError,
     r"tweedie: parameter 'power' must be 0 or .* >= 1 .*got 0.5"),
    ("tweedie", {"power": -1.0}, ValueError, r"tweedie: parameter 'power' must be .*got -1.0"),
    ("mse", {"reduction": "batchmean"}, ValueError, r"mse: parameter 'reduction' must be one of"),
    ("l1", {"lambda1": -0.1}, ValueError, r"l1: parameter 'lambda1' must be .* >= 0, got -0.1"),
    ("elastic_net", {"lambda2": float("nan")}, ValueError, r"elastic_net: parameter 'lambda2'"),
    ("l2", {"lambda1": 0.1}, TypeError, r"l2: unknown parameter\(s\) 'lambda1'; valid: lambda2"),
])
def test_bad_parameters_are_refused_clearly(name, params, exc, pattern):
    with pytest.raises(exc, match=pattern):
        pl.get(name, **params)
