"""Regularization penalties on a parameter array ``params``.

A penalty is added to a data loss to keep the parameters small. It is a sum
over every element (no ``reduction``), in the form of the seed catalogue:
``lambda1 * sum|w| + lambda2 * sum w**2``. ``l1`` and ``l2`` are that elastic
net with the other coefficient fixed at 0.

Conventions elsewhere, in these coefficients:

- Keras ``regularizers.L1(l1)``, ``L2(l2)``, ``L1L2(l1, l2)``: the same
  formulas, ``lambda1 = l1``, ``lambda2 = l2``; the defaults here (0.01) are
  Keras's ``L1``/``L2`` defaults.
- PyTorch's optimiser ``weight_decay=wd`` (SGD, Adam) and optax's
  ``add_decayed_weights(wd)`` add ``wd * w`` to the gradient: the gradient
  of ``0.5 * wd * ||w||**2``, i.e. ``lambda2 = wd / 2``. (AdamW's decoupled
  decay is not the gradient of any penalty.)
- scikit-learn's ``ElasticNet(alpha, l1_ratio)`` penalises
  ``alpha * l1_ratio * ||w||_1 + 0.5 * alpha * (1 - l1_ratio) * ||w||**2``:
  ``lambda1 = alpha * l1_ratio``, ``lambda2 = alpha * (1 - l1_ratio) / 2``
  (its data term is also halved: ``||y - Xw||**2 / (2 n)``).
"""

from __future__ import annotations

import numpy as np

from .._registry import PointwiseLoss, register
from .._validate import Arg, Param

__all__ = ["ElasticNet", "L1", "L2"]

_LAMBDA1 = Param(0.01, low=0.0, doc="coefficient of sum |w|")
_LAMBDA2 = Param(0.01, low=0.0, doc="coefficient of sum w**2")


class _Penalty(PointwiseLoss):
    """``lambda1 * sum|w| + lambda2 * sum w**2``; subclasses choose which
    coefficients are parameters, the others stay at the class value 0."""

    family = "regularization"
    args = (Arg("params", ("*",), grad=True, doc="the parameters (weights) penalised"),)
    # A penalty sums over all parameters; PointwiseLoss reads this in place
    # of a reduction parameter.
    reduction = "sum"
    lambda1 = 0.0
    lambda2 = 0.0

    def nonsmooth_distance(self, name, arrays):
        return np.abs(arrays[name]) if self.lambda1 > 0 else None

    def _pointwise(self, xp, a, order):
        w = a["params"]
        loss = self.lambda1 * xp.abs(w) + self.lambda2 * (w * w)
        d1 = self.lambda1 * xp.sign(w) + (2.0 * self.lambda2) * w if order >= 1 else None
        d2 = xp.full_like(w, 2.0 * self.lambda2) if order >= 2 else None
        return loss, d1, d2


@register
class ElasticNet(_Penalty):
    """Elastic net penalty ``lambda1 * sum|w| + lambda2 * sum w**2``.

    Gradient: ``lambda1 * sign(w) + 2 lambda2 w``, with ``sign(0) = 0`` as
    in PyTorch (the subgradient of the L1 part at 0 that is smallest in
    magnitude). Diagonal Hessian ``2 lambda2`` (the L1 kink has none).
    Domain: all finite reals; both coefficients ``>= 0``. See the module
    notes for Keras's ``L1L2`` (the same) and scikit-learn's
    ``alpha``/``l1_ratio`` parametrisation.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> w = np.array([-2.0, 0.0, 1.0])
    >>> v, g = pl.get("elastic_net", lambda1=0.5, lambda2=0.25).value_and_grad(w)
    >>> float(v), g.tolist()
    (2.75, [-1.5, 0.0, 1.0])
    """

    name = "elastic_net"
    params = {"lambda1": _LAMBDA1, "lambda2": _LAMBDA2}
    param_cases = ({"lambda1": 0.0, "lambda2": 1.0}, {"lambda1": 1.0, "lambda2": 0.0},
                   {"lambda1": 2.0, "lambda2": 3.0})
    formula = r"L = \lambda_1 \sum_i |w_i| + \lambda_2 \sum_i w_i^2"
    gradient = (r"\partial L/\partial w = \lambda_1 \mathrm{sign}(w) + 2\lambda_2 w"
                "; sign(0) = 0")
    reference = ("Zou & Hastie, J. R. Stat. Soc. B 67, 301 (2005); "
                 "keras.regularizers.L1L2; sklearn.linear_model.ElasticNet")


@register
class L1(_Penalty):
    """L1 (lasso) penalty ``lambda1 * sum|w|``.

    Gradient: ``lambda1 * sign(w)``, 0 at ``w = 0`` as PyTorch's
    ``sign(0) = 0``; diagonal Hessian 0. Domain: all finite reals;
    ``lambda1 >= 0``. Same as Keras's ``regularizers.L1(l1=lambda1)``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> w = np.array([-2.0, 0.0, 1.0])
    >>> v, g = pl.get("l1", lambda1=0.5).value_and_grad(w)
    >>> float(v), g.tolist()
    (1.5, [-0.5, 0.0, 0.5])
    """

    name = "l1"
    params = {"lambda1": _LAMBDA1}
    param_cases = ({"lambda1": 1.0},)
    formula = r"L = \lambda_1 \sum_i |w_i|"
    gradient = r"\partial L/\partial w = \lambda_1 \mathrm{sign}(w)" + "; sign(0) = 0"
    reference = "Tibshirani, J. R. Stat. Soc. B 58, 267 (1996); keras.regularizers.L1"


@register
class L2(_Penalty):
    """L2 (ridge) penalty ``lambda2 * sum w**2``, in the seed's form.

    Gradient ``2 lambda2 w``; diagonal Hessian ``2 lambda2``. Domain: all
    finite reals; ``lambda2 >= 0``. Same as Keras's
    ``regularizers.L2(l2=lambda2)``. Optimiser weight decay ``wd`` (PyTorch
    ``weight_decay``, optax ``add_decayed_weights``) is the gradient of
    ``0.5 * wd * ||w||**2``, i.e. ``lambda2 = wd / 2``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> w = np.array([-2.0, 0.0, 1.0])
    >>> v, g = pl.get("l2", lambda2=0.5).value_and_grad(w)
    >>> float(v), g.tolist()
    (2.5, [-2.0, 0.0, 1.0])
    """

    name = "l2"
    params = {"lambda2": _LAMBDA2}
    param_cases = ({"lambda2": 0.5},)
    formula = r"L = \lambda_2 \sum_i w_i^2"
    gradient = r"\partial L/\partial w = 2\lambda_2 w"
    reference = "Hoerl & Kennard, Technometrics 12, 55 (1970); keras.regularizers.L2"
