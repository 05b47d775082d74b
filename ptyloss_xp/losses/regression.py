"""Regression losses: prediction ``input`` against observation ``target``.

Every loss here takes ``(input, target)`` of one shape, in PyTorch's order,
and (except ``rmse``) is a :class:`~ptyloss_xp._registry.PointwiseLoss`: a
``reduction`` ("mean", "sum", or "none") of an elementwise function, so it
also offers ``gradient_hessian``, the ``(grad, hess)`` pair of a
LightGBM/XGBoost custom objective. With ``reduction="none"`` the gradient is
that of the sum of the per-element losses.

At a kink the gradient is the subgradient PyTorch's autograd returns there
(``sign(0) = 0``); each class says which one that is.
"""

from __future__ import annotations

import math

import numpy as np

from .._registry import Loss, PointwiseLoss, register
from .._validate import FLOAT32_TINY, REDUCTION, Arg, Param, require

__all__ = ["MSE", "MAE", "RMSE", "Huber", "SmoothL1", "LogCosh", "Quantile", "PoissonNLL",
           "Tweedie"]

# Largest exponent the exp-based losses accept: exp(80) ~ 5.5e34, so values,
# gradients and sums of thousands of them stay finite even in float32
# (whose largest value is 3.4e38 = exp(88.7)).
_EXP_LIMIT = 80.0

_INPUT = Arg("input", ("*",), grad=True, doc="prediction")
_TARGET = Arg("target", ("*",), doc="observed value, same shape as input")


def _abs_parts(xp, r, order):
    """``|r|`` and its derivatives, with torch's ``sign(0) = 0``."""
    d1 = xp.sign(r) if order >= 1 else None
    d2 = xp.zeros_like(r) if order >= 2 else None
    return xp.abs(r), d1, d2


def _huber_parts(xp, r, delta, order):
    """PyTorch's HuberLoss kernel and its derivatives (quadratic for ``|r| < delta``)."""
    a = xp.abs(r)
    inside = a < delta
    loss = xp.where(inside, 0.5 * r * r, delta * (a - 0.5 * delta))
    d1 = xp.where(inside, r, delta * xp.sign(r)) if order >= 1 else None
    d2 = xp.astype(inside, r.dtype) if order >= 2 else None
    return loss, d1, d2


class _ResidualLoss(PointwiseLoss):
    """A function of the residual ``r = input - target``.

    ``_kink`` is the ``|r|`` where the loss or its second derivative is not
    smooth (``None``: smooth everywhere).
    """

    family = "regression"
    args = (_INPUT, _TARGET)
    _kink = None

    def nonsmooth_distance(self, name, arrays):
        if self._kink is None:
            return None
        return np.abs(np.abs(arrays["input"] - arrays["target"]) - self._kink)

    def _pointwise(self, xp, a, order):
        return self._of_residual(xp, a["input"] - a["target"], order)

    def _of_residual(self, xp, r, order):
        raise NotImplementedError


@register
class MSE(_ResidualLoss):
    """Mean squared error, PyTorch's ``MSELoss``.

    Value: ``(input - target)**2``, reduced by ``reduction``.

    Gradient: ``2 (input - target)`` (over the number of elements for
    "mean"); diagonal Hessian 2. Domain: all finite reals. Matches
    ``torch.nn.MSELoss``, ``optax.squared_error`` followed by a mean (optax
    has no reduction; ``optax.l2_loss`` is half of it) and
    ``keras.losses.MeanSquaredError``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([1.0, 2.0, 4.0]); y = np.array([1.0, 0.0, 1.0])
    >>> v, g = pl.get("mse").value_and_grad(x, y)
    >>> float(v), g.tolist()
    (4.333333333333333, [0.0, 1.3333333333333333, 2.0])
    """

    name = "mse"
    param_cases = ({"reduction": "sum"}, {"reduction": "none"})
    formula = r"\ell = (x - y)^2"
    gradient = r"\partial \ell/\partial x = 2 (x - y),\ \partial^2 \ell/\partial x^2 = 2"
    reference = "torch.nn.MSELoss"

    def _of_residual(self, xp, r, order):
        d1 = 2.0 * r if order >= 1 else None
        d2 = xp.full_like(r, 2.0) if order >= 2 else None
        return r * r, d1, d2


@register
class MAE(_ResidualLoss):
    """Mean absolute error, PyTorch's ``L1Loss``.

    Value: ``|input - target|``, reduced by ``reduction``.

    Gradient: ``sign(input - target)``; at a perfect fit it is 0, the
    subgradient PyTorch returns (``sign(0) = 0``). Diagonal Hessian 0 (the
    kink at 0 has none). Domain: all finite reals. Matches
    ``torch.nn.L1Loss`` and ``keras.losses.MeanAbsoluteError``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([1.0, 2.0, 4.0]); y = np.array([1.0, 0.0, 5.0])
    >>> v, g = pl.get("mae").value_and_grad(x, y)
    >>> float(v), g.tolist()
    (1.0, [0.0, 0.3333333333333333, -0.3333333333333333])
    """

    name = "mae"
    param_cases = ({"reduction": "none"},)
    formula = r"\ell = |x - y|"
    gradient = (r"\partial \ell/\partial x = \mathrm{sign}(x - y)"
                "; 0 at x = y (PyTorch's sign(0) = 0)")
    reference = "torch.nn.L1Loss"
    _kink = 0.0

    def _of_residual(self, xp, r, order):
        return _abs_parts(xp, r, order)


@register
class RMSE(Loss):
    """Root mean squared error (PyTorch has no such loss).

    Value: ``sqrt(mean((input - target)**2))`` over all elements; it has no
    ``reduction`` parameter, since the root is taken of the mean. Same as
    ``sklearn.metrics.root_mean_squared_error`` on flattened arrays and
    Keras's ``RootMeanSquaredError`` metric.

    Gradient: ``(input - target) / (M * rmse)`` with ``M`` the number of
    elements. At a perfect fit the derivative of the root is infinite and
    the gradient is set to 0, a subgradient (the minimum); autograd through
    ``torch.sqrt(mse)`` gives NaN there. Not pointwise, so no
    ``gradient_hessian``. Domain: all finite reals.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([3.0, 0.0]); y = np.array([0.0, 4.0])
    >>> v, g = pl.get("rmse").value_and_grad(x, y)
    >>> round(float(v), 6), np.round(g, 6).tolist()
    (3.535534, [0.424264, -0.565685])
    """

    name = "rmse"
    family = "regression"
    args = (_INPUT, _TARGET)
    formula = r"L = \sqrt{\langle (x - y)^2 \rangle}"
    gradient = (r"\partial L/\partial x = (x - y) / (M L)"
                "; 0 at a perfect fit (PyTorch's sqrt(mse): NaN)")
    reference = ("sklearn.metrics.root_mean_squared_error; "
                 "keras.metrics.RootMeanSquaredError (no PyTorch loss)")

    def nonsmooth_distance(self, name, arrays):
        # The only kink is a perfect fit: the origin of residual space.
        r = arrays["input"] - arrays["target"]
        return np.full(r.shape, np.sqrt(np.sum(r * r)))

    def _evaluate(self, xp, a, need_grad):
        r = a["input"] - a["target"]
        rms = xp.sqrt(xp.mean(r * r))
        if not need_grad:
            return rms, None
        # 1/rms is infinite at a perfect fit; 0 is the subgradient there.
        safe = xp.where(rms > 0, rms, 1.0)
        scale = xp.where(rms > 0, 1.0 / (math.prod(r.shape) * safe), 0.0)
        return rms, (r * scale,)


@register
class Huber(_ResidualLoss):
    """Huber loss, PyTorch's ``HuberLoss``.

    Value: ``0.5 r**2`` for ``|r| < delta``, else ``delta * (|r| - 0.5 delta)``,
    with ``r = input - target``, reduced by ``reduction``.

    Gradient: ``r`` clipped to ``[-delta, delta]``. Diagonal Hessian: 1 for
    ``|r| < delta``, else 0 (it jumps at ``|r| = delta``; there the value's
    branch, 0, is used). Domain: all finite reals; ``delta > 0`` as in
    PyTorch. Equals ``delta * smooth_l1`` with ``beta = delta``. Matches
    ``torch.nn.HuberLoss``, ``keras.losses.Huber`` and ``optax.huber_loss``
    (optax returns the unreduced values).

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([0.5, 3.0]); y = np.zeros(2)
    >>> v, g = pl.get("huber", delta=1.0).value_and_grad(x, y)
    >>> float(v), g.tolist()
    (1.3125, [0.25, 0.5])
    """

    name = "huber"
    params = {"delta": Param(1.0, low=0.0, low_open=True,
                             doc="where the quadratic turns linear"),
              "reduction": REDUCTION}
    param_cases = ({"delta": 0.5}, {"delta": 2.0, "reduction": "sum"})
    formula = (r"\ell = \tfrac12 r^2 \text{ if } |r| < \delta \text{ else } "
               r"\delta(|r| - \tfrac12\delta),\ r = x - y")
    gradient = r"\partial \ell/\partial x = \mathrm{clip}(r, -\delta, \delta)"
    reference = "torch.nn.HuberLoss; Huber, Ann. Math. Statist. 35, 73 (1964)"

    def _setup(self):
        self._kink = self.delta

    def _of_residual(self, xp, r, order):
        return _huber_parts(xp, r, self.delta, order)


@register
class SmoothL1(_ResidualLoss):
    """Smooth L1 loss, PyTorch's ``SmoothL1Loss``.

    Value: ``0.5 r**2 / beta`` for ``|r| < beta``, else ``|r| - 0.5 beta``,
    with ``r = input - target``, reduced by ``reduction``. ``beta = 0`` is
    the L1 loss (``mae``), as in PyTorch, computed without dividing by 0.

    Gradient: ``r / beta`` clipped to ``[-1, 1]`` (``sign(r)`` for
    ``beta = 0``, 0 at ``r = 0`` as in PyTorch). Diagonal Hessian:
    ``1 / beta`` for ``|r| < beta``, else 0. Domain: all finite reals;
    ``beta = 0`` or ``beta >= 2**-126`` (1.2e-38, float32's smallest normal
    number), so that the Hessian ``1 / beta`` is finite in float32 too; a
    smaller positive ``beta`` is L1 to within 1e-38 (PyTorch takes any
    ``beta >= 0``). ``smooth_l1(beta) = huber(delta=beta) / beta``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([0.5, 3.0]); y = np.zeros(2)
    >>> v, g = pl.get("smooth_l1", beta=2.0).value_and_grad(x, y)
    >>> float(v), g.tolist()
    (1.03125, [0.125, 0.5])
    """

    name = "smooth_l1"
    params = {"beta": Param(1.0, low=0.0, doc="where the quadratic turns linear; 0 gives L1"),
              "reduction": REDUCTION}
    param_cases = ({"beta": 0.0}, {"beta": 0.5}, {"beta": 2.0, "reduction": "none"})
    formula = (r"\ell = \tfrac12 r^2/\beta \text{ if } |r| < \beta \text{ else } "
               r"|r| - \tfrac12\beta,\ r = x - y")
    gradient = (r"\partial \ell/\partial x = \mathrm{clip}(r/\beta, -1, 1)"
                "; sign(r) for beta = 0, with sign(0) = 0")
    reference = "torch.nn.SmoothL1Loss; Girshick, Fast R-CNN, ICCV (2015)"

    def _setup(self):
        if 0 < self.beta < FLOAT32_TINY:
            msg = (f"{self.name}: parameter 'beta' must be 0 or a real number >= "
                   f"{FLOAT32_TINY:.8g} (float32's smallest normal number, so that the "
                   f"Hessian 1/beta stays finite), got {self.beta!r}")
            raise ValueError(msg)
        self._kink = self.beta

    def _of_residual(self, xp, r, order):
        if self.beta == 0:
            return _abs_parts(xp, r, order)
        parts = _huber_parts(xp, r, self.beta, order)
        return tuple(None if p is None else p / self.beta for p in parts)


@register
class LogCosh(_ResidualLoss):
    """Log-cosh loss, Keras's ``LogCosh`` (PyTorch has none).

    Value: ``log(cosh(r))``, ``r = input - target``, reduced by
    ``reduction``. It is computed as ``|r| + log1p(exp(-2|r|)) - log 2``
    (Keras's softplus form, taken at ``|r|``), which cannot overflow, and as
    ``log1p(2 sinh(r/2)**2)`` for ``|r| < 1``, where the first form would
    lose the small value to cancellation.

    Gradient: ``tanh(r)``; diagonal Hessian ``1 / cosh(r)**2``, computed as
    ``4 e / (1 + e)**2`` with ``e = exp(-2|r|)``. Domain: all finite reals.
    Keras averages over the last axis, then over the batch; for the default
    reduction that is the same mean.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([0.0, 1e4]); y = np.zeros(2)
    >>> v, g = pl.get("log_cosh", reduction="none").value_and_grad(x, y)
    >>> v.tolist(), g.tolist()
    ([0.0, 9999.30685281944], [0.0, 1.0])
    """

    name = "log_cosh"
    param_cases = ({"reduction": "sum"},)
    formula = r"\ell = \log\cosh(x - y)"
    gradient = (r"\partial \ell/\partial x = \tanh(x - y),\ "
                r"\partial^2 \ell/\partial x^2 = \mathrm{sech}^2(x - y)")
    reference = "keras.losses.LogCosh (tf.keras.losses.log_cosh)"

    def _of_residual(self, xp, r, order):
        a = xp.abs(r)
        e = xp.exp(-2.0 * a)
        # The clamp keeps sinh finite in the branch that where() discards.
        s = xp.sinh(0.5 * xp.minimum(a, 1.0))
        loss = xp.where(a < 1.0, xp.log1p(2.0 * s * s), a + xp.log1p(e) - math.log(2.0))
        d1 = xp.tanh(r) if order >= 1 else None
        d2 = 4.0 * e / ((1.0 + e) * (1.0 + e)) if order >= 2 else None
        return loss, d1, d2


@register
class Quantile(_ResidualLoss):
    """Quantile (pinball) loss for the ``tau`` quantile.

    Value: ``tau * (target - input)`` where the target is above the
    prediction, else ``(1 - tau) * (input - target)``, reduced by
    ``reduction``. Minimised in expectation by the ``tau`` quantile of the
    target. Same as ``sklearn.metrics.mean_pinball_loss(target, input,
    alpha=tau)`` and TensorFlow Addons' ``PinballLoss(tau)``; PyTorch has
    none.

    Gradient: ``1 - tau`` where ``input > target``, ``-tau`` where
    ``input < target``, and ``0.5 - tau`` at equality: the mean of the two
    one-sided slopes, which is what autograd gives for the equivalent
    ``0.5|r| + (0.5 - tau) r`` with ``sign(0) = 0``. Diagonal Hessian 0.
    Domain: all finite reals; ``0 < tau < 1``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([0.0, 2.0]); y = np.array([1.0, 1.0])
    >>> v, g = pl.get("quantile", tau=0.9, reduction="none").value_and_grad(x, y)
    >>> np.round(v, 12).tolist(), np.round(g, 12).tolist()
    ([0.9, 0.1], [-0.9, 0.1])
    """

    name = "quantile"
    params = {"tau": Param(0.5, low=0.0, high=1.0, low_open=True, high_open=True,
                           doc="the quantile predicted (sklearn's alpha)"),
              "reduction": REDUCTION}
    param_cases = ({"tau": 0.1}, {"tau": 0.9, "reduction": "none"})
    formula = r"\ell = \max\big((1-\tau)(x - y),\ \tau (y - x)\big)"
    gradient = (r"\partial \ell/\partial x = 1 - \tau \text{ if } x > y,\ -\tau \text{ if } x < y"
                "; 0.5 - tau at x = y")
    reference = ("sklearn.metrics.mean_pinball_loss; Koenker & Bassett, "
                 "Econometrica 46, 33 (1978)")
    _kink = 0.0

    def _of_residual(self, xp, r, order):
        loss = xp.maximum((1.0 - self.tau) * r, -self.tau * r)
        d1 = 0.5 * xp.sign(r) + (0.5 - self.tau) if order >= 1 else None
        d2 = xp.zeros_like(r) if order >= 2 else None
        return loss, d1, d2


_COUNTS = Arg("target", ("*",), low=0.0, doc="observed counts (>= 0, need not be integers)")


@register
class PoissonNLL(PointwiseLoss):
    """Poisson negative log-likelihood, PyTorch's ``PoissonNLLLoss``.

    Value, with ``log_input=True`` (``input`` is the log of the rate):
    ``exp(input) - target * input``; with ``log_input=False`` (``input`` is
    the rate): ``input - target * log(input + eps)``. ``full=True`` adds
    Stirling's approximation of ``log(target!)``, ``target log(target) -
    target + 0.5 log(2 pi target)``, only where ``target > 1`` (PyTorch's
    rule). Reduced by ``reduction``.

    Gradient: ``exp(input) - target`` (log input) or ``1 - target / (input +
    eps)``; diagonal Hessian ``exp(input)`` or ``target / (input + eps)**2``.
    ``full`` adds a constant and changes neither.

    Domain: ``target >= 0``. Log input: ``input <= 80``, so that
    ``exp(input)`` and sums of it stay finite in float32 (PyTorch accepts
    any value and overflows to inf); rate input: ``input >= 0``. ``eps > 0``
    (PyTorch also takes 0, where a zero rate gives ``log(0)``). Keras's
    ``Poisson`` loss is the rate form with ``eps = 1e-7``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([0.0, 1.0]); y = np.array([1.0, 2.0])
    >>> v, g = pl.get("poisson_nll", reduction="sum").value_and_grad(x, y)
    >>> round(float(v), 6), np.round(g, 6).tolist()
    (1.718282, [0.0, 0.718282])
    """

    name = "poisson_nll"
    family = "regression"
    args = (Arg("input", ("*",), high=_EXP_LIMIT, grad=True, doc="log of the predicted rate"),
            _COUNTS)
    params = {
        "log_input": Param(True, kind="bool", doc="input is the log of the rate"),
        "full": Param(False, kind="bool", doc="add the Stirling term for target > 1"),
        "eps": Param(1e-8, low=0.0, low_open=True,
                     doc="added to the rate inside the log (log_input=False only)"),
        "reduction": REDUCTION,
    }
    param_cases = ({"log_input": False}, {"full": True},
                   {"log_input": False, "full": True, "reduction": "sum"})
    formula = (r"\ell = e^x - y x \text{ (log input) or } x - y \log(x + \epsilon)"
               r";\ + y\log y - y + \tfrac12\log(2\pi y) \text{ for } y > 1 \text{ if full}")
    gradient = r"\partial \ell/\partial x = e^x - y \text{ or } 1 - y/(x + \epsilon)"
    reference = "torch.nn.PoissonNLLLoss"

    def _setup(self):
        if not self.log_input:
            self.args = (Arg("input", ("*",), low=0.0, grad=True, doc="predicted rate"),
                         _COUNTS)

    def _pointwise(self, xp, a, order):
        x, t = a["input"], a["target"]
        if self.log_input:
            rate = xp.exp(x)
            loss = rate - t * x
            d1 = rate - t if order >= 1 else None
            d2 = rate if order >= 2 else None
        else:
            shifted = x + self.eps
            loss = x - t * xp.log(shifted)
            d1 = 1.0 - t / shifted if order >= 1 else None
            d2 = t / (shifted * shifted) if order >= 2 else None
        if self.full:
            big = t > 1
            # Substituting 2 where the term is masked keeps log() away from 0.
            tb = xp.where(big, t, 2.0)
            stirling = tb * xp.log(tb) - tb + 0.5 * xp.log((2.0 * math.pi) * tb)
            loss = loss + xp.where(big, stirling, 0.0)
        return loss, d1, d2


@register
class Tweedie(PointwiseLoss):
    """Tweedie deviance with power ``p``, the prediction on the log link.

    ``input`` is the raw prediction ``f = log(mu)`` of the mean ``mu``; the
    value is scikit-learn's unit deviance, so that
    ``tweedie(power=p).value(f, y) == mean_tweedie_deviance(y, exp(f),
    power=p)``:

    - ``p = 0`` (normal): ``(y - mu)**2``;
    - ``p = 1`` (Poisson): ``2 (y log(y / mu) - y + mu)``, with ``0 log 0 = 0``;
    - ``p = 2`` (gamma): ``2 (log(mu / y) + y / mu - 1)``;
    - otherwise: ``2 (y**(2-p) / ((1-p)(2-p)) - y mu**(1-p) / (1-p) +
      mu**(2-p) / (2-p))``.

    ``p = 0, 1, 2`` are the exact limits of the general formula, which loses
    digits to cancellation within about 1e-6 of 1 and 2.

    Gradient with respect to ``f``: ``2 mu**(1-p) (mu - y)``; diagonal
    Hessian ``2 mu**(1-p) ((2-p) mu - (1-p) y)``. These are the gradient and
    Hessian of LightGBM's ``tweedie`` and XGBoost's ``reg:tweedie``
    objectives up to a factor 2 and the constant terms, which do not change
    them; scikit-learn's ``HalfTweedieLoss`` (log link) is half the deviance
    minus terms constant in ``f``.

    Why the log link: the mean must stay positive, and with the identity
    link the gradient ``2 (mu - y) / mu**p`` overflows as ``mu -> 0``;
    boosting libraries and scikit-learn's Tweedie models predict on this
    scale. For the identity link evaluate at ``f = log(mu)`` and multiply the
    gradient by ``1 / mu``.

    Domain: ``power`` is 0 or ``>= 1`` (no Tweedie distribution has
    ``0 < p < 1``; negative powers are not supported). ``target`` is any
    real for ``p = 0``, ``>= 0`` for ``1 <= p < 2``, and ``> 0`` for
    ``p >= 2``; for ``p > 2`` at least ``exp(-80 / (p - 2))``, since the
    deviance grows like ``y**(2-p)``. That bound is enforced as the data's
    dtype holds it: in float32 a bound below 1.4e-45 (``p < 4.2``) means
    ``target >= 1.4e-45``, the smallest positive float32, never 0. ``|input| <= 80 / max(|1-p|, |2-p|)``,
    so that every power of ``mu`` stays below ``exp(80)`` and finite in
    float32. A target so large under a mean so small that the deviance
    (about ``2 y mu**(1-p) / (p-1)``), their sum or a derivative exceeds the
    dtype's range (``y > 6e3`` at ``mu**(1-p) = exp(80)`` in float32) raises
    ``ValueError`` naming both arguments while value checks are on.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> f = np.log(np.array([1.0, 2.0])); y = np.array([1.0, 4.0])
    >>> v, g = pl.get("tweedie", power=2).value_and_grad(f, y)
    >>> round(float(v), 6), np.round(g, 6).tolist()
    (0.306853, [0.0, -1.0])
    """

    name = "tweedie"
    family = "regression"
    args = (_INPUT, _TARGET)  # replaced in _setup by the power's domain
    params = {"power": Param(1.5, low=0.0, doc="Tweedie power p: 0, or >= 1"),
              "reduction": REDUCTION}
    param_cases = ({"power": 0.0}, {"power": 1.0}, {"power": 2.0}, {"power": 3.0},
                   {"power": 1.2, "reduction": "none"}, {"power": 2.5, "reduction": "sum"})
    formula = (r"\ell = 2\left(\frac{y^{2-p}}{(1-p)(2-p)} - \frac{y\,\mu^{1-p}}{1-p} + "
               r"\frac{\mu^{2-p}}{2-p}\right),\ \mu = e^x\ (\text{limits at } p = 0, 1, 2)")
    gradient = (r"\partial \ell/\partial x = 2\mu^{1-p}(\mu - y),\ "
                r"\partial^2 \ell/\partial x^2 = 2\mu^{1-p}((2-p)\mu - (1-p)y)")
    reference = ("sklearn.metrics.mean_tweedie_deviance and sklearn._loss.HalfTweedieLoss; "
                 "Jorgensen, The Theory of Dispersion Models (1997)")

    def _setup(self):
        p = self.power
        if 0 < p < 1:
            msg = (f"{self.name}: parameter 'power' must be 0 or a real number >= 1 "
                   f"(no Tweedie distribution has 0 < power < 1), got {p!r}")
            raise ValueError(msg)
        bound = _EXP_LIMIT / max(abs(1 - p), abs(2 - p))
        doc = "observed value"
        if p == 0:
            target = Arg("target", ("*",), doc=doc)
        elif p < 2:
            target = Arg("target", ("*",), low=0.0, doc=doc)
        elif p == 2:
            target = Arg("target", ("*",), low=0.0, low_open=True, doc=doc)
        else:
            # Below 2.11 the bound underflows float64: every positive number is in.
            low = math.exp(-_EXP_LIMIT / (p - 2))
            target = Arg("target", ("*",), low=low, low_open=low == 0, doc=doc)
        self.args = (Arg("input", ("*",), low=-bound, high=bound, grad=True,
                         doc="log of the predicted mean (log link)"), target)

    def _pointwise(self, xp, a, order):
        f, y = a["input"], a["target"]
        p = self.power
        # Only exp((1-p) f) and exp((2-p) f) are formed: the domain keeps
        # those finite, while mu = exp(f) itself may overflow (|f| <= 160 at
        # p = 1.5).
        mu_a1 = xp.exp((1.0 - p) * f)
        mu_a2 = xp.exp((2.0 - p) * f)
        if p == 0:
            loss = (mu_a1 - y) * (mu_a1 - y)  # mu_a1 = mu here
        elif p in (1, 2):
            pos = y > 0
            # log(y / mu), with y = 0 (allowed for p = 1) kept out of the log.
            w = xp.log(xp.where(pos, y, 1.0)) - f
            if p == 1:
                loss = 2.0 * (xp.where(pos, y * w, 0.0) - y + mu_a2)  # mu_a2 = mu
            else:
                # y/mu - 1 - log(y/mu), in a form that keeps digits near y = mu.
                loss = 2.0 * (xp.expm1(w) - w)
        else:
            a1, a2 = 1.0 - p, 2.0 - p
            loss = 2.0 * (y**a2 / (a1 * a2) - y * mu_a1 / a1 + mu_a2 / a2)
        d1 = 2.0 * (mu_a2 - y * mu_a1) if order >= 1 else None
        d2 = 2.0 * ((2.0 - p) * mu_a2 - (1.0 - p) * y * mu_a1) if order >= 2 else None
        # The domain bounds each power of mu, not target * mu**(1-p): a large
        # target under a tiny mean can take the exact deviance (or its sum)
        # beyond the dtype's range. Refused by name rather than returned as inf.
        big = xp.finfo(f.dtype).max
        ok = xp.all(xp.abs(loss) <= big / max(math.prod(f.shape), 1))
        for d in (d1, d2):
            if d is not None:
                ok = ok & xp.all(xp.abs(d) <= big)
        require(xp, ok, f"{self.name}: arguments 'input' and 'target' give a deviance, a sum "
                f"of deviances or a derivative beyond the range of {f.dtype} (a large target "
                "under a tiny mean exp(input)); use float64 or rescale the target")
        return loss, d1, d2
